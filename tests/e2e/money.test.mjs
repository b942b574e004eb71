// Money through the pages, against localstripe (PyPI: a stateful fake Stripe that serves a
// stand-in for Stripe.js and signs its own webhooks): the owner "lea" sets a tier and the
// paywall in her studio and goes live; the viewer "vic" sees "Subscribers only",
// subscribes through the channel page's card form (localstripe's test card), and the
// stream then plays (frames decoded); "otto", who does not subscribe, stays refused; a
// tip from vic's page shows its alert on the studio and on both viewers' pages; vic
// cancels on his account page and his open watch page shows the cover with the reason. vic's chat
// messages carry his tier's badge on otto's page. Every page
// runs under the node's Content-Security-Policy (the channel page's allows localstripe's
// origin for its script) and must not trip it. Run inside `unshare --net`; without
// localstripe the test says SKIPPED.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { api, account } from "./accounts.mjs";
import { startServer, launch, until } from "./harness.mjs";

const WHSEC = "whsec_cascade_e2e";
const slug = "lea-live";

const haveLocalstripe = spawnSync("sh", ["-c", "command -v localstripe"]).status === 0;
if (!haveLocalstripe) console.log("SKIPPED (money.test.mjs): localstripe is not installed (python3 -m pip install localstripe)");

/** A free TCP port on 127.0.0.1. */
function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

/** localstripe on a free port; resolves with { base, stop() } once it answers. */
async function startLocalstripe() {
  const port = await freePort();
  // Its log (every request and webhook) with MONEY_DEBUG=1.
  const proc = spawn("localstripe", ["--port", String(port), "--from-scratch"],
    { stdio: ["ignore", "ignore", process.env.MONEY_DEBUG ? "inherit" : "ignore"] });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    const up = await fetch(`${base}/js.stripe.com/v3/`).then((r) => r.ok, () => false);
    if (up) return { base, stop: () => { proc.kill("SIGTERM"); return new Promise((r) => proc.once("exit", r)); } };
    await new Promise((r) => setTimeout(r, 100));
  }
  proc.kill("SIGKILL");
  throw new Error("localstripe did not start");
}




/** A page in its own browser context, signed in as `session`, watched for CSP trips. */
async function open(browser, base, path, session, name) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.violations = [];
  page.on("console", (m) => {
    const text = m.text();
    if (text.startsWith("csp-violation ") || /Content Security Policy/i.test(text)) page.violations.push(`${name}: ${text}`);
  });
  page.on("pageerror", (e) => console.log(`${name} page error:`, e.message));
  await page.addInitScript(() => document.addEventListener("securitypolicyviolation", (e) =>
    console.error(`csp-violation ${e.effectiveDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`)));
  if (session) {
    await page.goto(`${base}/signin`);
    await page.evaluate((s) => localStorage.setItem("cascade.session", JSON.stringify(s)), session);
  }
  await page.goto(`${base}${path}`);
  return page;
}

/** With MONEY_SHOTS=<dir>, screenshots of `page` (or of its elements matching `selector`)
 *  there in the light and dark themes. */
async function shot(page, name, selector) {
  if (!process.env.MONEY_SHOTS) return;
  for (const colorScheme of ["light", "dark"]) {
    await page.emulateMedia({ colorScheme });
    const path = join(process.env.MONEY_SHOTS, `${name}-${colorScheme}.png`);
    if (selector) await page.locator(selector).screenshot({ path });
    else await page.screenshot({ path, fullPage: true });
  }
  await page.emulateMedia({ colorScheme: null });
}

/** Types localstripe's test card into the card form and pays. */
async function payWithTestCard(page) {
  await page.waitForSelector("#card-panel:not([hidden]) #card-element input[placeholder=number]");
  await page.fill("#card-element input[placeholder=number]", "4242424242424242");
  await page.fill("#card-element input[placeholder=exp_month]", "12");
  await page.fill("#card-element input[placeholder=exp_year]", "34");
  await page.fill("#card-element input[placeholder=cvc]", "123");
  await page.fill("#card-element input[placeholder=postal_code]", "42424");
  await page.click("#card-pay");
}

let stripe, server, browser, base, owner, studio, vic, otto, vicSession;
const pages = [];

before(async () => {
  if (!haveLocalstripe) return;
  stripe = await startLocalstripe();
  const dir = mkdtempSync(join(tmpdir(), "cascade-money-"));
  writeFileSync(join(dir, "sk"), "sk_test_cascade_e2e\n", { mode: 0o600 });
  writeFileSync(join(dir, "whsec"), `${WHSEC}\n`, { mode: 0o600 });
  server = await startServer(["--workers", "1", "--auth", "accounts",
    "--stripe-secret-key-file", join(dir, "sk"), "--stripe-webhook-secret-file", join(dir, "whsec"),
    "--stripe-api-base", stripe.base, "--stripe-publishable-key", "pk_test_cascade_e2e",
    "--stripe-js-url", `${stripe.base}/js.stripe.com/v3/`,
    // The studio's webhook goes to a receiver of this test on 127.0.0.1.
    "--webhooks-allow-private"]);
  base = server.base;
  // localstripe signs its events with the same secret and posts them to the node.
  const hook = await fetch(`${stripe.base}/_config/webhooks/cascade`, {
    method: "POST",
    body: new URLSearchParams({ url: `${base}/api/v1/payments/stripe/webhook`, secret: WHSEC }),
  });
  assert.ok(hook.ok, `localstripe's webhook: ${hook.status}`);
  browser = await launch();

  owner = await account(base, "lea");
  await api(base, "/channels", { slug, title: "Lea live" }, owner.access_token);
  studio = await open(browser, base, "/studio", owner, "studio");
  pages.push(studio);
  await until(studio, (s) => window.studio?.channel === s, slug);
});

after(async () => {
  const violations = pages.flatMap((p) => p.violations ?? []);
  await browser?.close();
  await server?.stop();
  await stripe?.stop();
  assert.deepEqual(violations, [], "no page trips the Content-Security-Policy");
});

test("the owner makes a tier and closes the channel to subscribers in her studio, then goes live", { skip: !haveLocalstripe }, async () => {
  await studio.fill("#tier-name", "Gold");
  await studio.fill("#tier-amount", "5");
  await studio.click("#tier-add");
  await studio.waitForSelector("#tiers-list li[data-id]");
  await studio.check("#paywall-on");
  let paywall;
  for (let i = 0; i < 50 && !paywall?.subscribers_only; i++) {
    await new Promise((r) => setTimeout(r, 100));
    paywall = await api(base, `/channels/${slug}/paywall`, undefined, owner.access_token, "GET");
  }
  assert.equal(paywall.subscribers_only, true);
  // "This stream only" is its own box: the request carries it, and unchecking lifts it.
  for (const want of [true, false]) {
    await (want ? studio.check("#paywall-stream") : studio.uncheck("#paywall-stream"));
    for (let i = 0; i < 50 && paywall.this_stream !== want; i++) {
      await new Promise((r) => setTimeout(r, 100));
      paywall = await api(base, `/channels/${slug}/paywall`, undefined, owner.access_token, "GET");
    }
    assert.equal(paywall.this_stream, want);
    assert.equal(paywall.subscribers_only, true);
  }
  const tiers = await api(base, `/channels/${slug}/tiers`, undefined, null, "GET");
  assert.deepEqual(tiers.map((t) => [t.name, t.amount, t.currency, t.period]), [["Gold", 500, "usd", "month"]]);

  const { key } = await api(base, `/channels/${slug}/keys`, { label: "live" }, owner.access_token);
  await studio.fill("#key", key);
  await studio.selectOption("#source", "clock");
  await studio.click("#start");
  await until(studio, () => window.studio?.state === "live", null, 20000);
  await shot(studio, "studio");
});

test("a viewer without a subscription sees \"Subscribers only\", subscribes through the card form, and the stream plays", { skip: !haveLocalstripe }, async () => {
  vicSession = await account(base, "vic");
  vic = await open(browser, base, `/watch/${slug}`, vicSession, "vic");
  pages.push(vic);
  await until(vic, () => window.player?.paywalled === true);
  assert.equal(await vic.textContent("#status"), "subscribers only");
  assert.ok(await vic.isVisible("#paywall"));
  assert.match(await vic.textContent("#paywall"), /Subscribers only/);
  assert.equal(await vic.evaluate(() => window.player.error), "subscription_required");
  assert.equal(await vic.evaluate(() => window.player.frames), 0);
  await vic.waitForSelector("#tiers li[data-id] button.subscribe");
  assert.match(await vic.textContent("#tiers"), /Gold/);
  await shot(vic, "watch-paywalled");

  await vic.click("#tiers li[data-id] button.subscribe");
  assert.match(await vic.textContent("#card-what"), /Subscribe to Gold/);
  await vic.waitForSelector("#card-element input[placeholder=number]");
  await shot(vic, "watch-card");
  await payWithTestCard(vic);
  // localstripe's webhooks make the subscription active; the page then joins and plays.
  await until(vic, () => window.player?.subscription?.entitled === true, null, 30000);
  await until(vic, () => !window.player?.paywalled && window.player?.frames > 10 && window.player?.width > 0, null, 30000);
  assert.ok(await vic.isHidden("#paywall"));
  assert.match(await vic.textContent("#sub-state"), /You subscribe \(Gold\)/);
  await shot(vic, "watch-subscribed");
});

test("another viewer without a subscription stays refused, and sees the subscriber's badge in chat", { skip: !haveLocalstripe }, async () => {
  otto = await open(browser, base, `/watch/${slug}`, await account(base, "otto"), "otto");
  pages.push(otto);
  await until(otto, () => window.player?.paywalled === true);
  await new Promise((r) => setTimeout(r, 2000));
  assert.equal(await otto.evaluate(() => window.player.frames), 0);
  // In chat, the subscriber's messages carry his tier's badge.
  await until(otto, () => window.player?.chat?.state === "open", null, 20000);
  await until(vic, () => window.player?.chat?.state === "open", null, 20000);
  await vic.fill("#chat-input", "hello from a subscriber");
  await vic.click("#chat-send");
  await otto.waitForSelector('#messages li[data-user="vic"] .sub-badge');
  assert.equal(await otto.getAttribute('#messages li[data-user="vic"] .sub-badge', "title"), "Subscriber: Gold");
  assert.equal(await otto.textContent('#messages li[data-user="vic"] .text'), "hello from a subscriber");
  assert.doesNotMatch(await otto.textContent("#messages"), /null|undefined/);
  await shot(otto, "watch-badge", "#chat");
  // The node itself refuses his WHEP with the typed reason.
  const resp = await fetch(`${base}/whep/${slug}`, { method: "POST", headers: { "content-type": "application/sdp" }, body: "v=0\r\n" });
  assert.equal(resp.status, 403);
  assert.equal((await resp.json()).code, "subscription_required");
});

test("a tip from the channel page shows its alert on the studio and on the viewers' pages", { skip: !haveLocalstripe }, async () => {
  await until(studio, () => window.studio?.chat?.state === "open", null, 20000);
  await vic.fill("#tip-amount", "3");
  await vic.fill("#tip-message", "Great show, Lea!");
  await vic.click("#tip-send");
  assert.match(await vic.textContent("#card-what"), /Tip \$3\.00/);
  await payWithTestCard(vic);
  for (const p of [vic, otto]) {
    await until(p, () => window.player?.tips.length === 1, null, 20000);
    await p.waitForSelector(".tip-alert:not([hidden])");
    const text = await p.textContent(".tip-alert");
    assert.match(text, /vic tipped \$3\.00/);
    assert.match(text, /Great show, Lea!/);
  }
  await until(studio, () => window.studio?.tips.length === 1, null, 20000);
  assert.match(await studio.textContent("#preview-wrap .tip-alert"), /vic tipped \$3\.00.*Great show, Lea!/);
  await shot(vic, "watch-tip");
  await shot(studio, "studio-tip");
  // The ledger has both payments; the studio's earnings say the same.
  const [balance] = await api(base, `/channels/${slug}/balance`, undefined, owner.access_token, "GET");
  assert.deepEqual([balance.gross, balance.fees, balance.balance], [800, 80, 720]);
  await studio.click("#earnings-refresh");
  await studio.waitForFunction(() => /\$8\.00/.test(document.getElementById("balances").textContent));
  assert.match(await studio.textContent("#balances"), /Net\s*\$7\.20/);
});

test("the subscriber cancels on his account page: his open watch page flips to the cover with the reason, no reload", { skip: !haveLocalstripe }, async () => {
  assert.equal(await vic.evaluate(() => window.player.paywalled), false, "vic is watching");
  const acct = await open(browser, base, "/account", vicSession, "vic's account");
  pages.push(acct);
  await acct.waitForSelector("#subs-list li[data-id] button.cancel");
  await acct.click("#subs-list li[data-id] button.cancel");
  await acct.waitForFunction(() => document.querySelector("#subs-list li[data-id] .badge")?.textContent === "canceled");
  // The server ends his session (`ended`); the page joins again and is refused.
  await until(vic, () => window.player?.paywalled === true && window.player?.ended >= 1, null, 15000);
  await vic.waitForFunction(() => /subscription to this channel ended/.test(document.getElementById("paywall-reason").textContent));
  assert.equal(await vic.evaluate(() => window.player.error), "subscription_required");
  await shot(vic, "watch-canceled");
});

test("the studio manages webhooks (secret shown once, test, deliveries, rotate, delete) and API keys (shown once, revoke)", { skip: !haveLocalstripe }, async () => {
  const received = [];
  const receiver = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => { received.push({ headers: req.headers, body: JSON.parse(body) }); res.writeHead(204).end(); });
  });
  await new Promise((r) => receiver.listen(0, "127.0.0.1", r));
  try {
    await studio.fill("#hook-url", `http://127.0.0.1:${receiver.address().port}/hook`);
    await studio.check('#hook-events input[value="tip.received"]');
    await studio.check('#hook-events input[value="stream.started"]');
    await studio.click("#hook-add");
    await studio.waitForSelector("#hook-secret:not([hidden])");
    const secret = await studio.textContent("#hook-secret code");
    assert.match(secret, /^whsec_/);
    await studio.waitForSelector("#hooks-list li[data-id]");
    assert.match(await studio.textContent("#hooks-list li[data-id]"), /tip\.received/);
    await studio.click("#hooks-list li[data-id] button:has-text('Send test')");
    for (let i = 0; i < 100 && !received.some((r) => r.body.type === "webhook.test"); i++) await new Promise((r) => setTimeout(r, 100));
    const test = received.find((r) => r.body.type === "webhook.test");
    assert.ok(test, "the test event reached the receiver");
    assert.ok(test.headers["webhook-signature"]?.startsWith("v1,"));
    // The log opens on its own after a test; it says delivered (opened again until it does).
    await studio.waitForSelector("#hooks-list .deliveries li");
    for (let i = 0; i < 20 && !(await studio.$("#hooks-list .deliveries li .badge.ok")); i++) {
      await studio.click("#hooks-list li[data-id] button:has-text('Deliveries')"); // closes
      await studio.click("#hooks-list li[data-id] button:has-text('Deliveries')"); // opens, read again
      await new Promise((r) => setTimeout(r, 300));
    }
    await studio.waitForSelector("#hooks-list .deliveries li .badge.ok");
    assert.match(await studio.textContent("#hooks-list .deliveries"), /webhook\.test.*delivered/);
    await shot(studio, "studio-webhooks", "#webhooks");
    await studio.click("#hooks-list li[data-id] button:has-text('Rotate secret')");
    await studio.waitForFunction((old) => document.querySelector("#hook-secret code")?.textContent !== old, secret);
    assert.match(await studio.textContent("#hook-secret code"), /^whsec_/);
    await studio.click("#hooks-list li[data-id] button:has-text('Delete')");
    await studio.waitForFunction(() => document.getElementById("hooks-list").textContent === "No endpoints.");
  } finally {
    receiver.close();
  }

  await studio.fill("#apikey-name", "exporter");
  await studio.check('#apikey-scopes input[value="analytics:read"]');
  await studio.click("#apikey-add");
  await studio.waitForSelector("#apikey-secret:not([hidden])");
  assert.match(await studio.textContent("#apikey-secret code"), /^cak_/);
  await studio.waitForSelector("#apikeys-list li[data-id]");
  assert.match(await studio.textContent("#apikeys-list li[data-id]"), /exporter.*analytics:read.*never used/);
  await shot(studio, "studio-apikeys", "#apikeys");
  await studio.click("#apikeys-list li[data-id] button:has-text('Revoke')");
  await studio.waitForFunction(() => !document.querySelector("#apikeys-list li[data-id] button") );
});
