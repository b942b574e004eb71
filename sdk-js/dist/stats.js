// A player's playback report (`POST /api/v1/playback-stats`, docs/ANALYTICS.md): the
// time it played or stalled since the first frame, its stalls and frames, as running
// totals every 10 s. `StallClock` is the pure part (times passed in); `PlaybackReporter`
// reads a video element and posts.
/** How often a player reports. */
export const REPORT_EVERY_MS = 10000;
/** Counts stalls: a `waiting` after the first `playing` starts one, `playing` ends it. */
export class StallClock {
    constructor() {
        this.stalled = 0;
        this.count = 0;
    }
    /** The element plays (its first frame, or the end of a stall). */
    playing(now) {
        if (this.first === undefined)
            this.first = now;
        if (this.stalledSince !== undefined) {
            this.stalled += now - this.stalledSince;
            this.stalledSince = undefined;
        }
    }
    /** The element waits for data. Before the first frame it is joining, not stalling. */
    waiting(now) {
        if (this.first === undefined || this.stalledSince !== undefined)
            return;
        this.stalledSince = now;
        this.count++;
    }
    /** The totals at `now` (a stall under way counts up to now). */
    totals(now) {
        if (this.first === undefined)
            return { watched_ms: 0, stall_ms: 0, stalls: 0 };
        const open = this.stalledSince === undefined ? 0 : now - this.stalledSince;
        return {
            watched_ms: Math.round(now - this.first),
            stall_ms: Math.round(this.stalled + open),
            stalls: this.count,
        };
    }
}
/** The stream and session id of a WHEP session resource (`…/whep/{stream}/{session}`). */
export function sessionOf(location) {
    const m = new URL(location).pathname.match(/\/whep\/([^/]+)\/([0-9a-f]{16})$/);
    return m ? { stream: decodeURIComponent(m[1]), session: m[2] } : undefined;
}
/** Reports a video element's playback for a WHEP session every {@link REPORT_EVERY_MS}. */
export class PlaybackReporter {
    /** `location` is the WHEP session's resource; `endpoint`, the WHEP endpoint the player
     * was given, is where reports go when given: in a cluster that is the control plane,
     * which keeps the analytics of every edge's sessions, where the session's own node (an
     * edge) keeps none. */
    constructor(video, location, endpoint) {
        this.video = video;
        this.location = location;
        this.endpoint = endpoint;
        this.clock = new StallClock();
        /** The node answered 404: it keeps no analytics for this session (an open node). */
        this.unrecorded = false;
        this.onPlaying = () => this.clock.playing(performance.now());
        this.onWaiting = () => this.clock.waiting(performance.now());
        video.addEventListener("playing", this.onPlaying);
        video.addEventListener("waiting", this.onWaiting);
        this.timer = setInterval(() => void this.report(), REPORT_EVERY_MS);
    }
    /** The session moved to another node: report under its new resource. */
    moved(location) {
        this.location = location;
        this.unrecorded = false;
    }
    /** Sends the totals now (errors are ignored: a report is best effort). After a 404 (no
     * analytics are kept for this session) nothing more is sent until the session moves. */
    async report() {
        const ids = sessionOf(this.location);
        if (!ids || this.unrecorded)
            return;
        const frames = this.video.getVideoPlaybackQuality?.().totalVideoFrames ?? 0;
        const body = JSON.stringify({ ...ids, ...this.clock.totals(performance.now()), frames });
        let url;
        try {
            const base = new URL(this.endpoint ?? this.location, globalThis.location?.href);
            url = new URL("/api/v1/playback-stats", base).toString();
        }
        catch {
            return; // a relative endpoint outside a page: nowhere to report
        }
        const answer = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body })
            .catch(() => undefined);
        if (answer?.status === 404)
            this.unrecorded = true;
    }
    /** Stops reporting (a last report first). */
    stop() {
        if (this.timer !== undefined)
            clearInterval(this.timer);
        this.timer = undefined;
        this.video.removeEventListener("playing", this.onPlaying);
        this.video.removeEventListener("waiting", this.onWaiting);
        void this.report();
    }
}
