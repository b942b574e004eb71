//! I420 pictures and the one scaling the ladder needs: halving.
//!
//! Each rung of the ladder is half the one above (720p → 360p → 180p), so the scaler is a
//! 2×2 box filter: every output sample is the rounded mean of the four below it, which is
//! what libyuv's `ScalePlaneDown2` box mode does for an exact half and the right low-pass
//! filter for a 2:1 decimation. A general resizing crate (arbitrary ratios, Lanczos) would
//! buy nothing here and works on interleaved or single planes, not I420's three. An odd
//! edge repeats its last sample.

/// A planar 4:2:0 picture, tightly packed (stride = width), chroma rounded up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct I420 {
    /// Luma width in pixels.
    pub width: usize,
    /// Luma height in pixels.
    pub height: usize,
    /// Luma, `width × height`.
    pub y: Vec<u8>,
    /// Cb, `chroma_width × chroma_height`.
    pub u: Vec<u8>,
    /// Cr, `chroma_width × chroma_height`.
    pub v: Vec<u8>,
}

impl I420 {
    /// A picture of one colour.
    pub fn filled(width: usize, height: usize, y: u8, u: u8, v: u8) -> Self {
        let (cw, ch) = chroma_size(width, height);
        I420 {
            width,
            height,
            y: vec![y; width * height],
            u: vec![u; cw * ch],
            v: vec![v; cw * ch],
        }
    }

    /// The chroma planes' size.
    pub fn chroma_size(&self) -> (usize, usize) {
        chroma_size(self.width, self.height)
    }

    /// This picture at half the width and height (rounded up, then down to even so that an
    /// encoder takes it), box filtered.
    pub fn half(&self) -> I420 {
        let (width, height) = half_size(self.width, self.height);
        let (cw, ch) = self.chroma_size();
        let (ow, oh) = chroma_size(width, height);
        I420 {
            width,
            height,
            y: half_plane(&self.y, self.width, self.height, width, height),
            u: half_plane(&self.u, cw, ch, ow, oh),
            v: half_plane(&self.v, cw, ch, ow, oh),
        }
    }
}

/// Half of `w × h`, rounded up, then down to even (what an encoder takes), at least 2.
pub fn half_size(w: usize, h: usize) -> (usize, usize) {
    ((w.div_ceil(2) & !1).max(2), (h.div_ceil(2) & !1).max(2))
}

/// The chroma size of a 4:2:0 picture.
pub fn chroma_size(width: usize, height: usize) -> (usize, usize) {
    (width.div_ceil(2), height.div_ceil(2))
}

/// One plane of `w × h` to `ow × oh` (each at most half, rounded up): output sample
/// (x, y) is the mean of input (2x, 2y) .. (2x+1, 2y+1), clamped to the edge.
fn half_plane(src: &[u8], w: usize, h: usize, ow: usize, oh: usize) -> Vec<u8> {
    let mut out = vec![0u8; ow * oh];
    if w == 0 || h == 0 || src.len() < w * h {
        return out;
    }
    for (oy, row) in out.chunks_exact_mut(ow).enumerate() {
        let y0 = (2 * oy).min(h - 1);
        let y1 = (2 * oy + 1).min(h - 1);
        let (r0, r1) = (&src[y0 * w..y0 * w + w], &src[y1 * w..y1 * w + w]);
        for (ox, o) in row.iter_mut().enumerate() {
            let x0 = (2 * ox).min(w - 1);
            let x1 = (2 * ox + 1).min(w - 1);
            let sum = u16::from(r0[x0]) + u16::from(r0[x1]) + u16::from(r1[x0]) + u16::from(r1[x1]);
            *o = ((sum + 2) / 4) as u8;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_720p_to_360p_and_180p() {
        let p = I420::filled(1280, 720, 100, 50, 200);
        let h = p.half();
        assert_eq!((h.width, h.height), (640, 360));
        assert_eq!((h.y.len(), h.u.len()), (640 * 360, 320 * 180));
        let q = h.half();
        assert_eq!((q.width, q.height), (320, 180));
        assert!(q.y.iter().all(|&s| s == 100));
        assert!(q.u.iter().all(|&s| s == 50) && q.v.iter().all(|&s| s == 200));
    }

    #[test]
    fn averages_each_two_by_two_block() {
        // A 4×2 luma plane: blocks [0 4 / 8 12] and [255 255 / 255 0].
        let mut p = I420::filled(4, 2, 0, 128, 128);
        p.y = vec![0, 4, 255, 255, 8, 12, 255, 0];
        let h = p.half();
        assert_eq!((h.width, h.height), (2, 2));
        // (0+4+8+12+2)/4 = 6; (255*3+0+2)/4 = 191. The second row repeats the edge.
        assert_eq!(&h.y[..2], &[6, 191]);
    }

    #[test]
    fn odd_sizes_round_to_even_and_keep_the_edge() {
        let p = I420::filled(1918, 1081, 7, 8, 9);
        let h = p.half();
        assert_eq!((h.width, h.height), (958, 540));
        assert!(h.y.iter().all(|&s| s == 7));
        let (cw, ch) = h.chroma_size();
        assert_eq!(h.u.len(), cw * ch);
        // A degenerate picture still gives an encodable one, not a panic.
        let tiny = I420::filled(1, 1, 1, 1, 1).half();
        assert_eq!((tiny.width, tiny.height), (2, 2));
    }
}
