// The transcoded ladder in Chromium (issue 15, docs/PROCESSING.md): the studio publishes
// the fake camera as one layer at 1280x720 (no simulcast) to a node started with
// `--ladder`, in VP8 and (its codec preference turned to H.264 only, as OBS sends) in
// H.264. A viewer that asks for the low layer decodes 320-wide frames of the publisher's
// codec made on the node; moved to the top layer and back, it keeps decoding frames
// throughout; once it leaves, the node's ladder stops (`cascade_ladders_running`). Run
// inside `unshare --net`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { startServer, launch, until, prefer } from "./harness.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The viewer's video now (its RTCPeerConnection's inbound-rtp). */
const video = (page) => page.evaluate(async () => {
  const out = { width: 0, frames: 0, codec: "" };
  const stats = await window.player.session?.pc.getStats();
  stats?.forEach((r) => {
    if (r.type !== "inbound-rtp" || r.kind !== "video") return;
    out.width = r.frameWidth ?? 0;
    out.frames = r.framesDecoded ?? 0;
    out.codec = stats.get(r.codecId)?.mimeType ?? "";
  });
  return out;
});

for (const codec of ["VP8", "H264"]) {
  test(`a single-layer ${codec} publish is laddered for a Chromium viewer on the low layer`, { timeout: 60_000 }, async () => {
    const server = await startServer(["--workers", "1", "--ladder"]);
    const browser = await launch().catch(async (e) => { await server.stop(); throw e; });
    // Every sample of the viewer, and the longest time its decoded frames did not grow.
    const samples = [];
    let sampling = true, stall = 0;
    try {
      const ctx = await browser.newContext();
      if (codec === "H264") await ctx.addInitScript(prefer, "video/H264");
      const studio = await ctx.newPage();
      await studio.goto(`${server.base}/studio?stream=steps&source=camera`);
      await studio.uncheck("#simulcast");
      await studio.click("#start");
      await until(studio, () => window.studio?.state === "live", null, 20000);
      // A busy machine must not make Chromium send a smaller picture: the source stays 720p
      // (its frame rate gives way instead).
      await studio.evaluate(async () => {
        const sender = window.studio.session.pc.getSenders().find((s) => s.track?.kind === "video");
        const p = sender.getParameters();
        p.degradationPreference = "maintain-resolution";
        await sender.setParameters(p);
      });

      const viewer = await browser.newPage();
      await viewer.goto(`${server.base}/watch/steps?layer=low`);
      await until(viewer, () => window.player?.frames > 0, null, 15000);
      const follow = (async () => {
        let last = null;
        while (sampling) {
          const s = { ...(await video(viewer)), at: Date.now() };
          samples.push(s);
          if (!last || s.frames > last.frames) last = s;
          stall = Math.max(stall, s.at - last.at);
          await sleep(200);
        }
      })();
      const widthIs = async (w, ms) => {
        const end = Date.now() + ms;
        while (Date.now() < end && (samples.at(-1)?.width !== w)) await sleep(200);
        return samples.at(-1)?.width;
      };
      const brief = () => samples.map((s) => `${s.width}/${s.frames}`).join(" ");

      // The low layer: made on the node from the one 1280-wide layer.
      assert.equal(await widthIs(320, 15000), 320, `the viewer never decodes 320-wide frames (${samples.at(-1)?.codec}): ${brief()}`);
      assert.match(samples.at(-1).codec, new RegExp(codec, "i"));
      assert.equal(await server.metric("cascade_ladders_running"), 1, "one ladder runs");
      stall = 0; // from here on, frames must keep coming

      // Up to the publisher's own layer and back down, without a break.
      await viewer.selectOption("#layer", "high");
      assert.equal(await widthIs(1280, 10000), 1280, `the viewer never reaches the top layer: ${brief()}`);
      await sleep(1500);
      await viewer.selectOption("#layer", "low");
      assert.equal(await widthIs(320, 10000), 320, `the viewer never comes back to the low layer: ${brief()}`);
      await sleep(1500);
      sampling = false;
      await follow;
      assert.ok(stall < 1000, `no decoded frame for ${stall} ms while moving between layers: ${brief()}`);

      // The last low-layer viewer leaves (its session ended, as the page does on pagehide):
      // the ladder stops after its 5 s grace.
      await viewer.evaluate(() => window.player.session.stop());
      await viewer.close();
      const end = Date.now() + 12000;
      let running = await server.metric("cascade_ladders_running");
      while (running !== 0 && Date.now() < end) {
        await sleep(250);
        running = await server.metric("cascade_ladders_running");
      }
      assert.equal(running, 0, "the ladder stopped once no viewer wanted it");
    } finally {
      sampling = false;
      await browser.close();
      await server.stop();
    }
  });
}
