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
