//! What a router fans a stream out to: a viewer (one continuous stream per kind, one layer
//! at a time, rewritten) or a pipe (every wanted layer, unrewritten). One enum rather than
//! a trait object: the fan-out loop matches on it, with no indirect call per packet.

use std::time::Instant;

use super::layers::LayerPref;
use super::pipe::PipeConsumer;
use super::timeline::Anchor;
use super::{Consumer, DropReason, Forward, MediaPacket, SourceKey};

/// One sink of a stream.
// Unboxed on purpose: the fan-out walks a stream's sinks in one contiguous vector, and a
// boxed viewer would add a pointer chase per viewer per packet; a pipe wastes the space.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Sink {
    /// A WebRTC viewer: a simulcast consumer.
    Viewer(Consumer),
    /// A relay link: every wanted layer in the publisher's numbering.
    Pipe(PipeConsumer),
}

impl Sink {
    /// Decides, selects and (for a viewer) rewrites one packet.
    #[inline]
    pub fn forward(&mut self, pkt: &MediaPacket, now: Instant) -> Result<Forward, DropReason> {
        match self {
            Sink::Viewer(c) => c.forward(pkt, now),
            Sink::Pipe(p) => p.forward(pkt, now),
        }
    }

    /// A viewer's video timeline, when it moved since last taken (a pipe has none: its
    /// far side places its own viewers).
    #[inline]
    pub fn take_timeline(&mut self) -> Option<Anchor> {
        match self {
            Sink::Viewer(c) => c.take_timeline(),
            Sink::Pipe(_) => None,
        }
    }

    /// The source whose keyframe this sink waits for.
    #[inline]
    pub fn waiting_for_keyframe(&self) -> Option<SourceKey> {
        match self {
            Sink::Viewer(c) => c.waiting_for_keyframe(),
            Sink::Pipe(p) => p.waiting_for_keyframe(),
        }
    }

    /// The video source a viewer now receives (a pipe has no single one).
    pub fn current_video(&self) -> Option<SourceKey> {
        match self {
            Sink::Viewer(c) => c.current_video(),
            Sink::Pipe(_) => None,
        }
    }

    /// The publisher generation the sink receives now (a viewer's video, a pipe's layers).
    pub fn generation(&self) -> Option<u32> {
        match self {
            Sink::Viewer(c) => c.current_video().map(|k| k.generation),
            Sink::Pipe(p) => p.generation(),
        }
    }

    /// Changes a viewer's wanted layer; a pipe's wants are set as a mask. Returns whether
    /// the sink took it.
    pub fn set_pref(&mut self, pref: LayerPref) -> bool {
        match self {
            Sink::Viewer(c) => {
                c.set_pref(pref);
                true
            }
            Sink::Pipe(_) => false,
        }
    }

    /// The encodings this sink asks of the source, a bit each.
    pub fn demand(&self) -> u8 {
        match self {
            Sink::Viewer(c) => c
                .target_video()
                .and_then(|k| 1u8.checked_shl(u32::from(k.encoding)))
                .unwrap_or(0),
            Sink::Pipe(p) => p.wanted(),
        }
    }
}
