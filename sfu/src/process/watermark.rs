//! The server-side watermark of the transcoded rungs: a small image (PNG, decoded by the
//! `png` crate) alpha-blended into the bottom-right corner of each rung's I420 picture
//! before it is encoded, scaled to an eighth of the rung's width. The source's own layer
//! is never touched. [`Watermark::apply`] is a pure function on the planes.

use super::scale::I420;

/// Why a watermark image was refused.
#[derive(Debug, thiserror::Error)]
pub enum WatermarkError {
    /// Not a PNG this decoder reads.
    #[error("watermark image: {0}")]
    Decode(#[from] png::DecodingError),
    /// Empty, or larger than [`MAX_SIDE`] on a side.
    #[error("watermark image of {0}×{1}: must be 1 to {MAX_SIDE} pixels a side")]
    Size(u32, u32),
}

/// The largest watermark image side accepted.
pub const MAX_SIDE: u32 = 1024;
/// The watermark's width as a share of the rung's: one part in this many.
pub const WIDTH_PARTS: usize = 8;

/// A decoded watermark: its pixels as Y, U, V and alpha (BT.601, studio range).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watermark {
    width: usize,
    height: usize,
    /// Y, U, V, alpha per pixel.
    yuva: Vec<[u8; 4]>,
}

impl Watermark {
    /// Decodes a PNG file's bytes (any colour type and depth: expanded to 8-bit).
    pub fn from_png(bytes: &[u8]) -> Result<Self, WatermarkError> {
        let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        decoder.set_transformations(png::Transformations::normalize_to_color8());
        let mut reader = decoder.read_info()?;
        let (w, h) = (reader.info().width, reader.info().height);
        if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE {
            return Err(WatermarkError::Size(w, h));
        }
        let mut buf = vec![0; reader.output_buffer_size().unwrap_or(0)];
        let info = reader.next_frame(&mut buf)?;
        let (color, _) = reader.output_color_type();
        let px = color.samples();
        let yuva = buf[..info.buffer_size()]
            .chunks_exact(px)
            .map(|p| {
                let (r, g, b, a) = match px {
                    1 => (p[0], p[0], p[0], 255),
                    2 => (p[0], p[0], p[0], p[1]),
                    3 => (p[0], p[1], p[2], 255),
                    _ => (p[0], p[1], p[2], p[3]),
                };
                let [y, u, v] = yuv(r, g, b);
                [y, u, v, a]
            })
            .collect();
        Ok(Watermark {
            width: w as usize,
            height: h as usize,
            yuva,
        })
    }

    /// A watermark of one colour (for tests and benches).
    pub fn solid(width: usize, height: usize, rgba: [u8; 4]) -> Self {
        let [y, u, v] = yuv(rgba[0], rgba[1], rgba[2]);
        Watermark {
            width,
            height,
            yuva: vec![[y, u, v, rgba[3]]; width * height],
        }
    }

    /// The rectangle (x, y, w, h) it covers in a `pw × ph` picture: an eighth of the
    /// width, its aspect kept, a margin of a quarter of its width from the bottom-right
    /// corner; even-aligned so that the chroma planes line up.
    pub fn place(&self, pw: usize, ph: usize) -> Option<(usize, usize, usize, usize)> {
        let w = (pw / WIDTH_PARTS) & !1;
        let h = (w * self.height / self.width.max(1)) & !1;
        let margin = (w / 4) & !1;
        if w == 0 || h == 0 || w + margin > pw || h + margin > ph {
            return None;
        }
        Some((pw - w - margin, ph - h - margin, w, h))
    }

    /// Blends it into `pic`'s corner (nearest-neighbour scaling, alpha over).
    pub fn apply(&self, pic: &mut I420) {
        let Some((x0, y0, w, h)) = self.place(pic.width, pic.height) else {
            return;
        };
        let sample =
            |x: usize, y: usize| self.yuva[(y * self.height / h) * self.width + x * self.width / w];
        for y in 0..h {
            for x in 0..w {
                let s = sample(x, y);
                let i = (y0 + y) * pic.width + x0 + x;
                pic.y[i] = blend(pic.y[i], s[0], s[3]);
            }
        }
        let cw = pic.width.div_ceil(2);
        for y in 0..h / 2 {
            for x in 0..w / 2 {
                let s = sample(2 * x, 2 * y);
                let i = (y0 / 2 + y) * cw + x0 / 2 + x;
                pic.u[i] = blend(pic.u[i], s[1], s[3]);
                pic.v[i] = blend(pic.v[i], s[2], s[3]);
            }
        }
    }
}

/// `under` with `over` laid on it at opacity `alpha` (of 255), rounded.
fn blend(under: u8, over: u8, alpha: u8) -> u8 {
    let a = u32::from(alpha);
    ((u32::from(under) * (255 - a) + u32::from(over) * a + 127) / 255) as u8
}

/// BT.601 studio-range Y, U, V of an sRGB colour (integer form of the usual matrix).
fn yuv(r: u8, g: u8, b: u8) -> [u8; 3] {
    let (r, g, b) = (i32::from(r), i32::from(g), i32::from(b));
    let y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16;
    let u = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128;
    let v = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128;
    [y, u, v].map(|c| c.clamp(0, 255) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 4×2 PNG: white, opaque on the left half and transparent on the right.
    fn png_bytes() -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, 4, 2);
            enc.set_color(png::ColorType::Rgba);
            enc.set_depth(png::BitDepth::Eight);
            let mut w = enc.write_header().unwrap();
            let mut data = Vec::new();
            for _ in 0..2 {
                for x in 0..4 {
                    data.extend_from_slice(&[255, 255, 255, if x < 2 { 255 } else { 0 }]);
                }
            }
            w.write_image_data(&data).unwrap();
        }
        out
    }

    #[test]
    fn a_png_decodes_to_white_and_alpha() {
        let wm = Watermark::from_png(&png_bytes()).unwrap();
        assert_eq!((wm.width, wm.height), (4, 2));
        assert_eq!(wm.yuva[0], [235, 128, 128, 255]);
        assert_eq!(wm.yuva[3][3], 0);
    }

    #[test]
    fn not_a_png_is_an_error() {
        assert!(matches!(
            Watermark::from_png(b"GIF89a not a png"),
            Err(WatermarkError::Decode(_))
        ));
    }

    #[test]
    fn the_corner_turns_toward_the_logo_and_the_rest_is_untouched() {
        let wm = Watermark::from_png(&png_bytes()).unwrap();
        let (pw, ph) = (320, 180);
        let before = I420::filled(pw, ph, 40, 100, 160);
        let mut pic = before.clone();
        wm.apply(&mut pic);
        // 40×20 at 10 from the bottom-right corner.
        let (x0, y0, w, h) = wm.place(pw, ph).unwrap();
        assert_eq!((x0, y0, w, h), (270, 150, 40, 20));
        for y in 0..ph {
            for x in 0..pw {
                let v = pic.y[y * pw + x];
                let inside = (x0..x0 + w).contains(&x) && (y0..y0 + h).contains(&y);
                if inside && x < x0 + w / 2 {
                    assert_eq!(v, 235, "opaque white at ({x}, {y})");
                } else {
                    assert_eq!(v, 40, "untouched at ({x}, {y})");
                }
            }
        }
        // Chroma: white's neutral under the opaque half, untouched elsewhere.
        let cw = pw / 2;
        assert_eq!(pic.u[(y0 / 2) * cw + x0 / 2], 128);
        assert_eq!(pic.v[(y0 / 2) * cw + x0 / 2], 128);
        assert_eq!(pic.u[0], 100);
        assert_eq!(pic.v[(y0 / 2) * cw + x0 / 2 + w / 2 - 1], 160);
    }

    #[test]
    fn half_alpha_goes_half_way() {
        let wm = Watermark::solid(8, 8, [255, 255, 255, 128]);
        let mut pic = I420::filled(160, 90, 16, 128, 128);
        wm.apply(&mut pic);
        let (x0, y0, _, _) = wm.place(160, 90).unwrap();
        let v = pic.y[y0 * 160 + x0];
        assert!((124..=127).contains(&v), "{v}");
    }

    #[test]
    fn too_small_a_picture_is_left_alone() {
        let wm = Watermark::solid(8, 8, [255, 0, 0, 255]);
        let before = I420::filled(8, 8, 16, 128, 128);
        let mut pic = before.clone();
        wm.apply(&mut pic);
        assert_eq!(pic, before);
    }
}
