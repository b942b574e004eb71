// Browser end to end through a tree of processes: the studio publishes 1280x720 in three
// simulcast layers to an origin; Chromium viewers on two edges, each behind its own relay
// (origin → relay → edge over QUIC), decode 1280-wide frames; a relay is killed (SIGKILL)
// and its edge's viewer keeps decoding on the same session, through the other relay.
// Run inside `unshare --net`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CASCADE, startServer, launch, until } from "./harness.mjs";

/** A node of the tree: its relay listens on a free port; `parents` are NAME@ADDR. */
async function startNode(dir, name, parents = []) {
  const args = ["--relay-listen", "127.0.0.1:0", "--node-dir", join(dir, name)];
  for (const p of parents) args.push("--parent", p);
  const node = await startServer(args);
  const line = await node.nextLine();
  const m = line.match(/^cascade relay (\S+) on quic (\S+)$/);
  assert.ok(m && m[1] === name, `relay banner: ${line}`);
  node.relay = `${name}@${m[2]}`;
  return node;
}

test("a stream through origin, relays and edges, and a relay's death", { timeout: 180_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "cascade-cluster-e2e-"));
  execFileSync(CASCADE, ["cluster", "init", "--dir", join(dir, "ca")]);
  for (const n of ["origin", "relay1", "relay2", "edge1", "edge2"]) {
    execFileSync(CASCADE, ["cluster", "issue", "--ca", join(dir, "ca"), "--name", n, "--out", join(dir, n)]);
  }
  const nodes = [];
  const origin = await startNode(dir, "origin");
  nodes.push(origin);
  const relay1 = await startNode(dir, "relay1", [origin.relay]);
  const relay2 = await startNode(dir, "relay2", [origin.relay]);
  nodes.push(relay1, relay2);
  const edge1 = await startNode(dir, "edge1", [relay1.relay, relay2.relay]);
  const edge2 = await startNode(dir, "edge2", [relay2.relay, relay1.relay]);
  nodes.push(edge1, edge2);
  const browser = await launch().catch(async (e) => { await Promise.all(nodes.map((n) => n.stop())); throw e; });
  try {
    const studio = await browser.newPage();
    await studio.goto(`${origin.base}/studio?stream=tree&source=camera`);
    await studio.click("#start");
    await until(studio, () => window.studio.state === "live", null, 20000);

    const viewers = [];
    for (const edge of [edge1, edge2]) {
      const page = await browser.newPage();
      page.on("console", (m) => m.type() === "error" && console.log("viewer:", m.text()));
      await page.goto(`${edge.base}/watch/tree?layer=high`);
      viewers.push(page);
    }
    for (const [i, page] of viewers.entries()) {
      await until(page, () => window.player.frames > 30 && window.player.width === 1280, null, 45000).catch(async (e) => {
        const p = await page.evaluate(() => JSON.stringify(window.player));
        throw new Error(`viewer on edge${i + 1} decodes no 1280-wide frames: ${p} (${e.message})`);
      });
    }
    // The edges' events say the stream is live there too.
    await until(viewers[0], () => window.player.active === true, null, 10000);

    // relay1 dies; edge1 moves to relay2; both viewers keep decoding on their sessions.
    const before = await Promise.all(viewers.map((p) => p.evaluate(() => {
      window.pcBefore = window.player.session.pc;
      return window.player.frames;
    })));
    relay1.proc.kill("SIGKILL");
    for (const [i, page] of viewers.entries()) {
      await until(page, (n) => window.player.frames > n + 60, before[i], 15000).catch(async (e) => {
        const p = await page.evaluate(() => JSON.stringify(window.player));
        throw new Error(`viewer on edge${i + 1} stops after the relay's death: ${p} (${e.message})`);
      });
    }
    const width = await viewers[0].evaluate(() => window.player.width);
    assert.equal(width, 1280, "edge1's viewer is back on the top layer");
    const same = await viewers[0].evaluate(() =>
      window.player.session.pc === window.pcBefore && window.pcBefore.connectionState === "connected");
    assert.ok(same, "the viewer's session was never renegotiated");
  } finally {
    await browser.close();
    await Promise.all(nodes.filter((n) => n !== relay1).map((n) => n.stop()));
  }
});

/** `cascade <args>` (control, node) on a free port; like startServer, for other commands. */
function startCommand(args) {
  return startServer(["--__command", ...args]);
}

test("viewers placed by the control plane's 307, and moved off a drained edge", { timeout: 180_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "cascade-control-e2e-"));
  const token = "e2e cluster token";
  execFileSync(CASCADE, ["cluster", "init", "--dir", join(dir, "ca")]);
  for (const n of ["origin", "edge1", "edge2"]) {
    execFileSync(CASCADE, ["cluster", "issue", "--ca", join(dir, "ca"), "--name", n, "--out", join(dir, n)]);
  }
  const nodes = [];
  const control = await startCommand(["control", "--cluster-token", token]);
  nodes.push(control);
  const api = async (path, body, bearer) => {
    const headers = { "content-type": "application/json" };
    if (bearer) headers.authorization = `Bearer ${bearer}`;
    const resp = await fetch(`${control.base}/api/v1${path}`, { method: "POST", headers, body: JSON.stringify(body ?? {}) });
    if (!resp.ok) assert.fail(`${path}: ${resp.status} ${await resp.text()}`);
    return resp.status === 202 ? null : resp.json();
  };
  const password = "ana's long password";
  await api("/auth/signup", { email: "ana@example.com", username: "ana", password });
  const { access_token } = await api("/auth/signin", { login: "ana", password });
  await api("/channels", { slug: "ana-live", title: "ana live" }, access_token);
  const { key } = await api("/channels/ana-live/keys", { label: "obs" }, access_token);
  const { token: publishToken } = await api("/publish-token", null, key);

  const nodeArgs = (name, role, zone) => ["node", "--control-plane", control.base, "--cluster-token", token,
    "--role", role, "--zone", zone, "--relay-listen", "127.0.0.1:0", "--node-dir", join(dir, name)];
  for (const [name, role, zone] of [["origin", "origin", "a"], ["edge1", "edge", "a"], ["edge2", "edge", "b"]]) {
    const n = await startCommand(nodeArgs(name, role, zone));
    await n.nextLine();
    n.name = name;
    nodes.push(n);
  }
  const [, origin, edge1, edge2] = nodes;
  const alive = async () => (await (await fetch(`${control.base}/api/v1/cluster/nodes`,
    { headers: { authorization: `Bearer ${token}` } })).json()).filter((n) => n.alive).length;
  for (let i = 0; i < 50 && (await alive()) < 3; i++) await new Promise((r) => setTimeout(r, 200));
  assert.equal(await alive(), 3, "three nodes registered");

  const browser = await launch().catch(async (e) => { await Promise.all(nodes.map((n) => n.stop())); throw e; });
  try {
    const studio = await browser.newPage();
    await studio.goto(`${origin.base}/studio?stream=ana-live&source=camera`);
    await studio.fill("#key", publishToken);
    await studio.click("#start");
    await until(studio, () => window.studio.state === "live", null, 20000);

    // The watch page is the control plane's: its WHEP POST is answered 307 to an edge.
    const page = await browser.newPage();
    page.on("console", (m) => m.type() === "error" && console.log("viewer:", m.text()));
    page.on("pageerror", (e) => console.log("viewer page error:", e.message));
    page.on("requestfailed", (r) => console.log("viewer request failed:", r.url(), r.failure()?.errorText));
    await page.goto(`${control.base}/watch/ana-live?layer=high`);
    await until(page, () => window.player.frames > 30 && window.player.width === 1280, null, 45000).catch(async (e) => {
      const p = await page.evaluate(() => JSON.stringify({ ...window.player, session: window.player.session?.location }));
      throw new Error(`the placed viewer decodes no 1280-wide frames: ${p} (${e.message})`);
    });
    const where = await page.evaluate(() => window.player.session.location);
    const first = [edge1, edge2].find((e) => where.startsWith(`${e.base}/whep/`));
    assert.ok(first, `placed on an edge: ${where}`);
    const other = first === edge1 ? edge2 : edge1;

    // Drain that edge: the player moves to the other one and keeps decoding.
    execFileSync(CASCADE, ["cluster", "drain", "--control", control.base, "--cluster-token", token, "--node", first.name]);
    await until(page, () => window.player.session.moves === 1, null, 15000).catch(async (e) => {
      const p = await page.evaluate(() => JSON.stringify({ moves: window.player.session.moves, at: window.player.session.location }));
      throw new Error(`the viewer did not move off the drained edge: ${p} (${e.message})`);
    });
    const now = await page.evaluate(() => window.player.session.location);
    assert.ok(now.startsWith(`${other.base}/whep/`), `moved to the other edge: ${now}`);
    const frames = await page.evaluate(() => window.player.frames);
    await until(page, (n) => window.player.frames > n + 60 && window.player.width === 1280, frames, 20000);
  } finally {
    await browser.close();
    await Promise.all(nodes.map((n) => n.stop()));
  }
});
