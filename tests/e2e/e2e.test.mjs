// Browser end to end: the studio publishes a 1280x720 fake camera in 3 simulcast layers;
// three viewers decode it on the layers they chose; the publisher restarts and a viewer
// resumes on the same connection; DELETE frees a session. Run inside `unshare --net`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { startServer, launch, until } from "./harness.mjs";

test("studio to three viewers with simulcast, restart and teardown", { timeout: 180_000 }, async () => {
  const server = await startServer(["--workers", "2"]);
  const browser = await launch().catch(async (e) => { await server.stop(); throw e; });
  try {
    const studio = await browser.newPage();
    studio.on("console", (m) => m.type() === "error" && console.log("studio:", m.text()));
    await studio.goto(`${server.base}/studio?stream=e2e&source=camera&autostart=1`);
    await until(studio, () => window.studio.state === "live", null, 20000);

    const viewers = {};
    for (const layer of ["auto", "low", "high"]) {
      const page = await browser.newPage();
      page.on("console", (m) => m.type() === "error" && console.log(`viewer ${layer}:`, m.text()));
      await page.goto(`${server.base}/watch/e2e?layer=${layer}`);
      viewers[layer] = page;
    }
    // Every viewer decodes frames.
    for (const [layer, page] of Object.entries(viewers)) {
      await until(page, () => window.player.frames > 30, null, 30000).catch(async (e) => {
        const p = await page.evaluate(() => JSON.stringify(window.player));
        throw new Error(`viewer ${layer} decodes no frames: ${p} (${e.message})`);
      });
    }
    // The low viewer decodes at most 320 px wide; the high one 1280 px.
    await until(viewers.low, () => window.player.width > 0 && window.player.width <= 320, null, 20000);
    await until(viewers.high, () => window.player.width === 1280, null, 30000).catch(async (e) => {
      const w = await viewers.high.evaluate(() => window.player.width);
      throw new Error(`high viewer stays at ${w} px wide (${e.message})`);
    });
    const lowWidth = await viewers.low.evaluate(() => window.player.width);
    assert.ok(lowWidth <= 320, `low layer is ${lowWidth} px wide`);

    // Events: the stream is active, three layers, three viewers.
    await until(viewers.auto, () => window.player.active === true && window.player.viewers === 3);
    await until(viewers.auto, () => window.player.layers.length === 3, null, 20000);

    // The publisher stops and comes back; the auto viewer resumes on the same session.
    const before = await viewers.auto.evaluate(() => ({ loc: window.player.session.location }));
    await studio.evaluate(() => window.studio.stop());
    await until(viewers.auto, () => window.player.active === false);
    const framesAtStop = await viewers.auto.evaluate(() => window.player.frames);
    await studio.evaluate(() => window.studio.start());
    await until(studio, () => window.studio.state === "live", null, 20000);
    await until(viewers.auto, (n) => window.player.frames > n + 30, framesAtStop, 30000);
    const after = await viewers.auto.evaluate(() => ({
      loc: window.player.session.location, state: window.player.session.pc.connectionState,
    }));
    assert.equal(after.loc, before.loc, "same WHEP session");
    assert.equal(after.state, "connected", "no renegotiation, still connected");

    // DELETE frees the session, and the metrics show it.
    assert.equal(await server.metric('cascade_sessions{role="viewer"}'), 3);
    await viewers.low.evaluate(() => window.player.session.stop());
    assert.equal(await server.metric('cascade_sessions{role="viewer"}'), 2);
    assert.ok(await server.metric("cascade_layer_switches_total") >= 3);
  } finally {
    await browser.close();
    await server.stop();
  }
});

// The product path: a person signs up, creates a channel and a stream key in the studio,
// sees what to paste into OBS, goes live with that key, a viewer watches; then they edit
// their account and sign out. The node runs with accounts (publishing needs a key).
test("sign up, go live with your own key, edit the account, sign out", { timeout: 120_000 }, async () => {
  const server = await startServer(["--workers", "2", "--auth", "accounts"]);
  const browser = await launch().catch(async (e) => { await server.stop(); throw e; });
  try {
    const page = await browser.newPage();
    page.on("console", (m) => m.type() === "error" && console.log("page:", m.text()));
    // Without a key, the studio cannot go live on a channel's stream.
    await page.goto(`${server.base}/signup`);
    await page.fill("#email", "nia@example.com");
    await page.fill("#username", "nia");
    await page.fill("#password", "nia's long password");
    await Promise.all([page.waitForURL(`${server.base}/studio`), page.click("#submit")]);
    await page.waitForSelector("#mine:not([hidden])");
    assert.equal(await page.textContent("#me"), "nia");

    await page.fill("#slug", "nia-live");
    await page.fill("#title", "Nia live");
    await page.click("#create-channel");
    await until(page, () => window.studio.channel === "nia-live");
    // Going live before making a key is refused by the node.
    await page.selectOption("#source", "clock");
    await page.evaluate(() => window.studio.start());
    await until(page, () => window.studio.state.startsWith("error"), null, 10000);
    assert.match(await page.evaluate(() => window.studio.state), /401/);

    await page.click("#new-key");
    await page.waitForSelector("#obs:not([hidden])");
    const obsUrl = await page.textContent("#obs-url");
    const obsKey = await page.textContent("#obs-key");
    assert.equal(obsUrl, `${server.base}/whip/nia-live`);
    assert.match(obsKey, /^csk_[A-Za-z0-9_-]{40,}$/);
    assert.equal(await page.inputValue("#key"), obsKey, "the studio publishes with it");

    await page.evaluate(() => window.studio.start());
    await until(page, () => window.studio.state === "live", null, 20000);
    const viewer = await browser.newPage();
    await viewer.goto(`${server.base}/watch/nia-live?layer=low`);
    await until(viewer, () => window.player.frames > 30, null, 30000);

    // Account settings: the display name sticks; sign out ends the session.
    await page.goto(`${server.base}/account`);
    await until(page, () => window.accountPage.user?.username === "nia");
    await page.fill("#display_name", "Nia N.");
    await page.click("#profile button[type=submit]");
    await page.waitForFunction(() => document.getElementById("profile-status").textContent === "saved");
    await page.reload();
    await until(page, () => window.accountPage.user?.display_name === "Nia N.");
    await Promise.all([page.waitForURL(`${server.base}/signin`), page.click("#signout")]);
    await page.goto(`${server.base}/account`);
    await page.waitForURL(/\/signin\?next=/);
    // And the same person signs in again.
    await page.fill("#login", "nia@example.com");
    await page.fill("#password", "nia's long password");
    await Promise.all([page.waitForURL(`${server.base}/account`), page.click("#submit")]);
  } finally {
    await browser.close();
    await server.stop();
  }
});
