//! Source pictures for the codec benchmarks (the ladder, the stills): something a
//! camera's frames cost to code, roughly, rather than a flat colour that codes to nothing.

use sfu::process::I420;

/// A textured picture (value noise with edges) moved `t × 4` pixels right and `t` down.
pub fn textured(w: usize, h: usize, t: usize) -> I420 {
    let mut p = I420::filled(w, h, 0, 128, 128);
    let hash = |x: usize, y: usize| -> u8 {
        let mut v =
            (x as u32 / 8).wrapping_mul(0x9e37_79b9) ^ (y as u32 / 8).wrapping_mul(0x85eb_ca6b);
        v ^= v >> 15;
        v = v.wrapping_mul(0x2c1b_3c6d);
        (v >> 24) as u8
    };
    for y in 0..h {
        for x in 0..w {
            let (sx, sy) = (x + 4 * t, y + t);
            p.y[y * w + x] = hash(sx, sy) / 2 + ((sx + sy) % 128) as u8;
        }
    }
    let (cw, ch) = p.chroma_size();
    for y in 0..ch {
        for x in 0..cw {
            p.u[y * cw + x] = 96 + hash(x + 2 * t, y) / 4;
            p.v[y * cw + x] = 160 - hash(y, x + 2 * t) / 4;
        }
    }
    p
}
