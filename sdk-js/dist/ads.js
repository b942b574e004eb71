// Ad breaks and sponsors' slots as a player is told them (docs/ADS.md): the types of the
// `adbreak` and `sponsor` server-sent events, and when a break starts here: on the frame
// the server named in this viewer's RTP timestamps, else at `starts_at` on this clock.
/** Milliseconds from `now` until `startsAt` (never negative). */
export function startsIn(startsAt, now = Date.now()) {
    return Math.max(0, startsAt - now);
}
/**
 * Whether RTP timestamp `ts` is at or after `target`, both 32-bit and wrapping: `ts` is
 * within 2^31 ticks after it (at 90 kHz, 6.6 hours).
 */
export function reached(ts, target) {
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
    constructor() {
        this.pending = new Map();
        this.started = new Set();
        /** Frames were presented without an RTP timestamp: the clock decides. */
        this.noTimestamps = false;
    }
    /** A break told (again: its newest `rtp_timestamp` counts, until it started). */
    add(ad, now = Date.now()) {
        if (this.started.has(ad.id) || now >= ad.starts_at + ad.duration_s * 1000)
            return;
        this.pending.set(ad.id, ad);
    }
    /** Whether a break waits to start. */
    waiting() {
        return this.pending.size > 0;
    }
    /** Whether a waiting break is named by its frame (a frame callback is worth running). */
    byFrame() {
        return !this.noTimestamps && [...this.pending.values()].some((a) => a.rtp_timestamp !== undefined);
    }
    /** A frame with `rtpTimestamp` (undefined: the browser gives none) is presented. */
    frame(rtpTimestamp) {
        if (rtpTimestamp === undefined) {
            this.noTimestamps = true;
            return [];
        }
        const out = [];
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
    tick(now = Date.now()) {
        const out = [];
        for (const ad of this.pending.values()) {
            const byClock = ad.rtp_timestamp === undefined || this.noTimestamps;
            const due = byClock ? ad.starts_at : ad.starts_at + FRAME_WAIT_MS;
            if (now >= ad.starts_at + ad.duration_s * 1000)
                this.pending.delete(ad.id);
            else if (now >= due)
                out.push([ad, { by: "clock", intoMs: now - due }]);
        }
        return this.take(out);
    }
    /** Milliseconds until the clock may start a break (Infinity: none waits). */
    nextTick(now = Date.now()) {
        let next = Infinity;
        for (const ad of this.pending.values()) {
            const byClock = ad.rtp_timestamp === undefined || this.noTimestamps;
            next = Math.min(next, (byClock ? ad.starts_at : ad.starts_at + FRAME_WAIT_MS) - now);
        }
        return Math.max(0, next);
    }
    take(out) {
        for (const [ad] of out) {
            this.pending.delete(ad.id);
            this.started.add(ad.id);
        }
        if (this.started.size > 64)
            this.started.delete(this.started.values().next().value);
        return out;
    }
}
/** Whether `data` is an {@link AdBreak} (the server's, not something else). */
export function isAdBreak(data) {
    const d = data;
    return !!d && typeof d.id === "string" && typeof d.starts_at === "number"
        && typeof d.duration_s === "number" && typeof d.skip === "boolean"
        && (d.rtp_timestamp === undefined || (Number.isInteger(d.rtp_timestamp)
            && d.rtp_timestamp >= 0 && d.rtp_timestamp <= 0xffffffff));
}
/** Whether `data` is a {@link SponsorSlot}. */
export function isSponsorSlot(data) {
    const d = data;
    return !!d && typeof d.id === "string" && (d.state === "start" || d.state === "end")
        && typeof d.name === "string";
}
