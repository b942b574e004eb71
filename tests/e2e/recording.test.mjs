// Recording through the pages: the broadcaster turns "Record my broadcasts" on in her
// studio, goes live (the studio's clock pattern, simulcast), and stops. A visitor opens
// the channel page: the recording is listed under its past broadcasts; on its page it
// plays (decoded frames), lasts as long as the live did, and seeking to the middle plays
// on from there. Beside it, the studio's ladder switch sets the channel's ladder setting.
// No page trips the Content-Security-Policy. Run inside `unshare --net`.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, launch, until, assertRecordingPlaysAndSeeks, liveFromStudio } from "./harness.mjs";
import { api, account } from "./accounts.mjs";

const slug = "rita-rec";
const LIVE_MS = 8000;
let server, browser, base;
const violations = [];

async function open(session, path) {
  const page = await (await browser.newContext()).newPage();
  page.on("console", (m) => { if (/Content Security Policy|csp-violation/i.test(m.text())) violations.push(`${path}: ${m.text()}`); });
  page.on("pageerror", (e) => console.log(`${path} page error:`, e.message));
  if (session) {
    await page.goto(`${base}/signin`);
    await page.evaluate((s) => localStorage.setItem("cascade.session", JSON.stringify(s)), session);
  }
  await page.goto(`${base}${path}`);
  return page;
}

before(async () => {
  // A recording ends a second after its publisher left.
  server = await startServer(["--workers", "1", "--auth", "accounts", "--recording-grace-ms", "1000"]);
  base = server.base;
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  assert.deepEqual(violations, [], "no page trips the Content-Security-Policy");
});

test("recording turned on in the studio: the live is listed on the channel page, plays and seeks", async () => {
  const owner = await account(base, "rita");
  await api(base, "/channels", { slug, title: "Rita records" }, owner.access_token);
  const { key } = await api(base, `/channels/${slug}/keys`, { label: "studio" }, owner.access_token);

  const studio = await open(owner, "/studio");
  await until(studio, (s) => window.studio?.channel === s, slug);
  await studio.selectOption("#recording", "top");
  await studio.waitForSelector("#recording-status:text('saved')");
  const setting = await api(base, `/channels/${slug}/recording`, undefined, owner.access_token, "GET");
  assert.deepEqual(setting, { enabled: true, layers: "top" });

  const live = await liveFromStudio(studio, key, LIVE_MS);

  // A visitor's channel page lists it once the recording has ended and been stored.
  const page = await open(null, `/watch/${slug}`);
  const link = "#past-list a[href^='/video/']";
  const deadline = Date.now() + 20000;
  while (!(await page.$(link))) {
    assert.ok(Date.now() < deadline, "the recording is listed on the channel page");
    await page.waitForTimeout(500);
    await page.reload();
  }
  await page.click(link);
  await assertRecordingPlaysAndSeeks(page, live);
});

test("all layers: a simulcast live is recorded as one video per layer, each its own size", async () => {
  const owner = await account(base, "alma");
  await api(base, "/channels", { slug: "alma-all", title: "Alma" }, owner.access_token);
  const { key } = await api(base, "/channels/alma-all/keys", { label: "studio" }, owner.access_token);
  const studio = await open(owner, "/studio");
  await until(studio, () => window.studio?.channel === "alma-all");
  await studio.selectOption("#recording", "all");
  await studio.waitForSelector("#recording-status:text('saved')");
  assert.deepEqual(
    await api(base, "/channels/alma-all/recording", undefined, owner.access_token, "GET"),
    { enabled: true, layers: "all" },
  );
  await studio.fill("#key", key);
  await studio.selectOption("#source", "clock");
  await studio.click("#start");
  await until(studio, () => window.studio?.state === "live", null, 20000);
  const wentLive = Date.now();
  await studio.waitForTimeout(LIVE_MS);
  await studio.click("#stop");
  const live = (Date.now() - wentLive) / 1000;

  // Chromium sends its upper layers as its estimate allows, so at least the two lower
  // ones are there for the whole live; each is a video of its own picture size.
  let videos = [];
  const deadline = Date.now() + 20000;
  while (videos.length < 2) {
    assert.ok(Date.now() < deadline, `two or more layers recorded: ${JSON.stringify(videos)}`);
    await new Promise((r) => setTimeout(r, 500));
    videos = await api(base, "/channels/alma-all/videos", undefined, owner.access_token, "GET");
    videos = videos.items ?? videos;
  }
  const widths = videos.map((v) => v.width).sort((a, b) => a - b);
  assert.equal(new Set(widths).size, widths.length, `one size per layer: ${widths}`);
  const smallest = videos.find((v) => v.width === widths[0]);
  assert.ok(smallest.duration_ms > (live - 2) * 1000, `the low layer spans the live: ${smallest.duration_ms} ms of ${live} s`);
  // The smallest layer's video plays and seeks as the top one's does.
  const page = await open(owner, `/video/${smallest.id}`);
  await assertRecordingPlaysAndSeeks(page, live);
});

test("the studio's ladder switch, beside recording, sets the channel's ladder", async () => {
  const owner = await account(base, "lars");
  await api(base, "/channels", { slug: "lars-tv", title: "Lars" }, owner.access_token);
  const setting = () => api(base, "/channels/lars-tv/ladder", undefined, owner.access_token, "GET");
  const studio = await open(owner, "/studio");
  await until(studio, () => window.studio?.channel === "lars-tv");
  await studio.uncheck("#ladder");
  await studio.waitForSelector("#ladder-status:text('saved')");
  assert.deepEqual(await setting(), { enabled: false });
  // A reload shows the saved setting (the page's default is on).
  await studio.reload();
  await until(studio, () => window.studio?.channel === "lars-tv");
  await until(studio, () => !document.getElementById("ladder").checked, null, 5000);
  await studio.check("#ladder");
  await studio.waitForSelector("#ladder-status:text('saved')");
  assert.deepEqual(await setting(), { enabled: true });
});
