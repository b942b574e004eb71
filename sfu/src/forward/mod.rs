//! The forwarding core: no I/O, no clock of its own, no str0m session.
//!
//! A packet from a source is parsed once into a [`MediaPacket`]; the source's [`Producer`]
//! numbers its encodings, ranks them and throttles keyframe requests. For each sink
//! ([`Sink`]): a viewer's [`Consumer`] decides (layer choice from [`layers`]), selects
//! ([`selector`], gated on keyframes) and rewrites ([`rewrite`], [`vp8`]) it into a
//! [`Forward`], or drops it with a [`DropReason`]; a [`PipeConsumer`] passes every wanted
//! layer through unrewritten. The worker then hands the `Forward` to the sink's transport.
//! Each video layer's packets since its last keyframe stay in a [`GopCache`], which a
//! viewer's [`Consumer::replay`] starts from when it joins. Each viewer's [`timeline`]
//! places its outgoing video timestamps on the node's clock (where an ad break starts).

pub mod allocator;
pub mod consumer;
pub mod gop;
pub mod layers;
pub mod pipe;
pub mod producer;
pub mod rewrite;
pub mod selector;
pub mod seq;
pub mod sink;
pub mod temporal;
pub mod throttle;
pub mod timeline;
pub mod vp8;

use std::sync::Arc;
use std::time::Instant;

use crate::codec::Codec;
pub use crate::codec::Temporal;
pub use allocator::{Allocation, AllocatorConfig};
pub use consumer::{Allocated, Consumer, Forward, Kind};
pub use gop::{GopCache, GopSnapshot};
pub use layers::{LayerPref, LayerRanker, LayerTable};
pub use pipe::PipeConsumer;
pub use producer::Producer;
pub use seq::SeqExtender;
pub use sink::Sink;

/// One encoding of one publisher: `generation` changes when a publisher (re)starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SourceKey {
    /// Unique per publisher session.
    pub generation: u32,
    /// The encoding within that session (simulcast layer, or 0).
    pub encoding: u8,
}

/// Why a packet was not forwarded to a viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The viewer waits for a keyframe on the layer it switches to.
    AwaitingKeyframe,
    /// The packet belongs to a layer the viewer does not receive.
    OtherLayer,
    /// Arrived after the viewer was spliced onto a newer source.
    Stale,
    /// The viewer did not negotiate this codec.
    CodecUnsupported,
    /// The viewer's path carries no video layer now: audio alone.
    Paused,
    /// A temporal layer above what the viewer's path carries.
    Temporal,
}

/// A publisher's packet, parsed once and shared (by `Arc`) with every viewer and worker.
#[derive(Debug, Clone)]
pub struct MediaPacket {
    /// Audio or video.
    pub kind: Kind,
    /// Which publisher and encoding.
    pub source: SourceKey,
    /// Codec of the payload.
    pub codec: Codec,
    /// Extended sequence number in the publisher's space.
    pub seq: u64,
    /// RTP timestamp in the publisher's space.
    pub ts: u32,
    /// RTP marker bit (end of a video frame).
    pub marker: bool,
    /// Whether this packet starts a keyframe.
    pub keyframe: bool,
    /// RTP payload (no header).
    pub payload: Arc<[u8]>,
    /// When the node received it.
    pub arrival: Instant,
    /// The publisher's video layers when this packet arrived (video only).
    pub layers: Option<Arc<LayerTable>>,
    /// Its temporal layer, when the stream has them (parsed once, here).
    pub temporal: Option<Temporal>,
}

#[cfg(test)]
mod tests {
    use super::vp8::Vp8Munger;
    use crate::codec::Codec;

    /// Random payloads never panic the parsers on the hot path.
    #[test]
    fn parsers_survive_random_payloads() {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let mut munger = Vp8Munger::default();
        for i in 0..200_000 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let len = (s % 24) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|k| (s >> (k % 8 * 8)) as u8 ^ k as u8)
                .collect();
            for c in [Codec::Vp8, Codec::Vp9, Codec::H264, Codec::Av1, Codec::Opus] {
                let _ = c.starts_keyframe(&bytes);
            }
            if i % 7 == 0 {
                munger.switch_source();
            }
            let _ = munger.munge(&bytes);
        }
    }
}
