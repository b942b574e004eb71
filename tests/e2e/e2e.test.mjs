// Browser end to end: the studio publishes a 1280x720 fake camera in 3 simulcast layers;
// three viewers decode it on the layers they chose; the publisher restarts and a viewer
// resumes on the same connection; DELETE frees a session. Every page runs under the node's
// Content-Security-Policy and must not trip it. Run inside `unshare --net`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { startServer, launch, until } from "./harness.mjs";

/**
 * Records what the page's Content-Security-Policy refused: the `securitypolicyviolation`
 * events (reported from an init script, which CSP does not govern) and Chromium's own
 * "Refused to …" console errors. Also logs the page's console errors under `name`.
 */
function watchCsp(page, name) {
  const violations = [];
  page.on("console", (m) => {
    const text = m.text();
    if (text.startsWith("csp-violation ") || /Content Security Policy/i.test(text)) violations.push(`${name}: ${text}`);
    else if (m.type() === "error") console.log(`${name}:`, text);
  });
  page.addInitScript(() => document.addEventListener("securitypolicyviolation", (e) =>
    console.error(`csp-violation ${e.effectiveDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`)));
  return violations;
}

/** Creates an account, a channel and a stream key through the API, as OBS users do. */
async function ownerWithKey(base, name) {
  const api = async (path, body, token) => {
    const headers = { "content-type": "application/json" };
    if (token) headers.authorization = `Bearer ${token}`;
    const resp = await fetch(`${base}/api/v1${path}`, { method: "POST", headers, body: JSON.stringify(body) });
    if (!resp.ok) assert.fail(`${path}: ${resp.status} ${await resp.text()}`);
    return resp.status === 202 ? null : resp.json();
  };
  const password = `${name}'s long password`;
  await api("/auth/signup", { email: `${name}@example.com`, username: name, password });
  const { access_token } = await api("/auth/signin", { login: name, password });
  await api("/channels", { slug: `${name}-live`, title: `${name} live` }, access_token);
  const { key } = await api(`/channels/${name}-live/keys`, { label: "obs" }, access_token);
  return { login: `${name}@example.com`, password, slug: `${name}-live`, key };
}

test("studio to three viewers with simulcast, restart and teardown", { timeout: 180_000 }, async () => {
  const server = await startServer(["--workers", "2"]);
  const browser = await launch().catch(async (e) => { await server.stop(); throw e; });
  try {
    const studio = await browser.newPage();
    const violations = watchCsp(studio, "studio");
    await studio.goto(`${server.base}/studio?stream=e2e&source=camera`);
    await studio.click("#start");
    await until(studio, () => window.studio?.state === "live", null, 20000);

    const viewers = {};
    for (const layer of ["auto", "low", "high"]) {
      const page = await browser.newPage();
      page.violations = watchCsp(page, `viewer ${layer}`);
      await page.goto(`${server.base}/watch/e2e?layer=${layer}`);
      viewers[layer] = page;
    }
    // Every viewer decodes frames.
    for (const [layer, page] of Object.entries(viewers)) {
      await until(page, () => window.player?.frames > 30, null, 30000).catch(async (e) => {
        const p = await page.evaluate(() => JSON.stringify(window.player));
        throw new Error(`viewer ${layer} decodes no frames: ${p} (${e.message})`);
      });
    }
    // The low viewer decodes at most 320 px wide; the high one 1280 px.
    await until(viewers.low, () => window.player?.width > 0 && window.player?.width <= 320, null, 20000);
    await until(viewers.high, () => window.player?.width === 1280, null, 30000).catch(async (e) => {
      const w = await viewers.high.evaluate(() => window.player.width);
      throw new Error(`high viewer stays at ${w} px wide (${e.message})`);
    });
    const lowWidth = await viewers.low.evaluate(() => window.player.width);
    assert.ok(lowWidth <= 320, `low layer is ${lowWidth} px wide`);

    // Events: the stream is active, three layers, three viewers.
    await until(viewers.auto, () => window.player?.active === true && window.player?.viewers === 3);
    await until(viewers.auto, () => window.player?.layers.length === 3, null, 20000);

    // Audio comes with redundancy (RED, which Chromium offers): each packet carries the one
    // before, so the viewer's audio packets are about twice the publisher's.
    const perPacket = (page, type) => page.evaluate(async (type) => {
      const pc = window.player?.session?.pc ?? window.studio?.session?.pc;
      let out = null;
      (await pc.getStats()).forEach((r) => {
        if (r.type === type && r.kind === "audio") {
          const [bytes, packets] = type === "inbound-rtp"
            ? [r.bytesReceived, r.packetsReceived] : [r.bytesSent, r.packetsSent];
          out = { bytes, packets, perPacket: bytes / packets };
        }
      });
      return out;
    }, type);
    const sent = await perPacket(studio, "outbound-rtp");
    const got = await perPacket(viewers.auto, "inbound-rtp");
    console.log(`audio bytes per packet: publisher ${sent.perPacket.toFixed(1)}, viewer ${got.perPacket.toFixed(1)}`);
    assert.ok(got.packets > 50 && got.perPacket > 1.6 * sent.perPacket,
      `the viewer's audio carries RED: ${JSON.stringify({ sent, got })}`);

    // The publisher stops and comes back; the auto viewer resumes on the same session.
    const before = await viewers.auto.evaluate(() => ({ loc: window.player.session.location }));
    await studio.evaluate(() => window.studio.stop());
    await until(viewers.auto, () => window.player?.active === false);
    const framesAtStop = await viewers.auto.evaluate(() => window.player.frames);
    await studio.click("#start");
    await until(studio, () => window.studio?.state === "live", null, 20000);
    await until(viewers.auto, (n) => window.player?.frames > n + 30, framesAtStop, 30000);
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

    // The home page lists the stream, as a link to its watch page.
    const home = await browser.newPage();
    const homeViolations = watchCsp(home, "home");
    await home.goto(`${server.base}/`);
    await home.waitForSelector('#streams a[href="/watch/e2e"]');
    assert.match(await home.textContent("#streams"), /e2e — 2 watching, 3 layer\(s\)/);

    const all = [violations, homeViolations, ...Object.values(viewers).map((p) => p.violations)].flat();
    assert.deepEqual(all, [], "no page trips the Content-Security-Policy");
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
    const violations = watchCsp(page, "page");
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
    await until(page, () => window.studio?.channel === "nia-live");
    // Going live before making a key is refused by the node.
    await page.selectOption("#source", "clock");
    await page.click("#start");
    await until(page, () => window.studio?.state.startsWith("error"), null, 10000);
    assert.match(await page.evaluate(() => window.studio.state), /401/);

    await page.click("#new-key");
    // The OBS box is already shown (with a placeholder) since the channel was chosen: wait
    // for the new key itself, or the test reads the placeholder.
    await until(page, () => document.querySelector("#obs-key").textContent.startsWith("csk_"));
    const obsUrl = await page.textContent("#obs-url");
    const obsKey = await page.textContent("#obs-key");
    assert.equal(obsUrl, `${server.base}/whip/nia-live`);
    assert.match(obsKey, /^csk_[A-Za-z0-9_-]{40,}$/);
    assert.equal(await page.inputValue("#key"), obsKey, "the studio publishes with it");

    await page.click("#start");
    await until(page, () => window.studio?.state === "live", null, 20000);
    const viewer = await browser.newPage();
    const viewerViolations = watchCsp(viewer, "viewer");
    await viewer.goto(`${server.base}/watch/nia-live?layer=low`);
    await until(viewer, () => window.player?.frames > 30, null, 30000);

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
    await until(page, () => window.accountPage.user?.username === "nia");
    assert.deepEqual([...violations, ...viewerViolations], [], "no page trips the Content-Security-Policy");
  } finally {
    await browser.close();
    await server.stop();
  }
});

// `/signin?next=` is followed after signing in, and anyone can write that link: only a path
// on this origin may be followed. A `javascript:` URL would run with the tokens at hand.
test("sign-in follows only same-origin paths in ?next=", { timeout: 120_000 }, async () => {
  const server = await startServer(["--auth", "accounts"]);
  const browser = await launch().catch(async (e) => { await server.stop(); throw e; });
  try {
    const owner = await ownerWithKey(server.base, "sam");
    const origin = new URL(server.base).origin;
    const cases = [
      ["javascript:alert(document.domain)", "/studio"],
      ['javascript:fetch("/leak?"+encodeURIComponent(localStorage.getItem("cascade.session")))', "/studio"],
      ["javascript:void(document.title='pwned')", "/studio"],
      ["//evil.example/", "/studio"],
      ["/\\evil.example/", "/studio"],
      ["/\t/evil.example/", "/studio"],
      ["https://evil.example/", "/studio"],
      ["/account?tab=profile#email", "/account?tab=profile#email"],
    ];
    const problems = []; // every case is tried, then all that went wrong is reported
    for (const [next, want] of cases) {
      const context = await browser.newContext();
      const page = await context.newPage();
      const violations = watchCsp(page, `signin ${next}`);
      const dialogs = [], elsewhere = [];
      page.on("dialog", (d) => { dialogs.push(d.message()); d.dismiss(); });
      context.on("request", (r) => {
        const u = new URL(r.url());
        if (u.origin !== origin || u.pathname === "/leak") elsewhere.push(r.url());
      });
      await page.goto(`${server.base}/signin?next=${encodeURIComponent(next)}`);
      await page.fill("#login", owner.login);
      await page.fill("#password", owner.password);
      await page.click("#submit");
      await page.waitForURL(`${server.base}${want}`, { timeout: 10000 }).catch(() => {});
      await page.waitForTimeout(300); // a payload that ran would have shown by now
      const problem = (what) => problems.push(`next=${next}: ${what}`);
      if (page.url() !== `${server.base}${want}`) problem(`ends on ${page.url()}, not ${want}`);
      if (dialogs.length) problem(`script ran: alert(${dialogs})`);
      if (elsewhere.length) problem(`requested ${elsewhere}`);
      if ((await page.title().catch(() => "")) === "pwned") problem("script ran: title changed");
      if (violations.length) problem(`CSP refused something: ${violations}`);
      // The user is signed in on the page it landed on.
      if (page.url() === `${server.base}${want}`) {
        if (want === "/studio") await page.waitForSelector("#mine:not([hidden])");
        else await until(page, () => window.accountPage.user?.username === "sam");
      }
      await context.close();
    }
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
    await server.stop();
  }
});

// A link must not be able to broadcast a visitor's camera, least of all into a channel
// whose key the link's author holds: the studio takes no key from the URL and never
// publishes without a click on "Go live".
test("a studio link with a key and autostart publishes nothing", { timeout: 60_000 }, async () => {
  const server = await startServer(["--auth", "accounts"]);
  const browser = await launch().catch(async (e) => { await server.stop(); throw e; });
  try {
    const owner = await ownerWithKey(server.base, "vic");
    const page = await browser.newPage();
    const violations = watchCsp(page, "studio");
    const whip = [];
    page.on("request", (r) => new URL(r.url()).pathname.startsWith("/whip/") && whip.push(`${r.method()} ${r.url()}`));
    const link = `/studio?stream=${owner.slug}&key=${encodeURIComponent(owner.key)}&autostart=1&source=clock`;
    await page.goto(`${server.base}${link}`);
    await page.waitForTimeout(3000);
    assert.deepEqual(whip, [], "no WHIP request without a click");
    const { streams } = await (await fetch(`${server.base}/api/streams`)).json();
    assert.ok(!streams.some((s) => s.name === owner.slug && s.active), `no publisher: ${JSON.stringify(streams)}`);
    assert.equal((await (await fetch(`${server.base}/healthz`)).json()).sessions, 0);
    assert.equal(await page.evaluate(() => window.studio.state), "idle");
    // The stream name still preselects the stream; the key field stays empty.
    assert.equal(await page.inputValue("#stream"), owner.slug);
    assert.equal(await page.inputValue("#key"), "");
    // A click goes live as the visitor, with no key of the owner's: the node refuses.
    await page.click("#start");
    await until(page, () => window.studio?.state.startsWith("error"), null, 10000);
    assert.match(await page.evaluate(() => window.studio.state), /401/);
    // One offer POSTed (the SDK also asks OPTIONS for the ICE servers, without the key).
    assert.equal(whip.filter((r) => r.startsWith("POST ")).length, 1, `the click made one WHIP request: ${whip}`);
    assert.deepEqual(violations, []);
  } finally {
    await browser.close();
    await server.stop();
  }
});

test("two tabs refreshing one session at once both stay signed in", { timeout: 60_000 }, async () => {
  const server = await startServer(["--auth", "accounts"]);
  const browser = await launch();
  try {
    await ownerWithKey(server.base, "tab");
    const ctx = await browser.newContext();
    const [a, b] = [await ctx.newPage(), await ctx.newPage()];
    for (const p of [a, b]) await p.goto(`${server.base}/account`);
    await a.evaluate(async ([login, password]) => {
      const { Account } = await import("/sdk/account.js");
      await new Account().signIn(login, password);
    }, ["tab@example.com", "tab's long password"]);
    // Another device signs in and out: this session's access token is now refused, its
    // refresh token is still good.
    const post = (path, body, token) => fetch(`${server.base}/api/v1${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
    });
    const other = await (await post("/auth/signin", { login: "tab", password: "tab's long password" })).json();
    assert.equal((await post("/auth/signout", { refresh_token: other.refresh_token }, other.access_token)).status, 204);
    // Both tabs call the API at once: both get 401 and refresh the one stored session.
    // Each refresh is held a moment on its way out, so the two would overlap if the tabs
    // did not take turns.
    await ctx.route("**/api/v1/auth/refresh", async (route) => {
      await new Promise((r) => setTimeout(r, 300));
      await route.continue();
    });
    const me = (p) => p.evaluate(async () => {
      const { Account } = await import("/sdk/account.js");
      try { return (await new Account().me()).username; } catch (e) { return `error ${e.status}`; }
    });
    const [ua, ub] = await Promise.all([me(a), me(b)]);
    assert.deepEqual([ua, ub], ["tab", "tab"], "both tabs are answered");
    assert.equal(await me(a), "tab", "and the session is still signed in");
  } finally {
    await browser.close();
    await server.stop();
  }
});
