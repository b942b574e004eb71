//! The packets of each video layer since its last keyframe (its group of pictures), so that
//! a viewer who joins can start decoding at once instead of waiting for the encoder.
//!
//! A joining viewer used to wait for a keyframe asked of the publisher when its media
//! started: a round trip to the publisher, the encoder's next frame, and an encoder
//! hold-off (libwebrtc ignores requests within 300 ms of its last keyframe). The cache
//! hands it the last keyframe *and every packet since*: a keyframe alone would not do,
//! since the next live delta frames reference the frames in between, and a decoder given
//! the old keyframe and then today's deltas shows a corrupt picture. What is replayed is
//! decodable from its first packet to the live edge; [`super::Consumer::replay`] sends it
//! with its timestamps squeezed next to the newest frame, so the player shows it at once
//! and then plays live, rather than playing the cached second out behind live.
//!
//! Bounded per layer by bytes, packets and age: a group of pictures that outgrows any of
//! them is dropped, and caching resumes at the layer's next keyframe. Packets are shared
//! (`Arc`) with the fan-out; the cache copies no payload.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::layers::{LayerRanker, LayerTable};
use super::{Kind, MediaPacket, SourceKey};

/// What one layer holds: its packets from a keyframe on, in arrival order.
#[derive(Debug, Default)]
struct Gop {
    source: Option<SourceKey>,
    packets: Vec<Arc<MediaPacket>>,
    bytes: usize,
}

impl Gop {
    fn clear(&mut self) {
        self.packets.clear();
        self.bytes = 0;
    }

    /// When its keyframe arrived.
    fn started(&self) -> Option<Instant> {
        self.packets.first().map(|p| p.arrival)
    }
}

/// A cache's content, handed from the worker of a stream's source to another worker.
#[derive(Debug, Clone, Default)]
pub struct GopSnapshot {
    /// The newest layer table.
    pub table: Option<Arc<LayerTable>>,
    /// Each layer's packets from its keyframe.
    pub packets: Vec<Arc<MediaPacket>>,
}

/// A stream's groups of pictures, one per video encoding of its current source.
#[derive(Debug, Default)]
pub struct GopCache {
    layers: Vec<Gop>,
    /// The layer table the newest video packet carried: what a joining viewer's layer is
    /// chosen from.
    table: Option<Arc<LayerTable>>,
}

impl GopCache {
    /// Most payload bytes kept per layer (0.8 s of a 2.5 Mbit/s layer).
    pub const MAX_BYTES: usize = 256 * 1024;
    /// Most packets kept per layer.
    pub const MAX_PACKETS: usize = 512;
    /// Oldest keyframe kept: a viewer is not handed more than this to decode at once (60
    /// frames at 30 fps; a high layer reaches the byte bound first). While viewers keep
    /// joining, the router asks for a keyframe when the group is older than 500 ms, so
    /// this bound matters after a lull.
    pub const MAX_AGE: Duration = Duration::from_millis(2000);

    /// Takes one packet of the stream (audio is ignored).
    pub fn on_packet(&mut self, pkt: &Arc<MediaPacket>) {
        if pkt.kind != Kind::Video {
            return;
        }
        if let Some(t) = &pkt.layers {
            if !self.table.as_ref().is_some_and(|c| Arc::ptr_eq(c, t)) {
                self.table = Some(t.clone());
            }
        }
        let e = usize::from(pkt.source.encoding);
        if e >= LayerRanker::MAX_ENCODINGS {
            return;
        }
        if self.layers.len() <= e {
            self.layers.resize_with(e + 1, Gop::default);
        }
        let gop = &mut self.layers[e];
        if pkt.keyframe {
            gop.clear();
            gop.source = Some(pkt.source);
        } else if gop.source != Some(pkt.source) || gop.packets.is_empty() {
            // No keyframe of this source seen yet (or the last group was dropped).
            return;
        }
        let too_old = gop
            .started()
            .is_some_and(|t| pkt.arrival.saturating_duration_since(t) > Self::MAX_AGE);
        let len = pkt.payload.len();
        if too_old || gop.packets.len() >= Self::MAX_PACKETS || gop.bytes + len > Self::MAX_BYTES {
            gop.clear();
            return;
        }
        gop.bytes += len;
        gop.packets.push(pkt.clone());
    }

    /// The layer table of the newest video packet.
    pub fn table(&self) -> Option<&Arc<LayerTable>> {
        self.table.as_ref()
    }

    /// The packets of `source` from its last keyframe up to now, with the keyframe's age;
    /// `None` when there is no such group of pictures within the bounds.
    pub fn replayable(
        &self,
        source: SourceKey,
        now: Instant,
    ) -> Option<(&[Arc<MediaPacket>], Duration)> {
        self.gop(source, now)
            .map(|(gop, age)| (&gop.packets[..], age))
    }

    /// What a viewer starting on `start` is replayed at its join, at most `budget` payload
    /// bytes (the replay leaves at once, unpaced: a larger burst overflows the buffers on
    /// its way, the receiver's socket first, and the losses sink the viewer's estimate):
    /// `start`'s group of pictures when it fits, else that of the highest layer under it
    /// in `table` that fits, from which the viewer moves up at `start`'s next keyframe.
    /// When none fits (a single-layer publisher, an OBS say, whose group of pictures passes
    /// the budget a fraction of a second after its keyframe, and whose encoder may not
    /// answer a keyframe request at all), `start`'s whole: a join that waits seconds for a
    /// keyframe is worse than a burst. The source, its packets and its keyframe's age.
    pub fn join_replay(
        &self,
        table: &LayerTable,
        start: SourceKey,
        now: Instant,
        budget: usize,
    ) -> Option<(SourceKey, &[Arc<MediaPacket>], Duration)> {
        let top = table
            .active
            .iter()
            .position(|e| e.encoding == start.encoding)?;
        (0..=top)
            .rev()
            .find_map(|rank| {
                let source = table.key(rank)?;
                let (gop, age) = self.gop(source, now)?;
                (gop.bytes <= budget).then_some((source, &gop.packets[..], age))
            })
            .or_else(|| {
                let (gop, age) = self.gop(start, now)?;
                Some((start, &gop.packets[..], age))
            })
    }

    /// The group of pictures of `source`, with its keyframe's age, within the bounds.
    fn gop(&self, source: SourceKey, now: Instant) -> Option<(&Gop, Duration)> {
        let gop = self.layers.get(usize::from(source.encoding))?;
        if gop.source != Some(source) {
            return None;
        }
        let age = now.saturating_duration_since(gop.started()?);
        (age <= Self::MAX_AGE).then_some((gop, age))
    }

    /// Every layer's packets, each layer from its keyframe in arrival order, and the
    /// newest layer table: what another cache starts from ([`GopCache::seed`]).
    pub fn snapshot(&self) -> GopSnapshot {
        GopSnapshot {
            table: self.table.clone(),
            packets: self
                .layers
                .iter()
                .flat_map(|g| g.packets.iter().cloned())
                .collect(),
        }
    }

    /// Starts from another cache's snapshot.
    pub fn seed(&mut self, snapshot: &GopSnapshot) {
        for p in &snapshot.packets {
            self.on_packet(p);
        }
        if let Some(t) = &snapshot.table {
            self.table = Some(t.clone());
        }
    }

    /// Drops every layer's packets (the stream lost its source or its last sink here).
    pub fn clear(&mut self) {
        self.layers.clear();
        self.table = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Codec;

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    fn pkt(encoding: u8, seq: u64, keyframe: bool, len: usize, at: Instant) -> Arc<MediaPacket> {
        Arc::new(MediaPacket {
            kind: Kind::Video,
            source: SourceKey {
                generation: 1,
                encoding,
            },
            codec: Codec::Vp8,
            seq,
            ts: seq as u32 * 3000,
            marker: true,
            keyframe,
            payload: vec![0u8; len].into(),
            arrival: at,
            layers: None,
            temporal: None,
        })
    }

    fn seqs(c: &GopCache, encoding: u8, now: Instant) -> Option<Vec<u64>> {
        let key = SourceKey {
            generation: 1,
            encoding,
        };
        c.replayable(key, now)
            .map(|(p, _)| p.iter().map(|p| p.seq).collect())
    }

    #[test]
    fn keeps_each_layer_from_its_last_keyframe() {
        let t0 = Instant::now();
        let mut c = GopCache::default();
        c.on_packet(&pkt(0, 1, false, 100, t0));
        assert_eq!(seqs(&c, 0, t0), None, "nothing before a keyframe");
        c.on_packet(&pkt(0, 2, true, 100, ms(t0, 10)));
        c.on_packet(&pkt(1, 50, true, 100, ms(t0, 10)));
        c.on_packet(&pkt(0, 3, false, 100, ms(t0, 40)));
        assert_eq!(seqs(&c, 0, ms(t0, 50)), Some(vec![2, 3]));
        assert_eq!(seqs(&c, 1, ms(t0, 50)), Some(vec![50]), "layers apart");
        // A new keyframe starts the group again.
        c.on_packet(&pkt(0, 4, true, 100, ms(t0, 70)));
        c.on_packet(&pkt(0, 5, false, 100, ms(t0, 100)));
        let (p, age) = c
            .replayable(
                SourceKey {
                    generation: 1,
                    encoding: 0,
                },
                ms(t0, 120),
            )
            .unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(age, Duration::from_millis(50));
        // Another publisher generation is another source.
        let other = SourceKey {
            generation: 2,
            encoding: 0,
        };
        assert!(c.replayable(other, ms(t0, 120)).is_none());
    }

    #[test]
    fn bounded_by_age_bytes_and_packets() {
        let t0 = Instant::now();
        let mut c = GopCache::default();
        c.on_packet(&pkt(0, 1, true, 100, t0));
        let max = GopCache::MAX_AGE.as_millis() as u64;
        c.on_packet(&pkt(0, 2, false, 100, ms(t0, max - 100)));
        assert!(seqs(&c, 0, ms(t0, max)).is_some());
        assert_eq!(seqs(&c, 0, ms(t0, max + 1)), None, "too old to hand out");
        // A packet past the age drops the group until the next keyframe.
        c.on_packet(&pkt(0, 3, false, 100, ms(t0, max + 1)));
        c.on_packet(&pkt(0, 4, false, 100, ms(t0, max + 2)));
        assert_eq!(seqs(&c, 0, ms(t0, max + 2)), None);
        c.on_packet(&pkt(0, 5, true, 100, ms(t0, max + 10)));
        assert_eq!(seqs(&c, 0, ms(t0, max + 10)), Some(vec![5]));

        let mut c = GopCache::default();
        c.on_packet(&pkt(0, 1, true, GopCache::MAX_BYTES / 2, t0));
        c.on_packet(&pkt(0, 2, false, GopCache::MAX_BYTES / 2, t0));
        assert_eq!(seqs(&c, 0, t0), Some(vec![1, 2]));
        c.on_packet(&pkt(0, 3, false, 1, t0));
        assert_eq!(seqs(&c, 0, t0), None, "over the byte bound: dropped");

        let mut c = GopCache::default();
        for i in 0..=GopCache::MAX_PACKETS as u64 {
            c.on_packet(&pkt(0, i, i == 0, 1, t0));
        }
        assert_eq!(seqs(&c, 0, t0), None, "over the packet bound: dropped");
        // Encodings past the ranker's bound are not kept.
        c.on_packet(&pkt(LayerRanker::MAX_ENCODINGS as u8, 1, true, 1, t0));
        assert!(c.layers.len() <= LayerRanker::MAX_ENCODINGS);
    }
}
