// Ad breaks and sponsors' slots as a player is told them (docs/ADS.md): the types of the
// `adbreak` and `sponsor` server-sent events, and when a break starts on this clock.
/** Milliseconds from `now` until `startsAt` (never negative). */
export function startsIn(startsAt, now = Date.now()) {
    return Math.max(0, startsAt - now);
}
/** Whether `data` is an {@link AdBreak} (the server's, not something else). */
export function isAdBreak(data) {
    const d = data;
    return !!d && typeof d.id === "string" && typeof d.starts_at === "number"
        && typeof d.duration_s === "number" && typeof d.skip === "boolean";
}
/** Whether `data` is a {@link SponsorSlot}. */
export function isSponsorSlot(data) {
    const d = data;
    return !!d && typeof d.id === "string" && (d.state === "start" || d.state === "end")
        && typeof d.name === "string";
}
