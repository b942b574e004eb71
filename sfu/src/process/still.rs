//! A still picture of a video: a keyframe decoded (VP8 and VP9 with libvpx,
//! [`super::vpx`]; H.264 with OpenH264, [`super::h264dec`]), halved ([`I420::half`]) until it is at most
//! [`STILL_WIDTH`] wide, converted to RGB (BT.601, limited range, as VP8 and H.264 from
//! WebRTC encoders carry it) and written as a PNG (`png`) or a JPEG (`jpeg-encoder`). The
//! content library makes a PNG for each video it lists (`control_plane::content::stills`);
//! a live stream's thumbnail is a JPEG of a keyframe the node takes from it
//! ([`crate::Node::keyframe_of`]), as the studio's are. VP8, VP9 and H.264 only (each
//! keyframe's declared size is checked before decoding); AV1 gives nothing.

use super::scale::I420;
use super::vpx::Decoder;

/// Widest still: a list's card (320 px) at most.
pub const STILL_WIDTH: usize = 320;

/// The PNG still of a `codec` keyframe, or `None` for another codec or a frame that does
/// not decode (or declares a picture over [`MAX_PIXELS`]). A `vp8` keyframe is the codec's
/// frame; an `h264` one is an IDR access unit in AVC form (each NAL unit after its 4-byte
/// length) with its SPS and PPS, as [`crate::record::h264`] and an MP4 sample hold it.
pub fn still_png(codec: &str, keyframe: &[u8]) -> Option<Vec<u8>> {
    png(&picture(codec, keyframe)?)
}

/// [`still_png`] as a JPEG (quality 80).
pub fn still_jpeg(codec: &str, keyframe: &[u8]) -> Option<Vec<u8>> {
    let p = picture(codec, keyframe)?;
    let mut out = Vec::new();
    let enc = jpeg_encoder::Encoder::new(&mut out, 80);
    let (w, h) = (u16::try_from(p.width).ok()?, u16::try_from(p.height).ok()?);
    enc.encode(&to_rgb(&p), w, h, jpeg_encoder::ColorType::Rgb)
        .ok()?;
    Some(out)
}

/// Largest picture a still is made of (4K): the size a keyframe declares (a VP8 frame
/// header, an H.264 SPS) is read before a decoder is given it, so a frame that claims more
/// costs nothing.
pub const MAX_PIXELS: usize = 3840 * 2160;

/// The keyframe decoded and halved to at most [`STILL_WIDTH`]. VP8's size is in its first
/// ten bytes (`ladder::keyframe_size`), VP9's in its uncompressed header
/// ([`crate::record::vp9::keyframe_size`]), H.264's in its SPS ([`super::h264dec`]). AV1
/// gives none (no AV1 decoder here).
fn picture(codec: &str, keyframe: &[u8]) -> Option<I420> {
    let mut picture = match codec {
        "vp8" => vp8(keyframe)?,
        "vp9" => vp9(keyframe)?,
        "h264" => super::h264dec::decode_keyframe(keyframe)?,
        _ => return None,
    };
    while picture.width > STILL_WIDTH {
        picture = picture.half();
    }
    Some(picture)
}

/// A VP8 keyframe decoded with libvpx, if it declares at most [`MAX_PIXELS`].
fn vp8(keyframe: &[u8]) -> Option<I420> {
    let (w, h) = super::ladder::keyframe_size(keyframe)?;
    if w == 0 || h == 0 || w.saturating_mul(h) > MAX_PIXELS {
        return None;
    }
    Decoder::new().ok()?.decode(keyframe).ok()?
}

/// A VP9 keyframe decoded with libvpx, if it declares at most [`MAX_PIXELS`] (a frame
/// that is not a keyframe gives none: libvpx would take it only after one).
///
/// Only a superframe's first frame reaches libvpx: it decodes every frame of a superframe,
/// and a small first frame would otherwise carry a second declaring 65536 × 65536 past the
/// size check.
fn vp9(keyframe: &[u8]) -> Option<I420> {
    let keyframe = vp9_first_frame(keyframe)?;
    let (w, h) = crate::record::vp9::keyframe_size(keyframe)?;
    if (w as usize).saturating_mul(h as usize) > MAX_PIXELS {
        return None;
    }
    Decoder::vp9().ok()?.decode(keyframe).ok()?
}

/// The first frame of a VP9 superframe (VP9 bitstream spec, Annex B: an index of frame
/// sizes at its end, between two equal marker bytes `0b110mmfff`), the whole buffer when
/// it has no index, none when its index is broken.
fn vp9_first_frame(data: &[u8]) -> Option<&[u8]> {
    let Some(&marker) = data.last() else {
        return Some(data);
    };
    if marker & 0xe0 != 0xc0 {
        return Some(data);
    }
    let frames = usize::from(marker & 7) + 1;
    let mag = usize::from((marker >> 3) & 3) + 1;
    let index = 2 + mag * frames;
    let start = data.len().checked_sub(index)?;
    if data[start] != marker {
        return Some(data);
    }
    let first = data[start + 1..start + 1 + mag]
        .iter()
        .rev()
        .fold(0usize, |n, &b| n << 8 | usize::from(b));
    data.get(..first).filter(|f| !f.is_empty())
}

/// `picture` as an 8-bit RGB PNG.
pub fn png(picture: &I420) -> Option<Vec<u8>> {
    let rgb = to_rgb(picture);
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(
        &mut out,
        u32::try_from(picture.width).ok()?,
        u32::try_from(picture.height).ok()?,
    );
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().ok()?;
    writer.write_image_data(&rgb).ok()?;
    writer.finish().ok()?;
    Some(out)
}

/// Packed RGB of an I420 picture (BT.601 limited range, integer arithmetic).
fn to_rgb(p: &I420) -> Vec<u8> {
    let (cw, _) = p.chroma_size();
    let mut out = Vec::with_capacity(p.width * p.height * 3);
    for row in 0..p.height {
        for col in 0..p.width {
            let y = i32::from(p.y[row * p.width + col]) - 16;
            let c = (row / 2) * cw + col / 2;
            let (u, v) = (i32::from(p.u[c]) - 128, i32::from(p.v[c]) - 128);
            let clamp = |x: i32| ((x + 128) >> 8).clamp(0, 255) as u8;
            out.push(clamp(298 * y + 409 * v));
            out.push(clamp(298 * y - 100 * u - 208 * v));
            out.push(clamp(298 * y + 516 * u));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::vpx::{Encoder, EncoderConfig};

    fn decode_png(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf)
    }

    #[test]
    fn a_720p_vp8_keyframe_becomes_a_320_wide_png_of_its_colour() {
        // Pure red in BT.601 limited range.
        let red = I420::filled(1280, 720, 81, 90, 240);
        let cfg = EncoderConfig {
            width: 1280,
            height: 720,
            kbps: 1500,
            cpu_used: 8,
            keyframe_max_dist: 30,
        };
        let mut enc = Encoder::new(cfg).unwrap();
        let frames = enc.encode(&red, 0, true).unwrap();
        let keyframe = &frames[0];
        let png = still_png("vp8", &keyframe.data).expect("a still");
        let (w, h, rgb) = decode_png(&png);
        assert_eq!((w, h), (320, 180));
        let mid = ((90 * 320 + 160) * 3) as usize;
        let (r, g, b) = (rgb[mid], rgb[mid + 1], rgb[mid + 2]);
        assert!(r > 230 && g < 30 && b < 30, "red came out as {r},{g},{b}");
    }

    /// vp9enc's first keyframe of the ball (the recorder's test data), 320 × 240.
    fn vp9_ball_keyframe() -> Vec<u8> {
        let packets = crate::record::tests_vp9::rtp_packets(
            include_bytes!("../record/testdata/ball-320x240.vp9.rtp"),
            crate::codec::Codec::Vp9,
        );
        let mut frame = Vec::new();
        let payloads = packets[..2].iter().map(|p| &p.payload[..]);
        crate::record::vp9::depacketize(payloads, &mut frame).unwrap();
        frame
    }

    #[test]
    fn a_vp9_keyframe_becomes_a_png_of_its_size() {
        let (w, h, rgb) = decode_png(&still_png("vp9", &vp9_ball_keyframe()).expect("a still"));
        assert_eq!((w, h), (320, 240));
        // The ball pattern: a black background, a white ball somewhere.
        assert!(rgb[..3].iter().all(|&c| c < 40), "{:?}", &rgb[..3]);
        assert!(rgb.chunks(3).any(|p| p.iter().all(|&c| c > 215)));
    }

    #[test]
    fn a_jpeg_still_is_a_whole_jpeg() {
        let grey = I420::filled(640, 360, 128, 128, 128);
        let cfg = EncoderConfig {
            width: 640,
            height: 360,
            kbps: 800,
            cpu_used: 8,
            keyframe_max_dist: 30,
        };
        let frames = Encoder::new(cfg).unwrap().encode(&grey, 0, true).unwrap();
        let jpeg = still_jpeg("vp8", &frames[0].data).expect("a still");
        assert!(jpeg.starts_with(&[0xFF, 0xD8, 0xFF]) && jpeg.ends_with(&[0xFF, 0xD9]));
        // Its frame header: 320 × 180 (SOF0: FF C0, length, precision, height, width).
        let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        let h = u16::from_be_bytes([jpeg[sof + 5], jpeg[sof + 6]]);
        let w = u16::from_be_bytes([jpeg[sof + 7], jpeg[sof + 8]]);
        assert_eq!((w, h), (320, 180));
    }

    #[test]
    fn garbage_and_unknown_codecs_give_no_still() {
        assert!(still_png("vp8", b"not a frame at all").is_none());
        assert!(still_png("av1", &[0; 64]).is_none());
        assert!(still_png("vp9", &[]).is_none());
        // A VP9 keyframe header (profile 0) declaring 65536 × 65536.
        let huge = [0x82, 0x49, 0x83, 0x42, 0x0f, 0xff, 0xff, 0xff, 0xf0];
        assert_eq!(
            crate::record::vp9::keyframe_size(&huge),
            Some((65536, 65536))
        );
        assert!(still_png("vp9", &huge).is_none());
        // A superframe whose second frame declares 65536 × 65536: only its first, small
        // frame is decoded (libvpx decodes every frame of a superframe).
        let mut sneaky = vp9_ball_keyframe();
        let first = u16::try_from(sneaky.len()).unwrap().to_le_bytes();
        sneaky.extend_from_slice(&huge);
        // Marker 0b110_01_001: two frames, sizes in two bytes each.
        sneaky.extend_from_slice(&[0xc9, first[0], first[1], huge.len() as u8, 0, 0xc9]);
        let (w, h, _) = decode_png(&still_png("vp9", &sneaky).expect("the first frame's still"));
        assert_eq!((w, h), (320, 240));
        // A broken index gives none.
        assert!(still_png("vp9", &[0xc9, 0, 0, 0, 0, 0xc9]).is_none());
        // A keyframe header declaring 16383 × 16383: refused before libvpx sees it.
        let mut huge = vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0xff, 0x3f, 0xff, 0x3f];
        huge.extend_from_slice(&[0; 64]);
        assert!(still_png("vp8", &huge).is_none());
    }
}
