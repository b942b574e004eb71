/** Paints `ms` (wall-clock milliseconds) as blocks at the canvas's top-left corner. */
export declare function paintClock(ctx: CanvasRenderingContext2D, ms: number): void;
/** The part of a frame `width` wide (painted `sourceWidth` wide) that holds the clock. */
export declare function clockRegion(width: number, sourceWidth: number): {
    w: number;
    h: number;
};
/**
 * Reads the clock back from a frame `width` pixels wide whose top-left clock region was
 * drawn into `ctx` at (0, 0), where the publisher painted it on a canvas `sourceWidth`
 * wide. Returns null when the blocks do not read as a plausible time.
 */
export declare function readClock(ctx: CanvasRenderingContext2D, width: number, sourceWidth: number): number | null;
/**
 * Calls `onFrame(width, delayMs)` for every frame `video` presents, where `delayMs` is
 * the glass-to-glass delay read from a painted clock (null when `measure` is false or the
 * frame carries no readable clock). Only the clock's corner is copied, so reading every
 * frame stays cheap. Returns a function that stops sampling.
 */
export declare function sampleFrames(video: HTMLVideoElement, measure: boolean, onFrame: (width: number, delayMs: number | null) => void, sourceWidth?: number): () => void;
