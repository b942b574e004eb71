//! Audio redundancy for viewers whose browser offers it (RFC 2198 RED, `red/48000/2`):
//! each Opus packet goes out with the one before it beside it, so a single lost packet is
//! recovered from the next without a retransmission (audio is not retransmitted). Costs
//! the audio's bitrate once more: about 30 kbit/s.
//!
//! Publishers send plain Opus; the wrapping is per viewer, after the rewrite, so the
//! redundant block is the viewer's own previous packet (same numbering, same stream).
//! Encoding is str0m's ([`RedEncoder`]).

use std::sync::Arc;

use str0m::rtp::{RedEncoder, RedundantBlock};

/// One viewer's RED sender for its Opus stream.
#[derive(Debug, Clone)]
pub struct RedAudio {
    /// The viewer's payload type for RED.
    red_pt: u8,
    /// The viewer's payload type for Opus (the blocks' type).
    opus_pt: u8,
    /// The last packet sent: outgoing sequence number, timestamp, payload.
    last: Option<(u64, u32, Arc<[u8]>)>,
}

impl RedAudio {
    /// A sender wrapping Opus (`opus_pt`) into RED (`red_pt`).
    pub fn new(red_pt: u8, opus_pt: u8) -> RedAudio {
        RedAudio {
            red_pt,
            opus_pt,
            last: None,
        }
    }

    /// The RED payload type, for the packets [`RedAudio::wrap`] makes.
    pub fn pt(&self) -> u8 {
        self.red_pt
    }

    /// The RED payload for the Opus packet (`seq`, `ts`, `payload`): the previous packet
    /// as a redundant block when it directly precedes this one and fits RED's fields,
    /// then this one as the primary.
    pub fn wrap(&mut self, seq: u64, ts: u32, payload: &Arc<[u8]>) -> Vec<u8> {
        let previous = self
            .last
            .as_ref()
            .filter(|(s, _, _)| s + 1 == seq)
            .map(|(_, t, p)| RedundantBlock {
                pt: self.opus_pt,
                timestamp_offset: ts.wrapping_sub(*t),
                payload: p.to_vec(),
            })
            .filter(|b| b.fits() && b.timestamp_offset > 0);
        if self.last.as_ref().is_none_or(|(s, _, _)| seq > *s) {
            self.last = Some((seq, ts, payload.clone()));
        }
        RedEncoder::encode(self.opus_pt, payload, previous.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use str0m::rtp::RedDecoder;

    fn opus(b: u8) -> Arc<[u8]> {
        Arc::from(vec![b; 40])
    }

    #[test]
    fn each_packet_carries_the_one_before() {
        let mut r = RedAudio::new(63, 111);
        let first = r.wrap(10, 960, &opus(1));
        let blocks = RedDecoder::decode(&first).unwrap();
        assert_eq!(blocks.len(), 1, "nothing before the first");
        assert_eq!((blocks[0].pt, blocks[0].payload), (111, &opus(1)[..]));
        let second = r.wrap(11, 1920, &opus(2));
        let blocks = RedDecoder::decode(&second).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].timestamp_offset, 960);
        assert_eq!(blocks[0].payload, &opus(1)[..], "the redundant block first");
        assert_eq!(blocks[1].payload, &opus(2)[..], "then the primary");
    }

    #[test]
    fn no_block_across_a_gap_or_for_a_late_packet() {
        let mut r = RedAudio::new(63, 111);
        r.wrap(10, 960, &opus(1));
        // 11 was never forwarded: 12's redundancy would be 10, which RED cannot tell apart.
        assert_eq!(
            RedDecoder::decode(&r.wrap(12, 2880, &opus(3)))
                .unwrap()
                .len(),
            1
        );
        // A late packet goes out alone and does not replace the newest.
        assert_eq!(
            RedDecoder::decode(&r.wrap(11, 1920, &opus(2)))
                .unwrap()
                .len(),
            1
        );
        let next = r.wrap(13, 3840, &opus(4));
        assert_eq!(RedDecoder::decode(&next).unwrap()[0].payload, &opus(3)[..]);
    }

    #[test]
    fn a_block_too_large_or_too_old_is_left_out() {
        let mut r = RedAudio::new(63, 111);
        r.wrap(1, 0, &Arc::from(vec![0u8; 1100]));
        assert_eq!(
            RedDecoder::decode(&r.wrap(2, 960, &opus(2))).unwrap().len(),
            1
        );
        r.wrap(3, 1920, &opus(3));
        // A timestamp jump past RED's 14 bits (a publisher switch, a long pause).
        assert_eq!(
            RedDecoder::decode(&r.wrap(4, 100_000, &opus(4)))
                .unwrap()
                .len(),
            1
        );
    }
}
