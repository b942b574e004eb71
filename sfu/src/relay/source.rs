//! A relay link as a stream's source on the child: relay RTP packets in, [`MediaPacket`]s
//! out, numbered like a publisher's by a [`Producer`].
//!
//! The link carries the upstream publisher's own numbering, so this only extends each
//! layer's 16-bit sequence numbers and notices a new upstream generation (the SSRC of
//! [`rtp`](super::rtp)): a restarted publisher becomes a new source here, and so does a
//! move to another parent ([`RelayInput::restart`]): packets lost in the move cannot be
//! repaired, so viewers start again at a keyframe and their numbering is spliced on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{rtp, RelayPacket, AUDIO_LAYER};
use crate::forward::{Kind, MediaPacket, Producer, SeqExtender};

/// One relay link's input: its Producer (asking each layer through its wire layer number)
/// and per-layer sequence extension.
#[derive(Debug)]
pub struct RelayInput {
    producer: Producer<u8>,
    upstream: Option<u32>,
    seqs: [SeqExtender; 8],
    generations: u32,
}

impl RelayInput {
    /// A source numbered from `generation` (a new one per upstream publisher, derived from
    /// it), letting one keyframe request per layer through each `throttle` window.
    pub fn new(generation: u32, throttle: Duration) -> Self {
        let mut producer = Producer::new(generation, throttle);
        // Ranked by the parent's lists only: this node may pull a part of the layers.
        producer.set_listed_only();
        // Encoding numbers are wire layers: demand and keyframe requests need no mapping.
        for (layer, rid) in LAYER_RIDS.iter().enumerate() {
            producer.video_encoding(Some(rid), || layer as u8);
        }
        RelayInput {
            producer,
            upstream: None,
            seqs: [SeqExtender::default(); 8],
            generations: generation,
        }
    }

    /// The layers the parent has (wire layer, bitrate), flowing here or not; none when it
    /// no longer knows them (its publisher left or restarted): this node forgets its
    /// ranking, since the next publisher may number its layers in another order.
    pub fn set_layers(&mut self, now: Instant, layers: &[(u8, u64)]) {
        if layers.is_empty() {
            self.producer.forget_layers();
        } else {
            self.producer.set_known_layers(now, layers);
        }
    }

    /// The current generation (the router's `Source::generation`).
    pub fn generation(&self) -> u32 {
        self.producer.generation()
    }

    /// The Producer: keyframe throttle, layer ranking.
    pub fn producer(&mut self) -> &mut Producer<u8> {
        &mut self.producer
    }

    /// Starts a new source generation: the link moved to another parent (or the upstream
    /// publisher changed), whose packets viewers take from its next keyframe on, with their
    /// numbering spliced on. The ranking carries over: the same upstream encodings behind
    /// another parent; after a publisher restart the parent's empty list (sent when its
    /// publisher left) made this node forget it ([`RelayInput::set_layers`]).
    pub fn restart(&mut self) {
        self.generations = self.generations.wrapping_add(1);
        self.producer.renumber(self.generations);
        self.seqs = [SeqExtender::default(); 8];
        self.upstream = None;
    }

    /// Reads one packet; `None` for bytes that are not a relay packet. The second value is
    /// true when the packet started a new upstream publisher (a new source generation).
    pub fn parse(&mut self, p: &RelayPacket, now: Instant) -> Option<(MediaPacket, bool)> {
        let h = rtp::decode(&p.rtp)?;
        let restarted = self.upstream.is_some_and(|g| g != h.generation);
        if restarted {
            self.restart();
        }
        self.upstream = Some(h.generation);
        let kind = if p.layer == AUDIO_LAYER {
            Kind::Audio
        } else {
            Kind::Video
        };
        if (kind == Kind::Video) != h.codec.is_video() {
            return None;
        }
        let encoding = match kind {
            Kind::Audio => 0,
            Kind::Video => {
                let layer = p.layer;
                let rid = LAYER_RIDS.get(usize::from(layer))?;
                self.producer.video_encoding(Some(rid), || layer)?
            }
        };
        let payload: Arc<[u8]> = Arc::from(&p.rtp[rtp::HEADER..]);
        let temporal = match kind {
            Kind::Video => h.codec.temporal(&payload),
            Kind::Audio => None,
        };
        let layers = (kind == Kind::Video).then(|| {
            self.producer.on_video(
                now,
                encoding,
                payload.len(),
                p.keyframe,
                temporal.map(|t| t.tid),
            )
        });
        let seq = self.seqs[usize::from(p.layer) & 7].extend(h.seq);
        Some((
            MediaPacket {
                kind,
                source: self.producer.source(encoding),
                codec: h.codec,
                seq,
                ts: h.ts,
                marker: h.marker,
                keyframe: kind == Kind::Video && p.keyframe,
                payload,
                arrival: now,
                layers,
                temporal,
            },
            restarted,
        ))
    }
}

/// Names of the relay's video layers as rids: the wire layers, which are the origin's
/// encoding numbers (in order of first packet). The wire carries no publisher rid, so on a
/// child node `?layer=<rid>` does not find the publisher's names (the top layer is given,
/// as for an unknown rid); `low`, `high` and automatic choose by rank, as everywhere.
const LAYER_RIDS: [&str; 4] = ["0", "1", "2", "3"];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Codec;
    use crate::forward::layers::LayerPref;
    use crate::forward::{Forward, SourceKey};

    fn packet(layer: u8, generation: u32, seq: u64, keyframe: bool) -> RelayPacket {
        let codec = if layer == AUDIO_LAYER {
            Codec::Opus
        } else {
            Codec::Vp8
        };
        let fwd = Forward {
            kind: Kind::Video,
            codec,
            seq,
            ts: seq as u32 * 3000,
            marker: false,
            payload: Arc::from(vec![1u8; 20]),
            vp8: None,
            switched: false,
            source: SourceKey {
                generation,
                encoding: layer,
            },
            keyframe,
        };
        RelayPacket {
            layer,
            keyframe,
            rtp: rtp::encode(&fwd),
        }
    }

    #[test]
    fn sequence_numbers_extend_across_wraps_and_reordering() {
        let mut e = SeqExtender::default();
        let a = e.extend(65_534);
        assert_eq!(e.extend(65_535), a + 1);
        assert_eq!(e.extend(1), a + 3, "wrapped");
        assert_eq!(e.extend(0), a + 2, "late, before the wrap");
        assert_eq!(e.extend(2), a + 4);
    }

    #[test]
    fn layers_become_encodings_and_a_new_upstream_a_new_source() {
        let t0 = Instant::now();
        let mut input = RelayInput::new(100, Duration::from_millis(100));
        let (m, restarted) = input.parse(&packet(2, 7, 10, true), t0).unwrap();
        assert!(!restarted);
        assert_eq!(
            (m.kind, m.source.generation, m.keyframe),
            (Kind::Video, 100, true)
        );
        let top = m.source.encoding;
        assert_eq!(top, 2, "encodings are wire layers");
        let (low, _) = input.parse(&packet(0, 7, 500, true), t0).unwrap();
        assert_eq!(low.source.encoding, 0);
        // The keyframe handle of each encoding is its wire layer.
        let later = t0 + Duration::from_secs(1);
        assert_eq!(input.producer().request_keyframe(top, later), Some(2));
        let (a, _) = input.parse(&packet(AUDIO_LAYER, 7, 3, false), t0).unwrap();
        assert_eq!((a.kind, a.codec), (Kind::Audio, Codec::Opus));
        let (n, _) = input.parse(&packet(2, 7, 11, false), t0).unwrap();
        assert_eq!(n.seq, m.seq + 1);
        // The upstream publisher restarts: a new generation here.
        let (r, restarted) = input.parse(&packet(0, 8, 1, true), t0).unwrap();
        assert!(restarted);
        assert_eq!(r.source.generation, 101);
        assert_eq!(input.generation(), 101);
        // A move to another parent: a new generation, even for the same upstream.
        input.restart();
        let (r, restarted) = input.parse(&packet(0, 8, 2, true), t0).unwrap();
        assert!(!restarted, "the restart was the caller's");
        assert_eq!(r.source.generation, 102);
    }

    /// The encoding a viewer that asked for the lowest layer gets, if any yet.
    fn lowest(m: &MediaPacket) -> Option<u8> {
        let table = m.layers.as_ref().unwrap();
        table.resolve(&LayerPref::Rank(0)).map(|k| k.encoding)
    }

    #[test]
    fn a_move_keeps_the_ranking_and_a_parent_that_lost_its_publisher_makes_it_forgotten() {
        let t0 = Instant::now();
        let mut input = RelayInput::new(1, Duration::from_millis(100));
        // Upstream publisher 7 numbered its top layer 0 (it came first): the parent's list.
        input.set_layers(t0, &[(1, 150_000), (0, 2_000_000)]);
        let (m, _) = input.parse(&packet(0, 7, 1, true), t0).unwrap();
        assert_eq!(lowest(&m), Some(1));
        // A move to another parent, or the parent's own move (a new generation from it):
        // the same upstream encodings, ranked at once.
        input.restart();
        let (m, _) = input.parse(&packet(0, 7, 2, true), t0).unwrap();
        assert_eq!(lowest(&m), Some(1), "after a move here");
        let (m, restarted) = input.parse(&packet(0, 8, 3, true), t0).unwrap();
        assert!(restarted);
        assert_eq!(lowest(&m), Some(1), "after a move above");
        // The parent's publisher left: its list is empty, and this node's table unranked,
        // reported empty once to its own children.
        input.producer().poll_layers(t0);
        input.set_layers(t0, &[]);
        let (m, _) = input.parse(&packet(0, 9, 1, true), t0).unwrap();
        assert_eq!(
            lowest(&m),
            None,
            "nothing ranked for the next publisher yet"
        );
        assert_eq!(input.producer().poll_layers(t0), Some(Vec::new()));
        assert_eq!(input.producer().poll_layers(t0), None);
        // The parent lists the new publisher's layers, numbered the other way.
        input.set_layers(t0, &[(0, 150_000), (1, 2_000_000)]);
        let (m, _) = input.parse(&packet(0, 9, 2, false), t0).unwrap();
        assert_eq!(lowest(&m), Some(0));
    }

    #[test]
    fn a_relay_child_ranks_by_its_parents_list_never_by_what_it_pulls() {
        let t0 = Instant::now();
        let mut input = RelayInput::new(1, Duration::from_millis(100));
        // Only layer 0 is pulled here (a low viewer's), for seconds: never ranked alone.
        let mut at = t0;
        for seq in 1..300 {
            at += Duration::from_millis(10);
            let (m, _) = input.parse(&packet(0, 8, seq, seq == 1), at).unwrap();
            assert_eq!(lowest(&m), None);
        }
        assert_eq!(input.producer().poll_layers(at), None);
        // The parent's list: layer 0 is its top one.
        input.set_layers(at, &[(2, 150_000), (0, 2_000_000)]);
        let (m, _) = input.parse(&packet(0, 8, 300, false), at).unwrap();
        assert_eq!(lowest(&m), Some(2));
    }

    #[test]
    fn the_parents_layers_make_the_table_flowing_or_not() {
        let t0 = Instant::now();
        let mut input = RelayInput::new(1, Duration::from_millis(100));
        let (m, _) = input.parse(&packet(0, 7, 1, true), t0).unwrap();
        let table = m.layers.unwrap();
        assert!(!table.settled, "measured: not yet ranked");
        // The parent has layers 0 and 2 (in its rank, lowest first); only 0 flows here.
        input.set_layers(t0, &[(0, 150_000), (2, 2_000_000)]);
        let (m, _) = input.parse(&packet(0, 7, 2, false), t0).unwrap();
        let table = m.layers.unwrap();
        assert!(table.settled);
        let order: Vec<u8> = table.active.iter().map(|e| e.encoding).collect();
        assert_eq!(order, [0, 2], "the parent's rank, the unpulled top listed");
        // An hour later, layer 2 has still sent nothing here: it stays listed.
        let later = t0 + Duration::from_secs(3600);
        input.producer().poll_layers(later);
        let (m, _) = input.parse(&packet(0, 7, 3, false), later).unwrap();
        assert_eq!(m.layers.unwrap().active.len(), 2);
    }

    #[test]
    fn bytes_that_are_not_relay_packets_are_refused() {
        let t0 = Instant::now();
        let mut input = RelayInput::new(1, Duration::from_millis(100));
        let mut p = packet(0, 7, 1, true);
        p.rtp = bytes::Bytes::from_static(&[0x80, 96, 0]);
        assert!(input.parse(&p, t0).is_none());
        // Audio codec on a video layer.
        let mut p = packet(AUDIO_LAYER, 7, 1, false);
        p.layer = 1;
        assert!(input.parse(&p, t0).is_none());
        // A layer past the relay's four.
        let mut p = packet(0, 7, 1, true);
        p.layer = 5;
        assert!(input.parse(&p, t0).is_none());
    }
}
