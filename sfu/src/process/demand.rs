//! When a stream's ladder runs: from the first moment a viewer wants a layer below the
//! source's (or its allocation needs one) until no viewer has for [`GRACE`]. The grace
//! keeps a viewer that hovers at the edge of a step from starting and stopping an encoder
//! every second. Sans-I/O: the caller says whether it is wanted, and when.

use std::time::{Duration, Instant};

/// How long a ladder runs on with no viewer wanting it.
pub const GRACE: Duration = Duration::from_secs(5);

/// A change the caller acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Start the ladder.
    Start,
    /// Stop it.
    Stop,
}

/// The start/stop decision for one stream.
#[derive(Debug, Clone)]
pub struct Demand {
    grace: Duration,
    running: bool,
    unwanted_since: Option<Instant>,
}

impl Default for Demand {
    fn default() -> Self {
        Demand::new(GRACE)
    }
}

impl Demand {
    /// A decision with this grace.
    pub fn new(grace: Duration) -> Self {
        Demand {
            grace,
            running: false,
            unwanted_since: None,
        }
    }

    /// Whether the ladder runs.
    pub fn running(&self) -> bool {
        self.running
    }

    /// Whether any viewer wants a lower layer at `now`; what to do about it, if anything.
    pub fn update(&mut self, wanted: bool, now: Instant) -> Option<Change> {
        if wanted {
            self.unwanted_since = None;
            if !self.running {
                self.running = true;
                return Some(Change::Start);
            }
            return None;
        }
        if !self.running {
            return None;
        }
        let since = *self.unwanted_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= self.grace {
            self.running = false;
            self.unwanted_since = None;
            return Some(Change::Stop);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_at_once_and_stops_after_the_grace() {
        let t0 = Instant::now();
        let s = |ms: u64| t0 + Duration::from_millis(ms);
        let mut d = Demand::new(Duration::from_secs(5));
        assert_eq!(
            d.update(false, s(0)),
            None,
            "nobody wants it: it never starts"
        );
        assert_eq!(d.update(true, s(100)), Some(Change::Start));
        assert_eq!(d.update(true, s(200)), None);
        assert_eq!(d.update(false, s(1_000)), None);
        assert_eq!(d.update(false, s(5_999)), None, "within the grace");
        assert_eq!(d.update(false, s(6_000)), Some(Change::Stop));
        assert!(!d.running());
        assert_eq!(d.update(false, s(20_000)), None);
    }

    #[test]
    fn a_viewer_back_within_the_grace_keeps_it_running() {
        let t0 = Instant::now();
        let s = |ms: u64| t0 + Duration::from_millis(ms);
        let mut d = Demand::new(Duration::from_secs(5));
        assert_eq!(d.update(true, s(0)), Some(Change::Start));
        assert_eq!(d.update(false, s(1_000)), None);
        assert_eq!(d.update(true, s(4_000)), None);
        // The grace counts again from the last time it was unwanted.
        assert_eq!(d.update(false, s(5_000)), None);
        assert_eq!(d.update(false, s(9_999)), None);
        assert_eq!(d.update(false, s(10_000)), Some(Change::Stop));
        assert_eq!(d.update(true, s(10_001)), Some(Change::Start));
    }
}
