// The SDK's money side in Node, without a server or a browser: refusals become typed
// errors (a paywall's 403 `subscription_required` a `SubscriptionRequiredError`, from
// WHEP and from the API; every other problem a `CascadeApiError` with its status and
// code), money calls send an `Idempotency-Key`, and `Chat.onTip` gets the room's `tip`
// events. Run: `node --test sdk-js/test/` (after `npm run build`).
import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";

/** The answers the fake server gives, by "METHOD path"; `requests` holds what was asked. */
let answers = {};
let requests = [];
globalThis.location = { origin: "http://node.test", href: "http://node.test/watch/show" };
const store = new Map();
globalThis.localStorage = { getItem: (k) => store.get(k) ?? null, setItem: (k, v) => store.set(k, v), removeItem: (k) => store.delete(k) };
globalThis.fetch = async (url, init = {}) => {
  const u = new URL(url, "http://node.test");
  const method = init.method ?? "GET";
  requests.push({ method, path: u.pathname, headers: init.headers ?? {}, body: init.body });
  const a = answers[`${method} ${u.pathname}`] ?? { status: 404, body: "" };
  const text = typeof a.body === "string" ? a.body : JSON.stringify(a.body);
  return {
    status: a.status, ok: a.status >= 200 && a.status < 300, statusText: "", url: String(url),
    headers: new Map(Object.entries(a.headers ?? {})),
    text: async () => text, json: async () => JSON.parse(text), blob: async () => text,
  };
};
// Just enough of a peer connection for a WHEP offer.
globalThis.RTCPeerConnection = class {
  constructor() { this.config = {}; this.closed = false; }
  addTransceiver() {}
  createDataChannel() { return { label: "chat" }; }
  async createOffer() { return { type: "offer", sdp: "v=0\r\n" }; }
  async setLocalDescription(d) { this.localDescription = d; }
  getConfiguration() { return this.config; }
  setConfiguration(c) { this.config = c; }
  addEventListener() {}
  close() { this.closed = true; }
};
globalThis.MediaStream = class { getTracks() { return []; } };

const sdk = await import("../dist/cascade.js");
const { play, Account, Money, Chat, CascadeApiError, SubscriptionRequiredError, CascadeError, ApiProblem } = sdk;

const paywalled = {
  status: 403,
  headers: { "content-type": "application/problem+json" },
  body: { type: "about:blank", title: "Forbidden", status: 403, detail: "this stream is for subscribers", code: "subscription_required" },
};

beforeEach(() => { answers = { "OPTIONS /whep/show": { status: 204, body: "" } }; requests = []; store.clear(); });

test("play rejects with a SubscriptionRequiredError when WHEP answers 403 subscription_required", async () => {
  answers["POST /whep/show"] = paywalled;
  const err = await play("http://node.test/whep/show", {}).then(() => null, (e) => e);
  assert.ok(err instanceof SubscriptionRequiredError, String(err));
  assert.ok(err instanceof CascadeApiError);
  assert.equal(err.status, 403);
  assert.equal(err.code, "subscription_required");
  assert.equal(err.detail, "this stream is for subscribers");
});

test("other WHEP refusals stay CascadeErrors (plain text or problem), with their status", async () => {
  answers["POST /whep/show"] = { status: 404, body: "no such stream" };
  const err = await play("http://node.test/whep/show", {}).then(() => null, (e) => e);
  assert.ok(err instanceof CascadeError && err instanceof CascadeApiError);
  assert.ok(!(err instanceof SubscriptionRequiredError));
  assert.equal(err.status, 404);
  assert.equal(err.code, "");
  assert.equal(err.message, "404: no such stream");
});

test("API problems carry status and code; a paywall's is a SubscriptionRequiredError", async () => {
  const account = new Account();
  answers["POST /api/v1/channels/show/viewer-token"] = paywalled;
  await assert.rejects(account.viewerToken("show"), (e) => e instanceof SubscriptionRequiredError && e.status === 403);
  answers["GET /api/v1/api-keys"] = { status: 403, body: { status: 403, detail: "the key lacks a scope", code: "insufficient_scope", request_id: "r1" } };
  const err = await account.call("GET", "/api-keys").then(() => null, (e) => e);
  assert.ok(err instanceof ApiProblem && err instanceof CascadeApiError);
  assert.deepEqual([err.status, err.code, err.detail, err.requestId], [403, "insufficient_scope", "the key lacks a scope", "r1"]);
  answers["GET /api/v1/me"] = { status: 502, body: "<html>bad gateway</html>" };
  const plain = await account.call("GET", "/me").then(() => null, (e) => e);
  assert.deepEqual([plain.status, plain.code], [502, ""]);
});

test("subscribe and tip send an Idempotency-Key (the caller's, or a fresh one)", async () => {
  const money = new Money(new Account());
  answers["POST /api/v1/channels/show/tiers/t1/subscribe"] = { status: 201, body: { id: "s1", status: "incomplete" } };
  answers["POST /api/v1/channels/show/tips"] = { status: 201, body: { id: "p1", status: "pending" } };
  await money.subscribe("show", "t1", "pm_1", "key-1");
  await money.tip("show", { amount: 500, currency: "usd", message: "hi", payment_method: "pm_1" });
  const [sub, tip] = requests.filter((r) => r.method === "POST");
  assert.equal(sub.headers["idempotency-key"], "key-1");
  assert.deepEqual(JSON.parse(sub.body), { payment_method: "pm_1" });
  assert.match(tip.headers["idempotency-key"], /^[0-9a-f]{32}$/);
  assert.equal(JSON.parse(tip.body).amount, 500);
});

test("onTip gets the room's tip events", async () => {
  class FakeSocket {
    static last;
    constructor() { this.sent = []; FakeSocket.last = this; setTimeout(() => this.onopen?.(), 0); }
    send(t) { this.sent.push(JSON.parse(t)); }
    close() { setTimeout(() => this.onclose?.(), 0); }
    push(f) { this.onmessage?.({ data: JSON.stringify(f) }); }
  }
  globalThis.WebSocket = FakeSocket;
  answers["GET /api/v1/channels/show/chat/messages"] = { status: 200, body: [] };
  const chat = new Chat("show", { transport: "websocket" });
  const tips = [];
  const off = chat.onTip((t) => tips.push(t));
  const ready = chat.connect();
  await new Promise((r) => setTimeout(r, 5));
  const ws = FakeSocket.last;
  ws.push({ type: "welcome", user: null, role: "anonymous", settings: { slow_mode_secs: 0, mode: "everyone" }, pinned: null, polls: [], restriction: null });
  await ready;
  const tip = { id: "t1", user: { username: "vic", display_name: "Vic" }, amount: 300, currency: "usd", message: "hi", status: "succeeded", created_at: 1 };
  ws.push({ type: "tip", tip });
  ws.push({ type: "batch", events: [{ type: "tip", tip: { ...tip, id: "t2" } }] });
  off();
  ws.push({ type: "tip", tip: { ...tip, id: "t3" } });
  assert.deepEqual(tips.map((t) => t.id), ["t1", "t2"]);
  assert.equal(sdk.formatMoney(300, "usd"), new Intl.NumberFormat(undefined, { style: "currency", currency: "USD" }).format(3));
  chat.close();
});
