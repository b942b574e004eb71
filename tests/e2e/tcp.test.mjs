// Viewers whose network blocks UDP (issue 10 item 8), in real Chromium: each viewer runs in
// a network namespace of its own, joined to the node's by a veth pair.
//  - "udp": nothing blocked; the comparison.
//  - "tcp": nftables drops every UDP packet; it must play over the node's passive ICE-TCP
//    candidate (the selected pair's candidates are tcp).
//  - "turn": nftables drops UDP and TCP to the node's address (but its HTTP port); a coturn
//    (use-auth-secret) on the namespace's own link relays; the node announces it in its
//    WHEP answers' and OPTIONS' Link headers with time-limited credentials, and the SDK
//    uses them: the selected local candidate is a relay one.
// The studio publishes the painted clock; each viewer reads it back from every decoded
// frame (glass-to-glass), and the run prints join time, glass-to-glass, RTT and jitter
// buffer delay per path (docs/PERFORMANCE.md).
//
// Run inside `unshare --net` as root (scripts/test.sh):
//   unshare --net sh -c 'ip link set lo up && cd tests/e2e && timeout 150 node --test tcp.test.mjs'
// CASCADE_TCP_ARGS adds flags to the node: `--tcp-port off` must fail the tcp viewer.
// CASCADE_TCP_LOSS=P drops P % of what reaches every viewer (nftables, at random), to compare
// the paths on a lossy network (a measurement: a lossy TCP path may well fail the checks).
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { createServer, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServer, goLive, percentile, launchInNamespace } from "./harness.mjs";

const NODE_IP = "10.97.0.1";
const TAG = `ctcp-${process.pid}`;
// One namespace per viewer: its subnet's .1 is on the node's side, .2 the viewer.
const PATHS = {
  udp: { net: "10.97.0", veth: `cu${process.pid % 100000}` },
  tcp: { net: "10.95.0", veth: `ct${process.pid % 100000}` },
  turn: { net: "10.96.0", veth: `cr${process.pid % 100000}` },
};
const TURN_SECRET = `secret-${process.pid}-${Date.now()}`;
const WATCH_SECONDS = 8;

const run = (cmd, ...args) => execFileSync(cmd, args, { stdio: ["ignore", "ignore", "pipe"] });
const nsName = (path) => `${TAG}-${path}`;
const inNs = (path, ...args) => run("ip", "netns", "exec", nsName(path), ...args);

function isAlive(pid) {
  try { process.kill(pid, 0); return true; } catch (e) { return e.code === "EPERM"; }
}

/** A viewer's namespace and veth pair; `rules` is an nftables ruleset for it. */
function namespace(path, rules) {
  const { net, veth } = PATHS[path];
  const ns = nsName(path);
  run("ip", "netns", "add", ns);
  run("ip", "link", "add", veth, "type", "veth", "peer", "name", `${veth}v`);
  run("ip", "link", "set", `${veth}v`, "netns", ns);
  // The node's side: NODE_IP lives on the udp path's veth; the others reach it through
  // their own .1, as a local address of the node's namespace.
  run("ip", "addr", "add", `${net}.1/24`, "dev", veth);
  run("ip", "link", "set", veth, "up");
  inNs(path, "ip", "addr", "add", `${net}.2/24`, "dev", `${veth}v`);
  inNs(path, "ip", "link", "set", `${veth}v`, "up");
  inNs(path, "ip", "link", "set", "lo", "up");
  if (net !== "10.97.0") inNs(path, "ip", "route", "add", "10.97.0.0/24", "via", `${net}.1`);
  const loss = Number(process.env.CASCADE_TCP_LOSS ?? 0);
  if (loss > 0) {
    rules = (rules ?? "") + `table inet loss {\n chain in { type filter hook input priority -10; policy accept;\n` +
      `  numgen random mod 1000 < ${Math.round(loss * 10)} drop;\n }\n}\n`;
  }
  if (rules) {
    const file = join(tmpdir(), `${ns}.nft`);
    writeFileSync(file, rules);
    inNs(path, "nft", "-f", file);
    rmSync(file, { force: true });
  }
}

function removeNamespaces() {
  for (const path of Object.keys(PATHS)) {
    try { run("ip", "link", "del", PATHS[path].veth); } catch { /* gone with its namespace */ }
    try { run("ip", "netns", "del", nsName(path)); } catch { /* never made */ }
  }
}

/** Namespaces a killed run left behind. */
function removeStale() {
  for (const line of execFileSync("ip", ["netns", "list"]).toString().split("\n")) {
    const m = line.match(/^(ctcp-(\d+)-\w+)/);
    if (m && !isAlive(Number(m[2]))) {
      try { run("ip", "netns", "del", m[1]); } catch { /* raced */ }
    }
  }
}

/** A free TCP/UDP port on `ip` (TURN listens on both). */
function freePort(ip) {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, ip, () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** coturn on the turn path's link, relaying from there; resolves once it listens. */
async function startCoturn(port, dir) {
  const ip = `${PATHS.turn.net}.1`;
  const proc = spawn("turnserver", [
    "-n", "--listening-ip", ip, "--listening-port", String(port), "--relay-ip", ip,
    "--min-port", "40000", "--max-port", "40999",
    "--use-auth-secret", "--static-auth-secret", TURN_SECRET, "--realm", "cascade.test",
    "--fingerprint", "--no-tls", "--no-dtls", "--no-cli", "--no-multicast-peers",
    "--pidfile", join(dir, "turnserver.pid"), "--log-file", "stdout", "--simple-log",
  ], { stdio: ["ignore", "pipe", "pipe"] });
  const log = [];
  proc.stdout.on("data", (d) => log.push(d.toString()));
  proc.stderr.on("data", (d) => log.push(d.toString()));
  for (let i = 0; i < 100; i++) {
    if (proc.exitCode !== null) throw new Error(`turnserver exited: ${log.join("")}`);
    try {
      await new Promise((resolve, reject) => {
        const c = new Socket();
        c.once("error", reject);
        c.connect(port, ip, () => { c.destroy(); resolve(); });
      });
      return { proc, log };
    } catch { await new Promise((r) => setTimeout(r, 100)); }
  }
  proc.kill("SIGKILL");
  throw new Error(`turnserver did not listen: ${log.join("")}`);
}

/** Plays the stream with the SDK, reads the clock from every frame for WATCH_SECONDS, and
 *  reports join time, delays and the selected candidate pair. */
async function watch(page, base, stream) {
  await page.goto(`${base}/`);
  return page.evaluate(async ({ stream, seconds }) => {
    const { play, sampleFrames } = await import("/sdk/cascade.js");
    const video = document.createElement("video");
    video.muted = true; video.autoplay = true; video.playsInline = true;
    document.body.append(video);
    const p = { start: performance.now(), first: 0, frames: 0, delays: [] };
    sampleFrames(video, true, (_width, delay) => {
      if (!p.first) p.first = performance.now();
      p.frames++;
      if (delay !== null && p.delays.length < 5000) p.delays.push(delay);
    });
    const session = await play(new URL(`/whep/${stream}`, location.href).toString(), video, { layer: "low" });
    window.session = session;
    const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
    const t0 = performance.now();
    while (!p.first && performance.now() - t0 < 20000) await sleep(20);
    p.delays = [];
    await sleep(seconds * 1000);
    const stats = await session.pc.getStats();
    const out = { join: p.first ? p.first - p.start : null, frames: p.frames, delays: p.delays };
    stats.forEach((r) => {
      if (r.type === "transport" && r.selectedCandidatePairId) {
        const pair = stats.get(r.selectedCandidatePairId);
        const local = stats.get(pair.localCandidateId), remote = stats.get(pair.remoteCandidateId);
        out.pair = {
          rtt: pair.currentRoundTripTime,
          local: { type: local.candidateType, protocol: local.protocol, relayProtocol: local.relayProtocol },
          remote: { type: remote.candidateType, protocol: remote.protocol, address: remote.address },
        };
      }
      if (r.type === "inbound-rtp" && r.kind === "video") {
        out.framesDecoded = r.framesDecoded;
        out.jitterBufferMs = r.jitterBufferEmittedCount
          ? (1000 * r.jitterBufferDelay) / r.jitterBufferEmittedCount : null;
      }
    });
    session.stop();
    return out;
  }, { stream, seconds: WATCH_SECONDS });
}

test("viewers whose network blocks UDP play over ICE-TCP, or through an announced TURN relay", { timeout: 140_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "cascade-tcp-"));
  removeStale();
  let server, coturn, publisher;
  const browsers = [];
  try {
    namespace("udp", null);
    // No UDP at all, either way.
    namespace("tcp", "table inet cascade {\n chain out { type filter hook output priority 0; policy accept; meta l4proto udp drop; }\n" +
      " chain in { type filter hook input priority 0; policy accept; meta l4proto udp drop; }\n}\n");
    const httpPort = await freePort(NODE_IP);
    // Nothing to the node's address but its HTTP port: only the TURN server is reachable.
    namespace("turn", `table inet cascade {\n chain out { type filter hook output priority 0; policy accept;\n` +
      `  ip daddr ${NODE_IP} tcp dport ${httpPort} accept;\n  ip daddr ${NODE_IP} drop;\n }\n}\n`);
    const turnPort = await freePort(`${PATHS.turn.net}.1`);
    coturn = await startCoturn(turnPort, dir);
    const secretFile = join(dir, "turn.secret");
    writeFileSync(secretFile, TURN_SECRET, { mode: 0o600 });
    const extra = (process.env.CASCADE_TCP_ARGS ?? "").split(" ").filter(Boolean);
    server = await startServer([
      "--http", `${NODE_IP}:${httpPort}`, "--bind-ip", NODE_IP, "--workers", "2",
      "--turn-url", `turn:${PATHS.turn.net}.1:${turnPort}?transport=udp`,
      "--turn-secret-file", secretFile, ...extra,
    ]);

    publisher = await goLive(server.base, "tcp", "clock");
    await new Promise((r) => setTimeout(r, 2000)); // the publisher's rate ramps up

    // One after another: two cores run one viewer's decoder and clock reading at a time.
    const results = {};
    for (const path of ["udp", "tcp", "turn"]) {
      const b = await launchInNamespace(nsName(path), dir);
      browsers.push(b);
      const page = await b.newPage();
      page.on("console", (m) => { if (m.type() === "error" && !/404/.test(m.text())) console.log(`${path}:`, m.text()); });
      results[path] = await watch(page, server.base, "tcp");
      await b.close();
    }

    const { udp, tcp, turn } = results;
    assert.ok(udp.framesDecoded > 30, `the udp viewer decoded ${udp.framesDecoded} frames`);
    assert.equal(udp.pair?.local.protocol, "udp", JSON.stringify(udp.pair));
    assert.ok(tcp.framesDecoded > 30, `the tcp viewer decoded ${tcp.framesDecoded} frames: ${JSON.stringify(tcp.pair)}`);
    assert.equal(tcp.pair?.local.protocol, "tcp", `the tcp viewer's pair: ${JSON.stringify(tcp.pair)}`);
    assert.equal(tcp.pair?.remote.protocol, "tcp", `the tcp viewer's pair: ${JSON.stringify(tcp.pair)}`);
    assert.ok(turn.framesDecoded > 30, `the turn viewer decoded ${turn.framesDecoded} frames: ${JSON.stringify(turn.pair)}`);
    assert.equal(turn.pair?.local.type, "relay", `the turn viewer's pair: ${JSON.stringify(turn.pair)}`);
    assert.ok(await server.metric("cascade_tcp_frames_out_total{result=\"ok\"}") > 100, "media left over ICE-TCP");

    const r = (v) => (v === null || v === undefined ? null : Math.round(v));
    const figures = Object.fromEntries(Object.entries(results).map(([path, x]) => [path, {
      join_ms: r(x.join),
      glass_to_glass_ms: { samples: x.delays.length, p50: r(percentile(x.delays, 50)), p95: r(percentile(x.delays, 95)) },
      rtt_ms: r((x.pair?.rtt ?? NaN) * 1000),
      jitter_buffer_ms: r(x.jitterBufferMs),
      pair: `${x.pair.local.type}/${x.pair.local.protocol}${x.pair.local.relayProtocol ? `(${x.pair.local.relayProtocol})` : ""} -> ${x.pair.remote.type}/${x.pair.remote.protocol}`,
    }]));
    console.log(`tcp: ${JSON.stringify(figures)}`);
  } finally {
    for (const b of browsers) await b.close().catch(() => undefined);
    await publisher?.close().catch(() => undefined);
    await server?.stop();
    coturn?.proc.kill("SIGTERM");
    removeNamespaces();
    rmSync(dir, { recursive: true, force: true });
  }
});
