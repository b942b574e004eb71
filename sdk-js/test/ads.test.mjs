// A player's side of ad breaks, sponsors' slots and playback reports, in Node against a
// scripted EventSource (no server, no browser): `onAdBreak` and `onSponsor` get the typed
// cues (and `onEvent` still sees them), the delay until a break starts, removal of a
// handler, and the stall clock's totals. Run: `node --test sdk-js/test/` (after `npm run build`).
import { test } from "node:test";
import assert from "node:assert/strict";

/** An EventSource whose server side the test plays. */
class FakeEventSource {
  static last;
  constructor(url) {
    this.url = url;
    this.listeners = new Map();
    FakeEventSource.last = this;
  }
  addEventListener(name, cb) { this.listeners.set(name, [...(this.listeners.get(name) ?? []), cb]); }
  close() { this.closed = true; }
  /** The server sends `name` with `data`. */
  emit(name, data) {
    for (const cb of this.listeners.get(name) ?? []) cb({ data: JSON.stringify(data) });
  }
}
globalThis.EventSource = FakeEventSource;

const { Session, StallClock, sessionOf, startsIn, CUE_EVENTS } = await import("../dist/cascade.js");

const SSE = "urn:ietf:params:whep:ext:core:server-sent-events";

function session() {
  const links = new Map([[SSE, "http://node.test/whep/show/00000000000000ab/events"]]);
  return new Session({}, "http://node.test/whep/show/00000000000000ab", links);
}

const brk = (skip) => ({
  id: "b1", starts_at: Date.now() + 2000, start: "", duration_s: 30,
  ad_tag_url: "https://ads.example/vast?s=show", skip,
});

test("onAdBreak gets each break with the time until it starts, onEvent too", () => {
  const s = session();
  const seen = [];
  s.listen((name, data) => seen.push(name));
  const breaks = [];
  const off = s.onAdBreak((ad, inMs) => breaks.push([ad, inMs]));
  FakeEventSource.last.emit("adbreak", brk(false));
  assert.equal(breaks.length, 1);
  assert.equal(breaks[0][0].id, "b1");
  assert.equal(breaks[0][0].skip, false);
  assert.ok(breaks[0][1] > 1500 && breaks[0][1] <= 2000, `${breaks[0][1]}`);
  assert.deepEqual(seen, ["adbreak"]);
  FakeEventSource.last.emit("adbreak", brk(true));
  assert.equal(breaks[1][0].skip, true, "an ad-free subscriber's cue");
  off();
  FakeEventSource.last.emit("adbreak", brk(false));
  assert.equal(breaks.length, 2, "a removed handler is not called");
  FakeEventSource.last.emit("adbreak", { id: 3 });
  assert.equal(seen.length, 4, "onEvent sees even what is not a break");
});

test("onSponsor gets the slot's start and end", () => {
  const s = session();
  s.listen(() => undefined);
  const slots = [];
  s.onSponsor((slot) => slots.push(slot.state));
  const slot = { id: "s1", name: "Acme", image_url: "https://x/a.png", link: "https://x", starts_at: 0, ends_at: 1 };
  FakeEventSource.last.emit("sponsor", { ...slot, state: "start" });
  FakeEventSource.last.emit("sponsor", { ...slot, state: "end" });
  assert.deepEqual(slots, ["start", "end"]);
  assert.deepEqual([...CUE_EVENTS], ["adbreak", "sponsor"]);
});

test("a break already under way starts at once", () => {
  assert.equal(startsIn(1000, 5000), 0);
  assert.equal(startsIn(7000, 5000), 2000);
});

test("the stall clock counts stalls after the first frame only", () => {
  const c = new StallClock();
  c.waiting(0); // joining, not stalling
  assert.deepEqual(c.totals(100), { watched_ms: 0, stall_ms: 0, stalls: 0 });
  c.playing(1000);
  c.waiting(3000);
  c.waiting(3100); // the same stall
  c.playing(3500);
  c.waiting(9000);
  assert.deepEqual(c.totals(10000), { watched_ms: 9000, stall_ms: 1500, stalls: 2 });
});

test("a report names the WHEP session", () => {
  assert.deepEqual(sessionOf("http://node.test/whep/my-show/00000000000000ab"), {
    stream: "my-show", session: "00000000000000ab",
  });
  assert.equal(sessionOf("http://node.test/whip/my-show/00000000000000ab"), undefined);
});

test("a node that keeps no analytics for the session (404) is not asked again until the session moves", async () => {
  const { PlaybackReporter } = await import("../dist/cascade.js");
  const posts = [];
  const realFetch = globalThis.fetch;
  globalThis.fetch = async (url) => { posts.push(String(url)); return { status: 404 }; };
  const video = {
    addEventListener() {}, removeEventListener() {},
    getVideoPlaybackQuality: () => ({ totalVideoFrames: 10 }),
  };
  try {
    const r = new PlaybackReporter(video, "http://open.test/whep/show/00000000000000ab");
    await r.report();
    await r.report();
    assert.deepEqual(posts, ["http://open.test/api/v1/playback-stats"], "one 404 and no more");
    r.moved("http://edge.test/whep/show/00000000000000cd");
    await r.report();
    assert.equal(posts.length, 2, "a new node is asked");
    assert.equal(posts[1], "http://edge.test/api/v1/playback-stats");
    globalThis.fetch = async () => { throw new Error("stopped reporters send nothing more"); };
    r.stop();
  } finally {
    globalThis.fetch = realFetch;
  }
});

test("a player that joined through a control plane reports there, not to its edge", async () => {
  const { PlaybackReporter } = await import("../dist/cascade.js");
  const posts = [];
  const realFetch = globalThis.fetch;
  globalThis.fetch = async (url, init) => { posts.push([String(url), JSON.parse(init.body)]); return { status: 204 }; };
  const video = {
    addEventListener() {}, removeEventListener() {},
    getVideoPlaybackQuality: () => ({ totalVideoFrames: 10 }),
  };
  try {
    const r = new PlaybackReporter(video, "http://edge1.test/whep/show/00000000000000ab", "http://control.test/whep/show");
    await r.report();
    r.moved("http://edge2.test/whep/show/00000000000000cd");
    await r.report();
    assert.deepEqual(posts.map(([url, body]) => [url, body.session]), [
      ["http://control.test/api/v1/playback-stats", "00000000000000ab"],
      ["http://control.test/api/v1/playback-stats", "00000000000000cd"],
    ]);
    globalThis.fetch = async () => ({ status: 204 });
    r.stop();
  } finally {
    globalThis.fetch = realFetch;
  }
});
