//! The proxy's rate cap over time: `3mbit@0s,400kbit@10s,3mbit@30s`, or one constant rate
//! (`2mbit`). Times count from the schedule's origin, which `cascade loadtest` sets when the
//! measurement window starts (every viewer started and settled), so that a step at 10 s is
//! 10 s into what the report measures whatever the ramp took; until then the first step's
//! rate applies. Pure: the time is passed in.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// When a schedule's time 0 is; unset until the measurement window starts.
pub type Origin = Arc<OnceLock<Instant>>;

/// One step: from `at` on, the path carries `rate_bps` (0: no cap).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Since the origin.
    pub at: Duration,
    /// Bits per second; 0 is no cap.
    pub rate_bps: u64,
}

/// Rate steps in time order, the first at 0; empty means no cap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateSchedule {
    steps: Vec<Step>,
}

impl RateSchedule {
    /// The same rate all the time (0: no cap).
    pub fn constant(rate_bps: u64) -> RateSchedule {
        RateSchedule {
            steps: vec![Step {
                at: Duration::ZERO,
                rate_bps,
            }],
        }
    }

    /// The steps, in time order.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// Whether the rate ever changes.
    pub fn changes(&self) -> bool {
        self.steps.len() > 1
    }

    /// The rate `t` after the origin (0: no cap).
    pub fn rate_at(&self, t: Duration) -> u64 {
        // The last step that has started; the first starts at 0, so one always has.
        let started = self.steps.partition_point(|s| s.at <= t);
        started.checked_sub(1).map_or(0, |i| self.steps[i].rate_bps)
    }

    /// The rate at `now`, counted from `origin`; before the origin (or without one), the
    /// first step's.
    pub fn rate_at_instant(&self, origin: Option<Instant>, now: Instant) -> u64 {
        let t = origin.map_or(Duration::ZERO, |o| now.saturating_duration_since(o));
        self.rate_at(t)
    }
}

/// Parses a rate: `400kbit`, `3mbit`, `2.5mbit` or plain bits per second.
pub fn parse_rate(v: &str) -> Result<u64, String> {
    let (num, mult) = if let Some(n) = v.strip_suffix("mbit") {
        (n, 1_000_000.0)
    } else if let Some(n) = v.strip_suffix("kbit") {
        (n, 1_000.0)
    } else {
        (v, 1.0)
    };
    match num.parse::<f64>() {
        Ok(n) if n >= 0.0 && n.is_finite() => Ok((n * mult) as u64),
        _ => Err(format!("{v}: expected a rate like 400kbit or 3mbit")),
    }
}

/// Parses a time since the origin: `10s`, `2.5s` or `1500ms`.
fn parse_time(v: &str) -> Result<Duration, String> {
    let (num, scale) = if let Some(n) = v.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1.0)
    } else {
        return Err(format!("{v}: expected a time like 10s or 1500ms"));
    };
    match num.parse::<f64>() {
        Ok(n) if n >= 0.0 && n.is_finite() => Ok(Duration::from_secs_f64(n * scale)),
        _ => Err(format!("{v}: expected a time like 10s or 1500ms")),
    }
}

impl std::str::FromStr for RateSchedule {
    type Err = String;

    /// `2mbit` (constant) or `3mbit@0s,400kbit@10s,3mbit@30s`: steps in increasing time
    /// order, the first at 0s.
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        if parts.len() == 1 && !parts[0].contains('@') {
            return Ok(RateSchedule::constant(parse_rate(parts[0])?));
        }
        let mut steps: Vec<Step> = Vec::with_capacity(parts.len());
        for part in parts {
            let (rate, at) = part.split_once('@').ok_or_else(|| {
                format!("{part}: a rate schedule's steps are rate@time, like 400kbit@10s")
            })?;
            let step = Step {
                at: parse_time(at)?,
                rate_bps: parse_rate(rate)?,
            };
            match steps.last() {
                None if !step.at.is_zero() => {
                    return Err(format!(
                        "{part}: a rate schedule starts at 0s (the rate before the first step \
                         would be unknown)"
                    ))
                }
                Some(prev) if step.at <= prev.at => {
                    return Err(format!("{part}: steps must be in increasing time order"))
                }
                _ => steps.push(step),
            }
        }
        Ok(RateSchedule { steps })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn parses_constants_and_schedules() {
        assert_eq!("2mbit".parse(), Ok(RateSchedule::constant(2_000_000)));
        assert_eq!("2.5kbit".parse(), Ok(RateSchedule::constant(2_500)));
        assert_eq!("64000".parse(), Ok(RateSchedule::constant(64_000)));
        let s: RateSchedule = "1mbit@0s, 2mbit@1500ms".parse().unwrap();
        assert_eq!(s.rate_at(Duration::from_millis(1_500)), 2_000_000);
        let s: RateSchedule = "3mbit@0s,400kbit@10s,3mbit@30.5s".parse().unwrap();
        assert_eq!(
            s.steps(),
            [
                Step {
                    at: secs(0),
                    rate_bps: 3_000_000
                },
                Step {
                    at: secs(10),
                    rate_bps: 400_000
                },
                Step {
                    at: Duration::from_millis(30_500),
                    rate_bps: 3_000_000
                },
            ]
        );
        assert!(s.changes());
    }

    #[test]
    fn refuses_bad_schedules_saying_why() {
        let err = |s: &str| s.parse::<RateSchedule>().unwrap_err();
        assert!(err("fast").contains("expected a rate"), "{}", err("fast"));
        assert!(err("3mbit@0s,400kbit").contains("rate@time"));
        assert!(err("3mbit@0s,400kbit@10").contains("expected a time"));
        assert!(err("3mbit@2s,400kbit@10s").contains("starts at 0s"));
        assert!(err("3mbit@0s,400kbit@10s,1mbit@10s").contains("increasing"));
        assert!(err("-3mbit").contains("expected a rate"));
    }

    #[test]
    fn looks_up_the_step_in_force() {
        let s: RateSchedule = "3mbit@0s,400kbit@8s,3mbit@16s".parse().unwrap();
        assert_eq!(s.rate_at(secs(0)), 3_000_000);
        assert_eq!(s.rate_at(Duration::from_millis(7_999)), 3_000_000);
        assert_eq!(s.rate_at(secs(8)), 400_000);
        assert_eq!(s.rate_at(secs(15)), 400_000);
        assert_eq!(s.rate_at(secs(16)), 3_000_000);
        assert_eq!(s.rate_at(secs(3600)), 3_000_000);
        assert_eq!(RateSchedule::default().rate_at(secs(5)), 0, "no cap");
        // Before the origin is set, and before it comes, the first step's rate.
        let origin = Instant::now();
        assert_eq!(s.rate_at_instant(None, origin + secs(9)), 3_000_000);
        assert_eq!(s.rate_at_instant(Some(origin + secs(1)), origin), 3_000_000);
        assert_eq!(s.rate_at_instant(Some(origin), origin + secs(9)), 400_000);
    }
}
