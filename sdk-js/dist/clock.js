// A clock painted into video frames, for measuring glass-to-glass delay: the publisher
// paints the wall-clock time as black and white blocks, the viewer reads it back from
// each decoded frame. Both pages run on one machine, so they share the clock.
const BITS = 44;
const COLS = 11;
const BLOCK = 64;
/** Paints `ms` (wall-clock milliseconds) as blocks at the canvas's top-left corner. */
export function paintClock(ctx, ms) {
    for (let i = 0; i < BITS; i++) {
        const bit = Math.floor(ms / 2 ** i) % 2;
        ctx.fillStyle = bit ? "#fff" : "#000";
        ctx.fillRect((i % COLS) * BLOCK, Math.floor(i / COLS) * BLOCK, BLOCK, BLOCK);
    }
}
/** The part of a frame `width` wide (painted `sourceWidth` wide) that holds the clock. */
export function clockRegion(width, sourceWidth) {
    const scale = width / sourceWidth;
    return { w: Math.ceil(COLS * BLOCK * scale), h: Math.ceil((BITS / COLS) * BLOCK * scale) };
}
/**
 * Reads the clock back from a frame `width` pixels wide whose top-left clock region was
 * drawn into `ctx` at (0, 0), where the publisher painted it on a canvas `sourceWidth`
 * wide. Returns null when the blocks do not read as a plausible time.
 */
export function readClock(ctx, width, sourceWidth) {
    const scale = width / sourceWidth;
    const { w: size, h: rows } = clockRegion(width, sourceWidth);
    const data = ctx.getImageData(0, 0, size, rows).data;
    let ms = 0;
    for (let i = 0; i < BITS; i++) {
        const x = Math.floor(((i % COLS) * BLOCK + BLOCK / 2) * scale);
        const y = Math.floor((Math.floor(i / COLS) * BLOCK + BLOCK / 2) * scale);
        const p = (y * size + x) * 4;
        const luma = (data[p] + data[p + 1] + data[p + 2]) / 3;
        if (luma > 128)
            ms += 2 ** i;
    }
    const now = Date.now();
    return Math.abs(now - ms) < 60000 ? ms : null;
}
/**
 * Calls `onFrame(width, delayMs)` for every frame `video` presents, where `delayMs` is
 * the glass-to-glass delay read from a painted clock (null when `measure` is false or the
 * frame carries no readable clock). Only the clock's corner is copied, so reading every
 * frame stays cheap. Returns a function that stops sampling.
 */
export function sampleFrames(video, measure, onFrame, sourceWidth = 1280) {
    const canvas = document.createElement("canvas");
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    let stopped = false;
    const tick = (_now, meta) => {
        if (stopped)
            return;
        let delay = null;
        if (measure && meta.width) {
            const r = clockRegion(meta.width, sourceWidth);
            if (canvas.width !== r.w || canvas.height !== r.h) {
                canvas.width = r.w;
                canvas.height = r.h;
            }
            ctx.drawImage(video, 0, 0, r.w, r.h, 0, 0, r.w, r.h);
            const stamp = readClock(ctx, meta.width, sourceWidth);
            if (stamp !== null)
                delay = Date.now() - stamp;
        }
        onFrame(meta.width, delay);
        video.requestVideoFrameCallback(tick);
    };
    video.requestVideoFrameCallback(tick);
    return () => {
        stopped = true;
    };
}
