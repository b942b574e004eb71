// Studio effects (issue 15): drawn in the broadcaster's browser, seen by viewers. The
// studio publishes Chromium's fake camera (one layer); a viewer's decoded pixels turn grey
// (R≈G≈B) when "black and white" is picked live, a caption darkens the strip it covers,
// and with every effect off the colour is back. Run inside `unshare --net`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { startServer, launch, until } from "./harness.mjs";

/** The viewer's current frame over a region (fractions of the picture): mean colourfulness
 *  |R−G|+|G−B| and mean luma. */
const look = (page, [x0, y0, x1, y1] = [0, 0, 1, 1]) => page.evaluate(([x0, y0, x1, y1]) => {
  const v = document.getElementById("video");
  const c = document.createElement("canvas");
  c.width = v.videoWidth; c.height = v.videoHeight;
  const ctx = c.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(v, 0, 0);
  const [x, y] = [Math.floor(x0 * c.width), Math.floor(y0 * c.height)];
  const [w, h] = [Math.max(1, Math.floor(x1 * c.width) - x), Math.max(1, Math.floor(y1 * c.height) - y)];
  const d = ctx.getImageData(x, y, w, h).data;
  let chroma = 0, luma = 0, n = 0;
  for (let i = 0; i < d.length; i += 4) {
    chroma += Math.abs(d[i] - d[i + 1]) + Math.abs(d[i + 1] - d[i + 2]);
    luma += 0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2];
    n++;
  }
  return { chroma: chroma / n, luma: luma / n, width: c.width };
}, [x0, y0, x1, y1]);

/** Polls `read` until `ok` holds of its value or `ms` pass; returns the last value. */
async function settle(read, ok, ms = 15000) {
  const end = Date.now() + ms;
  let v = await read();
  while (!ok(v) && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 200));
    v = await read();
  }
  return v;
}

test("a viewer sees the effects picked in the studio", { timeout: 90_000 }, async () => {
  const server = await startServer(["--workers", "1"]);
  const browser = await launch().catch(async (e) => { await server.stop(); throw e; });
  try {
    const studio = await browser.newPage();
    const refused = [];
    studio.on("console", (m) => { if (/Content Security Policy/i.test(m.text())) refused.push(m.text()); });
    await studio.goto(`${server.base}/studio?stream=fx&source=camera`);
    await studio.uncheck("#simulcast");
    await studio.click("#start");
    await until(studio, () => window.studio?.state === "live", null, 20000);

    const viewer = await browser.newPage();
    await viewer.goto(`${server.base}/watch/fx`);
    await until(viewer, () => window.player?.frames > 20, null, 20000);
    const plain = await look(viewer);
    assert.ok(plain.chroma > 20, `the fake camera is colourful: ${JSON.stringify(plain)}`);

    // Black and white, picked live: the viewer's pixels go grey (VP8's rounding aside).
    await studio.selectOption("#fx-filter", "grayscale");
    const grey = await settle(() => look(viewer), (v) => v.chroma < 4);
    assert.ok(grey.chroma < 4, `grey for the viewer: ${JSON.stringify(grey)} (colour was ${plain.chroma})`);
    assert.ok(await studio.evaluate(() => window.studio.effects.frames > 0), "the studio draws frames");

    // A caption: its box (bottom left, dark) covers the strip left of the text.
    const strip = [0.016, 0.9, 0.026, 0.97];
    const before = await look(viewer, strip);
    await studio.fill("#fx-text", "Cascade effects");
    const boxed = await settle(() => look(viewer, strip), (v) => v.luma < before.luma * 0.6);
    assert.ok(boxed.luma < before.luma * 0.6,
      `the caption's box darkens its strip: ${before.luma.toFixed(1)} -> ${boxed.luma.toFixed(1)}`);

    // Every effect off: the camera's own track again, in colour.
    await studio.fill("#fx-text", "");
    await studio.selectOption("#fx-filter", "none");
    const back = await settle(() => look(viewer), (v) => v.chroma > 20);
    assert.ok(back.chroma > 20, `colour again: ${JSON.stringify(back)}`);
    assert.equal(await studio.evaluate(() => window.studio.effects.pipeline), null, "the canvas stopped");
    assert.deepEqual(refused, [], "no Content-Security-Policy refusal");
  } finally {
    await browser.close();
    await server.stop();
  }
});
