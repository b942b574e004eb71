/** An `adbreak` event: every viewer's player starts the break at `starts_at`. */
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
/** Called with a sponsor's slot at its start and at its end. */
export type SponsorHandler = (slot: SponsorSlot) => void;
/** Milliseconds from `now` until `startsAt` (never negative). */
export declare function startsIn(startsAt: number, now?: number): number;
/** Whether `data` is an {@link AdBreak} (the server's, not something else). */
export declare function isAdBreak(data: unknown): data is AdBreak;
/** Whether `data` is a {@link SponsorSlot}. */
export declare function isSponsorSlot(data: unknown): data is SponsorSlot;
