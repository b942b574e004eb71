/** How often a player reports. */
export declare const REPORT_EVERY_MS = 10000;
/** What a player has done since its first frame. */
export interface PlaybackTotals {
    watched_ms: number;
    stall_ms: number;
    stalls: number;
}
/** Counts stalls: a `waiting` after the first `playing` starts one, `playing` ends it. */
export declare class StallClock {
    private first?;
    private stalledSince?;
    private stalled;
    private count;
    /** The element plays (its first frame, or the end of a stall). */
    playing(now: number): void;
    /** The element waits for data. Before the first frame it is joining, not stalling. */
    waiting(now: number): void;
    /** The totals at `now` (a stall under way counts up to now). */
    totals(now: number): PlaybackTotals;
}
/** The stream and session id of a WHEP session resource (`…/whep/{stream}/{session}`). */
export declare function sessionOf(location: string): {
    stream: string;
    session: string;
} | undefined;
/** Reports a video element's playback for a WHEP session every {@link REPORT_EVERY_MS}. */
export declare class PlaybackReporter {
    private readonly video;
    private location;
    private readonly endpoint?;
    private readonly clock;
    private timer?;
    /** The node answered 404: it keeps no analytics for this session (an open node). */
    private unrecorded;
    private readonly onPlaying;
    private readonly onWaiting;
    /** `location` is the WHEP session's resource; `endpoint`, the WHEP endpoint the player
     * was given, is where reports go when given: in a cluster that is the control plane,
     * which keeps the analytics of every edge's sessions, where the session's own node (an
     * edge) keeps none. */
    constructor(video: HTMLVideoElement, location: string, endpoint?: string | undefined);
    /** The session moved to another node: report under its new resource. */
    moved(location: string): void;
    /** Sends the totals now (errors are ignored: a report is best effort). After a 404 (no
     * analytics are kept for this session) nothing more is sent until the session moves. */
    report(): Promise<void>;
    /** Stops reporting (a last report first). */
    stop(): void;
}
