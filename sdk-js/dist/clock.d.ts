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
