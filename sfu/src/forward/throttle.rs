//! At most one keyframe request per publisher layer per window: a thousand viewers
//! joining at once must not make the encoder send a thousand keyframes.

use std::time::{Duration, Instant};

/// Per-layer request throttle, bounded to [`Self::LAYERS`] layers.
#[derive(Debug, Clone)]
pub struct KeyframeThrottle {
    window: Duration,
    last: [Option<Instant>; Self::LAYERS],
}

impl KeyframeThrottle {
    /// Layers tracked; requests for higher indices are refused.
    pub const LAYERS: usize = 4;

    /// A throttle letting one request per layer through each `window`.
    pub fn new(window: Duration) -> Self {
        KeyframeThrottle {
            window,
            last: [None; Self::LAYERS],
        }
    }

    /// Whether a request for `layer` may go to the publisher now; records it if so.
    pub fn allow(&mut self, layer: usize, now: Instant) -> bool {
        let Some(slot) = self.last.get_mut(layer) else {
            return false;
        };
        match *slot {
            Some(at) if now.saturating_duration_since(at) < self.window => false,
            _ => {
                *slot = Some(now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_request_per_layer_per_window() {
        let t0 = Instant::now();
        let mut t = KeyframeThrottle::new(Duration::from_millis(500));
        assert!(t.allow(0, t0));
        assert!(!t.allow(0, t0 + Duration::from_millis(499)));
        assert!(t.allow(1, t0), "layers are independent");
        assert!(t.allow(0, t0 + Duration::from_millis(500)));
        assert!(!t.allow(KeyframeThrottle::LAYERS, t0), "bounded");
        let allowed = (0..1000)
            .filter(|i| t.allow(2, t0 + Duration::from_millis(*i)))
            .count();
        assert_eq!(allowed, 2, "1000 ms of requests, 500 ms window");
    }
}
