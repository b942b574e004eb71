// Discovery through the pages: a viewer signs up, finds a channel by a prefix of its title
// in the home page's search, follows it from its channel page and keeps the home page
// open; the broadcaster goes live from the studio (which sends a thumbnail of its
// preview). The viewer's open home page must show the notification (pushed, not
// reloaded) and the channel under "Following live now" with its thumbnail.
// DISCOVERY_SHOTS=<dir> saves screenshots of the pages in light and dark.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { startServer, launch, goLive, until } from "./harness.mjs";
import { api, account } from "./accounts.mjs";

let server, browser, base;
const slug = "dana-live";

async function open(session, path, scheme = "light") {
  const ctx = await browser.newContext({ colorScheme: scheme });
  const page = await ctx.newPage();
  page.violations = [];
  page.on("console", (m) => { if (/Content Security Policy|csp-violation/i.test(m.text())) page.violations.push(m.text()); });
  page.on("pageerror", (e) => console.log("page error:", e.message));
  if (session) {
    await page.goto(`${base}/signin`);
    await page.evaluate((s) => localStorage.setItem("cascade.session", JSON.stringify(s)), session);
  }
  await page.goto(`${base}${path}`);
  return page;
}

async function shot(page, name) {
  if (process.env.DISCOVERY_SHOTS) await page.screenshot({ path: join(process.env.DISCOVERY_SHOTS, `${name}.png`), fullPage: true });
}

before(async () => {
  server = await startServer(["--workers", "1", "--auth", "accounts"]);
  base = server.base;
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test("a follower finds a channel by prefix, follows it, and is told when it goes live", async () => {
  const owner = await account(base, "dana");
  await api(base, "/channels", { slug, title: "Danacast adventures", description: "rivers and mountains", category: "Travel and outdoors", tags: ["outdoors"] }, owner.access_token);
  const { key } = await api(base, `/channels/${slug}/keys`, { label: "studio" }, owner.access_token);
  const viewer = await account(base, "vera");

  // Search by a prefix of a word of the title, from the home page.
  const home = await open(viewer, "/");
  await home.fill("#q", "danac");
  await home.press("#q", "Enter");
  await home.waitForSelector(`#result-list li[data-channel="${slug}"] a`);
  await shot(home, "search");
  // Its channel page: offline, 0 followers; follow.
  await home.click(`#result-list li[data-channel="${slug}"] a`);
  await home.waitForSelector("#follow:not([hidden])");
  assert.equal(await home.textContent("#followers"), "0 followers");
  assert.equal(await home.isVisible("#offline"), true);
  await home.click("#follow");
  await until(home, () => window.channelPage.following === true, null, 5000);
  assert.equal(await home.textContent("#followers"), "1 follower");
  await shot(home, "channel-offline");
  // Back home, the notification stream open.
  await home.goto(`${base}/`);
  await until(home, () => window.home.stream === "open", null, 10000);
  assert.equal(await home.isVisible(`#following-list li[data-channel="${slug}"]`), false);

  // Dana goes live from her studio (signed in: it sends thumbnails).
  const studio = await open(owner, "/studio");
  await until(studio, (s) => window.studio?.channel === s, slug);
  await studio.fill("#stream-title", "Dana climbs the cascade");
  await studio.click("#stream-info-save");
  await studio.waitForSelector("#stream-info-status:text('saved')");
  await studio.fill("#key", key);
  await studio.selectOption("#source", "clock");
  await studio.click("#start");
  await until(studio, () => window.studio?.state === "live", null, 20000);
  await until(studio, () => window.studioDiscovery.thumbnails > 0, null, 15000);

  // Vera's open home page: the notification arrives, pushed; the channel is under
  // following live now, with the studio's title and its thumbnail.
  await until(home, () => window.home.notifications.some((n) => n.text === "Danacast adventures is live"), null, 15000);
  assert.equal(await home.textContent("#unread"), "1");
  const item = `#following-list li[data-channel="${slug}"]`;
  await home.waitForSelector(`${item} img.thumb`, { timeout: 15000 });
  await until(home, (sel) => document.querySelector(sel)?.naturalWidth === 480, `${item} img.thumb`, 10000);
  assert.equal(await home.textContent(`${item} .title`), "Dana climbs the cascade");
  assert.match(await home.textContent(`${item} .badge`), /watching/);
  await home.click("#bell");
  await shot(home, "home-light");
  const dark = await open(viewer, "/", "dark");
  await dark.waitForSelector(`${item} img.thumb`);
  await dark.click("#bell");
  await shot(dark, "home-dark");
  const page = await open(viewer, `/watch/${slug}`, "dark");
  await until(page, () => window.channelPage.live === true, null, 10000);
  await shot(page, "channel-live-dark");
  assert.deepEqual([...home.violations, ...dark.violations, ...studio.violations], []);
  await studio.click("#stop");
});
