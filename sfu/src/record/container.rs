//! The recording's container, chosen per file from the video codec of its first keyframe:
//! VP8, VP9 and AV1 go to WebM ([`WebmFile`], libwebm; AV1's track carries the `av1C` of
//! the first keyframe's sequence header), H.264 to fragmented MP4 ([`Mp4File`],
//! mp4-atom). Both write frames to the file as they come (a crash leaves what was written
//! playable) and are finished the same way.
//!
//! A file's time starts at its first keyframe: what the recording's timeline placed before
//! it (the wait for a keyframe when the recording joined mid-picture group, audio that came
//! first) is not a blank lead in the file. Each file of an all-layers recording starts at its
//! own layer's first keyframe.
//!
//! A file keeps the video codec it began with: after a publisher restart with another
//! video codec, that codec's frames are skipped (the recorder counts and logs them) and
//! the audio goes on.

use std::path::{Path, PathBuf};

use super::core::MuxFrame;
use super::mp4::Mp4File;
use super::mux::{MuxError, WebmFile};
use super::{av1, h264};
use crate::codec::Codec;

/// One recording file being written.
#[derive(Debug)]
pub struct MuxFile {
    container: Container,
    /// The recording time of the first keyframe: the file's time zero.
    start_ns: u64,
}

#[derive(Debug)]
enum Container {
    /// VP8, VP9 or AV1 (and Opus) in WebM.
    Webm(WebmFile),
    /// H.264 (and Opus) in MP4 (boxed: it holds its `moov` for the end).
    Mp4(Box<Mp4File>),
}

/// The file name's extension for a video codec, when the recorder takes it.
pub fn extension(codec: Codec) -> Option<&'static str> {
    match codec {
        Codec::Vp8 | Codec::Vp9 | Codec::Av1 => Some("webm"),
        Codec::H264 => Some("mp4"),
        Codec::Opus => None,
    }
}

impl MuxFile {
    /// Creates the file for a recording whose first video keyframe is `first` (its codec
    /// picks the container), at `stem` plus the container's extension; `audio` adds an
    /// Opus track.
    pub fn create(stem: &Path, first: &MuxFrame, audio: bool) -> Result<(Self, PathBuf), MuxError> {
        let ext = extension(first.codec).ok_or(MuxError::Mp4Order)?;
        let (w, h) = first.size.ok_or(MuxError::Mp4Order)?;
        let path = stem.with_extension(ext);
        let container = match first.codec {
            Codec::H264 => {
                let sets = h264::parameter_sets(&first.data).ok_or(MuxError::NoParameterSets)?;
                Container::Mp4(Box::new(Mp4File::create(&path, w, h, sets, audio)?))
            }
            Codec::Av1 => {
                let config = av1::codec_config(&first.data).ok_or(MuxError::NoParameterSets)?;
                Container::Webm(WebmFile::create(
                    &path,
                    first.codec,
                    Some(&config),
                    (w, h),
                    audio,
                )?)
            }
            _ => Container::Webm(WebmFile::create(&path, first.codec, None, (w, h), audio)?),
        };
        let file = MuxFile {
            container,
            start_ns: first.ns,
        };
        Ok((file, path))
    }

    fn codec(&self) -> Codec {
        match &self.container {
            Container::Webm(w) => w.codec(),
            Container::Mp4(_) => Codec::H264,
        }
    }

    /// Writes a frame (of the recording's time, in time order from the first keyframe on):
    /// whether it was, `false` for a video frame of another codec than the file's (skipped).
    pub fn write(&mut self, f: &MuxFrame) -> Result<bool, MuxError> {
        if f.video && f.codec != self.codec() {
            return Ok(false);
        }
        let ns = f.ns.saturating_sub(self.start_ns);
        match &mut self.container {
            Container::Webm(w) => w.write(f, ns)?,
            Container::Mp4(m) => m.write(f, ns)?,
        }
        Ok(true)
    }

    /// Frames written.
    pub fn frames(&self) -> u64 {
        match &self.container {
            Container::Webm(w) => w.frames(),
            Container::Mp4(m) => m.frames(),
        }
    }

    /// The newest frame's time in the file.
    pub fn duration_ns(&self) -> u64 {
        match &self.container {
            Container::Webm(w) => w.duration_ns(),
            Container::Mp4(m) => m.duration_ns(),
        }
    }

    /// Ends the file (sizes, duration and seek index written).
    pub fn finish(self) -> Result<(), MuxError> {
        match self.container {
            Container::Webm(w) => w.finish(),
            Container::Mp4(m) => m.finish(),
        }
    }
}
