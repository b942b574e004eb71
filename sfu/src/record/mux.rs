//! The recording's WebM file (VP8, VP9 or AV1 video, Opus audio) through libwebm (the
//! `webm` crate's bindings).
//!
//! Why libwebm: it is the WebM project's own muxer (what libvpx's tools and Chromium's
//! MediaRecorder tests use), maintained, and it writes a file that plays while it grows: the
//! segment and each cluster start with an unknown size, and frames are written to the file
//! as they are added, so a node killed mid-recording leaves a file that plays up to the
//! kill. A clean end (`finish`) writes the sizes, the duration and the cues (the seek
//! index). Pure-Rust alternatives were weighed: `matroska` and `mkv` read but do not write,
//! `webm-iterable` writes EBML tags one by one (the container's layout would be ours to
//! get right), `muxide` writes MP4 only.
//!
//! The file is written without a buffer of ours: what libwebm hands over reaches the kernel
//! at once, so a crash of the process loses nothing written.

use std::fs::File;
use std::path::Path;

use webm::mux::{
    AudioCodecId, AudioTrack, Segment, SegmentBuilder, SegmentMode, VideoCodecId, VideoTrack,
    Writer,
};

use super::core::MuxFrame;
use crate::codec::Codec;

/// Why the file could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum MuxError {
    /// The file could not be created.
    #[error("recording file: {0}")]
    Io(#[from] std::io::Error),
    /// libwebm refused (a bad parameter or a frame out of order).
    #[error("webm muxer: {0:?}")]
    Webm(webm::mux::Error),
    /// mp4-atom could not encode a box (a parameter out of its range).
    #[error("mp4 muxer: {0}")]
    Mp4(#[from] mp4_atom::Error),
    /// An H.264 keyframe without its SPS and PPS in band (an AV1 keyframe without its
    /// sequence header): the file cannot start on it.
    #[error("a keyframe without its parameter sets or sequence header")]
    NoParameterSets,
    /// An MP4 value out of range (a fragment over 2 GiB, an audio frame with no track).
    #[error("mp4 muxer: a value out of range")]
    Mp4Order,
}

/// Opus identification header (RFC 7845 §5.1): stereo, 48 kHz, no pre-skip, the
/// `CodecPrivate` of a WebM Opus track.
const OPUS_HEAD: [u8; 19] = [
    b'O', b'p', b'u', b's', b'H', b'e', b'a', b'd', 1, 2, 0, 0, 0x80, 0xbb, 0, 0, 0, 0, 0,
];

/// One WebM file being written.
pub struct WebmFile {
    codec: Codec,
    segment: Segment<File>,
    video: VideoTrack,
    audio: Option<AudioTrack>,
    last_ns: u64,
    frames: u64,
}

impl std::fmt::Debug for WebmFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebmFile")
            .field("frames", &self.frames)
            .finish()
    }
}

impl WebmFile {
    /// Creates `path` with a video track of `codec` (VP8, VP9 or AV1) of `width`×`height`,
    /// its `CodecPrivate` `private` (AV1's `av1C`; VP8 and VP9 have none) and, when
    /// `audio`, an Opus track.
    pub fn create(
        path: &Path,
        codec: Codec,
        private: Option<&[u8]>,
        (width, height): (u32, u32),
        audio: bool,
    ) -> Result<Self, MuxError> {
        let id = match codec {
            Codec::Vp8 => VideoCodecId::VP8,
            Codec::Vp9 => VideoCodecId::VP9,
            Codec::Av1 => VideoCodecId::AV1,
            Codec::H264 | Codec::Opus => return Err(MuxError::Webm(webm::mux::Error::BadParam)),
        };
        let file = File::create(path)?;
        let builder = SegmentBuilder::new(Writer::new(file))
            .and_then(|b| b.set_mode(SegmentMode::File))
            .and_then(|b| b.set_writing_app("cascade"))
            .map_err(MuxError::Webm)?;
        let (builder, video) = builder
            .add_video_track(width, height, id, None)
            .map_err(MuxError::Webm)?;
        let builder = match private {
            Some(p) => builder
                .set_codec_private(video, p)
                .map_err(MuxError::Webm)?,
            None => builder,
        };
        let (builder, audio) = if audio {
            let (b, track) = builder
                .add_audio_track(48_000, 2, AudioCodecId::Opus, None)
                .map_err(MuxError::Webm)?;
            let b = b
                .set_codec_private(track, &OPUS_HEAD)
                .map_err(MuxError::Webm)?;
            (b, Some(track))
        } else {
            (builder, None)
        };
        Ok(WebmFile {
            codec,
            segment: builder.build(),
            video,
            audio,
            last_ns: 0,
            frames: 0,
        })
    }

    /// Its video codec.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Frames written.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// The newest frame's time.
    pub fn duration_ns(&self) -> u64 {
        self.last_ns
    }

    /// Writes a frame at `ns` in the file (an audio frame of a file without audio is
    /// skipped).
    pub fn write(&mut self, f: &MuxFrame, ns: u64) -> Result<(), MuxError> {
        let track: u64 = if f.video {
            self.video.into()
        } else {
            match self.audio {
                Some(a) => a.into(),
                None => return Ok(()),
            }
        };
        self.segment
            .add_frame(track, &f.data, ns, f.keyframe)
            .map_err(MuxError::Webm)?;
        self.last_ns = self.last_ns.max(ns);
        self.frames += 1;
        Ok(())
    }

    /// Ends the file: sizes, duration and cues written.
    pub fn finish(self) -> Result<(), MuxError> {
        // libwebm computes the duration from the frames written.
        self.segment
            .finalize(None)
            .map(|_| ())
            .map_err(|_| MuxError::Webm(webm::mux::Error::Unknown))
    }
}
