//! The node's side of relay links between nodes: a link from a parent is a stream's source
//! here ([`RelaySource`]), a link to a child is a pipe sink ([`Pipe`]). This crate knows
//! nothing of QUIC: the driver (`edge-relay`) moves [`RelayPacket`]s, and the node's
//! handles below move them in and out of the workers.
//!
//! - [`rtp`]: the relay's RTP packets (the publisher's numbering, codec in the payload
//!   type, upstream generation in the SSRC).
//! - [`source`]: a link's packets turned into [`MediaPacket`](crate::forward::MediaPacket)s
//!   by a Producer (sans-I/O, on the worker that hosts the source).

pub mod rtp;
pub mod source;

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::ids::{LinkId, StreamId};
use crate::worker::{Command, Shared};

/// The wire layer number of audio (video layers are their encoding, `0..4`).
pub const AUDIO_LAYER: u8 = 7;

/// One RTP packet on a relay link.
#[derive(Debug, Clone)]
pub struct RelayPacket {
    /// Its layer: a video encoding `0..4`, or [`AUDIO_LAYER`].
    pub layer: u8,
    /// It starts a keyframe.
    pub keyframe: bool,
    /// The relay RTP packet ([`rtp`]).
    pub rtp: Bytes,
}

/// Where a pipe's packets go: the link to a child. Called on a media worker once a turn with
/// the turn's packets for the link (one hand-over, one wake-up of the link's task, however
/// many packets): must not block (a full queue drops the batch and says so).
pub trait PipeOut: Send + Sync {
    /// Sends a turn's packets, in order; false when they were dropped.
    fn send(&self, packets: Vec<RelayPacket>) -> bool;
}

/// What the workers ask of the relay links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayRequest {
    /// Ask the parent of `link` for a keyframe of `layer` (already throttled).
    Keyframe {
        /// The link (a [`RelaySource`]).
        link: LinkId,
        /// Its wire layer.
        layer: u8,
    },
    /// The video layers (wire layers, a bit each) the sinks of `stream` on `worker` want
    /// now: a link pulls the union over the workers.
    Demand {
        /// The stream ([`RelaySource::stream`]).
        stream: StreamId,
        /// The worker reporting.
        worker: usize,
        /// The layers, a bit each.
        layers: u8,
    },
}

/// A link from a parent feeding a stream on one worker. Dropping it removes the source.
pub struct RelaySource {
    pub(crate) link: LinkId,
    pub(crate) stream: StreamId,
    pub(crate) name: String,
    pub(crate) worker: mpsc::Sender<Command>,
    pub(crate) shared: Arc<Shared>,
}

impl RelaySource {
    /// Its link id (what [`RelayRequest`]s name).
    pub fn link(&self) -> LinkId {
        self.link
    }

    /// The stream it feeds (what [`RelayRequest::Demand`] names).
    pub fn stream(&self) -> StreamId {
        self.stream
    }

    /// The layers the parent has (wire layer, bitrate), flowing here or not: the table
    /// viewers choose from.
    pub fn set_layers(&self, layers: Vec<(u8, u64)>) {
        let _ = self.worker.try_send(Command::RelayLayers {
            link: self.link,
            layers,
        });
    }

    /// Hands packets to the worker; false (and counted) when its queue is full.
    pub fn push(&self, batch: Vec<RelayPacket>) -> bool {
        let n = batch.len() as u64;
        let ok = self
            .worker
            .try_send(Command::RelayMedia {
                link: self.link,
                batch,
            })
            .is_ok();
        if !ok {
            self.shared
                .metrics
                .forward_drops
                .with_label_values(&["worker_queue_full"])
                .inc_by(n);
        }
        ok
    }

    /// The link moved to another parent: a new source generation from the next packet on
    /// (viewers splice at its keyframe; their numbering continues).
    pub fn restart(&self) {
        let _ = self
            .worker
            .try_send(Command::RestartRelaySource { link: self.link });
    }

    /// The stream is live (media flows from upstream) or not: what its viewers' events say.
    pub fn set_active(&self, active: bool) {
        self.shared.directory.set_active(self.stream, active);
    }
}

impl Drop for RelaySource {
    fn drop(&mut self) {
        let _ = self
            .worker
            .try_send(Command::RemoveRelaySource { link: self.link });
        self.shared.directory.remove_relay_source(&self.name);
    }
}

/// A link to a child carrying a stream's wanted layers. Dropping it removes the sink.
pub struct Pipe {
    pub(crate) link: LinkId,
    pub(crate) name: String,
    pub(crate) worker: mpsc::Sender<Command>,
    pub(crate) shared: Arc<Shared>,
}

impl Pipe {
    /// The video layers the child wants now, a bit each (audio always flows).
    pub fn set_wanted(&self, layers: u8) {
        let _ = self.worker.try_send(Command::SetPipeWanted {
            link: self.link,
            wanted: layers,
        });
    }

    /// The child asks for a keyframe of `layer`.
    pub fn keyframe(&self, layer: u8) {
        let _ = self.worker.try_send(Command::PipeKeyframe {
            link: self.link,
            encoding: layer,
        });
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        let _ = self
            .worker
            .try_send(Command::RemovePipe { link: self.link });
        self.shared.directory.remove_pipe(&self.name);
    }
}
