// Videos through the pages: the broadcaster uploads a WebM (made here with GStreamer) from
// her studio with tus-js-client in small chunks; one PATCH's connection is cut (playwright
// aborts it) and the client resumes from the server's offset, not from zero; the video is
// listed; a truncated copy is refused with the server's reason and not listed. A visitor
// opens the video's page, it plays (decoded frames), and seeking to the middle issues a
// range request near the middle of the file and plays on from there. No page trips the
// Content-Security-Policy. Run inside `unshare --net`.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { api, account } from "./accounts.mjs";
import { startServer, launch, until, seekAndPlayOn } from "./harness.mjs";

const slug = "vera-vod";
const SECONDS = 20;
const dir = mkdtempSync(join(tmpdir(), "cascade-vod-"));
const clip = join(dir, "holiday.webm");
const truncated = join(dir, "cut.webm");

/** A page in its own browser context (signed in as `session`, if any), watched for CSP trips. */
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

let server, browser, base, owner, studio;
const pages = [];

before(async () => {
  // 20 s of 640x360 VP8 at ~1.5 Mbit/s with Opus: a few MB, so seeking needs the network.
  execFileSync("gst-launch-1.0", ["-q",
    "videotestsrc", `num-buffers=${SECONDS * 30}`, "!", "video/x-raw,width=640,height=360,framerate=30/1", "!",
    "timeoverlay", "!", "vp8enc", "deadline=1", "target-bitrate=1500000", "keyframe-max-dist=30", "!",
    "webmmux", "name=m", "!", "filesink", `location=${clip}`,
    "audiotestsrc", `num-buffers=${SECONDS * 50}`, "samplesperbuffer=960", "!", "audio/x-raw,rate=48000", "!", "opusenc", "!", "m."]);
  const bytes = readFileSync(clip);
  writeFileSync(truncated, bytes.subarray(0, Math.floor(bytes.length / 2)));
  server = await startServer(["--workers", "1", "--auth", "accounts"]);
  base = server.base;
  browser = await launch();
  owner = await account(base, "vera");
  await api(base, "/channels", { slug, title: "Vera's videos" }, owner.access_token);
  studio = await open(browser, base, "/studio", owner, "studio");
  pages.push(studio);
  await until(studio, (s) => window.studio?.channel === s, slug);
  await until(studio, () => Array.isArray(window.studio?.videos));
});

after(async () => {
  const violations = pages.flatMap((p) => p.violations ?? []);
  await browser?.close();
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
  assert.deepEqual(violations, [], "no page trips the Content-Security-Policy");
});

let videoId;

test("the studio uploads a WebM with tus; a cut connection resumes from the server's offset; the video is listed", async () => {
  const size = statSync(clip).size;
  await studio.evaluate(() => { window.studio.uploadChunkSize = 512 * 1024; });
  const seen = [];
  let patches = 0;
  await studio.route("**/api/v1/uploads/**", async (route) => {
    const req = route.request();
    const offset = req.headers()["upload-offset"];
    seen.push(`${req.method()} ${offset ?? ""}`);
    if (req.method() === "PATCH" && ++patches === 3) return route.abort("connectionreset");
    return route.continue();
  });
  await studio.setInputFiles("#upload-file", clip);
  await studio.fill("#upload-title", "Holiday");
  await studio.click("#upload-start");
  try {
    await until(studio, () => window.studio?.videos?.length === 1, null, 60000);
  } catch (err) {
    console.log("upload status:", await studio.textContent("#upload-status"), "requests:", seen.join(", "));
    throw err;
  }
  assert.equal(await studio.textContent("#upload-status"), "uploaded and checked");
  await studio.unroute("**/api/v1/uploads/**");
  // The third PATCH was cut at 1 MiB; the client asked where to resume (HEAD) and went on
  // from there, never from zero.
  const cut = seen.findIndex((s) => s.startsWith("PATCH ") && s !== "PATCH 0" && s !== "PATCH 524288");
  assert.ok(cut > 0, seen.join(", "));
  const after = seen.slice(cut + 1);
  assert.ok(after.includes("HEAD "), `a HEAD after the cut: ${seen.join(", ")}`);
  const resumed = after.filter((s) => s.startsWith("PATCH ")).map((s) => Number(s.split(" ")[1]));
  assert.ok(resumed.length > 0 && resumed.every((o) => o >= 1024 * 1024), `resumed, not restarted: ${seen.join(", ")}`);
  const v = await studio.evaluate(() => window.studio.videos[0]);
  assert.equal(v.title, "Holiday");
  assert.equal(v.size_bytes, size);
  assert.equal(v.video_codec, "vp8");
  assert.ok(Math.abs(v.duration_ms - SECONDS * 1000) < 1000, `${v.duration_ms}`);
  assert.equal(await studio.locator("#videos-list li.video").count(), 1);
  videoId = v.id;
  // Its still, made on the server from the first keyframe: half the clip's size, and the
  // test pattern's colour bars across its middle (a picture that did not decode would be
  // one colour).
  assert.equal(v.thumbnail_url, `/api/v1/videos/${v.id}/thumbnail`);
  const still = await studio.evaluate(async () => {
    const img = document.querySelector("#videos-list li.video img.still");
    if (!img) return null;
    await img.decode();
    const c = document.createElement("canvas");
    c.width = img.naturalWidth; c.height = img.naturalHeight;
    const g = c.getContext("2d");
    g.drawImage(img, 0, 0);
    const row = g.getImageData(0, Math.floor(c.height / 2), c.width, 1).data;
    const colours = new Set();
    for (let i = 0; i < row.length; i += 4) colours.add(`${row[i] >> 5},${row[i + 1] >> 5},${row[i + 2] >> 5}`);
    return { width: img.naturalWidth, height: img.naturalHeight, colours: colours.size };
  });
  assert.ok(still, "the studio's list shows the video's still");
  assert.equal(still.width, 320);
  assert.equal(still.height, 180);
  assert.ok(still.colours >= 5, `the still's middle row has ${still.colours} colours`);
});

test("a truncated file is refused with the server's reason and not listed", async () => {
  await until(studio, () => document.getElementById("upload-pause").hidden);
  await studio.setInputFiles("#upload-file", truncated);
  await studio.fill("#upload-title", "Broken");
  await studio.click("#upload-start");
  await until(studio, () => /refused/.test(document.getElementById("upload-status").textContent), null, 30000);
  const status = await studio.textContent("#upload-status");
  assert.match(status, /truncated or damaged/, status);
  const list = await api(base, `/channels/${slug}/videos`, undefined, owner.access_token, "GET");
  assert.deepEqual(list.map((v) => v.title), ["Holiday"]);
});

test("a visitor opens the video's page: it plays, and seeking to the middle reads a range from the middle and plays on", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.violations = [];
  page.on("console", (m) => { if (/Content Security Policy|csp-violation/i.test(m.text())) page.violations.push(`visitor: ${m.text()}`); });
  // A visitor's link of 300 kB/s (the video needs ~190): the player has only the start of
  // the file when it seeks, so the middle must come by a range request.
  const cdp = await context.newCDPSession(page);
  await cdp.send("Network.enable");
  await cdp.send("Network.emulateNetworkConditions", { offline: false, latency: 20, downloadThroughput: 300 * 1024, uploadThroughput: 300 * 1024 });
  await page.goto(`${base}/video/${videoId}`);
  pages.push(page);
  const ranges = [];
  page.on("request", (r) => {
    if (r.url().includes(`/videos/${videoId}/media`)) ranges.push({ range: r.headers().range ?? "", at: Date.now() });
  });
  await until(page, () => window.page.video !== null);
  assert.equal(await page.textContent("#title"), "Holiday");
  assert.ok(await page.evaluate(() => document.getElementById("video").poster.endsWith("/thumbnail")),
    "the player shows the still before it plays");
  await page.evaluate(() => { const v = document.getElementById("video"); v.muted = true; return v.play(); });
  await until(page, () => {
    const v = document.getElementById("video");
    return v.currentTime > 1 && v.getVideoPlaybackQuality().totalVideoFrames > 20;
  }, null, 20000).catch(async (err) => {
    console.log("player:", await page.evaluate(() => {
      const v = document.getElementById("video");
      return JSON.stringify({ src: v.src, t: v.currentTime, ready: v.readyState, net: v.networkState, err: v.error?.message, paused: v.paused, frames: v.getVideoPlaybackQuality().totalVideoFrames });
    }), JSON.stringify(ranges));
    throw err;
  });
  const before = await page.evaluate(() => document.getElementById("video").getVideoPlaybackQuality().totalVideoFrames);
  const duration = await page.evaluate(() => document.getElementById("video").duration);
  assert.ok(Math.abs(duration - SECONDS) < 1, `${duration}`);
  const size = statSync(clip).size;
  const seekAt = Date.now();
  const mid = duration / 2;
  const now = await seekAndPlayOn(page, mid);
  assert.ok(now.t > mid + 1 && now.t < mid + 10, `plays on from the middle: ${now.t}`);
  assert.ok(now.frames > before + 20, `frames decoded after the seek: ${before} → ${now.frames}`);
  // The browser asked for bytes from the middle of the file (not the start, not the
  // cues at the end) once the seek was made.
  const starts = ranges.filter((r) => r.at >= seekAt).map((r) => Number(/bytes=(\d+)-/.exec(r.range)?.[1] ?? -1));
  assert.ok(starts.some((s) => s > size * 0.3 && s < size * 0.7), `range requests after the seek: ${JSON.stringify(ranges)} of ${size}`);
});

test("made private, the video's still still shows to its owner in the studio (its link carries the media token)", async () => {
  const vis = studio.locator(`#videos-list li.video[data-id="${videoId}"] select`);
  await vis.selectOption("private");
  await until(studio, (id) => window.studio?.videos !== null &&
    document.querySelector(`#videos-list li.video[data-id="${id}"] [role=status]`)?.textContent === "saved", videoId);
  await studio.reload();
  await until(studio, () => Array.isArray(window.studio?.videos) && window.studio?.videos.length > 0);
  const v = await studio.evaluate(() => window.studio.videos[0]);
  assert.equal(v.visibility, "private");
  assert.match(v.thumbnail_url, /\/thumbnail\?token=/);
  const width = await studio.evaluate(async () => {
    const img = document.querySelector("#videos-list li.video img.still");
    await img.decode();
    return img.naturalWidth;
  });
  assert.equal(width, 320);
  // Without the token, a visitor gets nothing.
  const r = await fetch(`${base}/api/v1/videos/${videoId}/thumbnail`);
  assert.equal(r.status, 404);
});
