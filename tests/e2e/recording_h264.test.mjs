// Recording an H.264 live through the pages: the studio publishes with Chromium's H.264
// encoder (the codec preference the studio sets is turned to H.264 only, as a browser
// that offers only H.264 would send),
// the recording is an MP4, listed on the channel, and on its page it plays in Chromium
// (decoded frames), lasts as long as the live, and seeking to the middle plays on from
// there. (The studio's clock source has no sound: Opus in these MP4s is decoded in
// tests/it/recording_h264.rs.) Run inside `unshare --net`.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, launch, until, assertRecordingPlaysAndSeeks } from "./harness.mjs";
import { api, account } from "./accounts.mjs";

const slug = "hana-h264";
const LIVE_MS = 8000;
let server, browser, base;

/** Every codec preference the page sets becomes H.264 only (packetization mode 1, with
 *  the repair formats): the node answers a browser in its own order of codecs (VP8
 *  first), so a browser that offers H.264 among others sends VP8. */
function preferH264() {
  const set = RTCRtpTransceiver.prototype.setCodecPreferences;
  RTCRtpTransceiver.prototype.setCodecPreferences = function (codecs) {
    const h264 = codecs.filter((c) => c.mimeType === "video/H264" && /packetization-mode=1/.test(c.sdpFmtpLine ?? ""));
    const repair = codecs.filter((c) => /rtx|red|ulpfec|flexfec/i.test(c.mimeType));
    return set.call(this, h264.length ? [...h264, ...repair] : codecs);
  };
}

before(async () => {
  server = await startServer(["--workers", "1", "--auth", "accounts", "--recording-grace-ms", "1000"]);
  base = server.base;
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test("an H.264 live records to an MP4 that plays and seeks in Chromium", async () => {
  const owner = await account(base, "hana");
  await api(base, "/channels", { slug, title: "Hana in H.264" }, owner.access_token);
  const { key } = await api(base, `/channels/${slug}/keys`, { label: "studio" }, owner.access_token);
  await api(base, `/channels/${slug}/recording`, { enabled: true }, owner.access_token, "PUT");

  const ctx = await browser.newContext();
  await ctx.addInitScript(preferH264);
  const studio = await ctx.newPage();
  await studio.goto(`${base}/signin`);
  await studio.evaluate((s) => localStorage.setItem("cascade.session", JSON.stringify(s)), owner);
  await studio.goto(`${base}/studio`);
  await until(studio, (s) => window.studio?.channel === s, slug);
  await studio.fill("#key", key);
  await studio.selectOption("#source", "clock");
  await studio.click("#start");
  await until(studio, () => window.studio?.state === "live", null, 20000);
  const wentLive = Date.now();
  await studio.waitForTimeout(LIVE_MS);
  await studio.click("#stop");
  const live = (Date.now() - wentLive) / 1000;

  const deadline = Date.now() + 20000;
  let videos = [];
  while (videos.length === 0) {
    assert.ok(Date.now() < deadline, "the recording is listed");
    await new Promise((r) => setTimeout(r, 500));
    videos = await api(base, `/channels/${slug}/videos`, undefined, undefined, "GET");
  }
  const media = await fetch(`${base}${videos[0].media_url}`, { headers: { range: "bytes=0-7" } });
  assert.equal(media.status, 206);
  assert.equal(media.headers.get("content-type"), "video/mp4", "an H.264 live is recorded to MP4");

  const page = await (await browser.newContext()).newPage();
  await page.goto(`${base}/video/${videos[0].id}`);
  await assertRecordingPlaysAndSeeks(page, live);
});
