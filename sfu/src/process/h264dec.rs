//! H.264 decoded with Cisco's OpenH264 (the `openh264` crate, built from its bundled
//! source): keyframes for stills ([`decode_keyframe`]), and a single-layer H.264 source for
//! the ladder ([`Decoder`], one access unit after another). An access unit comes in AVC
//! form, as the recorder's depacketizer and an MP4 sample hold it
//! ([`crate::record::h264`]): each NAL unit after its 4-byte length, the sequence and
//! picture parameter sets before an IDR picture.
//!
//! Every SPS in it is read first (`h264-reader`, [`crate::record::h264::sps_size`]): one
//! that does not parse, or that declares a picture over the caller's limit, refuses the
//! frame before OpenH264 sees it, as the VP8 path refuses an oversized keyframe before
//! libvpx. Error concealment is off (the crate's default): a frame that does not decode,
//! or refers to one that is missing, is an error, not a guessed picture.

use openh264::decoder::DecodedYUV;
use openh264::formats::YUVSource;

use super::scale::{chroma_size, I420};
use super::still::MAX_PIXELS;
use crate::record::h264::{is_idr, nal_units, parameter_sets, sps_size};

/// What OpenH264 refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum H264Error {
    /// The decoder or encoder could not be set up.
    #[error("openh264 init failed: {0}")]
    Init(String),
    /// An access unit did not decode (corrupt, or it needs a picture that is missing).
    #[error("openh264 decode failed: {0}")]
    Decode(String),
    /// A picture did not encode.
    #[error("openh264 encode failed: {0}")]
    Encode(String),
    /// A picture of a size the encoder was not made for, or a decoded one out of bounds.
    #[error("picture is {got:?}, expected {want:?}")]
    Size {
        /// The picture's size.
        got: (usize, usize),
        /// The size expected (the encoder's, or the largest taken).
        want: (usize, usize),
    },
}

/// An H.264 decoder for one stream: access units in AVC form in, pictures out.
pub struct Decoder {
    inner: openh264::decoder::Decoder,
    /// The access unit in Annex B, reused.
    stream: Vec<u8>,
    max_pixels: usize,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("h264dec::Decoder")
    }
}

impl Decoder {
    /// A decoder (one thread) whose pictures are at most `max_pixels` (larger ones, which
    /// the caller should have refused by their SPS, are errors).
    pub fn new(max_pixels: usize) -> Result<Self, H264Error> {
        let inner =
            openh264::decoder::Decoder::new().map_err(|e| H264Error::Init(e.to_string()))?;
        Ok(Decoder {
            inner,
            stream: Vec::new(),
            max_pixels,
        })
    }

    /// Decodes one access unit in AVC form; `None` when it gives no picture (parameter
    /// sets alone).
    pub fn decode(&mut self, au: &[u8]) -> Result<Option<I420>, H264Error> {
        annex_b(au, &mut self.stream);
        let max = self.max_pixels;
        match self.inner.decode(&self.stream) {
            Ok(Some(yuv)) => i420(&yuv, max).map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(H264Error::Decode(e.to_string())),
        }
    }
}

/// NAL unit type of a sequence parameter set.
const SPS: u8 = 7;

/// The picture of an IDR access unit in AVC form that carries its SPS and PPS; `None` when
/// it is none, declares a picture over [`MAX_PIXELS`], or does not decode.
pub fn decode_keyframe(au: &[u8]) -> Option<I420> {
    if !is_idr(au) || parameter_sets(au).is_none() || !declared_fits(au, MAX_PIXELS) {
        return None;
    }
    let mut decoder = Decoder::new(MAX_PIXELS).ok()?;
    if let Ok(Some(picture)) = decoder.decode(au) {
        return Some(picture);
    }
    // A decoder that held the picture back gives it on a flush.
    let frames = decoder.inner.flush_remaining().ok()?;
    frames.first().and_then(|f| i420(f, MAX_PIXELS).ok())
}

/// Whether every SPS of an access unit parses and declares at most `max_pixels`: each, not
/// only the first, since the PPS may name any of them. One without an SPS fits.
pub fn declared_fits(au: &[u8], max_pixels: usize) -> bool {
    nal_units(au)
        .filter(|n| n.first().is_some_and(|b| b & 0x1f == SPS))
        .all(|sps| sps_size(sps).is_some_and(|(w, h)| (w as usize) * (h as usize) <= max_pixels))
}

/// The NAL units of an AVC-form access unit in Annex B (each after a 4-byte start code),
/// the form OpenH264 reads, into `out`.
fn annex_b(au: &[u8], out: &mut Vec<u8>) {
    out.clear();
    for nal in nal_units(au) {
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(nal);
    }
}

/// OpenH264's picture (planes with strides) packed into an [`I420`]. H.264 crops 4:2:0
/// pictures by whole chroma samples, so both sides are even.
fn i420(yuv: &DecodedYUV<'_>, max_pixels: usize) -> Result<I420, H264Error> {
    let (width, height) = yuv.dimensions();
    let bad = || H264Error::Size {
        got: (width, height),
        want: (max_pixels, 1),
    };
    if width == 0 || height == 0 || width.saturating_mul(height) > max_pixels {
        return Err(bad());
    }
    let (ys, us, vs) = yuv.strides();
    let (cw, ch) = chroma_size(width, height);
    Ok(I420 {
        width,
        height,
        y: plane(yuv.y(), ys, width, height).ok_or_else(bad)?,
        u: plane(yuv.u(), us, cw, ch).ok_or_else(bad)?,
        v: plane(yuv.v(), vs, cw, ch).ok_or_else(bad)?,
    })
}

/// `h` rows of `w` samples, `stride` apart in `src`.
fn plane(src: &[u8], stride: usize, w: usize, h: usize) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(w * h);
    for row in 0..h {
        out.extend_from_slice(src.get(row * stride..row * stride + w)?);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::still::{still_jpeg, still_png};
    use crate::record::h264::avc;
    use openh264::encoder::Encoder;
    use openh264::formats::YUVBuffer;

    /// An H.264 keyframe of `p` from OpenH264's encoder (its first frame: SPS, PPS, IDR),
    /// in AVC form as the recorder's depacketizer gives it.
    pub(crate) fn h264_keyframe(p: &I420) -> Vec<u8> {
        let yuv = YUVBuffer::from_vec([&p.y[..], &p.u, &p.v].concat(), p.width, p.height);
        let mut enc = Encoder::new().unwrap();
        let bits = enc.encode(&yuv).unwrap();
        let mut nals = Vec::new();
        for l in 0..bits.num_layers() {
            let layer = bits.layer(l).unwrap();
            for n in 0..layer.nal_count() {
                // Each NAL unit after its start code (00 00 01 or 00 00 00 01).
                let nal = layer.nal_unit(n).unwrap();
                let start = nal.iter().position(|&b| b != 0).unwrap() + 1;
                nals.push(nal[start..].to_vec());
            }
        }
        avc(&nals.iter().map(Vec::as_slice).collect::<Vec<_>>())
    }

    /// The middle pixel of an RGB PNG, with its size.
    fn png_middle(png: &[u8]) -> ((u32, u32), [u8; 3]) {
        let mut reader = png::Decoder::new(std::io::Cursor::new(png))
            .read_info()
            .unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        let (w, h) = (info.width, info.height);
        let mid = (((h / 2) * w + w / 2) * 3) as usize;
        ((w, h), [buf[mid], buf[mid + 1], buf[mid + 2]])
    }

    #[test]
    fn a_720p_h264_keyframe_becomes_a_320_wide_still_of_its_colour() {
        // Pure red in BT.601 limited range.
        let keyframe = h264_keyframe(&I420::filled(1280, 720, 81, 90, 240));
        assert_eq!(
            crate::record::h264::frame_size(&keyframe),
            Some((1280, 720))
        );
        let picture = decode_keyframe(&keyframe).expect("it decodes");
        assert_eq!((picture.width, picture.height), (1280, 720));
        let ((w, h), [r, g, b]) = png_middle(&still_png("h264", &keyframe).expect("a still"));
        assert_eq!((w, h), (320, 180));
        assert!(r > 230 && g < 30 && b < 30, "red came out as {r},{g},{b}");
        let jpeg = still_jpeg("h264", &keyframe).expect("a still");
        assert!(jpeg.starts_with(&[0xFF, 0xD8, 0xFF]) && jpeg.ends_with(&[0xFF, 0xD9]));
    }

    #[test]
    fn a_small_h264_keyframe_keeps_its_size_and_colour() {
        // Blue, 160×120 (not halved: already narrower than a card).
        let keyframe = h264_keyframe(&I420::filled(160, 120, 41, 240, 110));
        let ((w, h), [r, g, b]) = png_middle(&still_png("h264", &keyframe).unwrap());
        assert_eq!((w, h), (160, 120));
        assert!(b > 230 && r < 30 && g < 30, "blue came out as {r},{g},{b}");
    }

    /// Bits written most significant first, with H.264's unsigned Exp-Golomb codes.
    #[derive(Default)]
    struct Bits(Vec<bool>);

    impl Bits {
        fn u(&mut self, n: u32, v: u32) {
            (0..n).rev().for_each(|i| self.0.push(v >> i & 1 == 1));
        }
        fn ue(&mut self, v: u32) {
            let len = 32 - (v + 1).leading_zeros();
            self.u(len - 1, 0);
            self.u(len, v + 1);
        }
        fn bytes(mut self) -> Vec<u8> {
            // rbsp_stop_one_bit, then zeros to a byte.
            self.0.push(true);
            while !self.0.len().is_multiple_of(8) {
                self.0.push(false);
            }
            let b = self.0.chunks(8);
            b.map(|c| c.iter().fold(0u8, |a, &x| a << 1 | u8::from(x)))
                .collect()
        }
    }

    /// A baseline SPS (id 0) declaring `w × h` (multiples of 16).
    fn sps(w: u32, h: u32) -> Vec<u8> {
        let mut b = Bits::default();
        b.u(8, 66); // profile_idc: baseline
        b.u(8, 0xc0); // constraint flags
        b.u(8, 62); // level_idc: 6.2, whose frame size limit h264-reader holds 8K within
        b.ue(0); // seq_parameter_set_id
        b.ue(0); // log2_max_frame_num_minus4
        b.ue(2); // pic_order_cnt_type
        b.ue(1); // max_num_ref_frames
        b.u(1, 0); // gaps_in_frame_num_value_allowed_flag
        b.ue(w / 16 - 1);
        b.ue(h / 16 - 1);
        b.u(1, 1); // frame_mbs_only_flag
        b.u(1, 1); // direct_8x8_inference_flag
        b.u(1, 0); // frame_cropping_flag
        b.u(1, 0); // vui_parameters_present_flag
        [&[0x67][..], &b.bytes()].concat()
    }

    #[test]
    fn a_declared_size_over_4k_is_refused_before_decoding() {
        let real = h264_keyframe(&I420::filled(160, 120, 128, 128, 128));
        let nals: Vec<&[u8]> = nal_units(&real).collect();
        // The writer above agrees with h264-reader on a size it may declare.
        assert_eq!(sps_size(&sps(1280, 720)), Some((1280, 720)));
        assert_eq!(sps_size(&sps(7680, 4320)), Some((7680, 4320)));
        // 8K (within H.264's levels, over MAX_PIXELS), and past what is read at all.
        for (w, h) in [(7680, 4320), (16384, 16)] {
            let huge = sps(w, h);
            let swapped: Vec<&[u8]> = nals
                .iter()
                .map(|n| if n[0] & 0x1f == SPS { &huge[..] } else { n })
                .collect();
            assert!(!declared_fits(&avc(&swapped), MAX_PIXELS), "{w}×{h}");
            assert!(decode_keyframe(&avc(&swapped)).is_none(), "{w}×{h}");
            // A second SPS, behind the real one, is read too.
            let mut more = nals.clone();
            more.insert(1, &huge);
            assert!(!declared_fits(&avc(&more), MAX_PIXELS), "{w}×{h} second");
            assert!(decode_keyframe(&avc(&more)).is_none(), "{w}×{h} second");
        }
        // 4K itself is taken.
        let mut k4 = nals.clone();
        let sps_4k = sps(3840, 2160);
        k4.insert(1, &sps_4k);
        assert!(declared_fits(&avc(&k4), MAX_PIXELS));
        assert!(declared_fits(&real, MAX_PIXELS) && decode_keyframe(&real).is_some());
    }

    #[test]
    fn garbage_gives_no_still() {
        let real = h264_keyframe(&I420::filled(320, 240, 60, 100, 160));
        assert!(decode_keyframe(&[]).is_none());
        assert!(still_png("h264", b"not an access unit at all").is_none());
        // An IDR picture without its parameter sets; parameter sets without a picture.
        let nals: Vec<&[u8]> = nal_units(&real).collect();
        let idr: Vec<&[u8]> = nals.iter().copied().filter(|n| n[0] & 0x1f == 5).collect();
        assert!(decode_keyframe(&avc(&idr)).is_none());
        assert!(decode_keyframe(&avc(&nals[..2])).is_none());
        // Cut anywhere, or with its bytes overwritten: nothing, or a picture, never a panic.
        for cut in (0..real.len()).step_by(7) {
            let _ = still_png("h264", &real[..cut]);
        }
        let mut flipped = real.clone();
        for i in (40..flipped.len()).step_by(11) {
            flipped[i] ^= 0x5a;
            let _ = still_png("h264", &flipped);
        }
        let mut noise = real[..40].to_vec();
        noise.extend((0..4000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8));
        let _ = still_png("h264", &noise);
    }
}
