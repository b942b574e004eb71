//! When to try a delivery again: exponential backoff with jitter, for a day, then give
//! up. Pure: time and the random draw are arguments, so a whole day of retries runs on a
//! virtual clock in the tests below.

/// The retry schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Delay after the first failure, milliseconds; each further failure doubles it.
    pub base_ms: i64,
    /// Longest delay between two attempts, milliseconds.
    pub cap_ms: i64,
    /// No attempt is scheduled later than this long after the event, milliseconds.
    pub give_up_after_ms: i64,
    /// Each delay is scaled by a factor drawn in `[1 - jitter, 1 + jitter)`, so endpoints
    /// that failed together do not all come back together.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    /// 5 s, 10 s, 20 s, … up to an hour apart, for 24 hours (about 33 attempts), ±20 %.
    fn default() -> Self {
        RetryPolicy {
            base_ms: 5_000,
            cap_ms: 3_600_000,
            give_up_after_ms: 24 * 3_600_000,
            jitter: 0.2,
        }
    }
}

/// How one attempt went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The endpoint answered 2xx.
    Delivered,
    /// Anything else: another status, a refused connection, a timeout.
    Failed,
}

/// What to do with the delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Done: mark it delivered.
    Delivered,
    /// Try again at this time (Unix milliseconds).
    RetryAt(i64),
    /// The day is over: mark it failed.
    GiveUp,
}

impl RetryPolicy {
    /// The delay after `failures` failed attempts (1 or more), with `draw` in `[0, 1)`.
    pub fn delay_ms(&self, failures: u32, draw: f64) -> i64 {
        let doublings = failures.saturating_sub(1).min(40);
        let raw = self
            .base_ms
            .max(1)
            .saturating_mul(1i64 << doublings)
            .min(self.cap_ms.max(1));
        let factor = 1.0 - self.jitter + 2.0 * self.jitter * draw.clamp(0.0, 1.0);
        ((raw as f64) * factor).round().max(1.0) as i64
    }

    /// Decides after attempt number `attempts` (counting this one) of an event made at
    /// `created_at`, finished at `now`.
    pub fn decide(
        &self,
        outcome: Outcome,
        created_at: i64,
        attempts: u32,
        now: i64,
        draw: f64,
    ) -> Decision {
        if outcome == Outcome::Delivered {
            return Decision::Delivered;
        }
        let at = now.saturating_add(self.delay_ms(attempts, draw));
        if at > created_at.saturating_add(self.give_up_after_ms) {
            Decision::GiveUp
        } else {
            Decision::RetryAt(at)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A seeded draw in [0, 1) (xorshift), so runs repeat.
    struct Draws(u64);
    impl Draws {
        fn next(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// Runs one delivery on a virtual clock against a receiver that fails `failing` times
    /// (then succeeds), each attempt taking 30 ms; returns the attempt times and the end.
    fn run(policy: &RetryPolicy, failing: u32, seed: u64) -> (Vec<i64>, Decision) {
        let mut draws = Draws(seed);
        let created = 1_000_000;
        let mut now = created;
        let mut times = Vec::new();
        loop {
            times.push(now);
            let outcome = if times.len() as u32 > failing {
                Outcome::Delivered
            } else {
                Outcome::Failed
            };
            now += 30;
            match policy.decide(outcome, created, times.len() as u32, now, draws.next()) {
                Decision::RetryAt(at) => {
                    assert!(at > now, "retries move forward");
                    now = at;
                }
                end => return (times, end),
            }
        }
    }

    #[test]
    fn fails_three_times_then_delivers_once() {
        let p = RetryPolicy::default();
        let (times, end) = run(&p, 3, 42);
        assert_eq!(end, Decision::Delivered);
        assert_eq!(times.len(), 4, "three failures and one success");
        let gaps: Vec<i64> = times.windows(2).map(|w| w[1] - w[0] - 30).collect();
        for (i, gap) in gaps.iter().enumerate() {
            let nominal = 5_000 << i;
            assert!(
                (nominal * 8 / 10..=nominal * 12 / 10).contains(gap),
                "gap {i} is {gap} ms, nominal {nominal}"
            );
        }
    }

    #[test]
    fn a_dead_endpoint_is_tried_for_a_day_then_given_up() {
        let p = RetryPolicy::default();
        for seed in [1, 7, 99, 12345] {
            let (times, end) = run(&p, u32::MAX, seed);
            assert_eq!(end, Decision::GiveUp);
            let last = *times.last().unwrap() - times[0];
            assert!(last <= p.give_up_after_ms, "no attempt after a day: {last}");
            assert!(
                last > p.give_up_after_ms - p.cap_ms * 12 / 10 - 30,
                "the day is used: the last attempt at {last} ms"
            );
            assert!((25..=45).contains(&times.len()), "{} attempts", times.len());
            let widest = times.windows(2).map(|w| w[1] - w[0]).max().unwrap();
            assert!(widest <= p.cap_ms * 12 / 10 + 30, "capped: {widest}");
        }
    }

    #[test]
    fn jitter_spreads_endpoints_that_failed_together() {
        let p = RetryPolicy::default();
        let mut draws = Draws(3);
        let delays: std::collections::HashSet<i64> =
            (0..50).map(|_| p.delay_ms(4, draws.next())).collect();
        assert!(delays.len() > 40, "{delays:?}");
        assert!(delays.iter().all(|d| (32_000..48_000).contains(d)));
        let none = RetryPolicy { jitter: 0.0, ..p };
        assert_eq!(none.delay_ms(1, 0.9), 5_000);
        assert_eq!(none.delay_ms(200, 0.5), 3_600_000, "no overflow, capped");
    }
}
