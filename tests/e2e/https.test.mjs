// HTTPS served by the node itself (`--tls-cert`, `--tls-key`): Chromium goes live from the
// studio and plays the channel page over https:// on a LAN address, where plain HTTP is not
// a secure context (no camera). The certificate comes from a test CA made here with
// openssl; Chromium trusts only that leaf's public key (`--ignore-certificate-errors-spki-list`),
// nothing else. A plain-HTTP request to the port is redirected to HTTPS.
//
// Needs its own network namespace (it adds a veth pair, the node on 10.96.0.1):
//   unshare --net sh -c 'ip link set lo up && cd tests/e2e && node --test https.test.mjs'
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { startServer, until, CHROMIUM_ARGS } from "./harness.mjs";

const IP = "10.96.0.1";
const sh = (cmd, args, opts = {}) => execFileSync(cmd, args, { stdio: ["ignore", "pipe", "pipe"], ...opts });

function veth() {
  try {
    sh("ip", ["link", "add", "h0", "type", "veth", "peer", "name", "h1"]);
  } catch {
    return; // made by an earlier run in this namespace
  }
  sh("ip", ["addr", "add", `${IP}/24`, "dev", "h0"]);
  sh("ip", ["link", "set", "h0", "up"]);
  sh("ip", ["link", "set", "h1", "up"]);
}

/** A CA and a leaf for IP signed by it; returns the files and the leaf's SPKI hash. */
function certificates() {
  const dir = mkdtempSync(join(tmpdir(), "cascade-tls-"));
  const f = (n) => join(dir, n);
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  sh("openssl", ["req", "-x509", ...ec, "-keyout", f("ca.key"), "-out", f("ca.pem"), "-days", "2", "-subj", "/CN=Cascade test CA"]);
  sh("openssl", ["req", ...ec, "-keyout", f("node.key"), "-out", f("node.csr"), "-subj", "/CN=cascade node"]);
  sh("sh", ["-c", `printf 'subjectAltName=IP:${IP}\\nextendedKeyUsage=serverAuth\\n' > ${f("ext")}`]);
  sh("openssl", ["x509", "-req", "-in", f("node.csr"), "-CA", f("ca.pem"), "-CAkey", f("ca.key"), "-CAcreateserial", "-out", f("node.pem"), "-days", "2", "-extfile", f("ext")]);
  const spki = sh("sh", ["-c", `openssl x509 -in ${f("node.pem")} -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64`]).toString().trim();
  return { cert: f("node.pem"), key: f("node.key"), ca: f("ca.pem"), spki };
}

veth();
const tls = certificates();
const server = await startServer(["--http", `${IP}:0`, "--bind-ip", IP, "--tls-cert", tls.cert, "--tls-key", tls.key]);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: [...CHROMIUM_ARGS, `--ignore-certificate-errors-spki-list=${tls.spki}`],
});
after(async () => {
  await browser.close();
  await server.stop();
});

test("the node speaks HTTPS on its port and sends plain HTTP there", async () => {
  assert.match(server.base, /^https:\/\/10\.96\.0\.1:\d+$/);
  const port = new URL(server.base).port;
  const resp = await fetch(`http://${IP}:${port}/studio?stream=x`, { redirect: "manual" });
  assert.equal(resp.status, 308);
  assert.equal(resp.headers.get("location"), `https://${IP}:${port}/studio?stream=x`);
  // The CA's certificate verifies the node (curl, with nothing but that CA trusted).
  const health = sh("curl", ["-sf", "--cacert", tls.ca, `${server.base}/healthz`]).toString();
  assert.match(health, /"status":"ok"/);
});

test("Chromium goes live from the studio and plays the channel over HTTPS", async () => {
  const studio = await browser.newPage();
  await studio.goto(`${server.base}/studio?stream=secure&source=camera`);
  assert.equal(await studio.evaluate(() => window.isSecureContext), true, "a secure context: the camera is allowed");
  await studio.click("#start");
  await until(studio, () => window.studio?.state === "live", null, 20000);

  const viewer = await browser.newPage();
  // Typed as http://: the node sends the browser to https://.
  const port = new URL(server.base).port;
  await viewer.goto(`http://${IP}:${port}/watch/secure`);
  assert.ok(viewer.url().startsWith(`https://${IP}:${port}/watch/secure`), viewer.url());
  await until(viewer, () => window.player?.frames > 30, null, 30000);
  await studio.close();
  await viewer.close();
});

test("without TLS the same address is no secure context (why the node needs it)", async () => {
  const plain = await startServer(["--http", `${IP}:0`, "--bind-ip", IP]);
  try {
    const page = await browser.newPage();
    await page.goto(`${plain.base}/studio`);
    assert.equal(await page.evaluate(() => window.isSecureContext), false);
    assert.equal(await page.evaluate(() => typeof navigator.mediaDevices), "undefined");
    await page.close();
  } finally {
    await plain.stop();
  }
});
