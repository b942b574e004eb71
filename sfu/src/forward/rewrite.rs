//! Sequence number and timestamp rewriting: one continuous outgoing stream per viewer
//! and kind, whatever source (simulcast layer, restarted publisher) feeds it.
//!
//! A new source is spliced in with [`SeqRewriter::switch_source`] at its first forwarded
//! packet: the next outgoing sequence number follows the last one sent, and the timestamp
//! advances by the wall time that passed (at least one tick), so the decoder sees neither a
//! gap nor a jump. Packets of the current source that arrive late (before the splice point)
//! are dropped rather than sent with a sequence number that was already used.
//!
//! Packets of the current source that a viewer does not get (a temporal layer its path
//! does not carry) are taken out with [`SeqRewriter::skip`]: the packets after them close
//! up, so the viewer sees no loss, and a late packet from before a skip still lands where
//! it belongs.

use std::collections::VecDeque;
use std::time::Instant;

/// Skipped sequence numbers remembered for late packets: about two seconds of a temporal
/// layer. A packet from before the oldest is dropped.
const MAX_SKIPS: usize = 256;

/// Where the outgoing stream stands after a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewritten {
    /// Extended outgoing sequence number.
    pub seq: u64,
    /// Outgoing RTP timestamp.
    pub ts: u32,
}

/// Rewrites one source's extended sequence numbers and RTP timestamps into the outgoing
/// stream's space.
#[derive(Debug, Clone)]
pub struct SeqRewriter {
    clock_rate: u32,
    /// `out = in + seq_offset` (wrapping).
    seq_offset: u64,
    /// `out = in + ts_offset` (wrapping).
    ts_offset: u32,
    /// First incoming sequence number of the current source; older packets are dropped.
    splice_seq: u64,
    /// Highest outgoing sequence number and its timestamp, with when it was sent.
    last: Option<(Rewritten, Instant)>,
    /// Highest incoming sequence number seen from the current source.
    highest_in: u64,
    /// Incoming sequence numbers skipped since the splice, oldest first.
    skipped: VecDeque<u64>,
    started: bool,
}

impl SeqRewriter {
    /// A rewriter whose first outgoing sequence number is `first_seq` (kept below 2^15
    /// so that the SRTP rollover counter starts at zero).
    pub fn new(clock_rate: u32, first_seq: u16, first_ts: u32) -> Self {
        let first = Rewritten {
            seq: u64::from(first_seq & 0x7fff),
            ts: first_ts,
        };
        SeqRewriter {
            clock_rate,
            seq_offset: 0,
            ts_offset: 0,
            splice_seq: 0,
            // A virtual packet before the first one, so the first real one lands on `first`.
            last: None,
            highest_in: 0,
            skipped: VecDeque::new(),
            started: false,
        }
        .with_origin(first)
    }

    fn with_origin(mut self, first: Rewritten) -> Self {
        self.seq_offset = first.seq;
        self.ts_offset = first.ts;
        self
    }

    /// Splices a new source in: `in_seq`/`in_ts` is its first packet to be forwarded.
    pub fn switch_source(&mut self, in_seq: u64, in_ts: u32, now: Instant) {
        let (seq, ts) = match self.last {
            Some((last, at)) => {
                let elapsed = now.saturating_duration_since(at).as_secs_f64();
                let ticks = (elapsed * f64::from(self.clock_rate)).round() as u32;
                (last.seq + 1, last.ts.wrapping_add(ticks.max(1)))
            }
            // Nothing sent yet: start at the origin chosen in `new`.
            None => (self.seq_offset, self.ts_offset),
        };
        self.seq_offset = seq.wrapping_sub(in_seq);
        self.ts_offset = ts.wrapping_sub(in_ts);
        self.splice_seq = in_seq;
        self.highest_in = in_seq;
        self.skipped.clear();
        self.started = true;
    }

    /// Takes a packet of the current source out of the outgoing stream: the ones after it
    /// close up. A skipped packet older than the newest seen leaves a hole instead (the
    /// numbers after it are already out).
    pub fn skip(&mut self, in_seq: u64) {
        if !self.started || in_seq <= self.highest_in {
            return;
        }
        if self.skipped.len() == MAX_SKIPS {
            if let Some(oldest) = self.skipped.pop_front() {
                // What came before it can no longer be placed.
                self.splice_seq = self.splice_seq.max(oldest + 1);
            }
        }
        self.skipped.push_back(in_seq);
        self.seq_offset = self.seq_offset.wrapping_sub(1);
        self.highest_in = in_seq;
    }

    /// Rewrites a packet of the current source. `None` means drop it: it comes from before
    /// the splice point, or no source was spliced in yet.
    pub fn rewrite(&mut self, in_seq: u64, in_ts: u32, now: Instant) -> Option<Rewritten> {
        if !self.started || in_seq < self.splice_seq {
            return None;
        }
        // A late packet: the skips after it had not happened when it was due.
        let later = if in_seq < self.highest_in {
            let later = self.skipped.iter().rev().take_while(|&&s| s >= in_seq);
            let mut n = 0u64;
            for &s in later {
                if s == in_seq {
                    return None;
                }
                n += 1;
            }
            n
        } else {
            0
        };
        let out = Rewritten {
            seq: in_seq.wrapping_add(self.seq_offset).wrapping_add(later),
            ts: in_ts.wrapping_add(self.ts_offset),
        };
        if in_seq >= self.highest_in {
            self.highest_in = in_seq;
            self.last = Some((out, now));
        }
        Some(out)
    }

    /// Whether `in_seq` comes after a newer packet of the current source (reordered, or
    /// a repair from upstream).
    pub fn is_late(&self, in_seq: u64) -> bool {
        self.started && in_seq < self.highest_in
    }

    /// Drops every packet of the current source numbered below `in_seq` from now on: a
    /// replayed group of pictures was sent with its own timestamps, and a late copy of one
    /// of its packets would not carry them.
    pub fn drop_before(&mut self, in_seq: u64) {
        self.splice_seq = self.splice_seq.max(in_seq);
    }

    /// The last outgoing packet, if any.
    pub fn last(&self) -> Option<Rewritten> {
        self.last.map(|(r, _)| r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn first_packet_lands_on_origin_and_follows_source() {
        let t0 = Instant::now();
        let mut r = SeqRewriter::new(90_000, 1000, 5000);
        assert_eq!(r.rewrite(70_000, 123, t0), None, "nothing before a splice");
        r.switch_source(70_000, 123, t0);
        assert_eq!(
            r.rewrite(70_000, 123, t0),
            Some(Rewritten {
                seq: 1000,
                ts: 5000
            })
        );
        assert_eq!(
            r.rewrite(70_001, 3123, t0),
            Some(Rewritten {
                seq: 1001,
                ts: 8000
            })
        );
        // Reordered packet of the same source keeps its place.
        assert_eq!(r.rewrite(70_003, 6123, t0).unwrap().seq, 1003);
        assert_eq!(r.rewrite(70_002, 3123, t0).unwrap().seq, 1002);
        assert_eq!(r.last().unwrap().seq, 1003);
    }

    #[test]
    fn switch_continues_sequence_and_advances_time_by_wall_clock() {
        let t0 = Instant::now();
        let mut r = SeqRewriter::new(90_000, 10, 0);
        r.switch_source(500, 1_000_000, t0);
        for i in 0..10 {
            r.rewrite(500 + i, 1_000_000 + i as u32 * 3000, t0).unwrap();
        }
        let before = r.last().unwrap();
        // New layer with unrelated numbering, 100 ms later.
        let t1 = t0 + Duration::from_millis(100);
        r.switch_source(40_000, 7, t1);
        let after = r.rewrite(40_000, 7, t1).unwrap();
        assert_eq!(after.seq, before.seq + 1, "no gap and no reuse");
        assert_eq!(after.ts.wrapping_sub(before.ts), 9000, "100 ms at 90 kHz");
        // Late packet of the old source: dropped, never a reused number.
        assert_eq!(r.rewrite(39_999, 4, t1), None);
    }

    #[test]
    fn timestamps_wrap_and_always_advance_on_switch() {
        let t0 = Instant::now();
        let mut r = SeqRewriter::new(48_000, 0, u32::MAX - 10);
        r.switch_source(1, 0, t0);
        assert_eq!(r.rewrite(1, 0, t0).unwrap().ts, u32::MAX - 10);
        assert_eq!(r.rewrite(2, 960, t0).unwrap().ts, 949);
        // Switch at the same instant: still at least one tick forward.
        r.switch_source(9, 9, t0);
        assert_eq!(r.rewrite(9, 9, t0).unwrap().ts, 950);
    }

    #[test]
    fn skipped_packets_close_up_and_late_ones_keep_their_place() {
        let t0 = Instant::now();
        let mut r = SeqRewriter::new(90_000, 100, 0);
        r.switch_source(10, 0, t0);
        assert_eq!(r.rewrite(10, 0, t0).unwrap().seq, 100);
        // 11 is late; 12 and 13 are skipped; 14 follows 10 with no gap for them.
        r.skip(12);
        r.skip(13);
        assert_eq!(r.rewrite(14, 0, t0).unwrap().seq, 102);
        assert_eq!(
            r.rewrite(11, 0, t0).unwrap().seq,
            101,
            "late, before the skips"
        );
        assert_eq!(
            r.rewrite(12, 0, t0),
            None,
            "a skipped packet never goes out"
        );
        assert_eq!(r.rewrite(15, 0, t0).unwrap().seq, 103);
        // A skip of a packet already passed leaves the others where they are.
        r.skip(13);
        assert_eq!(r.rewrite(16, 0, t0).unwrap().seq, 104);
        // A splice forgets the skips.
        r.switch_source(500, 0, t0);
        assert_eq!(r.rewrite(500, 0, t0).unwrap().seq, 105);
    }

    #[test]
    fn skips_are_bounded_and_what_is_older_is_dropped() {
        let t0 = Instant::now();
        let mut r = SeqRewriter::new(90_000, 0, 0);
        r.switch_source(0, 0, t0);
        r.rewrite(0, 0, t0).unwrap();
        for i in 0..(MAX_SKIPS as u64 + 10) {
            r.skip(2 + 2 * i);
            r.rewrite(3 + 2 * i, 0, t0).unwrap();
        }
        assert_eq!(r.skipped.len(), MAX_SKIPS);
        assert_eq!(r.rewrite(1, 0, t0), None, "older than what is remembered");
        let newest = 3 + 2 * (MAX_SKIPS as u64 + 9);
        let late = r.rewrite(newest - 2, 0, t0).unwrap().seq;
        assert_eq!(late + 1, r.last().unwrap().seq);
    }

    #[test]
    fn origin_keeps_rollover_counter_at_zero() {
        let r = SeqRewriter::new(90_000, u16::MAX, 0);
        assert!(r.seq_offset < 0x8000);
    }
}
