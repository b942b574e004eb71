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

const { Session, StallClock, sessionOf, startsIn, CUE_EVENTS, reached, BreakStarts, FRAME_WAIT_MS } =
  await import("../dist/cascade.js");

const SSE = "urn:ietf:params:whep:ext:core:server-sent-events";

function session() {
  const links = new Map([[SSE, "http://node.test/whep/show/00000000000000ab/events"]]);
  return new Session({}, "http://node.test/whep/show/00000000000000ab", links);
}

const brk = (skip, id = "b1") => ({
  id, starts_at: Date.now() + 2000, start: "", duration_s: 30,
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
  FakeEventSource.last.emit("adbreak", { ...brk(false), rtp_timestamp: 7 });
  assert.equal(breaks.length, 1, "a break told again (now placed on a frame) is heard once");
  FakeEventSource.last.emit("adbreak", brk(true, "b2"));
  assert.equal(breaks[1][0].skip, true, "an ad-free subscriber's cue");
  off();
  FakeEventSource.last.emit("adbreak", brk(false, "b3"));
  assert.equal(breaks.length, 2, "a removed handler is not called");
  FakeEventSource.last.emit("adbreak", { id: 3 });
  FakeEventSource.last.emit("adbreak", { ...brk(false, "b4"), rtp_timestamp: 2 ** 32 });
  assert.equal(seen.length, 6, "onEvent sees even what is not a break");
});

test("RTP timestamps are compared wrapping at 32 bits", () => {
  assert.ok(reached(1000, 1000));
  assert.ok(reached(1001, 1000));
  assert.ok(!reached(999, 1000));
  // Through the wrap: 10 ticks after 2^32 - 5 is 5.
  assert.ok(reached(5, 0xffff_fffb));
  assert.ok(!reached(0xffff_fffb, 5));
  // More than half the range after is "before" (a target 2^31 - 1 ticks ahead).
  assert.ok(!reached(0x8000_0001, 0));
  assert.ok(reached(0x7fff_ffff, 0));
});

const ad = (over = {}) => ({ id: "b", starts_at: 10_000, start: "", duration_s: 30, ad_tag_url: null, skip: false, ...over });

test("a break named by its frame starts on the first frame at or past it, once", () => {
  const b = new BreakStarts();
  b.add(ad({ rtp_timestamp: 0xffff_f000 }), 8_000);
  assert.ok(b.byFrame());
  assert.deepEqual(b.frame(0xffff_e000), []);
  // The clock alone does not start it at starts_at: this viewer may be behind live.
  assert.deepEqual(b.tick(10_500), []);
  const [[started, how]] = b.frame(0x0000_0100); // past the target, through the wrap
  assert.equal(started.id, "b");
  assert.deepEqual(how, { by: "frame", rtpTimestamp: 0x100, intoMs: 0x1100 / 90 });
  assert.deepEqual(b.frame(0x0000_0200), [], "once");
  b.add(ad({ rtp_timestamp: 0x0000_0300 }), 10_600);
  assert.equal(b.waiting(), false, "told again after it started: nothing more");
});

test("told again with a new timestamp (a splice), the newest counts", () => {
  const b = new BreakStarts();
  b.add(ad({ rtp_timestamp: 90_000 }), 8_000);
  b.add(ad({ rtp_timestamp: 180_000 }), 8_100);
  assert.deepEqual(b.frame(100_000), []);
  assert.equal(b.frame(180_000).length, 1);
});

test("the clock starts a break without a timestamp, without timestamps on frames, or whose frame never comes", () => {
  const b = new BreakStarts();
  b.add(ad({ id: "plain" }), 8_000);
  assert.equal(b.nextTick(8_000), 2_000);
  assert.deepEqual(b.tick(9_999), []);
  assert.deepEqual(b.tick(10_250).map(([a, h]) => [a.id, h.by, h.intoMs]), [["plain", "clock", 250]]);

  const late = new BreakStarts();
  late.add(ad({ id: "named", rtp_timestamp: 5 }), 8_000);
  assert.equal(late.nextTick(8_000), 2_000 + FRAME_WAIT_MS);
  assert.deepEqual(late.tick(10_000 + FRAME_WAIT_MS - 1), []);
  assert.equal(late.tick(10_000 + FRAME_WAIT_MS)[0][1].by, "clock");

  const bare = new BreakStarts();
  bare.add(ad({ id: "bare", rtp_timestamp: 5 }), 8_000);
  assert.deepEqual(bare.frame(undefined), []);
  assert.ok(!bare.byFrame(), "this browser gives no timestamps: the clock decides");
  assert.equal(bare.tick(10_000)[0][1].by, "clock");

  const over = new BreakStarts();
  over.add(ad({ id: "over" }), 40_001);
  assert.equal(over.waiting(), false, "a break already over is not started");
  over.add(ad({ id: "gone", rtp_timestamp: 5 }), 8_000);
  assert.deepEqual(over.tick(40_000), [], "over before its frame came: dropped");
  assert.equal(over.waiting(), false);
});

test("onAdBreakStart starts a break on the video element's frame; onAdBreak hears each break once", async () => {
  const s = session();
  /** A video element whose presented frames the test plays. */
  const video = {
    callbacks: [],
    requestVideoFrameCallback(cb) { this.callbacks.push(cb); return this.callbacks.length; },
    present(rtpTimestamp) { const cbs = this.callbacks; this.callbacks = []; for (const cb of cbs) cb(0, { rtpTimestamp }); },
  };
  s.video = video;
  s.listen(() => undefined);
  const told = [];
  const started = [];
  s.onAdBreak((a) => told.push(a.id));
  s.onAdBreakStart((a, how) => started.push([a.id, how]));
  const starts_at = Date.now() + 60_000;
  FakeEventSource.last.emit("adbreak", { ...ad({ id: "x", starts_at }) });
  FakeEventSource.last.emit("adbreak", { ...ad({ id: "x", starts_at, rtp_timestamp: 4_000_000_000 }) });
  assert.deepEqual(told, ["x"]);
  video.present(3_999_000_000);
  assert.deepEqual(started, []);
  video.present(4_000_001_000);
  assert.deepEqual(started, [["x", { by: "frame", rtpTimestamp: 4_000_001_000, intoMs: 1000 / 90 }]]);
  assert.equal(video.callbacks.length, 0, "no frame callback once no break waits");
  await s.stop().catch(() => undefined);
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
