// Chat, moderation, polls and Q&A in real Chromium pages, through what people see and
// click: the channel page (/watch/{slug}) and the studio. Several people, each in a
// browser context of their own (their own localStorage, so their own account): the owner
// "ola" live in her studio, viewers "bea" (chat over the WHEP session's data channel),
// "cyd" (`?transport=ws`: the room's WebSocket), "dan" (who gets timed out), "eve" (made a
// moderator in the studio) and an anonymous viewer. Every page runs under the node's
// Content-Security-Policy and must not trip it. Run inside `unshare --net`.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { api, account } from "./accounts.mjs";
import { startServer, launch, until } from "./harness.mjs";





/** A page of its own browser context, signed in as `session` (or anonymous), watched for CSP trips. */
async function open(browser, base, path, session, name) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.violations = [];
  page.dialogs = [];
  page.on("console", (m) => {
    const text = m.text();
    if (text.startsWith("csp-violation ") || /Content Security Policy/i.test(text)) page.violations.push(`${name}: ${text}`);
  });
  page.on("pageerror", (e) => console.log(`${name} page error:`, e.message));
  page.on("dialog", (d) => { page.dialogs.push(d.message()); void d.dismiss(); });
  await page.addInitScript(() => document.addEventListener("securitypolicyviolation", (e) =>
    console.error(`csp-violation ${e.effectiveDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`)));
  if (session) {
    await page.goto(`${base}/signin`);
    await page.evaluate((s) => localStorage.setItem("cascade.session", JSON.stringify(s)), session);
  }
  await page.goto(`${base}${path}`);
  return page;
}

/** Waits until the page's chat (the channel page's or the studio's) is welcomed. */
const joined = (page) => until(page, () => (window.player ?? window.studio)?.chat?.state === "open", null, 20000);

/** The texts of the chat messages the page shows, oldest first. */
const shown = (page) => page.$$eval("#messages li .text", (els) => els.map((e) => e.textContent));

/** Waits until the page shows a message whose text is `text`. */
const sees = (page, text, ms = 10000) => until(page,
  (t) => [...document.querySelectorAll("#messages li .text")].some((e) => e.textContent === t), text, ms)
  .catch(async (e) => { throw new Error(`never shown: ${text}; shown: ${JSON.stringify(await shown(page))} (${e.message})`); });

/** Types `text` into the chat box and sends it, as a person does. */
async function say(page, text) {
  await page.fill("#chat-input", text);
  await page.click("#chat-send");
}

/** The `li` of the message whose text is `text`. */
const row = (page, text) => page.locator("#messages li", { has: page.locator(".text", { hasText: text }) }).last();

/** With CHAT_SHOTS=<dir>, a screenshot of `page` there (to look at the pages). */
async function shot(page, name) {
  if (process.env.CHAT_SHOTS) await page.screenshot({ path: join(process.env.CHAT_SHOTS, `${name}.png`), fullPage: true });
}

let server, browser, owner, ola, bea, cyd, anon, base;
const pages = [];
const slug = "ola-live";

before(async () => {
  server = await startServer(["--workers", "1", "--auth", "accounts"]);
  base = server.base;
  browser = await launch();
  owner = await account(base, "ola");
  await api(base, "/channels", { slug, title: "Ola live" }, owner.access_token);
  const { key } = await api(base, `/channels/${slug}/keys`, { label: "studio" }, owner.access_token);
  // Ola goes live from her studio with her key (a click on Go live) and keeps the studio open.
  ola = await open(browser, base, "/studio", owner, "studio");
  await until(ola, (s) => window.studio?.channel === s, slug);
  await ola.fill("#key", key);
  await ola.selectOption("#source", "clock");
  await ola.click("#start");
  await until(ola, () => window.studio?.state === "live", null, 20000);
  await joined(ola);
  bea = await open(browser, base, `/watch/${slug}`, await account(base, "bea"), "bea");
  cyd = await open(browser, base, `/watch/${slug}?transport=ws`, await account(base, "cyd"), "cyd");
  anon = await open(browser, base, `/watch/${slug}`, null, "anonymous");
  pages.push(ola, bea, cyd, anon);
  for (const p of [bea, cyd, anon]) await joined(p);
});

after(async () => {
  const violations = pages.flatMap((p) => p.violations ?? []);
  await browser?.close();
  await server?.stop();
  assert.deepEqual(violations, [], "no page trips the Content-Security-Policy");
});

test("the chat goes over the data channel by default and over the WebSocket when asked", async () => {
  await until(bea, () => window.player?.frames > 10, null, 30000);
  assert.equal(await bea.evaluate(() => window.player.chat.transport), "datachannel", "bea: the WHEP session's chat data channel");
  assert.equal(await cyd.evaluate(() => window.player.chat.transport), "websocket", "cyd: ?transport=ws");
  assert.equal(await ola.evaluate(() => window.studio.chat.transport), "websocket", "the studio: the WebSocket");
});

test("two signed-in viewers chat both ways; everyone sees it", async () => {
  await say(bea, "hi from bea on the data channel");
  await sees(cyd, "hi from bea on the data channel");
  await say(cyd, "and hello from cyd on the websocket");
  await sees(bea, "and hello from cyd on the websocket");
  for (const p of [ola, anon]) {
    await sees(p, "hi from bea on the data channel");
    await sees(p, "and hello from cyd on the websocket");
  }
  // In order, and the author's name next to the text.
  const texts = await shown(anon);
  assert.ok(texts.indexOf("hi from bea on the data channel") < texts.indexOf("and hello from cyd on the websocket"));
  assert.equal(await row(anon, "hi from bea").locator(".who").textContent(), "bea");
  assert.equal(await bea.inputValue("#chat-input"), "", "the box is emptied once the server took the message");
});

test("an anonymous viewer reads but cannot post, and is offered to sign in", async () => {
  assert.equal(await anon.isVisible("#chat-form"), false, "no chat box");
  assert.equal(await anon.isVisible("#chat-signin"), true, "a sign-in link instead");
  const href = await anon.getAttribute("#chat-signin a", "href");
  assert.equal(href, `/signin?next=${encodeURIComponent(`/watch/${slug}`)}`);
  assert.equal(await anon.evaluate(() => window.player.chat.welcome.role), "anonymous");
  // The server refuses a post without an account even when a page tries.
  const refused = await anon.evaluate(() => window.player.chat.send("sneaky").then(() => "sent", (e) => e.code));
  assert.notEqual(refused, "sent");
  // The link signs in and comes back to the channel, where the box is now.
  const context = await browser.newContext();
  const page = await context.newPage();
  pages.push(page);
  await account(base, "fay");
  await page.goto(`${base}${href}`);
  await page.fill("#login", "fay");
  await page.fill("#password", "fay's long password");
  await Promise.all([page.waitForURL(`${base}/watch/${slug}`), page.click("#submit")]);
  await page.waitForSelector("#chat-form:not([hidden])");
  await say(page, "fay signed in from the link");
  await sees(anon, "fay signed in from the link");
  await context.close();
});

test("a moderator times a viewer out: the next post is refused and the reason is shown", async () => {
  // Ola makes eve a moderator in her studio.
  const eveSession = await account(base, "eve");
  await ola.fill("#mod-user", "eve");
  await ola.click("#mod-add");
  await until(ola, () => document.querySelector("#mods-list").textContent.includes("eve"));
  const eve = await open(browser, base, `/watch/${slug}`, eveSession, "eve");
  const dan = await open(browser, base, `/watch/${slug}`, await account(base, "dan"), "dan");
  pages.push(eve, dan);
  await joined(eve); await joined(dan);
  assert.equal(await eve.evaluate(() => window.player.chat.welcome.role), "moderator");

  await say(dan, "dan says something rude");
  await sees(eve, "dan says something rude");
  // Eve's message actions show on hover: Timeout stops dan posting for 10 minutes.
  const line = row(eve, "dan says something rude");
  await line.hover();
  await line.locator("button", { hasText: "Timeout" }).click();
  // The timeout is a REST call from eve's page: wait until the channel lists it.
  for (let i = 0; ; i++) {
    const bans = await api(base, `/channels/${slug}/bans`, undefined, owner.access_token, "GET");
    if (JSON.stringify(bans).includes("dan")) break;
    if (i > 50) assert.fail(`dan is never timed out: ${JSON.stringify(bans)}; eve's page says ${await eve.textContent("#chat-error")}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  await say(dan, "dan tries again after the timeout");
  await until(dan, () => document.getElementById("chat-error").dataset.code === "timed_out", null, 10000)
    .catch(async (e) => { throw new Error(`dan's error: ${await dan.textContent("#chat-error")} (${e.message})`); });
  const reason = await dan.textContent("#chat-error");
  assert.ok(reason.trim().length > 0, "the reason is shown");
  assert.equal(await dan.inputValue("#chat-input"), "dan tries again after the timeout", "the refused text stays in the box");
  await new Promise((r) => setTimeout(r, 1000));
  assert.ok(!(await shown(cyd)).includes("dan tries again after the timeout"), "nobody sees the refused message");
});

test("a message deleted by the owner vanishes for the other viewers", async () => {
  await say(bea, "bea posts something to delete");
  await sees(cyd, "bea posts something to delete");
  await sees(ola, "bea posts something to delete");
  const line = row(ola, "bea posts something to delete");
  await line.hover();
  await line.locator("button", { hasText: "Delete" }).click();
  for (const p of [cyd, anon, bea]) {
    await until(p, (t) => ![...document.querySelectorAll("#messages li .text")].some((e) => e.textContent === t),
      "bea posts something to delete", 10000);
  }
  // The rest of the chat is still there.
  assert.ok((await shown(cyd)).includes("hi from bea on the data channel"));
});

test("a blocked term is masked", async () => {
  await ola.fill("#term", "frobnicate");
  await ola.selectOption("#term-action", "mask");
  await ola.click("#term-add");
  await until(ola, () => document.querySelector("#terms-list").textContent.includes("frobnicate"));
  await say(bea, "please frobnicate the widget");
  await until(cyd, () => [...document.querySelectorAll("#messages li .text")].some((e) => e.textContent.includes("the widget")), null, 10000);
  const texts = await shown(cyd);
  const got = texts.find((t) => t.includes("the widget"));
  assert.ok(!got.includes("frobnicate"), `masked: ${got}`);
  assert.match(got, /\*\*\*/);
});

test("a viewer reports a message; the studio's queue deletes it for everyone", async () => {
  await say(cyd, "cyd posts a spammy link");
  await sees(bea, "cyd posts a spammy link");
  const line = row(bea, "cyd posts a spammy link");
  await line.hover();
  await line.locator("button", { hasText: "Report" }).click();
  await line.locator("form.report button[type=submit]").click();
  await line.locator("form.report", { hasText: "Reported" }).waitFor({ timeout: 10000 });
  await ola.click("#reports-refresh");
  const report = ola.locator("#reports-list li", { hasText: "cyd posts a spammy link" });
  await report.waitFor({ timeout: 10000 });
  assert.match(await report.textContent(), /reported by bea: spam/);
  await report.locator("button.delete").click();
  for (const p of [bea, anon, cyd]) {
    await until(p, (t) => ![...document.querySelectorAll("#messages li .text")].some((e) => e.textContent === t),
      "cyd posts a spammy link", 10000);
  }
  await until(ola, () => !document.querySelector("#reports-list").textContent.includes("spammy"), null, 10000);
});

test("slow mode set in the studio refuses a quick second post, with the wait shown", async () => {
  // Hal has not posted yet (slow mode counts from a user's last post).
  const hal = await open(browser, base, `/watch/${slug}?transport=ws`, await account(base, "hal"), "hal");
  pages.push(hal);
  await joined(hal);
  await ola.fill("#slow-mode", "30");
  await ola.click("#settings-save");
  try {
    await until(ola, () => document.getElementById("settings-status").textContent === "saved");
    await until(hal, () => window.player?.chat.welcome.settings.slow_mode_secs === 30, null, 10000);
    await say(hal, "first post in slow mode");
    await sees(bea, "first post in slow mode");
    await say(hal, "second post too soon");
    await until(hal, () => document.getElementById("chat-error").dataset.code === "slow_mode", null, 10000)
      .catch(async (e) => { throw new Error(`hal's error: ${await hal.textContent("#chat-error")} (${e.message})`); });
    assert.match(await hal.textContent("#chat-error"), /Try again in \d+ s/);
  } finally {
    // Off again for what follows.
    await ola.fill("#slow-mode", "0");
    await ola.click("#settings-save");
    await until(bea, () => window.player?.chat.welcome.settings.slow_mode_secs === 0, null, 10000);
  }
});

test("a poll's live results reach a third viewer", async () => {
  await ola.fill("#poll-question", "Which colour next?");
  await ola.fill("#poll-options", "Red\nBlue\nGreen");
  await ola.click("#poll-create");
  for (const p of [bea, cyd, anon]) await p.waitForSelector("#polls:not([hidden]) .poll");
  assert.equal(await anon.textContent("#polls .poll .q"), "Which colour next?");
  await bea.click('#polls .poll button.option[data-index="1"]');
  await cyd.click('#polls .poll button.option[data-index="1"]');
  // The anonymous viewer voted for nothing and sees both votes on Blue, live.
  await until(anon, () => {
    const blue = document.querySelector('#polls .poll .option[data-index="1"] .count');
    return blue && blue.textContent === "100% · 2";
  }, null, 10000).catch(async (e) => { throw new Error(`anon sees ${await anon.textContent("#polls")} (${e.message})`); });
  assert.match(await anon.textContent("#polls .poll-meta"), /2 votes/);
  assert.match(await bea.textContent("#polls .poll-meta"), /you voted/);
  // Closing it from the studio reaches viewers too.
  await ola.click("#poll-list .poll button.danger");
  await until(anon, () => /closed/.test(document.querySelector("#polls .poll-meta")?.textContent ?? "") || document.getElementById("polls").hidden, null, 10000);
});

test("a question is asked, upvoted and marked answered", async () => {
  await bea.fill("#qa-input", "Will you show the recipe again?");
  await bea.click("#qa-ask");
  const q = (p) => p.locator("#qa-list li.question", { hasText: "Will you show the recipe again?" });
  await q(cyd).waitFor();
  await q(cyd).locator("button.upvote").click();
  await until(bea, () => [...document.querySelectorAll("#qa-list li.question")]
    .some((li) => li.textContent.includes("recipe") && li.querySelector(".count").textContent === "1"), null, 10000);
  await q(ola).waitFor();
  await q(ola).locator("button.mark-answered").click();
  await q(anon).locator(".answered-badge").waitFor({ timeout: 10000 });
  await q(bea).locator(".answered-badge").waitFor({ timeout: 10000 });
});

test("a survey is answered by a viewer and its results exported from the studio", async () => {
  await ola.fill("#survey-title", "How was the show?");
  await ola.selectOption("#survey-questions .sq-kind", "choice");
  await ola.fill("#survey-questions .sq-prompt", "Again next week?");
  await ola.fill("#survey-questions .sq-options", "yes, no");
  await ola.click("#survey-create");
  await ola.locator("#surveys-list li", { hasText: "How was the show?" }).waitFor();
  const form = bea.locator("#survey-list form.survey", { hasText: "How was the show?" });
  await form.waitFor({ timeout: 10000 });
  await form.locator('input[type=radio][value="0"]').check();
  await form.locator("button[type=submit]").click();
  await form.waitFor({ state: "detached", timeout: 10000 })
    .catch(async (e) => { throw new Error(`the survey stays: ${await form.textContent()} (${e.message})`); });
  // The studio counts the response and saves the results as CSV.
  await ola.click("#reports-refresh");
  await until(ola, () => document.querySelector("#surveys-list .responses")?.textContent === "1 response", null, 10000)
    .catch(async (e) => { throw new Error(`the studio lists ${await ola.textContent("#surveys-list")} (${e.message})`); });
  const [download] = await Promise.all([
    ola.waitForEvent("download"),
    ola.locator("#surveys-list li", { hasText: "How was the show?" }).locator("button", { hasText: "Export CSV" }).click(),
  ]);
  const path = await download.path();
  const csv = (await import("node:fs")).readFileSync(path, "utf8");
  assert.match(csv, /Again next week\?/);
  assert.match(csv, /yes/);
});

test("markup in a message is shown as text and never runs", async () => {
  const img = `<img src=x onerror="window.__xss='img';alert('img')">`;
  const script = `<script>window.__xss='script';alert('script')</script>`;
  // From two authors: the flood rule allows 5 messages in 10 s to one.
  await say(bea, img);
  await sees(cyd, img);
  await say(cyd, script);
  for (const p of [cyd, anon, ola]) {
    await sees(p, script);
    await sees(p, img);
  }
  await shot(bea, "watch-bea"); await shot(anon, "watch-anonymous"); await shot(ola, "studio-ola");
  for (const p of [cyd, anon, ola, bea]) {
    assert.equal(await p.evaluate(() => window.__xss ?? null), null, "no script ran");
    assert.equal(await p.locator("#messages img, #messages script").count(), 0, "no element was made from it");
    assert.deepEqual(p.dialogs, [], "no alert");
  }
});

test("chat history survives a restart of the node (same data directory)", async () => {
  const data = mkdtempSync(join(tmpdir(), "cascade-chat-restart-"));
  let node = await startServer(["--auth", "accounts"], { dataDir: data });
  const gus = await account(node.base, "gus");
  await api(node.base, "/channels", { slug: "gus-live", title: "Gus" }, gus.access_token);
  let page = await open(browser, node.base, "/watch/gus-live?transport=ws", gus, "gus");
  await joined(page);
  await say(page, "remember this after the restart");
  await sees(page, "remember this after the restart");
  await say(page, "and this one too");
  await sees(page, "and this one too");
  const violations = [...page.violations];
  await page.context().close();
  await node.stop();

  node = await startServer(["--auth", "accounts"], { dataDir: data });
  try {
    page = await open(browser, node.base, "/watch/gus-live?transport=ws", null, "after restart");
    await joined(page);
    await sees(page, "remember this after the restart");
    await sees(page, "and this one too");
    const texts = await shown(page);
    assert.ok(texts.indexOf("remember this after the restart") < texts.indexOf("and this one too"));
    assert.deepEqual([...violations, ...page.violations], []);
    await page.context().close();
  } finally {
    await node.stop();
  }
});
