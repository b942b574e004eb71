//! A pipe: the sink a relay link will be on the parent. It takes every layer the far side
//! wants, unrewritten (the publisher's own sequence numbers, timestamps and encodings), so
//! the far side can run its own viewers' selection and rewriting. Only the start of each
//! layer is gated: a newly wanted layer (or a restarted publisher's) begins at its keyframe.

use std::time::Instant;

use super::{DropReason, Forward, Kind, MediaPacket, SourceKey};

/// Every wanted layer of one stream, in the publisher's numbering (encodings 0 to 7, a
/// bit each in its masks).
#[derive(Debug, Clone, Default)]
pub struct PipeConsumer {
    /// Encodings wanted by the far side, a bit each.
    wanted: u8,
    /// Wanted encodings already flowing (their keyframe went through).
    started: u8,
    /// The publisher generation the started layers belong to.
    generation: Option<u32>,
}

impl PipeConsumer {
    /// A pipe carrying the encodings whose bits are set in `wanted`.
    pub fn new(wanted: u8) -> Self {
        PipeConsumer {
            wanted,
            ..Self::default()
        }
    }

    /// Changes the wanted encodings; a newly wanted one starts at its next keyframe.
    pub fn set_wanted(&mut self, wanted: u8) {
        self.wanted = wanted;
        self.started &= wanted;
    }

    /// The wanted encodings, a bit each.
    pub fn wanted(&self) -> u8 {
        self.wanted
    }

    /// The publisher generation of the layers flowing, once a packet has been seen.
    pub fn generation(&self) -> Option<u32> {
        self.generation
    }

    /// A wanted layer still waiting for its first keyframe (the lowest), if any.
    pub fn waiting_for_keyframe(&self) -> Option<SourceKey> {
        let generation = self.generation?;
        let waiting = self.wanted & !self.started;
        (waiting != 0).then(|| SourceKey {
            generation,
            encoding: waiting.trailing_zeros() as u8,
        })
    }

    /// Passes one packet through unchanged, or says why not.
    pub fn forward(&mut self, pkt: &MediaPacket, _now: Instant) -> Result<Forward, DropReason> {
        let mut switched = false;
        if pkt.kind == Kind::Video {
            let Some(bit) = 1u8.checked_shl(u32::from(pkt.source.encoding)) else {
                return Err(DropReason::OtherLayer);
            };
            if self.wanted & bit == 0 {
                return Err(DropReason::OtherLayer);
            }
            if self.generation != Some(pkt.source.generation) {
                // A restarted publisher: every layer starts again at a keyframe.
                self.generation = Some(pkt.source.generation);
                self.started = 0;
            }
            if self.started & bit == 0 {
                if !pkt.keyframe {
                    return Err(DropReason::AwaitingKeyframe);
                }
                self.started |= bit;
                switched = true;
            }
        }
        Ok(Forward {
            kind: pkt.kind,
            codec: pkt.codec,
            seq: pkt.seq,
            ts: pkt.ts,
            marker: pkt.marker,
            payload: pkt.payload.clone(),
            vp8: None,
            switched,
            source: pkt.source,
            keyframe: pkt.keyframe,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Codec;
    use std::sync::Arc;

    fn pkt(kind: Kind, generation: u32, encoding: u8, seq: u64, keyframe: bool) -> MediaPacket {
        MediaPacket {
            kind,
            source: SourceKey {
                generation,
                encoding,
            },
            codec: if kind == Kind::Video {
                Codec::Vp8
            } else {
                Codec::Opus
            },
            seq,
            ts: seq as u32 * 3000,
            marker: false,
            keyframe,
            payload: Arc::from(vec![1u8, 2, 3]),
            arrival: Instant::now(),
            layers: None,
            temporal: None,
        }
    }

    #[test]
    fn every_wanted_layer_passes_in_the_publishers_numbering() {
        let now = Instant::now();
        let mut p = PipeConsumer::new(0b101);
        let a = p.forward(&pkt(Kind::Audio, 1, 0, 77, false), now).unwrap();
        assert_eq!(
            (a.seq, a.ts),
            (77, 77 * 3000),
            "audio from the first packet"
        );
        for enc in [0u8, 2] {
            let f = p
                .forward(&pkt(Kind::Video, 1, enc, 1000, true), now)
                .unwrap();
            assert!(f.switched);
            assert_eq!((f.seq, f.ts, f.source.encoding), (1000, 3_000_000, enc));
            assert!(f.vp8.is_none(), "unrewritten");
            let f = p
                .forward(&pkt(Kind::Video, 1, enc, 1001, false), now)
                .unwrap();
            assert!(!f.switched);
            assert_eq!(f.seq, 1001);
        }
        assert_eq!(
            p.forward(&pkt(Kind::Video, 1, 1, 5, true), now)
                .unwrap_err(),
            DropReason::OtherLayer
        );
        assert_eq!(
            p.forward(&pkt(Kind::Video, 1, 9, 5, true), now)
                .unwrap_err(),
            DropReason::OtherLayer,
            "past the mask"
        );
        assert_eq!(p.waiting_for_keyframe(), None);
    }

    #[test]
    fn a_layer_starts_at_its_keyframe_and_again_after_a_restart() {
        let now = Instant::now();
        let mut p = PipeConsumer::new(0b011);
        assert_eq!(p.waiting_for_keyframe(), None, "no source seen yet");
        assert_eq!(
            p.forward(&pkt(Kind::Video, 1, 1, 10, false), now)
                .unwrap_err(),
            DropReason::AwaitingKeyframe
        );
        let key = |e| SourceKey {
            generation: 1,
            encoding: e,
        };
        assert_eq!(p.waiting_for_keyframe(), Some(key(0)));
        p.forward(&pkt(Kind::Video, 1, 0, 10, true), now).unwrap();
        assert_eq!(p.waiting_for_keyframe(), Some(key(1)));
        p.forward(&pkt(Kind::Video, 1, 1, 11, true), now).unwrap();
        assert_eq!(p.waiting_for_keyframe(), None);
        // Layer 2 becomes wanted: it waits for its own keyframe, the others flow on.
        p.set_wanted(0b111);
        assert_eq!(p.waiting_for_keyframe(), Some(key(2)));
        assert!(p.forward(&pkt(Kind::Video, 1, 0, 12, false), now).is_ok());
        assert!(p.forward(&pkt(Kind::Video, 1, 2, 12, false), now).is_err());
        // The publisher restarts: every layer waits for the new generation's keyframe.
        assert_eq!(
            p.forward(&pkt(Kind::Video, 2, 0, 1, false), now)
                .unwrap_err(),
            DropReason::AwaitingKeyframe
        );
        assert!(p.forward(&pkt(Kind::Video, 2, 0, 2, true), now).is_ok());
        // A layer let go and wanted again restarts at a keyframe too.
        p.set_wanted(0b110);
        p.set_wanted(0b111);
        assert!(p.forward(&pkt(Kind::Video, 2, 0, 3, false), now).is_err());
    }
}
