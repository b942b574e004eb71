//! Where a viewer's outgoing video stands against the node's clock, so that an instant of
//! wall-clock time (an ad break's start) can be named in that viewer's own RTP timestamps
//! and every viewer's player acts on the same frame, whatever its own delay.
//!
//! A frame's packets carry its capture time as an RTP timestamp and reach this node some
//! delay later. Jitter only ever makes a packet later, so the packet that came earliest for
//! its timestamp is the best mark of the stream's timeline: the [`Anchor`], the arrival and
//! outgoing timestamp of the least delayed packet of the last two [`BUCKET`]s (a path that
//! becomes slower is followed within two of them). An instant `t` is then the timestamp
//! `anchor.ts + (t - anchor.at) × clock rate`: the frame that reaches the node at `t` with
//! that least delay.
//!
//! The estimate starts afresh at each splice (a layer switch, a restarted publisher, a
//! replayed group of pictures whose timestamps were squeezed): the outgoing timestamps go
//! on from the last ones sent, not from the new source's, so the old anchor would be off by
//! the delay the splice added. What this does not know is what happened before the node:
//! a node fed by a relay link measures arrivals at itself, a hop's delay later than the
//! ingest did (docs/ADS.md says what that costs).

use std::time::{Duration, Instant};

/// How long a least delayed packet stays the anchor: its bucket and the next.
pub const BUCKET: Duration = Duration::from_secs(2);
/// A new anchor is told only when it moves the timeline by more than this (a frame at
/// 30 fps is 33 ms): most buckets' best packets agree to within it, so telling is rare.
pub const TOLERANCE: Duration = Duration::from_millis(2);

/// A packet of the outgoing stream: when it arrived at the node, and its outgoing timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    /// When its packet arrived at the node.
    pub at: Instant,
    /// Its outgoing RTP timestamp.
    pub ts: u32,
}

/// How much later than `a` predicts `b` arrived, in seconds (negative: earlier, so less
/// delayed). Timestamps are compared wrapping (within 2^31 ticks, 6.6 hours at 90 kHz).
fn lateness(a: Anchor, b: Anchor, rate: u32) -> f64 {
    let elapsed = b.at.saturating_duration_since(a.at).as_secs_f64()
        - a.at.saturating_duration_since(b.at).as_secs_f64();
    let media = f64::from(b.ts.wrapping_sub(a.ts) as i32) / f64::from(rate);
    elapsed - media
}

/// The least delayed packet of a sliding window, and whether it moved enough to be told.
#[derive(Debug, Clone)]
pub struct TimelineEstimator {
    rate: u32,
    /// The best packet of the current bucket, and when the bucket began.
    current: Option<(Anchor, Instant)>,
    /// The best packet of the bucket before.
    previous: Option<Anchor>,
    /// The anchor last handed out by [`Self::take`] (or due to be).
    told: Option<Anchor>,
    dirty: bool,
}

impl TimelineEstimator {
    /// An estimator of a stream whose timestamps tick at `rate` per second.
    pub fn new(rate: u32) -> Self {
        TimelineEstimator {
            rate: rate.max(1),
            current: None,
            previous: None,
            told: None,
            dirty: false,
        }
    }

    /// Forgets every packet: the outgoing timestamps were spliced onto another source.
    pub fn reset(&mut self) {
        self.current = None;
        self.previous = None;
        self.told = None;
    }

    /// A packet with outgoing timestamp `ts` that arrived at `at` is sent.
    #[inline]
    pub fn observe(&mut self, at: Instant, ts: u32) {
        let sample = Anchor { at, ts };
        let rate = self.rate;
        let current = match self.current {
            Some((best, began)) if at.saturating_duration_since(began) < BUCKET => {
                if lateness(best, sample, rate) < 0.0 {
                    (sample, began)
                } else {
                    (best, began)
                }
            }
            Some((best, _)) => {
                self.previous = Some(best);
                (sample, at)
            }
            None => (sample, at),
        };
        self.current = Some(current);
        let best = match self.previous {
            Some(p) if lateness(p, current.0, rate) > 0.0 => p,
            _ => current.0,
        };
        let moved = self
            .told
            .is_none_or(|t| lateness(t, best, rate).abs() > TOLERANCE.as_secs_f64());
        if moved {
            self.told = Some(best);
            self.dirty = true;
        }
    }

    /// The anchor, once each time it moved by more than [`TOLERANCE`] (or started anew).
    pub fn take(&mut self) -> Option<Anchor> {
        if !std::mem::take(&mut self.dirty) {
            return None;
        }
        self.told
    }
}

/// A viewer's video timeline on the wall clock: outgoing timestamp `ts` reached the node,
/// with the least delay seen, at `at_us` (Unix microseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeline {
    /// Unix microseconds.
    pub at_us: u64,
    /// The outgoing RTP timestamp then.
    pub ts: u32,
    /// Ticks per second.
    pub clock_rate: u32,
}

impl Timeline {
    /// `anchor` on the wall clock, knowing that the monotonic `now` is `wall_now_us`.
    pub fn on_wall_clock(anchor: Anchor, rate: u32, now: Instant, wall_now_us: u64) -> Self {
        let ago = now.saturating_duration_since(anchor.at).as_micros();
        let ahead = anchor.at.saturating_duration_since(now).as_micros();
        let at_us = (i128::from(wall_now_us) - ago as i128 + ahead as i128).max(0);
        Timeline {
            at_us: u64::try_from(at_us).unwrap_or(u64::MAX),
            ts: anchor.ts,
            clock_rate: rate,
        }
    }

    /// The outgoing timestamp of the frame that reaches the node at `wall_ms` (Unix
    /// milliseconds), wrapping as RTP timestamps do.
    pub fn ts_at(&self, wall_ms: u64) -> u32 {
        let d_us = i128::from(wall_ms) * 1000 - i128::from(self.at_us);
        let ticks = (d_us * i128::from(self.clock_rate) + 500_000).div_euclid(1_000_000);
        // Wrapping: only the low 32 bits are a timestamp.
        self.ts.wrapping_add(ticks as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 90_000;
    /// 30 fps at 90 kHz.
    const FRAME: u32 = 3_000;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_least_delayed_packet_is_the_anchor_and_is_told_once() {
        let t0 = Instant::now();
        let mut e = TimelineEstimator::new(RATE);
        // Frame k captured at k × 33.3 ms; delays of 40 ms plus jitter, 10 ms at best.
        let jitter = [30u64, 12, 0, 25, 7, 30, 18, 3, 22, 9];
        let base = u32::MAX - 5 * FRAME; // wraps during the test
        let mut told = Vec::new();
        for k in 0..60u32 {
            let capture = Duration::from_micros(u64::from(k) * 33_333);
            let at = t0 + capture + ms(40 + jitter[k as usize % jitter.len()]);
            e.observe(at, base.wrapping_add(k * FRAME));
            told.extend(e.take());
        }
        let last = *told.last().unwrap();
        // The anchor predicts the least delay: capture + 40 ms.
        let predicted = lateness(
            last,
            Anchor {
                at: t0 + ms(40),
                ts: base,
            },
            RATE,
        );
        assert!(predicted.abs() < 0.001, "{predicted}");
        assert!(told.len() <= 3, "told only as it improved: {told:?}");
        assert_eq!(e.take(), None);
        // Late packets (retransmissions, a congested moment) change nothing.
        e.observe(t0 + ms(5_000), base);
        assert_eq!(e.take(), None);
    }

    #[test]
    fn a_slower_path_is_followed_within_two_buckets() {
        let t0 = Instant::now();
        let mut e = TimelineEstimator::new(RATE);
        let mut told = None;
        for k in 0..300u32 {
            let capture = Duration::from_micros(u64::from(k) * 33_333);
            // 10 ms of delay, then 60 ms from the fifth second on.
            let delay = if capture < ms(5_000) { 10 } else { 60 };
            e.observe(t0 + capture + ms(delay), k * FRAME);
            told = e.take().or(told);
        }
        let now = told.unwrap();
        let predicted = lateness(
            now,
            Anchor {
                at: t0 + ms(60),
                ts: 0,
            },
            RATE,
        );
        assert!(
            predicted.abs() < 0.001,
            "follows the new delay: {predicted}"
        );
    }

    #[test]
    fn a_splice_starts_a_new_timeline() {
        let t0 = Instant::now();
        let mut e = TimelineEstimator::new(RATE);
        e.observe(t0, 1_000);
        assert_eq!(e.take(), Some(Anchor { at: t0, ts: 1_000 }));
        // A layer switch: the outgoing timestamps go on 66 ms of wall time later, but the
        // new layer's keyframe came 20 ms later than its capture would say.
        e.reset();
        let at = t0 + ms(86);
        e.observe(at, 1_000 + 2 * FRAME);
        assert_eq!(
            e.take(),
            Some(Anchor {
                at,
                ts: 1_000 + 2 * FRAME
            })
        );
    }

    #[test]
    fn the_wall_clock_maps_to_timestamps_with_wrap_around() {
        let now = Instant::now();
        let anchor = Anchor {
            at: now - ms(500),
            ts: u32::MAX - 44_999,
        };
        let t = Timeline::on_wall_clock(anchor, RATE, now, 1_700_000_000_000_000);
        assert_eq!(t.at_us, 1_700_000_000_000_000 - 500_000);
        // Half a second after the anchor: 45,000 ticks on, through the wrap to 0.
        assert_eq!(t.ts_at(1_700_000_000_000), 0);
        // Two seconds after: 180,000 ticks on.
        assert_eq!(t.ts_at(1_700_000_001_500), 135_000);
        // Before the anchor: back through the wrap.
        assert_eq!(t.ts_at(1_699_999_999_000), u32::MAX - 89_999);
        // An anchor not yet reached by `now` (clocks read in another order) still maps.
        let ahead = Timeline::on_wall_clock(
            Anchor {
                at: now + ms(1),
                ts: 0,
            },
            RATE,
            now,
            1_000,
        );
        assert_eq!(ahead.at_us, 2_000);
    }
}
