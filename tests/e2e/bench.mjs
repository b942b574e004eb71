// Join time and glass-to-glass delay, measured in Chromium: the studio publishes a canvas
// that paints the wall-clock time as blocks; N viewers join one after another and read the
// time back from every decoded frame. Join = WHEP POST to first decoded frame.
//
// The N viewers are N independent WHEP sessions made with the SDK's `play()`, each with
// its own RTCPeerConnection, decoder and <video>, hosted in one tab so that 2 cores can
// run 20 of them (one renderer process instead of 20).
//
//   unshare --net sh -c 'ip link set lo up && node tests/e2e/bench.mjs [viewers] [layer]'
//
// `layer` may be a list (`low,high`): viewer i takes the (i mod n)th, and the delays are
// also given per layer. BENCH_LADDER=1 publishes one 720p layer (no simulcast) to a node
// started with `--ladder`, so `low` and `mid` are its transcoded rungs and `high` the
// original: `BENCH_LADDER=1 node tests/e2e/bench.mjs 6 low,high` compares them in one run.
import { startServer, launch, until, percentile } from "./harness.mjs";

const viewers = Number(process.argv[2] ?? 20);
const layer = process.argv[3] ?? "low";
const layers = layer.split(",");
const ladder = process.env.BENCH_LADDER === "1";
const seconds = Number(process.env.BENCH_SECONDS ?? 10);
// Time between one viewer's first frame and the next viewer's join.
const gap = Number(process.env.BENCH_JOIN_GAP_MS ?? 500);

const server = await startServer(["--workers", "2", ...(ladder ? ["--ladder"] : [])]);
const browser = await launch();
try {
  const studio = await browser.newPage();
  await studio.goto(`${server.base}/studio?stream=bench&source=clock`);
  if (ladder) await studio.uncheck("#simulcast");
  await studio.click("#start"); // going live is always a click
  await until(studio, () => window.studio?.state === "live", null, 20000);
  await new Promise((r) => setTimeout(r, 2000)); // let the publisher's bitrate ramp up

  const page = await browser.newPage();
  await page.goto(`${server.base}/`);
  const result = await page.evaluate(async ({ viewers, layers, seconds, gap }) => {
    const { play, sampleFrames } = await import("/sdk/cascade.js");
    const players = [];
    performance.setResourceTimingBufferSize(10000); // every viewer's POST, not the first 250
    const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
    for (let i = 0; i < viewers; i++) {
      const video = document.createElement("video");
      video.muted = true; video.autoplay = true; video.playsInline = true;
      video.style.width = "160px";
      document.body.append(video);
      const layer = layers[i % layers.length];
      const p = { layer, start: performance.now(), posted: 0, replied: 0, answered: 0, connected: 0, first: 0, width: 0, delays: [] };
      sampleFrames(video, true, (width, delay) => {
        if (!p.first) p.first = performance.now();
        p.width = width;
        if (delay !== null && p.delays.length < 5000) p.delays.push(delay);
      });
      const url = new URL("/whep/bench", location.href).toString();
      const session = await play(url, video, { layer });
      p.answered = performance.now();
      p.url = url;
      // Each player follows its event stream, one HTTP/1.1 connection held open, and
      // Chromium opens at most 6 per host: the 7th viewer's POST would wait forever. This
      // page measures media, not events.
      session.events?.close();
      session.pc.addEventListener("connectionstatechange", () => {
        if (session.pc.connectionState === "connected" && !p.connected) p.connected = performance.now();
      });
      const t0 = performance.now();
      while (!p.first && performance.now() - t0 < 10000) await sleep(5);
      players.push(p);
      await sleep(gap);
    }
    for (const p of players) p.delays = [];
    await sleep(seconds * 1000);
    // Each WHEP POST, from the browser's resource timing (its entries come some time after
    // the response): the SDK asks the same URL with OPTIONS while the offer is made, then
    // POSTs it, so a viewer's POST is the last entry of its URL after its start.
    // (The SDK adds the layer as a query.)
    const entries = performance.getEntriesByType("resource").filter((e) => e.name.split("?")[0] === players[0]?.url);
    for (const [i, p] of players.entries()) {
      const next = players[i + 1]?.start ?? Infinity;
      const post = entries.filter((e) => e.startTime >= p.start && e.startTime < next).at(-1);
      if (!post) throw new Error(`no resource timing for viewer ${i}'s POST`);
      p.posted = post.startTime;
      p.replied = post.responseEnd;
      // Request sent to the answer's first byte: the node's handling, the wire aside.
      p.node = post.responseStart - post.requestStart;
    }
    return players.map((p) => ({
      layer: p.layer, join: p.first - p.start, answer: p.answered - p.start,
      connect: p.connected - p.start, width: p.width, delays: p.delays,
      // What the SDK did before the POST (createOffer, setLocalDescription, the OPTIONS
      // for announced ICE servers), and the join as the issue counts it: POST to frame.
      before_post: p.posted - p.start, post_to_reply: p.replied - p.posted, node: p.node,
      join_from_post: p.first - p.posted,
    }));
  }, { viewers, layers, seconds, gap });

  // The floor, in the same run: the same painted clock sent peer to peer inside one tab
  // (Chromium to Chromium, no server), read back the same way.
  const floor = await page.evaluate(async () => {
    const { paintClock, readClock, clockRegion } = await import("/sdk/cascade.js");
    const canvas = document.createElement("canvas");
    canvas.width = 1280; canvas.height = 720;
    const c2d = canvas.getContext("2d");
    const timer = setInterval(() => { c2d.fillStyle = "#3a6"; c2d.fillRect(0, 0, 1280, 720); paintClock(c2d, Date.now()); }, 1000 / 30);
    const src = canvas.captureStream(30);
    const a = new RTCPeerConnection(), b = new RTCPeerConnection();
    a.onicecandidate = (e) => e.candidate && b.addIceCandidate(e.candidate);
    b.onicecandidate = (e) => e.candidate && a.addIceCandidate(e.candidate);
    a.addTransceiver(src.getVideoTracks()[0], { direction: "sendonly" });
    const video = document.createElement("video");
    video.muted = true; video.autoplay = true; document.body.append(video);
    b.ontrack = (e) => { video.srcObject = new MediaStream([e.track]); };
    const t0 = performance.now();
    await a.setLocalDescription(); await b.setRemoteDescription(a.localDescription);
    await b.setLocalDescription(); await a.setRemoteDescription(b.localDescription);
    const rc = document.createElement("canvas");
    const rctx = rc.getContext("2d", { willReadFrequently: true });
    const delays = []; let first = 0;
    await new Promise((done) => {
      const f = (now, meta) => {
        if (!first) first = performance.now() - t0;
        const r = clockRegion(meta.width, 1280);
        rc.width = r.w; rc.height = r.h;
        rctx.drawImage(video, 0, 0, r.w, r.h, 0, 0, r.w, r.h);
        const s = readClock(rctx, meta.width, 1280);
        if (s !== null) delays.push(Date.now() - s);
        // Bounded: a loaded machine makes Chromium scale the 720p canvas down, and a clock
        // it cannot read back would otherwise keep this loop (and the run) going forever.
        if (delays.length < 300 && performance.now() - t0 < 20000) video.requestVideoFrameCallback(f); else done();
      };
      video.requestVideoFrameCallback(f);
    });
    clearInterval(timer); a.close(); b.close();
    return { first, delays: delays.slice(30) };
  });

  if (process.env.BENCH_DUMP) console.error(JSON.stringify(result.map(({ delays, layer, ...p }) => ({ layer, ...Object.fromEntries(Object.entries(p).map(([k, v]) => [k, Math.round(v)])) }))));
  const pick = (k) => result.map((p) => p[k]);
  const delays = result.flatMap((p) => p.delays);
  const r = (v) => Math.round(v);
  console.log(JSON.stringify({
    viewers,
    layer,
    ladder,
    join_gap_ms: gap,
    widths: [...new Set(pick("width"))].join(","),
    join_ms: { p50: r(percentile(pick("join"), 50)), p95: r(percentile(pick("join"), 95)), max: r(Math.max(...pick("join"))) },
    // From the WHEP POST (resource timing) to the first decoded frame; `join_ms` counts
    // from the call to play(), the SDK's offer making included.
    join_from_post_ms: { p50: r(percentile(pick("join_from_post"), 50)), p95: r(percentile(pick("join_from_post"), 95)), max: r(Math.max(...pick("join_from_post"))) },
    join_phases_p50_ms: {
      before_post: r(percentile(pick("before_post"), 50)),
      post_to_reply: r(percentile(pick("post_to_reply"), 50)),
      post_request_to_answer_byte: r(percentile(pick("node"), 50)),
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
    ...(layers.length > 1 && {
      glass_to_glass_by_layer_ms: Object.fromEntries(layers.map((l) => {
        const d = result.filter((p) => p.layer === l).flatMap((p) => p.delays);
        const w = [...new Set(result.filter((p) => p.layer === l).map((p) => p.width))].join(",");
        return [l, { widths: w, samples: d.length, p50: r(percentile(d, 50)), p95: r(percentile(d, 95)) }];
      })),
    }),
    floor_chromium_p2p_ms: {
      first_frame: r(floor.first),
      glass_to_glass_p50: r(percentile(floor.delays, 50)),
      glass_to_glass_p95: r(percentile(floor.delays, 95)),
    },
    node_cpu_seconds: await server.metric("cascade_process_cpu_seconds_total"),
    // How each viewer's video started: the node's cached group of pictures, or a keyframe.
    video_starts: {
      cache: await server.metric('cascade_viewer_video_starts_total{from="cache"}'),
      keyframe: await server.metric('cascade_viewer_video_starts_total{from="keyframe"}'),
    },
  }, null, 2));
} finally {
  await browser.close();
  await server.stop();
}
