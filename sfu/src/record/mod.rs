//! Recording a live stream to WebM or MP4 files: a recorder is a sink of the stream, close to a
//! relay pipe. It takes every layer unrewritten ([`crate::node::Node::record`] attaches a
//! pipe wanting all of them) and its packets leave the media worker the way a pipe's do:
//! one batch per turn, handed to a bounded queue ([`RecorderQueue`]); a full queue drops
//! the batch and counts it (`cascade_forward_drops_total{reason="recorder_queue_full"}`):
//! the worker never waits on the recorder. The recorder's own thread ([`thread`])
//! reassembles frames ([`assemble`]), keeps one continuous timeline over losses,
//! reordering and publisher restarts ([`timeline`], [`core`]), and writes them
//! ([`container`]): VP8, VP9 and AV1 to WebM with libwebm ([`mux`]), H.264 to fragmented
//! MP4 with mp4-atom ([`mp4`], [`mp4index`]; access units and parameter sets in
//! [`h264`]). A finished file is handed to a [`RecordingSink`].
//!
//! Codecs: every video codec the engine forwards (VP8, VP9, H.264, AV1) and Opus audio.
//! str0m's public depacketizers undo VP8 and H.264; its VP9 and AV1 ones are private, so
//! [`vp9`] (the payload descriptor, the base spatial layer of a spatially scalable stream)
//! and [`av1`] (aggregation headers, OBU fragments, the `av1C` of a sequence header) are
//! ours.

pub mod assemble;
pub mod av1;
mod bits;
pub mod container;
pub mod core;
pub mod h264;
pub mod mp4;
pub mod mp4index;
pub mod mux;
pub(crate) mod snapshot;
pub mod thread;
pub mod timeline;
pub mod vp9;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_av1;
#[cfg(test)]
mod tests_mp4;
#[cfg(test)]
pub(crate) mod tests_vp9;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

pub use self::core::{Layers, RecorderCore};
pub use snapshot::Keyframe;
pub use thread::{RecorderQueue, Recording};

/// Which layers a channel records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LayerMode {
    /// The largest picture only: one file.
    #[default]
    Top,
    /// Every encoding: one file each.
    All,
}

/// Where and how a stream is recorded.
#[derive(Debug, Clone)]
pub struct RecordConfig {
    /// The directory the files are written into (created if missing).
    pub dir: PathBuf,
    /// Which layers.
    pub layers: LayerMode,
}

/// A finished recording, as its file's consumer needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingMeta {
    /// The stream (a channel's slug).
    pub stream: String,
    /// The encoding of a per-layer file; `None` for the top layer's.
    pub layer: Option<u8>,
    /// When the recording started.
    pub started_at: SystemTime,
    /// Media time recorded.
    pub duration: Duration,
    /// Frames written (audio and video).
    pub frames: u64,
    /// The picture size at the start.
    pub width: u32,
    /// The picture size at the start.
    pub height: u32,
    /// Publisher sessions the file spans (more than one after a restart).
    pub generations: u32,
}

/// Where a finished recording goes: the hand-over to whatever keeps videos (the content
/// library). Called on the recorder's thread once the file is complete and closed.
pub trait RecordingSink: Send + Sync {
    /// `path` holds the finished file (WebM or MP4, by its extension) described by `meta`.
    fn finished(&self, meta: &RecordingMeta, path: &Path);
}

/// A sink that leaves finished files where they are and logs them.
#[derive(Debug, Default, Clone, Copy)]
pub struct KeepInPlace;

impl RecordingSink for KeepInPlace {
    fn finished(&self, meta: &RecordingMeta, path: &Path) {
        tracing::info!(
            stream = %meta.stream,
            path = %path.display(),
            seconds = meta.duration.as_secs_f64(),
            frames = meta.frames,
            "recording finished"
        );
    }
}
