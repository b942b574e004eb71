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
export declare function startsIn(startsAt: number, now?: number): number;
/**
 * Whether RTP timestamp `ts` is at or after `target`, both 32-bit and wrapping: `ts` is
 * within 2^31 ticks after it (at 90 kHz, 6.6 hours).
 */
export declare function reached(ts: number, target: number): boolean;
/**
 * How long after `starts_at` a break named by its frame waits for that frame before the
 * clock starts it: more than any viewer's delay behind live (a frozen picture, a publisher
 * gone, a timestamp that never comes).
 */
export declare const FRAME_WAIT_MS = 5000;
/**
 * When each break starts for one viewer: a pure scheduler fed the breaks told, the frames
 * presented and the clock. {@link BreakStarts.frame} and {@link BreakStarts.tick} return
 * the breaks that start now, each once.
 */
export declare class BreakStarts {
    private readonly pending;
    private readonly started;
    /** Frames were presented without an RTP timestamp: the clock decides. */
    private noTimestamps;
    /** A break told (again: its newest `rtp_timestamp` counts, until it started). */
    add(ad: AdBreak, now?: number): void;
    /** Whether a break waits to start. */
    waiting(): boolean;
    /** Whether a waiting break is named by its frame (a frame callback is worth running). */
    byFrame(): boolean;
    /** A frame with `rtpTimestamp` (undefined: the browser gives none) is presented. */
    frame(rtpTimestamp: number | undefined): [AdBreak, AdStart][];
    /** The clock reads `now`: the breaks it starts (see {@link AdStart}). */
    tick(now?: number): [AdBreak, AdStart][];
    /** Milliseconds until the clock may start a break (Infinity: none waits). */
    nextTick(now?: number): number;
    private take;
}
/** Whether `data` is an {@link AdBreak} (the server's, not something else). */
export declare function isAdBreak(data: unknown): data is AdBreak;
/** Whether `data` is a {@link SponsorSlot}. */
export declare function isSponsorSlot(data: unknown): data is SponsorSlot;
