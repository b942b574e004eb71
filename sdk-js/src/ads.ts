// Ad breaks and sponsors' slots as a player is told them (docs/ADS.md): the types of the
// `adbreak` and `sponsor` server-sent events, and when a break starts on this clock.

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
export function startsIn(startsAt: number, now: number = Date.now()): number {
  return Math.max(0, startsAt - now);
}

/** Whether `data` is an {@link AdBreak} (the server's, not something else). */
export function isAdBreak(data: unknown): data is AdBreak {
  const d = data as AdBreak | null;
  return !!d && typeof d.id === "string" && typeof d.starts_at === "number"
    && typeof d.duration_s === "number" && typeof d.skip === "boolean";
}

/** Whether `data` is a {@link SponsorSlot}. */
export function isSponsorSlot(data: unknown): data is SponsorSlot {
  const d = data as SponsorSlot | null;
  return !!d && typeof d.id === "string" && (d.state === "start" || d.state === "end")
    && typeof d.name === "string";
}
