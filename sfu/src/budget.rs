//! A node's budget: when its CPU or its egress passes what it was given, viewers give way
//! before anyone is refused. Four levels, one step at a time:
//!
//! 1. [`Pressure::CapNew`]: new viewers are capped below the top layer;
//! 2. [`Pressure::ShedTop`]: the top layer is shed for every viewer on the node;
//! 3. [`Pressure::Refuse`]: new viewers are refused (503 with `Retry-After`).
//!
//! A level is taken after the node was over its budget for [`BudgetConfig::escalate_after`]
//! (counted again from each step), and given back one at a time after it was well under
//! (below [`BudgetConfig::release_below`] of it) for [`BudgetConfig::release_after`]. Shedding
//! brings the node under its budget, and giving the layer back may bring it over again: a
//! viewer once capped stays capped until the node is back to [`Pressure::Normal`]
//! (`Consumer`), and each time a level is taken again within a minute of one given back, the
//! next release waits twice as long (up to 8 times), so a node at its limit settles instead
//! of flapping. Sans-I/O: [`Budget::observe`] takes the time and the load; [`CpuMeter`]
//! and [`RateMeter`] read them. The CPU is the process's share of all the machine's cores
//! (with fewer workers than cores the node saturates them before it reaches a high share;
//! set the budget accordingly); where `/proc` cannot be read it counts as 0.

use std::time::{Duration, Instant};

/// What the node gives way with now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
#[repr(u8)]
pub enum Pressure {
    /// Within budget.
    #[default]
    Normal = 0,
    /// New viewers are capped below the top layer.
    CapNew = 1,
    /// The top layer is shed for every viewer.
    ShedTop = 2,
    /// New viewers are refused.
    Refuse = 3,
}

impl Pressure {
    /// The level of `n` (saturating).
    pub fn from_u8(n: u8) -> Pressure {
        match n {
            0 => Pressure::Normal,
            1 => Pressure::CapNew,
            2 => Pressure::ShedTop,
            _ => Pressure::Refuse,
        }
    }

    fn up(self) -> Pressure {
        Pressure::from_u8(self as u8 + 1)
    }

    fn down(self) -> Pressure {
        Pressure::from_u8((self as u8).saturating_sub(1))
    }
}

/// What the node may use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetConfig {
    /// The process's CPU, as a share of the machine's cores (0 to 1); `None`: no limit.
    pub cpu: Option<f64>,
    /// Media sent to viewers, bits per second; `None`: no limit.
    pub egress_bps: Option<u64>,
    /// Over budget this long takes the next level.
    pub escalate_after: Duration,
    /// Under this share of the budget counts as well under.
    pub release_below: f64,
    /// Well under this long gives a level back.
    pub release_after: Duration,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig {
            // A node past 90 % of the machine delays every packet it sends.
            cpu: Some(0.9),
            egress_bps: None,
            escalate_after: Duration::from_secs(2),
            release_below: 0.8,
            release_after: Duration::from_secs(15),
        }
    }
}

/// The budget's state.
#[derive(Debug, Clone)]
pub struct Budget {
    cfg: BudgetConfig,
    level: Pressure,
    over_since: Option<Instant>,
    under_since: Option<Instant>,
    /// When a level was last given back.
    released_at: Option<Instant>,
    /// The release hold's multiplier: doubled by a level taken again soon after one was
    /// given back.
    backoff: u32,
}

/// A level taken again this soon after one was given back doubles the next release hold.
const FLAP_WINDOW: Duration = Duration::from_secs(60);
/// The release hold grows to at most this many times its configured length.
const MAX_BACKOFF: u32 = 8;

impl Budget {
    /// Within budget, nothing seen yet.
    pub fn new(cfg: BudgetConfig) -> Budget {
        Budget {
            cfg,
            level: Pressure::Normal,
            over_since: None,
            under_since: None,
            released_at: None,
            backoff: 1,
        }
    }

    /// Whether any limit is set.
    pub fn enabled(&self) -> bool {
        self.cfg.cpu.is_some() || self.cfg.egress_bps.is_some()
    }

    /// Takes the load at `now` (`cpu` as a share of the cores, `egress_bps`); returns the
    /// level.
    pub fn observe(&mut self, now: Instant, cpu: f64, egress_bps: u64) -> Pressure {
        let share = |limit: Option<f64>, used: f64| limit.map_or(0.0, |l| used / l.max(1e-9));
        let used = share(self.cfg.cpu, cpu).max(share(
            self.cfg.egress_bps.map(|b| b as f64),
            egress_bps as f64,
        ));
        if used > 1.0 {
            self.under_since = None;
            let since = *self.over_since.get_or_insert(now);
            if now.saturating_duration_since(since) >= self.cfg.escalate_after
                && self.level < Pressure::Refuse
            {
                self.level = self.level.up();
                self.over_since = Some(now);
                if self
                    .released_at
                    .is_some_and(|t| now.saturating_duration_since(t) <= FLAP_WINDOW)
                {
                    self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                }
            }
        } else if used < self.cfg.release_below {
            self.over_since = None;
            let since = *self.under_since.get_or_insert(now);
            let calm = now.saturating_duration_since(since);
            if calm >= self.cfg.release_after * self.backoff && self.level > Pressure::Normal {
                self.level = self.level.down();
                self.under_since = Some(now);
                self.released_at = Some(now);
            } else if self.level == Pressure::Normal && calm >= self.cfg.release_after * 4 {
                // Long settled: the next pressure starts from the configured hold.
                self.backoff = 1;
            }
        } else {
            self.over_since = None;
            self.under_since = None;
        }
        self.level
    }
}

/// The process's CPU use between samples, as a share of the machine's cores, from
/// `/proc/self/stat` (utime + stime in clock ticks of 1/100 s, Linux's fixed USER_HZ).
#[derive(Debug, Default)]
pub struct CpuMeter {
    last: Option<(Instant, u64)>,
}

impl CpuMeter {
    /// The share since the last call (0 at the first, or where `/proc` cannot be read).
    pub fn sample(&mut self) -> f64 {
        let Some(ticks) = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| {
                // Fields after the command name (which may hold spaces) in parentheses.
                let rest = &s[s.rfind(')')? + 2..];
                let f: Vec<&str> = rest.split(' ').collect();
                Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
            })
        else {
            return 0.0;
        };
        let now = Instant::now();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let cpu = self.last.map_or(0.0, |(t, before)| {
            let secs = now.duration_since(t).as_secs_f64().max(0.001);
            (ticks.saturating_sub(before) as f64 / 100.0 / secs / cores).clamp(0.0, 1.0)
        });
        self.last = Some((now, ticks));
        cpu
    }
}

/// A counter of bytes turned into a rate between samples.
#[derive(Debug, Default)]
pub struct RateMeter {
    last: Option<(Instant, u64)>,
}

impl RateMeter {
    /// Bits per second since the last call, from the counter's `bytes` now (0 at the first).
    pub fn sample(&mut self, now: Instant, bytes: u64) -> u64 {
        let bps = self.last.map_or(0, |(t, before)| {
            let secs = now.saturating_duration_since(t).as_secs_f64().max(0.001);
            (bytes.saturating_sub(before) as f64 * 8.0 / secs) as u64
        });
        self.last = Some((now, bytes));
        bps
    }
}

/// How often the load is sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// Starts the thread that samples the node's load every second and sets the directory's
/// level; it ends once the directory is dropped (the node is gone). Without a limit it
/// still publishes the CPU share.
pub(crate) fn spawn_sampler(
    cfg: BudgetConfig,
    directory: std::sync::Weak<crate::directory::Directory>,
    metrics: crate::metrics::Metrics,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("cascade-budget".into())
        .spawn(move || {
            metrics
                .egress_budget
                .set(cfg.egress_bps.unwrap_or(0) as f64);
            let mut budget = Budget::new(cfg);
            let (mut cpu, mut egress) = (CpuMeter::default(), RateMeter::default());
            loop {
                std::thread::sleep(SAMPLE_EVERY);
                let Some(d) = directory.upgrade() else { return };
                let now = Instant::now();
                let share = cpu.sample();
                let bps = egress.sample(now, metrics.bytes_out.get());
                metrics.cpu_share.set(share);
                metrics.egress.set(bps as f64);
                let before = d.pressure();
                let level = budget.observe(now, share, bps);
                if level != before {
                    tracing::warn!(?level, cpu = share, egress_bps = bps, "node budget");
                    d.set_pressure(level);
                    metrics.budget_pressure.set(level as i64);
                }
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget() -> Budget {
        Budget::new(BudgetConfig {
            cpu: Some(0.5),
            egress_bps: Some(10_000_000),
            ..BudgetConfig::default()
        })
    }

    #[test]
    fn over_budget_steps_up_one_level_every_hold() {
        let t0 = Instant::now();
        let mut b = budget();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(b.observe(at(0), 0.6, 0), Pressure::Normal);
        assert_eq!(b.observe(at(1), 0.6, 0), Pressure::Normal);
        assert_eq!(b.observe(at(2), 0.6, 0), Pressure::CapNew);
        assert_eq!(
            b.observe(at(3), 0.1, 20_000_000),
            Pressure::CapNew,
            "egress too"
        );
        assert_eq!(b.observe(at(4), 0.1, 20_000_000), Pressure::ShedTop);
        assert_eq!(b.observe(at(6), 0.1, 20_000_000), Pressure::Refuse);
        assert_eq!(
            b.observe(at(20), 0.9, 0),
            Pressure::Refuse,
            "no level beyond"
        );
    }

    #[test]
    fn a_moment_over_is_nothing_and_levels_come_back_slowly() {
        let t0 = Instant::now();
        let mut b = budget();
        let at = |s: u64| t0 + Duration::from_secs(s);
        b.observe(at(0), 0.6, 0);
        // Between the release line and the budget: neither hold runs.
        b.observe(at(1), 0.45, 0);
        assert_eq!(b.observe(at(2), 0.6, 0), Pressure::Normal);
        b.observe(at(3), 0.6, 0);
        assert_eq!(b.observe(at(4), 0.6, 0), Pressure::CapNew);
        assert_eq!(b.observe(at(6), 0.6, 0), Pressure::ShedTop);
        // Well under: one level back after the release hold, then the next.
        assert_eq!(b.observe(at(7), 0.1, 0), Pressure::ShedTop);
        assert_eq!(b.observe(at(21), 0.1, 0), Pressure::ShedTop);
        assert_eq!(b.observe(at(22), 0.1, 0), Pressure::CapNew);
        assert_eq!(b.observe(at(37), 0.1, 0), Pressure::Normal);
    }

    #[test]
    fn a_level_taken_again_soon_after_its_release_waits_longer_next_time() {
        let t0 = Instant::now();
        let mut b = budget();
        let at = |s: u64| t0 + Duration::from_secs(s);
        b.observe(at(0), 0.6, 0);
        assert_eq!(b.observe(at(2), 0.6, 0), Pressure::CapNew);
        assert_eq!(b.observe(at(3), 0.1, 0), Pressure::CapNew);
        assert_eq!(
            b.observe(at(18), 0.1, 0),
            Pressure::Normal,
            "15 s well under"
        );
        // Over again at once (what was shed came back): taken again, and the next release
        // waits 30 s.
        b.observe(at(19), 0.6, 0);
        assert_eq!(b.observe(at(21), 0.6, 0), Pressure::CapNew);
        b.observe(at(22), 0.1, 0);
        assert_eq!(b.observe(at(40), 0.1, 0), Pressure::CapNew);
        assert_eq!(b.observe(at(52), 0.1, 0), Pressure::Normal);
        // Settled for 4 release holds: the hold is 15 s again.
        assert_eq!(b.observe(at(200), 0.1, 0), Pressure::Normal);
        b.observe(at(201), 0.6, 0);
        assert_eq!(b.observe(at(203), 0.6, 0), Pressure::CapNew);
        b.observe(at(204), 0.1, 0);
        assert_eq!(b.observe(at(219), 0.1, 0), Pressure::Normal);
    }

    #[test]
    fn no_limit_no_pressure() {
        let t0 = Instant::now();
        let mut b = Budget::new(BudgetConfig {
            cpu: None,
            egress_bps: None,
            ..BudgetConfig::default()
        });
        assert!(!b.enabled());
        for s in 0..10 {
            assert_eq!(
                b.observe(t0 + Duration::from_secs(s), 1.0, u64::MAX),
                Pressure::Normal
            );
        }
    }

    #[test]
    fn rates_between_samples() {
        let t0 = Instant::now();
        let mut r = RateMeter::default();
        assert_eq!(r.sample(t0, 1000), 0);
        assert_eq!(r.sample(t0 + Duration::from_secs(2), 251_000), 1_000_000);
    }
}
