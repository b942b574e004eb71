//! The ladder's codec-specific parts, so that one [`super::Ladder`] runs a VP8 source and
//! an H.264 one alike: the source's decoder ([`SourceDecoder`]), the size a frame declares
//! before any decoding ([`declares_over`]), a rung's encoder ([`RungEncoder`]) and its RTP
//! payloader ([`Payloader`]). A rung carries its source's codec, so that a viewer takes it
//! on the payload type its session already negotiated for the source.
//!
//! VP8 is decoded and encoded with libvpx ([`super::vpx`]); H.264 with OpenH264
//! ([`super::h264dec`], [`super::h264enc`]).

use super::h264dec::{self, H264Error};
use super::h264enc;
use super::packetize::{H264Payloader, LayerPacket, Vp8Payloader};
use super::scale::I420;
use super::vpx::{self, VpxError};
use crate::codec::Codec;

/// Whether the ladder takes a source of `codec`.
pub fn ladders(codec: Codec) -> bool {
    matches!(codec, Codec::Vp8 | Codec::H264)
}

/// How one layer is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderConfig {
    /// Picture width (even).
    pub width: usize,
    /// Picture height (even).
    pub height: usize,
    /// Target bitrate in kbit/s.
    pub kbps: u32,
    /// libvpx's `cpu-used` (speed, −16..16; higher is faster); VP8 only.
    pub cpu_used: i32,
    /// A keyframe at least this often, in frames.
    pub keyframe_max_dist: u32,
}

impl EncoderConfig {
    /// Real-time settings for a picture of this size: ~0.1 bit per pixel at 30 fps.
    pub fn realtime(width: usize, height: usize) -> Self {
        let kbps = ((width * height * 3) / 1000).clamp(100, 2500) as u32;
        EncoderConfig {
            width,
            height,
            kbps,
            cpu_used: 12,
            keyframe_max_dist: 300,
        }
    }
}

impl EncoderConfig {
    /// The picture's size and this config's, when they differ (an encoder takes one size).
    pub fn mismatch(&self, pic: &I420) -> Option<((usize, usize), (usize, usize))> {
        let want = (self.width, self.height);
        ((pic.width, pic.height) != want).then_some(((pic.width, pic.height), want))
    }
}

/// One encoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// The VP8 frame, or the H.264 access unit in Annex B.
    pub data: Vec<u8>,
    /// Whether it is a keyframe (an IDR picture for H.264).
    pub keyframe: bool,
}

/// What a codec refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CodingError {
    /// libvpx's refusal.
    #[error(transparent)]
    Vpx(#[from] VpxError),
    /// OpenH264's refusal.
    #[error(transparent)]
    H264(#[from] H264Error),
    /// A codec the ladder does not take.
    #[error("{0:?} is not laddered")]
    Unsupported(Codec),
}

/// The source's decoder.
#[derive(Debug)]
pub enum SourceDecoder {
    /// libvpx.
    Vp8(vpx::Decoder),
    /// OpenH264.
    H264(h264dec::Decoder),
}

impl SourceDecoder {
    /// A decoder for `codec` whose pictures are at most `max_pixels`.
    pub fn new(codec: Codec, max_pixels: usize) -> Result<Self, CodingError> {
        Ok(match codec {
            Codec::Vp8 => SourceDecoder::Vp8(vpx::Decoder::new()?),
            Codec::H264 => SourceDecoder::H264(h264dec::Decoder::new(max_pixels)?),
            c => return Err(CodingError::Unsupported(c)),
        })
    }

    /// Decodes one frame (a VP8 frame, an H.264 access unit in AVC form); `None` when it
    /// gives no picture.
    pub fn decode(&mut self, frame: &[u8]) -> Result<Option<I420>, CodingError> {
        Ok(match self {
            SourceDecoder::Vp8(d) => d.decode(frame)?,
            SourceDecoder::H264(d) => d.decode(frame)?,
        })
    }
}

/// Whether a frame of `codec` declares a picture over `max_pixels` (or one that cannot be
/// read), before any decoding: a VP8 keyframe in its header, an H.264 access unit in any
/// SPS it carries (the decoders would allocate for whatever is declared).
pub fn declares_over(codec: Codec, frame: &[u8], keyframe: bool, max_pixels: usize) -> bool {
    match codec {
        Codec::Vp8 => {
            keyframe && super::ladder::keyframe_size(frame).is_some_and(|(w, h)| w * h > max_pixels)
        }
        Codec::H264 => !h264dec::declared_fits(frame, max_pixels),
        _ => true,
    }
}

/// A rung's encoder.
#[derive(Debug)]
pub enum RungEncoder {
    /// libvpx.
    Vp8(vpx::Encoder),
    /// OpenH264 (boxed: its encoder holds its bitstream info inline, kilobytes).
    H264(Box<h264enc::Encoder>),
}

impl RungEncoder {
    /// An encoder of `codec` for `config`.
    pub fn new(codec: Codec, config: EncoderConfig) -> Result<Self, CodingError> {
        Ok(match codec {
            Codec::Vp8 => RungEncoder::Vp8(vpx::Encoder::new(config)?),
            Codec::H264 => RungEncoder::H264(Box::new(h264enc::Encoder::new(config)?)),
            c => return Err(CodingError::Unsupported(c)),
        })
    }

    /// Its settings.
    pub fn config(&self) -> EncoderConfig {
        match self {
            RungEncoder::Vp8(e) => e.config(),
            RungEncoder::H264(e) => e.config(),
        }
    }

    /// Encodes one picture at 90 kHz time `pts`; a keyframe when `keyframe`.
    pub fn encode(
        &mut self,
        pic: &I420,
        pts: i64,
        keyframe: bool,
    ) -> Result<Vec<Encoded>, CodingError> {
        Ok(match self {
            RungEncoder::Vp8(e) => e.encode(pic, pts, keyframe)?,
            RungEncoder::H264(e) => e.encode(pic, pts, keyframe)?,
        })
    }
}

/// A rung's packetizer: its sequence numbers (and VP8's picture ids) go on across a
/// rebuild of its encoder.
#[derive(Debug, Clone)]
pub enum Payloader {
    /// RFC 7741, with a picture id.
    Vp8(Vp8Payloader),
    /// RFC 6184, packetization mode 1.
    H264(H264Payloader),
}

impl Payloader {
    /// A payloader of `codec` starting at `seq` (and VP8 picture id `picture_id`).
    pub fn new(codec: Codec, seq: u16, picture_id: u16) -> Self {
        match codec {
            Codec::H264 => Payloader::H264(H264Payloader::new(seq)),
            _ => Payloader::Vp8(Vp8Payloader::new(seq, picture_id)),
        }
    }

    /// The packets of one encoded frame, appended to `out`.
    pub fn packetize(&mut self, frame: &[u8], ts: u32, keyframe: bool, out: &mut Vec<LayerPacket>) {
        match self {
            Payloader::Vp8(p) => p.packetize(frame, ts, keyframe, out),
            Payloader::H264(p) => p.packetize(frame, ts, keyframe, out),
        }
    }
}
