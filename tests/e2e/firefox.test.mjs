// Firefox end to end: Debian's Firefox ESR, driven over WebDriver BiDi, goes live from the
// studio with its fake camera and the simulcast ladder; a second Firefox plays the watch
// page, decodes frames, is told of the layers the first one sends and switches between them.
//
// Firefox gathers no loopback ICE candidates, so the node serves on a veth address in the
// test's own network namespace (scripts/test.sh sets it up; CASCADE_E2E_IP, 10.99.0.1):
//   unshare --net sh -c 'ip link set lo up && ip link add v0 type veth peer name v1 &&
//     ip addr add 10.99.0.1/24 dev v0 && ip link set v0 up && ip link set v1 up &&
//     node --test firefox.test.mjs'
import { test } from "node:test";
import assert from "node:assert/strict";
import puppeteer from "puppeteer-core";
import { startServer } from "./harness.mjs";

const IP = process.env.CASCADE_E2E_IP ?? "10.99.0.1";

function launchFirefox() {
  return puppeteer.launch({
    browser: "firefox",
    executablePath: process.env.FIREFOX ?? "/usr/bin/firefox-esr",
    headless: true,
    extraPrefsFirefox: {
      // http://IP is not a secure context, and getUserMedia needs one.
      "dom.securecontext.allowlist": IP,
      "media.navigator.streams.fake": true,
      "media.navigator.permission.disabled": true,
      "media.autoplay.default": 0,
    },
  });
}

/** Opens a page that logs its errors and records what its Content-Security-Policy refused. */
async function openPage(browser, name, violations) {
  const page = await browser.newPage();
  page.on("console", (m) => {
    if (m.text().startsWith("csp-violation ")) violations.push(`${name}: ${m.text()}`);
    else if (m.type() === "error") console.log(`${name}:`, m.text());
  });
  await page.evaluateOnNewDocument(() => document.addEventListener("securitypolicyviolation", (e) =>
    console.error(`csp-violation ${e.effectiveDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`)));
  return page;
}

/** Retries `check` (node side, may read several pages) until it returns truthy. */
async function eventually(what, ms, check, describe) {
  const end = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > end) throw new Error(`${what} within ${ms} ms: ${JSON.stringify(await describe())}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** What the publisher's RTCPeerConnection sends: one entry per video encoding, smallest first. */
const sentLayers = (page) => page.evaluate(async () => {
  const stats = await window.studio.session.pc.getStats();
  const out = [];
  stats.forEach((r) => {
    if (r.type === "outbound-rtp" && r.kind === "video") {
      out.push({ rid: r.rid ?? null, codec: stats.get(r.codecId)?.mimeType ?? null,
                 width: r.frameWidth ?? 0, height: r.frameHeight ?? 0,
                 frames: r.framesEncoded ?? 0, packets: r.packetsSent ?? 0 });
    }
  });
  return out.sort((a, b) => a.width - b.width);
});

/**
 * What the watch page shows. `decoded` is the viewer's inbound-rtp framesDecoded:
 * Firefox's getVideoPlaybackQuality() counts no frames of a MediaStream source (always 0).
 */
const watchState = (page) => page.evaluate(async () => {
  const v = document.getElementById("video");
  let decoded = 0;
  (await window.player.session?.pc.getStats())?.forEach((r) => {
    if (r.type === "inbound-rtp" && r.kind === "video") decoded = r.framesDecoded ?? 0;
  });
  return { frames: window.player.frames, width: v.videoWidth, height: v.videoHeight, decoded,
           time: v.currentTime, layers: window.player.layers.map((l) => l.encodingId).sort(),
           active: window.player.active, ice: window.player.session?.pc.iceConnectionState ?? null,
           error: window.player.error, status: document.getElementById("status").textContent };
});

test("Firefox goes live from the studio and another Firefox watches", { timeout: 120_000 }, async () => {
  const server = await startServer(["--workers", "2", "--http", `${IP}:0`, "--bind-ip", IP]);
  const browsers = [];
  const violations = [];
  // Milliseconds from the start to each step, printed at the end: where a slow run spent it.
  const t0 = Date.now();
  const took = {};
  const mark = (step) => { took[step] = Date.now() - t0; };
  try {
    browsers.push(await launchFirefox());
    browsers.push(await launchFirefox()); // one at a time: `finally` closes whichever started
    const [publisher, viewer] = browsers;
    console.log(`${await publisher.version()}, node at ${server.base}`);
    mark("browsers");

    // The studio: a stream name, the camera, simulcast on, and a click on Go live.
    const studio = await openPage(publisher, "studio", violations);
    await studio.goto(`${server.base}/studio`);
    await studio.waitForSelector("#start");
    await studio.$eval("#stream", (el) => { el.value = ""; });
    await studio.type("#stream", "fx");
    await studio.select("#source", "camera");
    assert.equal(await studio.$eval("#simulcast", (el) => el.checked), true, "simulcast is on");
    await studio.click("#start");
    const studioState = () => studio.$eval("#state", (el) => el.textContent);
    await eventually("the studio is live", 20_000, async () => (await studioState()) === "live", studioState);
    mark("live");

    // The viewer decodes frames, and keeps decoding: frames, decoder count and clock advance.
    const watch = await openPage(viewer, "viewer", violations);
    await watch.goto(`${server.base}/watch/fx`);
    const state = () => watchState(watch);
    await eventually("the viewer decodes 30 frames", 30_000, async () => {
      const s = await state();
      return s.frames > 30 && s.width > 0;
    }, state);
    mark("decoding");
    const a = await state();
    await new Promise((r) => setTimeout(r, 2000));
    const b = await state();
    assert.ok(b.frames > a.frames + 20, `frames shown ${a.frames} -> ${b.frames} in 2 s`);
    assert.ok(b.decoded > a.decoded + 20, `framesDecoded ${a.decoded} -> ${b.decoded} in 2 s`);
    assert.ok(b.time > a.time + 1, `currentTime ${a.time} -> ${b.time} in 2 s`);
    assert.equal(b.active, true, "the viewer got the active event");
    assert.equal(b.status, "live");

    // Firefox sends the studio's three layers, and the viewer is told of exactly those. The
    // top one starts once Firefox's bandwidth estimate, fed by the node's transport-wide
    // feedback, has grown: mostly at once, but on a loaded 2-core machine up to 25 s after
    // going live (Chromium too).
    let sent = [];
    await eventually("Firefox sends three layers and the viewer is told of them", 45_000, async () => {
      sent = await sentLayers(studio);
      const rids = sent.filter((l) => l.frames > 0 && l.rid).map((l) => l.rid).sort();
      return rids.length === 3 && JSON.stringify((await state()).layers) === JSON.stringify(rids);
    }, async () => ({ sent, viewer: await state() }));
    mark("three_layers");
    console.log("publisher sends:", JSON.stringify(sent));

    // The viewer picks the low layer on the page, then the high one, and the picture follows.
    await watch.select("#layer", "low");
    await eventually("the low layer plays", 20_000, async () => {
      const w = (await state()).width;
      return w > 0 && w <= sent[0].width;
    }, state);
    mark("low");
    await watch.select("#layer", "high");
    await eventually("the high layer plays", 20_000, async () => {
      const [s, now] = [await state(), await sentLayers(studio)];
      return s.width === now[now.length - 1].width;
    }, async () => ({ viewer: await state(), sent: await sentLayers(studio) }));
    mark("high");
    console.log("viewer:", JSON.stringify(await state()));
    console.log("ms to each step:", JSON.stringify(took));

    assert.deepEqual(violations, [], "the pages run under their Content-Security-Policy");
  } finally {
    for (const b of browsers) await b.close().catch(() => {});
    await server.stop();
  }
});
