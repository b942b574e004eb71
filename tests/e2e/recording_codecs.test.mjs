// Recording a live in each codec a browser may send, through the pages: the studio
// publishes with Chromium's H.264, VP9 or AV1 encoder (the codec preference the studio
// sets is turned to that codec only, as a browser that offers only it would send), the
// recording is an MP4 (H.264) or a WebM (VP9, AV1), listed on the channel with its codec,
// and on its page it plays in Chromium (decoded frames), lasts as long as the live, and
// seeking to the middle plays on from there. (The studio's clock source has no sound: Opus
// in these files is decoded in tests/it/recording_*.rs.) Run inside `unshare --net`.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, launch, until, assertRecordingPlaysAndSeeks, liveFromStudio, prefer } from "./harness.mjs";
import { api, account } from "./accounts.mjs";

const LIVE_MS = 8000;
let server, browser, base;

before(async () => {
  server = await startServer(["--workers", "1", "--auth", "accounts", "--recording-grace-ms", "1000"]);
  base = server.base;
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** Chromium publishes `mime` from the studio for LIVE_MS on a recording channel; its
 *  recording is a `container` file of `codec`, which plays and seeks in Chromium. */
async function recordsAndPlays(name, mime, codec, container) {
  const slug = `hana-${codec}`;
  const owner = await account(base, name);
  await api(base, "/channels", { slug, title: `Hana in ${codec}` }, owner.access_token);
  const { key } = await api(base, `/channels/${slug}/keys`, { label: "studio" }, owner.access_token);
  await api(base, `/channels/${slug}/recording`, { enabled: true }, owner.access_token, "PUT");

  const ctx = await browser.newContext();
  await ctx.addInitScript(prefer, mime);
  const studio = await ctx.newPage();
  await studio.goto(`${base}/signin`);
  await studio.evaluate((s) => localStorage.setItem("cascade.session", JSON.stringify(s)), owner);
  await studio.goto(`${base}/studio`);
  await until(studio, (s) => window.studio?.channel === s, slug);
  const live = await liveFromStudio(studio, key, LIVE_MS);
  await ctx.close();

  const deadline = Date.now() + 20000;
  let videos = [];
  while (videos.length === 0) {
    assert.ok(Date.now() < deadline, "the recording is listed");
    await new Promise((r) => setTimeout(r, 500));
    videos = await api(base, `/channels/${slug}/videos`, undefined, undefined, "GET");
  }
  assert.equal(videos[0].video_codec, codec, `Chromium sent ${mime}`);
  const media = await fetch(`${base}${videos[0].media_url}`, { headers: { range: "bytes=0-7" } });
  assert.equal(media.status, 206);
  assert.equal(media.headers.get("content-type"), container);

  const page = await (await browser.newContext()).newPage();
  await page.goto(`${base}/video/${videos[0].id}`);
  await assertRecordingPlaysAndSeeks(page, live);
}

test("an H.264 live records to an MP4 that plays and seeks in Chromium", async () => {
  await recordsAndPlays("hana", "video/H264", "h264", "video/mp4");
});

test("a VP9 live records to a WebM that plays and seeks in Chromium", async () => {
  await recordsAndPlays("vera", "video/VP9", "vp9", "video/webm");
});

test("an AV1 live records to a WebM that plays and seeks in Chromium", async () => {
  await recordsAndPlays("ava", "video/AV1", "av1", "video/webm");
});
