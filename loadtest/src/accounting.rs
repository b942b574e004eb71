//! Loss and one-way delay as a viewer sees them, from the stamps in what it receives.
//!
//! A viewer receives runs of one video layer at a time (the server switches layers at
//! keyframes) and the audio. Loss is counted within each run of a stream: the packets
//! between the run's first and highest sequence number that never arrived. Gaps between
//! arrivals (video freezes, audio drop-outs), the layer changes and the bytes of each phase
//! of a rate schedule are kept per measurement window, for the QoS report (`qos.rs`).

use hdrhistogram::Histogram;

use crate::frames::Frames;
use crate::stamp::{Stamp, AUDIO};

/// Histogram of delays in microseconds, up to 60 s, 3 significant digits.
pub fn delay_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// Gaps at least this long are kept (video ones are freezes), microseconds.
pub const GAP_NOTE_US: u64 = 100_000;
/// Gaps kept per viewer between two resets; more are dropped (the longest gap still counts).
const GAPS_KEPT: usize = 64;
/// Layer changes kept per window; a viewer flapping past this is flapping, and the QoS
/// report says it switched at least this often.
const LAYER_CHANGES_KEPT: usize = 256;

/// Sequence numbers remembered behind the highest, to tell a late packet from a duplicate.
const WINDOW: u32 = 1024;

#[derive(Debug, Clone, Copy)]
struct Run {
    stream: u8,
    first: u32,
    highest: u32,
    received: u64,
    /// Bit `seq % WINDOW`: seen, for the last `WINDOW` sequence numbers.
    seen: [u64; (WINDOW / 64) as usize],
}

impl Run {
    fn new(stream: u8, seq: u32) -> Run {
        let mut r = Run {
            stream,
            first: seq,
            highest: seq,
            received: 1,
            seen: [0; (WINDOW / 64) as usize],
        };
        r.mark(seq);
        r
    }

    fn expected(&self) -> u64 {
        u64::from(self.highest.wrapping_sub(self.first)) + 1
    }

    fn bit(seq: u32) -> (usize, u64) {
        let i = seq % WINDOW;
        ((i / 64) as usize, 1u64 << (i % 64))
    }

    fn mark(&mut self, seq: u32) {
        let (w, b) = Run::bit(seq);
        self.seen[w] |= b;
    }

    /// Takes `seq`; false if it is a duplicate or too old to tell.
    fn take(&mut self, seq: u32) -> bool {
        let ahead = seq.wrapping_sub(self.highest);
        if ahead != 0 && ahead < u32::MAX / 2 {
            if ahead >= WINDOW {
                self.seen = [0; (WINDOW / 64) as usize];
            } else {
                for s in 1..=ahead {
                    let (w, b) = Run::bit(self.highest.wrapping_add(s));
                    self.seen[w] &= !b;
                }
            }
            self.highest = seq;
            self.mark(seq);
            self.received += 1;
            return true;
        }
        let behind = self.highest.wrapping_sub(seq);
        let in_run = seq.wrapping_sub(self.first) <= self.highest.wrapping_sub(self.first);
        let (w, b) = Run::bit(seq);
        if in_run && behind < WINDOW && self.seen[w] & b == 0 {
            self.seen[w] |= b;
            self.received += 1;
            true
        } else {
            false
        }
    }
}

/// The time between arrivals of one kind of packet (video or audio).
#[derive(Debug, Clone, Default)]
pub struct Gaps {
    /// Arrival of the last packet, microseconds on the sender's clock.
    last_us: Option<u64>,
    /// The longest gap since [`Accounting::start_window`], µs (only gaps closed by a
    /// packet; see [`Gaps::longest`]).
    pub max_us: u64,
    /// Gaps of at least [`GAP_NOTE_US`] since [`Accounting::start_window`] (bounded):
    /// (start, length), µs.
    pub kept: Vec<(u64, u64)>,
}

impl Gaps {
    fn arrive(&mut self, now_us: u64) {
        if let Some(last) = self.last_us {
            let gap = now_us.saturating_sub(last);
            self.max_us = self.max_us.max(gap);
            if gap >= GAP_NOTE_US && self.kept.len() < GAPS_KEPT {
                self.kept.push((last, gap));
            }
        }
        self.last_us = Some(now_us);
    }

    fn reset(&mut self) {
        self.max_us = 0;
        self.kept.clear();
    }

    /// The gap still open at `now_us` (nothing since the last packet), µs; none before the
    /// first packet.
    pub fn open_us(&self, now_us: u64) -> Option<(u64, u64)> {
        self.last_us.map(|l| (l, now_us.saturating_sub(l)))
    }

    /// The longest gap up to `now_us`, the one still open included, µs.
    pub fn longest(&self, now_us: u64) -> u64 {
        self.max_us.max(self.open_us(now_us).map_or(0, |(_, g)| g))
    }
}

/// One viewer's accounting.
#[derive(Debug, Clone)]
pub struct Accounting {
    video: Option<Run>,
    audio: Option<Run>,
    /// Packets expected in closed runs.
    closed_expected: u64,
    /// Packets received in closed runs.
    closed_received: u64,
    /// Video packets received per layer (0..=2).
    pub per_layer: [u64; 3],
    /// Payload bytes received.
    pub bytes: u64,
    /// One-way delays, microseconds.
    pub delay: Histogram<u64>,
    /// Duplicates and packets from before a run's start (reordered), not counted.
    pub late: u64,
    /// Gaps between video packets (of any layer): freezes.
    pub video_gaps: Gaps,
    /// Gaps between audio packets.
    pub audio_gaps: Gaps,
    /// (arrival µs, layer) of each video packet on another layer than the one before, the
    /// first one being the layer in force when the window started (bounded).
    pub layers: Vec<(u64, u8)>,
    /// Where each phase of the window starts, µs (set by [`Accounting::start_window`]).
    phase_starts_us: Vec<u64>,
    /// Payload bytes received in each phase.
    pub phase_bytes: Vec<u64>,
    /// Whole video frames since the window started.
    pub frames: Frames,
}

impl Default for Accounting {
    fn default() -> Self {
        Accounting {
            video: None,
            audio: None,
            closed_expected: 0,
            closed_received: 0,
            per_layer: [0; 3],
            bytes: 0,
            delay: delay_histogram(),
            late: 0,
            video_gaps: Gaps::default(),
            audio_gaps: Gaps::default(),
            layers: Vec::new(),
            phase_starts_us: Vec::new(),
            phase_bytes: Vec::new(),
            frames: Frames::default(),
        }
    }
}

impl Accounting {
    /// Counts one received packet whose stamp is `s`, at `now_us` on the sender's clock.
    pub fn packet(&mut self, s: Stamp, bytes: usize, now_us: u64) {
        self.bytes += bytes as u64;
        let phase = self.phase_starts_us.partition_point(|&t| t <= now_us);
        if let Some(b) = phase
            .checked_sub(1)
            .and_then(|i| self.phase_bytes.get_mut(i))
        {
            *b += bytes as u64;
        }
        let _ = self.delay.record(now_us.saturating_sub(s.sent_us).max(1));
        if s.stream < 3 {
            self.per_layer[usize::from(s.stream)] += 1;
            self.video_gaps.arrive(now_us);
            let changed = self.layers.last().is_none_or(|&(_, l)| l != s.stream);
            if changed && self.layers.len() < LAYER_CHANGES_KEPT {
                self.layers.push((now_us, s.stream));
            }
        } else if s.stream == AUDIO {
            self.audio_gaps.arrive(now_us);
        }
        let slot = if s.stream == AUDIO {
            &mut self.audio
        } else {
            &mut self.video
        };
        match slot {
            Some(run) if run.stream == s.stream => {
                if !run.take(s.seq) {
                    self.late += 1;
                }
            }
            other => {
                if let Some(old) = other.take() {
                    self.closed_expected += old.expected();
                    self.closed_received += old.received.min(old.expected());
                }
                *other = Some(Run::new(s.stream, s.seq));
            }
        }
    }

    /// (expected, received) so far, open runs included.
    pub fn totals(&self) -> (u64, u64) {
        let mut e = self.closed_expected;
        let mut r = self.closed_received;
        for run in [self.video, self.audio].into_iter().flatten() {
            e += run.expected();
            r += run.received.min(run.expected());
        }
        (e, r)
    }

    /// Starts a measurement window whose phases (of a rate schedule; one phase without)
    /// start at `phase_starts_us`, in increasing order: the gaps, the layer changes and
    /// the phases' bytes start anew. The next packet's gap is measured from the last one
    /// before, and the layer in force stays as the first change.
    pub fn start_window(&mut self, phase_starts_us: &[u64]) {
        self.frames.reset();
        self.video_gaps.reset();
        self.audio_gaps.reset();
        let current = self.layers.pop();
        self.layers.clear();
        self.layers.extend(current);
        self.phase_starts_us = phase_starts_us.to_vec();
        self.phase_bytes = vec![0; phase_starts_us.len()];
    }

    /// Lost packets over expected ones, 0 to 1.
    pub fn loss(&self) -> f64 {
        let (e, r) = self.totals();
        if e == 0 {
            0.0
        } else {
            (e - r) as f64 / e as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(stream: u8, seq: u32, sent_us: u64) -> Stamp {
        Stamp {
            stream,
            seq,
            sent_us,
        }
    }

    #[test]
    fn counts_holes_within_runs_not_across_layer_switches() {
        let mut a = Accounting::default();
        for seq in [10, 11, 13, 14] {
            a.packet(s(0, seq, 0), 100, 5_000);
        }
        // Switch to layer 2 (its own numbering): no loss for the jump.
        for seq in [500, 501, 502] {
            a.packet(s(2, seq, 0), 100, 7_000);
        }
        // Audio alongside, with a reordered packet filling its hole.
        for seq in [0, 2, 1, 3] {
            a.packet(s(AUDIO, seq, 0), 10, 1_000);
        }
        a.packet(s(AUDIO, 2, 0), 10, 1_000); // a duplicate
        assert_eq!(a.totals(), (5 + 3 + 4, 4 + 3 + 4));
        assert!((a.loss() - 1.0 / 12.0).abs() < 1e-9);
        assert_eq!(a.per_layer, [4, 0, 3]);
        assert_eq!(a.late, 1);
        assert_eq!(a.delay.len(), 12);
        assert!(a.delay.value_at_quantile(0.5) >= 4_990);
    }

    #[test]
    fn video_gaps_are_measured_between_arrivals_and_audio_does_not_fill_them() {
        let mut a = Accounting::default();
        for (seq, at) in [(0, 0), (1, 33_000), (2, 66_000)] {
            a.packet(s(0, seq, 0), 100, at);
        }
        assert_eq!(a.video_gaps.max_us, 33_000);
        a.start_window(&[66_000]);
        // Audio goes on during a video freeze of 400 ms.
        a.packet(s(AUDIO, 0, 0), 10, 200_000);
        a.packet(s(0, 3, 0), 100, 466_000);
        a.packet(s(0, 4, 0), 100, 499_000);
        assert_eq!(a.video_gaps.max_us, 400_000);
        assert_eq!(a.video_gaps.kept, [(66_000, 400_000)]);
        // Audio's own gaps; one still open at the end counts in the longest.
        a.packet(s(AUDIO, 1, 0), 10, 220_000);
        assert_eq!(a.audio_gaps.max_us, 20_000);
        assert_eq!(a.audio_gaps.longest(1_000_000), 780_000);
        assert_eq!(a.video_gaps.longest(520_000), 400_000);
    }

    #[test]
    fn layer_changes_and_phase_bytes_are_kept_per_window() {
        let mut a = Accounting::default();
        a.packet(s(2, 0, 0), 100, 1_000);
        a.packet(s(1, 0, 0), 100, 2_000);
        a.packet(s(1, 1, 0), 100, 3_000);
        // The window starts at 10 ms with phases at 10 ms and 20 ms: the layer in force
        // stays, as the first change.
        a.start_window(&[10_000, 20_000]);
        assert_eq!(a.layers, [(2_000, 1)]);
        a.packet(s(1, 2, 0), 100, 12_000);
        a.packet(s(AUDIO, 0, 0), 10, 15_000);
        a.packet(s(0, 0, 0), 50, 21_000);
        a.packet(s(0, 1, 0), 50, 22_000);
        assert_eq!(a.layers, [(2_000, 1), (21_000, 0)]);
        assert_eq!(a.phase_bytes, [110, 100]);
    }
}
