//! Which layer a viewer's path can carry: the decide step before [`super::selector`].
//!
//! Fed with the viewer's send-side bandwidth estimate (str0m's transport-wide congestion
//! control), the age of the oldest packet in its pacer queue, and the publisher's layers
//! with their measured bitrates; answers a target rank, or [`Allocation::Paused`] when not
//! even the lowest layer fits beside the audio. The rules, in the order they are checked:
//!
//! - audio is reserved first ([`AllocatorConfig::audio_bps`]): video gets what is left;
//! - down at once, to the best layer that fits, when the estimate falls clearly under the
//!   current layer's need ([`AllocatorConfig::down_below`]); down one step when the pacer
//!   queue's oldest packet has waited longer than [`AllocatorConfig::queue_limit`] (then the
//!   queue gets [`AllocatorConfig::queue_grace`] to drain before another);
//! - up one layer only when the estimate has held the next layer's need with
//!   [`AllocatorConfig::headroom`] for [`AllocatorConfig::up_hold`]. The estimate rises past
//!   what a viewer receives only through the estimator's probes (the driver asks for them by
//!   setting the desired rate, [`Allocator::desired_bps`]), so a held estimate is a probe
//!   that succeeded;
//! - paused: video resumes when the lowest layer fits with headroom for
//!   [`AllocatorConfig::resume_hold`]; every [`AllocatorConfig::reprobe_after`] paused the
//!   driver resets the estimator ([`Decision::reset_estimate`]) and it probes again.
//!
//! A viewer's own layer choice is a cap: the allocator never goes above it. Without an
//! estimate (no congestion control negotiated) the cap is the target, as before.
//! Time is an argument; nothing here reads a clock.

use std::time::{Duration, Instant};

/// The allocator's tuning.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AllocatorConfig {
    /// Reserved for audio before any video layer, in bits per second on the wire.
    pub audio_bps: u64,
    /// Wire bytes per payload byte of video (RTP and SRTP headers, UDP and IP).
    pub overhead: f64,
    /// How much more than a layer's need the estimate must hold before stepping up to it.
    pub headroom: f64,
    /// The estimate may sit this far under the current layer's need before it steps down.
    /// A delay-based estimator answers a momentary overuse (a receiver's scheduling
    /// hiccup) by setting the estimate to 85 % of what was acknowledged, just under what
    /// flows; only a clearly lower estimate, or a pacer queue that grows, says the path no
    /// longer carries the layer.
    pub down_below: f64,
    /// How long the estimate must hold the next layer before stepping up.
    pub up_hold: Duration,
    /// How long the lowest layer must fit before video resumes after a pause.
    pub resume_hold: Duration,
    /// The pacer queue's oldest packet waiting longer than this steps down.
    pub queue_limit: Duration,
    /// After a step down for the queue, the time it gets to drain before another.
    pub queue_grace: Duration,
    /// Paused this long, the estimator is reset and probes again.
    pub reprobe_after: Duration,
}

impl Default for AllocatorConfig {
    fn default() -> Self {
        AllocatorConfig {
            // Opus at 32 kbit/s is 50 packets a second of about 80 bytes; with 60 bytes of
            // headers each it takes about 56 kbit/s on the wire.
            audio_bps: 64_000,
            overhead: 1.08,
            headroom: 1.2,
            down_below: 0.75,
            up_hold: Duration::from_millis(2500),
            resume_hold: Duration::from_millis(1000),
            queue_limit: Duration::from_millis(200),
            queue_grace: Duration::from_millis(1000),
            reprobe_after: Duration::from_secs(5),
        }
    }
}

/// What a viewer's video gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocation {
    /// The layer of this rank (0 is the lowest).
    Layer(usize),
    /// No video: audio alone.
    Paused,
}

/// The outcome of one [`Allocator::decide`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The target now.
    pub target: Allocation,
    /// Whether it differs from the last decision.
    pub changed: bool,
    /// Reset the estimator (to [`Allocator::reset_bps`]) and probe again.
    pub reset_estimate: bool,
}

/// One viewer's allocator.
#[derive(Debug, Clone)]
pub struct Allocator {
    cfg: AllocatorConfig,
    estimate: Option<u64>,
    queue_delay: Duration,
    target: Option<Allocation>,
    /// Since when the estimate has held the next step up.
    holding_since: Option<Instant>,
    /// When the last step down for the queue was taken.
    queue_step: Option<Instant>,
    /// When the pause began, or the estimator was last reset during it.
    paused_since: Option<Instant>,
}

impl Allocator {
    /// An allocator with no estimate yet.
    pub fn new(cfg: AllocatorConfig) -> Self {
        Allocator {
            cfg,
            estimate: None,
            queue_delay: Duration::ZERO,
            target: None,
            holding_since: None,
            queue_step: None,
            paused_since: None,
        }
    }

    /// The path's estimated capacity, in bits per second.
    pub fn set_estimate(&mut self, bps: u64) {
        self.estimate = Some(bps);
    }

    /// The latest estimate.
    pub fn estimate(&self) -> Option<u64> {
        self.estimate
    }

    /// How long the oldest packet in the viewer's pacer queue has waited.
    pub fn set_queue_delay(&mut self, delay: Duration) {
        self.queue_delay = delay;
    }

    /// The last decision's target.
    pub fn target(&self) -> Option<Allocation> {
        self.target
    }

    /// What a layer of `bitrate` (payload bits per second) takes with the audio beside it.
    pub fn need(&self, bitrate: u64) -> u64 {
        self.cfg.audio_bps + (bitrate as f64 * self.cfg.overhead).round() as u64
    }

    /// The rate the estimator should try to discover: the cap's need with headroom (what
    /// the viewer could use), so that it probes towards it.
    pub fn desired_bps(&self, layers: &[u64], cap: usize) -> u64 {
        let Some(top) = layers.len().checked_sub(1) else {
            return self.cfg.audio_bps;
        };
        (self.need(layers[cap.min(top)]) as f64 * self.cfg.headroom).round() as u64
    }

    /// The estimate to restart from while paused: the lowest layer's need, so that video
    /// resumes only once probing finds more.
    pub fn reset_bps(&self, layers: &[u64]) -> u64 {
        layers.first().map_or(self.cfg.audio_bps, |&b| self.need(b))
    }

    /// Decides the target for `layers` (bitrates, lowest first) under the viewer's `cap`
    /// (the highest rank it allows).
    pub fn decide(&mut self, now: Instant, layers: &[u64], cap: usize) -> Decision {
        let before = self.target;
        let mut reset_estimate = false;
        let target = match layers.len().checked_sub(1) {
            // No layers yet: nothing to decide.
            None => before.unwrap_or(Allocation::Layer(cap)),
            Some(top) => {
                let cap = cap.min(top);
                match self.estimate {
                    None => Allocation::Layer(cap),
                    Some(est) => {
                        let t = self.step(now, est, layers, cap);
                        reset_estimate = self.reprobe(now, t);
                        t
                    }
                }
            }
        };
        self.target = Some(target);
        Decision {
            target,
            changed: before != Some(target),
            reset_estimate,
        }
    }

    /// The highest rank up to `below` whose need fits in `est`.
    fn best_fit(&self, est: u64, layers: &[u64], below: usize) -> Allocation {
        (0..=below)
            .rev()
            .find(|&i| self.need(layers[i]) <= est)
            .map_or(Allocation::Paused, Allocation::Layer)
    }

    fn step(&mut self, now: Instant, est: u64, layers: &[u64], cap: usize) -> Allocation {
        let current = match self.target {
            // First decision: the best the estimate carries.
            None => return self.best_fit(est, layers, cap),
            Some(t) => t,
        };
        match current {
            Allocation::Layer(i) => {
                let i = i.min(cap);
                if (est as f64) < self.need(layers[i]) as f64 * self.cfg.down_below {
                    self.holding_since = None;
                    return self.best_fit(est, layers, i);
                }
                if self.queue_delay > self.cfg.queue_limit {
                    // Never up while packets wait; down one step per grace.
                    self.holding_since = None;
                    let grace_over = self
                        .queue_step
                        .is_none_or(|t| now.saturating_duration_since(t) >= self.cfg.queue_grace);
                    if !grace_over {
                        return Allocation::Layer(i);
                    }
                    self.queue_step = Some(now);
                    return match i.checked_sub(1) {
                        Some(lower) => Allocation::Layer(lower),
                        None => Allocation::Paused,
                    };
                }
                if i < cap && self.holds(now, est, layers[i + 1], self.cfg.up_hold) {
                    return Allocation::Layer(i + 1);
                }
                if i >= cap {
                    self.holding_since = None;
                }
                Allocation::Layer(i)
            }
            Allocation::Paused => {
                if self.holds(now, est, layers[0], self.cfg.resume_hold) {
                    Allocation::Layer(0)
                } else {
                    Allocation::Paused
                }
            }
        }
    }

    /// Whether the estimate has held `bitrate`'s need with headroom for `hold`.
    fn holds(&mut self, now: Instant, est: u64, bitrate: u64, hold: Duration) -> bool {
        if (est as f64) < self.need(bitrate) as f64 * self.cfg.headroom {
            self.holding_since = None;
            return false;
        }
        let since = *self.holding_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= hold {
            // The next step's hold starts now.
            self.holding_since = Some(now);
            return true;
        }
        false
    }

    /// While paused, whether the estimator is due for a reset.
    fn reprobe(&mut self, now: Instant, target: Allocation) -> bool {
        if target != Allocation::Paused {
            self.paused_since = None;
            return false;
        }
        let since = *self.paused_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= self.cfg.reprobe_after {
            self.paused_since = Some(now);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests;
