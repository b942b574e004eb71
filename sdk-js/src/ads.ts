// Ad breaks and sponsors' slots as a player is told them (docs/ADS.md): the types of the
// `adbreak` and `sponsor` server-sent events, and when a break starts here: on the frame
// the server named in this viewer's RTP timestamps, else at `starts_at` on this clock.

/**
 * An `adbreak` event. Every viewer's player starts the break on the same frame of the
 * stream: the one whose RTP timestamp reaches `rtp_timestamp` (this viewer's own
 * timestamps), so a viewer further behind live starts it later, at the same point of the
 * content; without `rtp_timestamp`, at `starts_at` on the wall clock.
 */
export interface AdBreak {
  /** The break's id. */
  id: string;
  /** When it starts for every viewer, Unix ms (the server's clock; about 2 s after the cue). */
  starts_at: number;
  /** The same, RFC 3339. */
  start: string;
  /** Seconds. */
  duration_s: number;
  /** The ad tag (a VAST endpoint) to fetch, or null: show the player's own slate. */
  ad_tag_url: string | null;
  /** The viewer's subscription skips ads: show nothing (or a "thanks" note). */
  skip: boolean;
  /**
   * The break's first frame in this viewer's video RTP timestamps (32-bit, wrapping): the
   * frame that reached the node at `starts_at`. Absent while the node has sent this viewer
   * no video; the same break is told again with it (or with a new one after the viewer's
   * stream was spliced onto another source), and the newest counts.
   */
  rtp_timestamp?: number;
}

/** A `sponsor` event: an overlay starts or ends. */
export interface SponsorSlot {
  id: string;
  /** `start`: show the overlay; `end`: remove it. */
  state: "start" | "end";
  name: string;
  image_url: string;
  link: string;
  /** Unix ms. */
  starts_at: number;
  /** Unix ms. */
  ends_at: number;
}

/** Called with a break and the milliseconds until it starts here (0 when it already has). */
export type AdBreakHandler = (ad: AdBreak, startsInMs: number) => void;
/**
 * How a break started here: `frame`, on the presented frame whose RTP timestamp is
 * `rtpTimestamp` (the one the server named, or the first after it); `clock`, at
 * `starts_at` by the wall clock (no timestamp was named, the browser reports none, or no
 * frame reached it within {@link FRAME_WAIT_MS} of `starts_at`).
 */
export interface AdStart {
  by: "frame" | "clock";
  rtpTimestamp?: number;
  /**
   * How far into the break the stream already is, ms: 0 on time; more for a player that
   * joined during the break (show the rest of it, `duration_s` × 1000 − `intoMs`).
   */
  intoMs: number;
}
/** Called once per break, when it starts here. */
export type AdStartHandler = (ad: AdBreak, start: AdStart) => void;
/** Called with a sponsor's slot at its start and at its end. */
export type SponsorHandler = (slot: SponsorSlot) => void;

/** Milliseconds from `now` until `startsAt` (never negative). */
export function startsIn(startsAt: number, now: number = Date.now()): number {
  return Math.max(0, startsAt - now);
}

/**
 * Whether RTP timestamp `ts` is at or after `target`, both 32-bit and wrapping: `ts` is
 * within 2^31 ticks after it (at 90 kHz, 6.6 hours).
 */
export function reached(ts: number, target: number): boolean {
  return ((ts - target) | 0) >= 0;
}

/**
 * How long after `starts_at` a break named by its frame waits for that frame before the
 * clock starts it: more than any viewer's delay behind live (a frozen picture, a publisher
 * gone, a timestamp that never comes).
 */
export const FRAME_WAIT_MS = 5000;

/**
 * When each break starts for one viewer: a pure scheduler fed the breaks told, the frames
 * presented and the clock. {@link BreakStarts.frame} and {@link BreakStarts.tick} return
 * the breaks that start now, each once.
 */
export class BreakStarts {
  private readonly pending = new Map<string, AdBreak>();
  private readonly started = new Set<string>();
  /** Frames were presented without an RTP timestamp: the clock decides. */
  private noTimestamps = false;

  /** A break told (again: its newest `rtp_timestamp` counts, until it started). */
  add(ad: AdBreak, now: number = Date.now()): void {
    if (this.started.has(ad.id) || now >= ad.starts_at + ad.duration_s * 1000) return;
    this.pending.set(ad.id, ad);
  }

  /** Whether a break waits to start. */
  waiting(): boolean {
    return this.pending.size > 0;
  }

  /** Whether a waiting break is named by its frame (a frame callback is worth running). */
  byFrame(): boolean {
    return !this.noTimestamps && [...this.pending.values()].some((a) => a.rtp_timestamp !== undefined);
  }

  /** A frame with `rtpTimestamp` (undefined: the browser gives none) is presented. */
  frame(rtpTimestamp: number | undefined): [AdBreak, AdStart][] {
    if (rtpTimestamp === undefined) {
      this.noTimestamps = true;
      return [];
    }
    const out: [AdBreak, AdStart][] = [];
    for (const ad of this.pending.values()) {
      if (ad.rtp_timestamp !== undefined && reached(rtpTimestamp, ad.rtp_timestamp)) {
        // The video clock is 90 kHz.
        const intoMs = ((rtpTimestamp - ad.rtp_timestamp) | 0) / 90;
        out.push([ad, { by: "frame", rtpTimestamp, intoMs }]);
      }
    }
    return this.take(out);
  }

  /** The clock reads `now`: the breaks it starts (see {@link AdStart}). */
  tick(now: number = Date.now()): [AdBreak, AdStart][] {
    const out: [AdBreak, AdStart][] = [];
    for (const ad of this.pending.values()) {
      const byClock = ad.rtp_timestamp === undefined || this.noTimestamps;
      const due = byClock ? ad.starts_at : ad.starts_at + FRAME_WAIT_MS;
      if (now >= ad.starts_at + ad.duration_s * 1000) this.pending.delete(ad.id);
      else if (now >= due) out.push([ad, { by: "clock", intoMs: now - due }]);
    }
    return this.take(out);
  }

  /** Milliseconds until the clock may start a break (Infinity: none waits). */
  nextTick(now: number = Date.now()): number {
    let next = Infinity;
    for (const ad of this.pending.values()) {
      const byClock = ad.rtp_timestamp === undefined || this.noTimestamps;
      next = Math.min(next, (byClock ? ad.starts_at : ad.starts_at + FRAME_WAIT_MS) - now);
    }
    return Math.max(0, next);
  }

  private take(out: [AdBreak, AdStart][]): [AdBreak, AdStart][] {
    for (const [ad] of out) {
      this.pending.delete(ad.id);
      this.started.add(ad.id);
    }
    if (this.started.size > 64) this.started.delete(this.started.values().next().value!);
    return out;
  }
}

/** Whether `data` is an {@link AdBreak} (the server's, not something else). */
export function isAdBreak(data: unknown): data is AdBreak {
  const d = data as AdBreak | null;
  return !!d && typeof d.id === "string" && typeof d.starts_at === "number"
    && typeof d.duration_s === "number" && typeof d.skip === "boolean"
    && (d.rtp_timestamp === undefined || (Number.isInteger(d.rtp_timestamp)
      && d.rtp_timestamp >= 0 && d.rtp_timestamp <= 0xffffffff));
}

/** Whether `data` is a {@link SponsorSlot}. */
export function isSponsorSlot(data: unknown): data is SponsorSlot {
  const d = data as SponsorSlot | null;
  return !!d && typeof d.id === "string" && (d.state === "start" || d.state === "end")
    && typeof d.name === "string";
}
