// Join time and glass-to-glass delay, measured in Chromium: the studio publishes a canvas
// that paints the wall-clock time as blocks; N viewers join one after another and read the
// time back from every decoded frame. Join = WHEP POST to first decoded frame.
//
// The N viewers are N independent WHEP sessions made with the SDK's `play()`, each with
// its own RTCPeerConnection, decoder and <video>, hosted in one tab so that 2 cores can
// run 20 of them (one renderer process instead of 20).
//
//   unshare --net sh -c 'ip link set lo up && node tests/e2e/bench.mjs [viewers] [layer]'
import { startServer, launch, until, percentile } from "./harness.mjs";

const viewers = Number(process.argv[2] ?? 20);
const layer = process.argv[3] ?? "low";
const seconds = Number(process.env.BENCH_SECONDS ?? 10);

const server = await startServer(["--workers", "2"]);
const browser = await launch();
try {
  const studio = await browser.newPage();
  await studio.goto(`${server.base}/studio?stream=bench&source=clock&autostart=1`);
  await until(studio, () => window.studio.state === "live", null, 20000);
  await new Promise((r) => setTimeout(r, 2000)); // let the publisher's bitrate ramp up

  const page = await browser.newPage();
  await page.goto(`${server.base}/`);
  const result = await page.evaluate(async ({ viewers, layer, seconds }) => {
    const { play, readClock, clockRegion } = await import("/sdk/cascade.js");
    const players = [];
    const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
    for (let i = 0; i < viewers; i++) {
      const video = document.createElement("video");
      video.muted = true; video.autoplay = true; video.playsInline = true;
      video.style.width = "160px";
      document.body.append(video);
      const canvas = document.createElement("canvas");
      const ctx = canvas.getContext("2d", { willReadFrequently: true });
      const p = { start: performance.now(), answered: 0, connected: 0, first: 0, width: 0, delays: [] };
      const onFrame = (now, meta) => {
        if (!p.first) p.first = performance.now();
        p.width = meta.width;
        const r = clockRegion(meta.width, 1280);
        if (canvas.width !== r.w || canvas.height !== r.h) { canvas.width = r.w; canvas.height = r.h; }
        ctx.drawImage(video, 0, 0, r.w, r.h, 0, 0, r.w, r.h);
        const stamp = readClock(ctx, meta.width, 1280);
        if (stamp !== null && p.delays.length < 5000) p.delays.push(Date.now() - stamp);
        video.requestVideoFrameCallback(onFrame);
      };
      video.requestVideoFrameCallback(onFrame);
      const session = await play(new URL("/whep/bench", location.href).toString(), video, { layer });
      p.answered = performance.now();
      session.pc.addEventListener("connectionstatechange", () => {
        if (session.pc.connectionState === "connected" && !p.connected) p.connected = performance.now();
      });
      const t0 = performance.now();
      while (!p.first && performance.now() - t0 < 10000) await sleep(5);
      players.push(p);
      await sleep(200);
    }
    for (const p of players) p.delays = [];
    await sleep(seconds * 1000);
    return players.map((p) => ({
      join: p.first - p.start, answer: p.answered - p.start,
      connect: p.connected - p.start, width: p.width, delays: p.delays,
    }));
  }, { viewers, layer, seconds });

  const pick = (k) => result.map((p) => p[k]);
  const delays = result.flatMap((p) => p.delays);
  const r = (v) => Math.round(v);
  console.log(JSON.stringify({
    viewers,
    layer,
    widths: [...new Set(pick("width"))].join(","),
    join_ms: { p50: r(percentile(pick("join"), 50)), p95: r(percentile(pick("join"), 95)), max: r(Math.max(...pick("join"))) },
    join_phases_p50_ms: {
      answer: r(percentile(pick("answer"), 50)),
      connected: r(percentile(pick("connect"), 50)),
      first_frame: r(percentile(pick("join"), 50)),
    },
    glass_to_glass_ms: {
      samples: delays.length,
      p50: r(percentile(delays, 50)),
      p95: r(percentile(delays, 95)),
      max: r(Math.max(...delays)),
    },
    node_cpu_seconds: await server.metric("cascade_process_cpu_seconds_total"),
  }, null, 2));
} finally {
  await browser.close();
  await server.stop();
}
