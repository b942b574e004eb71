// Shared pieces of the browser tests: a `cascade serve` process and Debian's Chromium.
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

export const CASCADE = process.env.CASCADE_BIN ?? new URL("../../target/debug/cascade", import.meta.url).pathname;

/** Starts a node on a free port; resolves with { base, proc, lines, data, metric(), stop() }.
 *  `dataDir` reuses a data directory (a node restarted on the same data). */
export function startServer(args = [], { dataDir } = {}) {
  // Each node gets a fresh database; publishing is open unless the test says otherwise.
  // `["--__command", "node", …]` runs another command than `serve` (no auth default).
  let command = "serve";
  if (args[0] === "--__command") {
    command = args[1];
    args = args.slice(2);
  }
  const data = dataDir ?? mkdtempSync(join(tmpdir(), "cascade-e2e-"));
  const auth = args.includes("--auth") || command !== "serve" ? [] : ["--auth", "open"];
  const http = args.includes("--http") ? [] : ["--http", "127.0.0.1:0"];
  const proc = spawn(CASCADE, [command, ...http, "--data-dir", data, ...auth, ...args], {
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "warn" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: proc.stdout });
    proc.once("exit", (code) => reject(new Error(`cascade exited with ${code}`)));
    // Lines after the banner, for a caller that waits for one (a relay's address).
    const lines = [];
    const waiters = [];
    rl.once("line", (line) => {
      const base = line.replace("cascade listening on ", "").trim();
      rl.on("line", (l) => { lines.push(l); waiters.splice(0).forEach((w) => w()); });
      resolve({
        base,
        proc,
        data,
        /** The next line printed after the banner. */
        async nextLine() {
          while (!lines.length) await new Promise((r) => waiters.push(r));
          return lines.shift();
        },
        async metric(prefix) {
          const text = await (await fetch(`${base}/metrics`)).text();
          return text.split("\n").filter((l) => l.startsWith(prefix))
            .reduce((sum, l) => sum + Number(l.split(" ").pop()), 0);
        },
        stop() {
          proc.kill("SIGTERM");
          return new Promise((r) => proc.once("exit", r));
        },
      });
    });
  });
}

export const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
  "--allow-loopback-in-peer-connection",
  "--disable-features=WebRtcHideLocalIpsWithMdns",
  "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
  "--autoplay-policy=no-user-gesture-required",
  // Keep background pages (many viewers in one browser) running at full speed.
  "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
  "--disable-backgrounding-occluded-windows",
];

export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: CHROMIUM_ARGS,
  });
}

/** A Chromium publisher live on `stream` from the node's studio, `source` being `camera`
 *  (the fake device) or `clock` (the painted clock). The studio needs a secure context:
 *  a node on another address than 127.0.0.1 is declared one. Resolves with the browser. */
export async function goLive(base, stream, source) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: [...CHROMIUM_ARGS, `--unsafely-treat-insecure-origin-as-secure=${base}`],
  });
  try {
    const studio = await browser.newPage();
    await studio.goto(`${base}/studio?stream=${stream}&source=${source}`);
    await studio.click("#start");
    // `window.studio` is set by the page's module, which may not have run yet: a throw in
    // the predicate would end the wait at once.
    await until(studio, () => window.studio?.state === "live", null, 20000);
  } catch (e) {
    // Not handed to the caller, so closed here: a browser left open keeps the run alive.
    await browser.close();
    throw e;
  }
  return browser;
}

/** Chromium inside the network namespace `ns` (`ip netns`): playwright starts a wrapper
 *  script, written to `dir`, as the browser. */
export function launchInNamespace(ns, dir) {
  const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
  const wrapper = join(dir, `chromium-in-${ns}.sh`);
  writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${ns} ${chromiumPath} "$@"\n`, { mode: 0o755 });
  return chromium.launch({ executablePath: wrapper, args: CHROMIUM_ARGS });
}

/** Polls `fn` in the page until it returns truthy or `ms` passes. */
/** Every codec preference the page sets becomes `mime` only (for H.264, packetization
 *  mode 1), with the repair formats: the node answers a browser in its own order of
 *  codecs (VP8 first), so a browser that offers another codec among others sends VP8. */
export function prefer(mime) {
  const set = RTCRtpTransceiver.prototype.setCodecPreferences;
  RTCRtpTransceiver.prototype.setCodecPreferences = function (codecs) {
    const mode1 = (c) => mime !== "video/H264" || /packetization-mode=1/.test(c.sdpFmtpLine ?? "");
    const chosen = codecs.filter((c) => c.mimeType === mime && mode1(c));
    const repair = codecs.filter((c) => /rtx|red|ulpfec|flexfec/i.test(c.mimeType));
    return set.call(this, chosen.length ? [...chosen, ...repair] : codecs);
  };
}

export async function until(page, fn, arg, ms = 20000) {
  return page.waitForFunction(fn, arg, { timeout: ms, polling: 100 });
}

/** Seeks the page's `<video id="video">` to `t` s and waits (`ms`) until it plays on past
 *  t + 1 s; resolves with its time and decoded frames then. */
export async function seekAndPlayOn(page, t, ms = 20000) {
  await page.evaluate((t) => new Promise((resolve) => {
    const v = document.getElementById("video");
    v.addEventListener("seeked", resolve, { once: true });
    v.currentTime = t;
  }), t);
  await until(page, (t) => {
    const v = document.getElementById("video");
    return !v.paused && v.currentTime > t + 1;
  }, t, ms);
  return page.evaluate(() => {
    const v = document.getElementById("video");
    return { t: v.currentTime, frames: v.getVideoPlaybackQuality().totalVideoFrames };
  });
}

/** On a video page (`/video/{id}`): the recording plays (decoded frames), lasts as long
 *  as the live did (`live` s, within 2 s), and seeking to its middle plays on from there. */
/** The studio (signed in, its channel chosen) goes live with `key` on its clock source
 *  for `ms`, then stops; returns the seconds it was live. */
export async function liveFromStudio(studio, key, ms) {
  await studio.fill("#key", key);
  await studio.selectOption("#source", "clock");
  await studio.click("#start");
  await until(studio, () => window.studio?.state === "live", null, 20000);
  const wentLive = Date.now();
  await studio.waitForTimeout(ms);
  await studio.click("#stop");
  return (Date.now() - wentLive) / 1000;
}

export async function assertRecordingPlaysAndSeeks(page, live) {
  await until(page, () => window.page?.video != null, null, 10000);
  await page.evaluate(() => { const v = document.getElementById("video"); v.muted = true; return v.play(); });
  await until(page, () => {
    const v = document.getElementById("video");
    return v.currentTime > 1 && v.getVideoPlaybackQuality().totalVideoFrames > 15;
  }, null, 15000);
  const duration = await page.evaluate(() => document.getElementById("video").duration);
  assert.ok(Math.abs(duration - live) < 2, `the recording lasts ${duration} s, the live ${live} s`);
  const before = await page.evaluate(() => document.getElementById("video").getVideoPlaybackQuality().totalVideoFrames);
  const mid = duration / 2;
  const now = await seekAndPlayOn(page, mid, 15000);
  assert.ok(now.t > mid + 1 && now.t < duration + 0.1, `plays on from the middle: ${now.t} of ${duration}`);
  assert.ok(now.frames > before + 15, `frames decoded after the seek: ${before} → ${now.frames}`);
}

export function percentile(values, p) {
  const s = [...values].sort((a, b) => a - b);
  if (!s.length) return NaN;
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}
