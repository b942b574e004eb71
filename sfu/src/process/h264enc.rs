//! H.264 encoding of the ladder's rungs with OpenH264's encoder (the `openh264` crate, the
//! same bundled Cisco source as the decoder, [`super::h264dec`]).
//!
//! Set for live use: camera real-time usage, the baseline profile (no B-frames: one
//! picture in, one access unit out, which OpenH264 writes as constrained baseline,
//! `profile_idc` 66 with `constraint_set1`), rate control by bitrate at ~0.1 bit per pixel
//! at 30 fps (the VP8 rungs' rate, [`EncoderConfig::realtime`]), no picture skipped (as
//! the VP8 rungs), low complexity, one thread, one slice per picture, an IDR picture when
//! asked and at least every [`EncoderConfig::keyframe_max_dist`] pictures, each after its
//! SPS and PPS. OpenH264 picks the level from the picture size and bitrate: 3.0 at
//! 640×360, 1.3 at 320×180 (checked in the tests), within the 3.1 of the `42e01f` that a
//! browser's offer and OBS's carry.

use openh264::encoder::{
    BitRate, Complexity, FrameRate, FrameType, IntraFramePeriod, Profile, RateControlMode,
    UsageType,
};
use openh264::formats::YUVSource;
use openh264::{OpenH264API, Timestamp};

use super::coding::{Encoded, EncoderConfig};
use super::h264dec::H264Error;
use super::scale::I420;

/// The frame rate rate control plans for (the VP8 rungs' too).
const FPS: f32 = 30.0;

impl YUVSource for I420 {
    fn dimensions(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    fn strides(&self) -> (usize, usize, usize) {
        let (cw, _) = self.chroma_size();
        (self.width, cw, cw)
    }

    fn y(&self) -> &[u8] {
        &self.y
    }

    fn u(&self) -> &[u8] {
        &self.u
    }

    fn v(&self) -> &[u8] {
        &self.v
    }
}

/// An H.264 encoder in real-time mode.
pub struct Encoder {
    inner: openh264::encoder::Encoder,
    config: EncoderConfig,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("h264enc::Encoder")
            .field("config", &self.config)
            .finish()
    }
}

impl Encoder {
    /// An encoder for `config` (`cpu_used` is libvpx's and not read here).
    pub fn new(config: EncoderConfig) -> Result<Self, H264Error> {
        let settings = openh264::encoder::EncoderConfig::new()
            .usage_type(UsageType::CameraVideoRealTime)
            .profile(Profile::Baseline)
            .rate_control_mode(RateControlMode::Bitrate)
            .bitrate(BitRate::from_bps(config.kbps.saturating_mul(1000)))
            .max_frame_rate(FrameRate::from_hz(FPS))
            // No picture skipped, as the VP8 rungs drop none: a viewer moved onto a rung
            // gets its keyframe and the frames after it without a stall. Rate control
            // still holds the bitrate by the quantizer (172 kbit/s measured for a 172 kbit/s
            // 320×180 rung over 5 s); OpenH264 warns once, at its start, that it cannot
            // cap it by skipping.
            .skip_frames(false)
            .complexity(Complexity::Low)
            .num_threads(1)
            .intra_frame_period(IntraFramePeriod::from_num_frames(config.keyframe_max_dist))
            // Keyframes when asked or due, not when the picture changes a lot.
            .scene_change_detect(false);
        let inner =
            openh264::encoder::Encoder::with_api_config(OpenH264API::from_source(), settings)
                .map_err(|e| H264Error::Init(e.to_string()))?;
        Ok(Encoder { inner, config })
    }

    /// Its settings.
    pub fn config(&self) -> EncoderConfig {
        self.config
    }

    /// Encodes one picture at 90 kHz time `pts`; an IDR picture (after its SPS and PPS)
    /// when `keyframe`. The access unit comes in Annex B (each NAL unit after a start
    /// code), what an RTP packetizer splits.
    pub fn encode(
        &mut self,
        pic: &I420,
        pts: i64,
        keyframe: bool,
    ) -> Result<Vec<Encoded>, H264Error> {
        if let Some((got, want)) = self.config.mismatch(pic) {
            return Err(H264Error::Size { got, want });
        }
        if keyframe {
            self.inner.force_intra_frame();
        }
        let ms = u64::try_from(pts.max(0) / 90).unwrap_or(0);
        let bits = self
            .inner
            .encode_at(pic, Timestamp::from_millis(ms))
            .map_err(|e| H264Error::Encode(e.to_string()))?;
        let keyframe = match bits.frame_type() {
            FrameType::IDR => true,
            FrameType::Skip | FrameType::Invalid => return Ok(Vec::new()),
            _ => false,
        };
        let data = bits.to_vec();
        if data.is_empty() {
            return Ok(Vec::new());
        }
        Ok(vec![Encoded { data, keyframe }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idr_picture_first_when_asked_and_at_least_every_300() {
        let mut enc = Encoder::new(EncoderConfig::realtime(160, 90)).unwrap();
        let mut keys = Vec::new();
        for t in 0..601 {
            let pic = crate::process::tests::picture(160, 90, t);
            let out = enc.encode(&pic, t as i64 * 3000, t == 100).unwrap();
            assert_eq!(out.len(), 1, "one access unit per picture, none skipped");
            if out[0].keyframe {
                keys.push(t);
            }
        }
        assert_eq!(
            keys,
            [0, 100, 400],
            "the first, the one asked for, 300 after it"
        );
    }

    #[test]
    fn a_picture_of_another_size_is_an_error() {
        let mut enc = Encoder::new(EncoderConfig::realtime(320, 180)).unwrap();
        assert!(matches!(
            enc.encode(&I420::filled(640, 360, 0, 128, 128), 0, false),
            Err(H264Error::Size { .. })
        ));
    }
}
