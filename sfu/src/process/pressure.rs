//! The ladder's degradation under CPU pressure: a pure decision on a clock passed in.
//! The ladder thread reports, per source packet, how long its work took and how many
//! packets wait in its input queue; at the end of each window [`Pressure`] compares the
//! busy time with the window's length. A ladder that falls behind (busy over
//! [`HIGH_LOAD`] of a window, or a queue backed up past [`BACKLOG`]) steps down one
//! [`Level`]: first every other frame is encoded, then its largest rung goes too (the smallest stays). It steps
//! back up after [`CALM_WINDOWS`] windows in a row under [`LOW_LOAD`] with an empty queue
//! (low enough that the next level's doubled work still fits).

use std::time::{Duration, Instant};

/// The window over which the load is measured.
pub const WINDOW: Duration = Duration::from_secs(1);
/// Busy share of a window above which the ladder is behind.
pub const HIGH_LOAD: f64 = 0.85;
/// Busy share under which a window is calm (half of [`HIGH_LOAD`] and some margin, since
/// stepping back up about doubles the work).
pub const LOW_LOAD: f64 = 0.35;
/// Waiting source packets at which the ladder is behind whatever the load says.
pub const BACKLOG: usize = 128;
/// Calm windows in a row before stepping back up.
pub const CALM_WINDOWS: u32 = 3;

/// How much the ladder does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Level {
    /// Every frame, every rung.
    #[default]
    Full,
    /// Every other frame, every rung.
    HalfRate,
    /// Every other frame, without the largest rung.
    FewerRungs,
}

impl Level {
    /// The number for a metric or a log (0 = full).
    pub fn as_i64(self) -> i64 {
        match self {
            Level::Full => 0,
            Level::HalfRate => 1,
            Level::FewerRungs => 2,
        }
    }

    /// Whether only every other frame is encoded.
    pub fn half_rate(self) -> bool {
        self >= Level::HalfRate
    }

    /// Whether the largest rung is left out.
    pub fn fewer_rungs(self) -> bool {
        self == Level::FewerRungs
    }

    fn down(self) -> Self {
        match self {
            Level::Full => Level::HalfRate,
            _ => Level::FewerRungs,
        }
    }

    fn up(self) -> Self {
        match self {
            Level::FewerRungs => Level::HalfRate,
            _ => Level::Full,
        }
    }
}

/// The decision for one ladder.
#[derive(Debug, Clone)]
pub struct Pressure {
    level: Level,
    start: Option<Instant>,
    busy: Duration,
    backlog: usize,
    calm: u32,
}

impl Default for Pressure {
    fn default() -> Self {
        Self::new()
    }
}

impl Pressure {
    /// Full level, no window open yet.
    pub fn new() -> Self {
        Pressure {
            level: Level::Full,
            start: None,
            busy: Duration::ZERO,
            backlog: 0,
            calm: 0,
        }
    }

    /// The level in use.
    pub fn level(&self) -> Level {
        self.level
    }

    /// Work of `busy` done by `now`, with `queued` packets waiting; the new level when it
    /// changes.
    pub fn observe(&mut self, now: Instant, busy: Duration, queued: usize) -> Option<Level> {
        let start = *self.start.get_or_insert(now);
        self.busy += busy;
        self.backlog = self.backlog.max(queued);
        let elapsed = now.saturating_duration_since(start);
        if elapsed < WINDOW {
            return None;
        }
        let load = self.busy.as_secs_f64() / elapsed.as_secs_f64();
        let behind = load > HIGH_LOAD || self.backlog >= BACKLOG;
        let calm_window = load < LOW_LOAD && self.backlog == 0;
        self.start = Some(now);
        self.busy = Duration::ZERO;
        self.backlog = 0;
        let before = self.level;
        if behind {
            self.calm = 0;
            self.level = self.level.down();
        } else if calm_window {
            self.calm += 1;
            if self.calm >= CALM_WINDOWS {
                self.calm = 0;
                self.level = self.level.up();
            }
        } else {
            self.calm = 0;
        }
        (self.level != before).then_some(self.level)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A decision with its first window opened at the returned time.
    fn fresh() -> (Pressure, Instant) {
        let (mut p, t) = (Pressure::new(), Instant::now());
        assert_eq!(p.observe(t, Duration::ZERO, 0), None);
        (p, t)
    }

    /// Runs `secs` seconds of 25 fps frames each costing `work_ms` with `queued` waiting;
    /// the level changes seen.
    fn run(
        p: &mut Pressure,
        t: &mut Instant,
        secs: u32,
        work_ms: u64,
        queued: usize,
    ) -> Vec<Level> {
        let mut seen = Vec::new();
        for _ in 0..secs * 25 {
            *t += Duration::from_millis(40);
            if let Some(l) = p.observe(*t, Duration::from_millis(work_ms), queued) {
                seen.push(l);
            }
        }
        seen
    }

    #[test]
    fn keeping_up_stays_full() {
        let (mut p, mut t) = fresh();
        // Half of each frame interval busy.
        assert!(run(&mut p, &mut t, 10, 20, 0).is_empty());
        assert_eq!(p.level(), Level::Full);
    }

    #[test]
    fn overload_halves_the_rate_then_drops_a_rung_then_recovers() {
        let (mut p, mut t) = fresh();
        // 50 ms of work per 40 ms frame: behind.
        assert_eq!(run(&mut p, &mut t, 1, 50, 0), vec![Level::HalfRate]);
        // Still behind at half rate (90 ms per encoded frame, every other one).
        assert_eq!(run(&mut p, &mut t, 1, 45, 0), vec![Level::FewerRungs]);
        // No lower than that.
        assert!(run(&mut p, &mut t, 3, 45, 0).is_empty());
        assert_eq!(p.level(), Level::FewerRungs);
        // Load gone: back one level after three calm windows, then the next.
        assert!(run(&mut p, &mut t, 2, 5, 0).is_empty());
        assert_eq!(run(&mut p, &mut t, 1, 5, 0), vec![Level::HalfRate]);
        assert_eq!(run(&mut p, &mut t, 3, 5, 0), vec![Level::Full]);
    }

    #[test]
    fn a_backed_up_queue_is_behind_even_at_low_load() {
        let (mut p, mut t) = fresh();
        assert_eq!(run(&mut p, &mut t, 1, 1, BACKLOG), vec![Level::HalfRate]);
        // A queue not empty is not calm: no recovery.
        assert!(run(&mut p, &mut t, 5, 1, 3).is_empty());
        assert_eq!(p.level(), Level::HalfRate);
    }

    #[test]
    fn middling_load_neither_degrades_nor_recovers() {
        let (mut p, mut t) = fresh();
        run(&mut p, &mut t, 1, 50, 0);
        // 60 % busy at half rate: would not fit at full rate; stays.
        assert!(run(&mut p, &mut t, 6, 24, 0).is_empty());
        assert_eq!(p.level(), Level::HalfRate);
    }
}
