// The Chat client's own rules, in Node against a scripted WebSocket (no server, no
// browser): hello first, messages kept in id order without duplicates, batches unpacked,
// sends answered by nonce, a reconnection that asks for what came after the last id seen,
// and a room that does not exist. Run: `node --test sdk-js/test/` (after `npm run build`).
import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";

/** A WebSocket whose server side the test plays: `sent` holds the client's frames. */
class FakeSocket {
  static all = [];
  constructor(url) {
    this.url = url;
    this.sent = [];
    this.closed = false;
    FakeSocket.all.push(this);
    setTimeout(() => this.onopen?.(), 0);
  }
  send(text) { this.sent.push(JSON.parse(text)); }
  close() { if (!this.closed) { this.closed = true; setTimeout(() => this.onclose?.(), 0); } }
  /** The server sends `frame`. */
  push(frame) { this.onmessage?.({ data: JSON.stringify(frame) }); }
  /** The server drops the connection. */
  drop() { this.closed = true; this.onclose?.(); }
}

globalThis.WebSocket = FakeSocket;
globalThis.location = { origin: "http://node.test" };
let roomStatus = 200;
globalThis.fetch = async () => ({ status: roomStatus });
const { Chat } = await import("../dist/chat.js");

const tick = (ms = 5) => new Promise((r) => setTimeout(r, ms));
const msg = (id, text = `m${id}`) => ({ id, user: { username: "u", display_name: "U" }, text, reply_to: null, mentions: [], created_at: 0 });
const welcome = { type: "welcome", user: { username: "u", display_name: "U" }, role: "viewer",
  settings: { slow_mode_secs: 0, mode: "everyone" }, pinned: null, polls: [], restriction: null };

beforeEach(() => { FakeSocket.all = []; roomStatus = 200; });

/** Waits (in steps of 5 ms, up to 5 s) until `ok()`: a loaded machine runs timers late. */
async function until(ok) {
  for (let i = 0; i < 1000 && !ok(); i++) await tick();
  assert.ok(ok(), "in time");
}

async function joined(options = {}) {
  const chat = new Chat("show", { token: "tok", ...options });
  const ready = chat.connect();
  // The server answers once the client said hello (its socket open, its handlers set).
  await until(() => FakeSocket.all.at(-1)?.sent.length > 0);
  const ws = FakeSocket.all.at(-1);
  ws.push(welcome);
  await ready;
  return { chat, ws };
}

test("says hello first, with the token, on the room's WebSocket URL", async () => {
  const { chat, ws } = await joined();
  assert.equal(ws.url, "ws://node.test/api/v1/channels/show/chat/ws");
  assert.deepEqual(ws.sent[0], { type: "hello", token: "tok" });
  assert.equal(chat.state, "open");
  assert.equal(chat.transport, "websocket");
  chat.close();
});

test("keeps messages in id order, drops duplicates, unpacks batches, removes deleted ones", async () => {
  const { chat, ws } = await joined();
  const seen = [];
  chat.on("message", (m) => seen.push(m.id));
  ws.push({ type: "history", messages: [msg(1), msg(2)], truncated: false });
  ws.push({ type: "batch", events: [{ type: "message", message: msg(5) }, { type: "message", message: msg(3) }] });
  ws.push({ type: "message", message: msg(2) }); // a duplicate
  ws.push({ type: "message", message: msg(4) });
  assert.deepEqual(chat.messages.map((m) => m.id), [1, 2, 3, 4, 5]);
  assert.deepEqual(seen, [1, 2, 5, 3, 4], "each message once, as it came");
  const gone = [];
  chat.on("deleted", (ids) => gone.push(...ids));
  ws.push({ type: "deleted", ids: [2, 4] });
  assert.deepEqual(chat.messages.map((m) => m.id), [1, 3, 5]);
  assert.deepEqual(gone, [2, 4]);
  chat.close();
});

test("a send resolves with its ack and rejects with its error, matched by nonce", async () => {
  const { chat, ws } = await joined();
  const first = chat.send("hello", { replyTo: 7 });
  const second = chat.send("again");
  const [a, b] = ws.sent.slice(1);
  assert.equal(a.type, "send"); assert.equal(a.text, "hello"); assert.equal(a.reply_to, 7);
  assert.notEqual(a.nonce, b.nonce);
  ws.push({ type: "error", nonce: b.nonce, status: 429, code: "slow_mode", detail: "wait", retry_after: 3 });
  ws.push({ type: "ack", nonce: a.nonce, id: 42 });
  assert.deepEqual(await first, { id: 42 });
  await assert.rejects(second, (e) => e.code === "slow_mode" && e.retryAfter === 3 && e.detail === "wait");
  chat.close();
});

test("after a lost connection it reconnects and asks for what came after the last id seen", async () => {
  const { chat, ws } = await joined();
  ws.push({ type: "history", messages: [msg(8), msg(9)], truncated: false });
  ws.push({ type: "deleted", ids: [9] }); // deleted, but seen: not asked for again
  const pending = chat.send("in flight");
  ws.drop();
  await assert.rejects(pending, (e) => e.code === "disconnected");
  assert.equal(chat.state, "reconnecting");
  await tick(900); // the first backoff is about half a second
  const again = FakeSocket.all.at(-1);
  assert.notEqual(again, ws);
  assert.deepEqual(again.sent[0], { type: "hello", token: "tok", since: 9 });
  again.push(welcome);
  assert.equal(chat.state, "open");
  chat.close();
});

test("a stream with no room: the chat stops and says not_found", async () => {
  roomStatus = 404;
  const chat = new Chat("nothing");
  const errors = [];
  chat.on("error", (e) => errors.push(e.code));
  const ready = chat.connect();
  await tick();
  FakeSocket.all.at(-1).drop();
  await assert.rejects(ready);
  await tick();
  assert.deepEqual(errors, ["not_found"]);
  assert.equal(chat.state, "closed");
  await tick(900);
  assert.equal(FakeSocket.all.length, 1, "no retry");
});
