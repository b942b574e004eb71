//! One subscription's state machine, on each side of the link.
//!
//! [`ChildLink`] lives on the child: it subscribes with the union of the layers its viewers and
//! children need, lets a layer go only after a grace period, sends keyframe requests upward at
//! most once per layer per throttle window (requests in between are folded into one sent when
//! the window ends, unless a keyframe came first), and NACKs holes in each layer's sequence.
//! [`ParentLink`] lives on the parent: it refuses a subscription whose hop list names the parent
//! (a loop), keeps a small cache of recent packets per layer to answer NACKs hop by hop,
//! throttles keyframe requests again before they reach its router, and sends stream state down.
//!
//! Both follow the house shape: `handle_*(now, …)` in, [`poll_output`](ChildLink::poll_output)
//! out until it returns [`Output::Timeout`]. Remote bytes that do not decode end the
//! subscription with [`Event::ProtocolError`]; they never panic.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::queue::Class;
use crate::wire::{
    Layer, LayerInfo, LayerSet, Message, NodeId, RefuseReason, StreamState, TrackInfo, WireError,
    MAX_FRAME,
};

mod child;
mod parent;

pub use child::ChildLink;
pub use parent::ParentLink;

const LAYER_SLOTS: usize = 8;
/// When nothing is scheduled, how far ahead [`Output::Timeout`] points.
const IDLE: Duration = Duration::from_secs(1);

/// Timings and bounds of a link.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// At most one keyframe request per layer per this window.
    pub keyframe_throttle: Duration,
    /// A layer no longer wanted is released after this.
    pub release_grace: Duration,
    /// Interval between NACKs of the same missing packet.
    pub nack_interval: Duration,
    /// NACKs per missing packet before giving up on it.
    pub nack_tries: u8,
    /// Packets cached per layer on the parent (a power of two).
    pub cache_packets: usize,
    /// Missing packets tracked per layer on the child; a larger hole is given up.
    pub max_missing: usize,
    /// Packets the parent resends on NACK per [`Self::REPAIR_WINDOW`]; a child asking for
    /// more (a bad link, or a hostile peer) is answered up to this and the rest counted.
    pub max_repairs: u32,
}

impl LinkConfig {
    /// The window of [`Self::max_repairs`].
    pub const REPAIR_WINDOW: Duration = Duration::from_millis(100);

    /// The same config with every bound inside its sane range, so no value can make a link
    /// divide by zero or hold unbounded state.
    fn bounded(mut self) -> LinkConfig {
        self.cache_packets = self.cache_packets.clamp(16, 4096);
        self.max_missing = self.max_missing.clamp(1, 1024);
        self.nack_tries = self.nack_tries.max(1);
        self.nack_interval = self.nack_interval.max(Duration::from_millis(1));
        self
    }
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            keyframe_throttle: Duration::from_millis(500),
            release_grace: Duration::from_secs(2),
            nack_interval: Duration::from_millis(40),
            nack_tries: 3,
            cache_packets: 512,
            max_missing: 128,
            max_repairs: 200,
        }
    }
}

/// Something to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    /// Bytes for the subscription's control stream (reliable, ordered).
    Control(Vec<u8>),
    /// A media datagram for the connection's `SendQueue`.
    Datagram {
        /// Its priority class.
        class: Class,
        /// Header and RTP packet.
        data: Bytes,
    },
}

/// Something for the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Child: the parent accepted; the stream's tracks.
    Subscribed(Vec<TrackInfo>),
    /// Child: the parent refused. Parent: this side refused.
    Refused(RefuseReason),
    /// Child: the stream's state changed.
    State(StreamState),
    /// Child: the video layers the parent has (flowing here or not) and their bitrates.
    Layers(Vec<LayerInfo>),
    /// Child: a media packet for the router (the link as a source).
    Media {
        /// Its layer.
        layer: Layer,
        /// It starts a keyframe.
        keyframe: bool,
        /// The RTP packet.
        rtp: Bytes,
    },
    /// Parent: a child asks for a stream; answer with `accept` or `refuse`.
    SubscribeRequested {
        /// Stream name.
        stream: String,
        /// Layers wanted.
        layers: LayerSet,
        /// Hop list, the child last.
        hops: Vec<NodeId>,
    },
    /// Parent: the child now wants these layers (the pipe sink's wanted set).
    LayersWanted(LayerSet),
    /// Parent: ask the source for a keyframe on this layer.
    KeyframeWanted(Layer),
    /// The peer sent bytes that are not the protocol; the subscription is over.
    ProtocolError(WireError),
}

/// What `poll_output` returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send this.
    Transmit(Transmit),
    /// Tell the node.
    Event(Event),
    /// Nothing more now; call `handle_timeout` at this instant.
    Timeout(Instant),
}

/// Reassembles control frames from the stream, bounded by one frame.
#[derive(Debug, Default)]
struct ControlRx {
    buf: Vec<u8>,
    failed: bool,
}

impl ControlRx {
    /// Feeds bytes, returns the messages completed, or the first error (after which nothing
    /// more is decoded).
    fn feed(&mut self, mut bytes: &[u8], msgs: &mut Vec<Message>) -> Result<(), WireError> {
        while !bytes.is_empty() && !self.failed {
            // Never hold more than one frame plus a chunk.
            let take = bytes.len().min(MAX_FRAME + 2);
            self.buf.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            loop {
                match Message::decode(&self.buf) {
                    Ok(Some((m, used))) => {
                        self.buf.drain(..used);
                        msgs.push(m);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        self.failed = true;
                        self.buf = Vec::new();
                        return Err(e);
                    }
                }
            }
        }
        Ok(())
    }
}

fn control(msg: &Message) -> Output {
    let mut out = Vec::new();
    msg.encode(&mut out);
    Output::Transmit(Transmit::Control(out))
}

/// Per-layer keyframe throttle: one request per window, the rest folded into one at its end.
#[derive(Debug, Default)]
struct KeyframeThrottle {
    last: [Option<Instant>; LAYER_SLOTS],
    pending: LayerSet,
}

impl KeyframeThrottle {
    /// Whether to send a request for `layer` now; otherwise it is kept pending.
    fn request(&mut self, now: Instant, layer: Layer, window: Duration) -> bool {
        let slot = &mut self.last[layer.index()];
        if slot.is_none_or(|t| now >= t + window) {
            *slot = Some(now);
            self.pending = LayerSet::from_bits(self.pending.bits() & !(1 << layer.index()));
            true
        } else {
            self.pending = self.pending.with(layer);
            false
        }
    }

    /// A keyframe arrived: a pending request is answered.
    fn satisfied(&mut self, layer: Layer) {
        self.pending = LayerSet::from_bits(self.pending.bits() & !(1 << layer.index()));
    }

    /// Pending requests whose window has ended.
    fn due(&mut self, now: Instant, window: Duration) -> Vec<Layer> {
        let due: Vec<Layer> = self
            .pending
            .iter()
            .filter(|l| self.last[l.index()].is_none_or(|t| now >= t + window))
            .collect();
        for l in &due {
            self.request(now, *l, window);
        }
        due
    }

    fn next(&self, window: Duration) -> Option<Instant> {
        self.pending
            .iter()
            .filter_map(|l| self.last[l.index()].map(|t| t + window))
            .min()
    }
}

#[cfg(test)]
mod tests;
