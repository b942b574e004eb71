/** Paints `ms` (wall-clock milliseconds) as blocks at the canvas's top-left corner. */
export declare function paintClock(ctx: CanvasRenderingContext2D, ms: number): void;
/**
 * Reads the clock back from a frame drawn at `width` pixels wide into `ctx`, where the
 * publisher painted it on a canvas `sourceWidth` wide. Returns null when the blocks do
 * not read as a plausible time.
 */
export declare function readClock(ctx: CanvasRenderingContext2D, width: number, sourceWidth: number): number | null;
