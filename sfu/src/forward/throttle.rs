//! At most one keyframe request per publisher layer per window, and none while one is
//! still outstanding: a thousand viewers joining at once must not make the encoder send a
//! thousand keyframes, yet a viewer arriving after the last keyframe should not wait out a
//! long window. A request is outstanding until that layer's next keyframe arrives, or
//! until [`KeyframeThrottle::RETRY_AFTER`] passes (the request or the keyframe was lost).
//! Encoders ignore requests that come too soon after their last keyframe (libwebrtc: 300 ms),
//! so a request is held until [`KeyframeThrottle::ENCODER_HOLDOFF`] after the last one seen
//! rather than sent to be ignored and retried much later.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    last: Option<Instant>,
    outstanding: bool,
    last_keyframe: Option<Instant>,
}

/// Per-layer request throttle, bounded to [`Self::LAYERS`] layers.
#[derive(Debug, Clone)]
pub struct KeyframeThrottle {
    window: Duration,
    slots: [Slot; Self::LAYERS],
}

impl KeyframeThrottle {
    /// Layers tracked; requests for higher indices are refused.
    pub const LAYERS: usize = 4;
    /// An outstanding request is repeated after this long without a keyframe.
    pub const RETRY_AFTER: Duration = Duration::from_millis(350);
    /// Requests sooner than this after a keyframe are ignored by the encoder.
    pub const ENCODER_HOLDOFF: Duration = Duration::from_millis(300);

    /// A throttle letting at most one request per layer through each `window`.
    pub fn new(window: Duration) -> Self {
        KeyframeThrottle {
            window,
            slots: [Slot::default(); Self::LAYERS],
        }
    }

    /// Forgets every request and keyframe seen (a new source behind the same throttle).
    pub fn reset(&mut self) {
        self.slots = [Slot::default(); Self::LAYERS];
    }

    /// Whether a request for `layer` may go to the publisher now; records it if so.
    pub fn allow(&mut self, layer: usize, now: Instant) -> bool {
        let Some(slot) = self.slots.get_mut(layer) else {
            return false;
        };
        let wait = if slot.outstanding {
            self.window.max(Self::RETRY_AFTER)
        } else {
            self.window
        };
        let too_soon_after_keyframe = slot
            .last_keyframe
            .is_some_and(|k| now.saturating_duration_since(k) < Self::ENCODER_HOLDOFF);
        match slot.last {
            Some(at) if now.saturating_duration_since(at) < wait => false,
            _ if too_soon_after_keyframe => false,
            _ => {
                slot.last = Some(now);
                slot.outstanding = true;
                true
            }
        }
    }

    /// A keyframe of `layer` arrived: the outstanding request is answered.
    pub fn keyframe_seen(&mut self, layer: usize, now: Instant) {
        if let Some(slot) = self.slots.get_mut(layer) {
            slot.outstanding = false;
            slot.last_keyframe = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn one_request_per_layer_per_window() {
        let t0 = Instant::now();
        let mut t = KeyframeThrottle::new(Duration::from_millis(100));
        assert!(t.allow(0, t0));
        assert!(!t.allow(0, ms(t0, 99)));
        assert!(t.allow(1, t0), "layers are independent");
        assert!(!t.allow(KeyframeThrottle::LAYERS, t0), "bounded");
        // A join storm with keyframes answering at once: one per encoder hold-off.
        let mut t = KeyframeThrottle::new(Duration::from_millis(100));
        let mut sent = 0;
        for i in 0..3000 {
            if t.allow(2, ms(t0, i)) {
                sent += 1;
                t.keyframe_seen(2, ms(t0, i));
            }
        }
        assert_eq!(sent, 10, "3000 ms of requests, one per 300 ms");
        // With a longer window configured, the window rules.
        let mut t = KeyframeThrottle::new(Duration::from_millis(1000));
        let sent = (0..3000)
            .filter(|i| {
                let ok = t.allow(0, ms(t0, *i));
                if ok {
                    t.keyframe_seen(0, ms(t0, *i + 20));
                }
                ok
            })
            .count();
        assert_eq!(sent, 3);
    }

    #[test]
    fn outstanding_request_coalesces_until_keyframe_or_retry() {
        let t0 = Instant::now();
        let mut t = KeyframeThrottle::new(Duration::from_millis(100));
        assert!(t.allow(0, t0));
        // No keyframe yet: later joins ride on the outstanding request.
        assert!(!t.allow(0, ms(t0, 150)));
        assert!(!t.allow(0, ms(t0, 349)));
        // Lost: asked again after RETRY_AFTER.
        assert!(t.allow(0, ms(t0, 350)));
        t.keyframe_seen(0, ms(t0, 400));
        // Answered, but the encoder would ignore a request this soon after its keyframe.
        assert!(!t.allow(0, ms(t0, 650)));
        assert!(
            t.allow(0, ms(t0, 700)),
            "held only until the hold-off passes"
        );
    }
}
