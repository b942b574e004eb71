//! Which layer a viewer's path can carry: the decide step before [`super::selector`].
//!
//! Fed with the viewer's send-side bandwidth estimate (str0m's transport-wide congestion
//! control), the age of the oldest packet in its pacer queue, and the publisher's layers
//! with their measured bitrates; answers a target rank, or [`Allocation::Paused`] when not
//! even the lowest layer fits beside the audio. The rules, in the order they are checked:
//!
//! - audio is reserved first ([`AllocatorConfig::audio_bps`]): video gets what is left;
//! - down at once when the estimate falls clearly under the current layer's need
//!   ([`AllocatorConfig::down_below`]), to the best layer that fits a share of it
//!   ([`AllocatorConfig::down_fit`]); not in the first [`AllocatorConfig::warm_up`], when
//!   the estimate has seen little acknowledged;
//! - down to the lowest layer when the pacer queue's oldest packet has waited longer than
//!   [`AllocatorConfig::queue_limit`], or the path lost more than
//!   [`AllocatorConfig::loss_limit`] of the packets over the last second: the path takes
//!   less than it is sent, so the estimate is behind it (a delay-based estimator takes
//!   seconds to fall to a path that lost two thirds of its rate), and the picture is
//!   safest on the smallest layer until the estimate proves more. Only a paced stream has
//!   a pacer queue: the node sends its viewers' video unpaced (`session.rs`), so for them
//!   the loss decides;
//! - up to the best layer that the estimate's floor over the last
//!   [`AllocatorConfig::up_hold`] carries with [`AllocatorConfig::headroom`], and not within
//!   that time of any step, down or up: each step up is proven again on the layer it
//!   leaves. The estimate rises past what a viewer receives only through
//!   the estimator's probes (the driver asks for them by setting the desired rate,
//!   [`Allocator::desired_bps`]), so a floor that held is a probe that succeeded. A probe
//!   is short, and a token bucket on the path (a `tbf`'s burst, a policer) lets it through
//!   whole at any rate: so the viewer is also padded up to the layer the estimate promises
//!   ([`Decision::minimum_bps`]), and the step needs the path to have carried
//!   [`AllocatorConfig::carried`] of that layer's need over the hold (what the session sent,
//!   [`Allocator::set_sent`]). A path that cannot carry it queues, and the estimate falls
//!   before the hold ends;
//! - paused only when the estimate stayed clearly under the lowest layer's need for
//!   [`AllocatorConfig::pause_hold`] and the path loses packets (until then the lowest
//!   layer: an estimator recovering from a loss spell sinks under a path that carries it
//!   without loss); video resumes on the
//!   lowest layer once its need held for [`AllocatorConfig::resume_hold`]; every [`AllocatorConfig::reprobe_after`] paused the
//!   driver resets the estimator ([`Decision::reset_estimate`]) and it probes again;
//! - held below the cap on a clean path for [`AllocatorConfig::stall_after`] without a step
//!   up and without a clear rise of the estimate's floor (no probe succeeded), the estimator
//!   has stalled: it is reset to its estimate, and the new one probes from there (its start-up probes find a recovered path within a second
//!   or two, where its own growth can take half a minute). The first
//!   [`STALLS_AT_FIRST_WAIT`] resets without a step up come every
//!   [`AllocatorConfig::stall_after`], so that a path that recovers within a few seconds of
//!   a limit is found as soon; each further one doubles the wait (to [`MAX_STALL_WAIT`]),
//!   so that a path that really limits the viewer is not probed from scratch every few
//!   seconds. For [`AllocatorConfig::warm_up`] after a reset on a layer, the estimate alone
//!   does not step down (the new estimator's first figures undershoot; queue and loss still
//!   do). After a loss spell str0m's loss-based controller holds the
//!   estimate at a rate of the spell for up to a minute (its hold doubles at each spell),
//!   whatever the delay-based estimate and the probes find (`docs/PERFORMANCE.md`).
//! - in the join's warm-up, on a clean path and a layer whose need (with headroom) the
//!   estimate falls short of, an estimate that neither rose by [`PROGRESS`] nor fell over
//!   [`AllocatorConfig::stuck_after`] is stuck: the estimator is reset, once per viewer,
//!   to the layer's need (what flows on a path that has lost nothing; restarted from the
//!   stuck figure, a browser run's new estimator took 5 s to climb from 246 kbit/s back
//!   to the layer). str0m's delay-based estimator answers the join's first frames with an
//!   overuse decrease, to a fifth of the path or less; its probe controller keeps that
//!   "delay increased" cause until the value changes, refusing every probe, and the value
//!   then stands still or climbs by 3 % a tick as an application-limited sender's does
//!   (browser runs: 581 kbit/s to 744 in 1.2 s, the top layer needing 1.6 Mbit/s with
//!   headroom). Without the reset the viewer stepped down at the warm-up's end on a path
//!   that carries its layer.
//!
//! A viewer's own layer choice is a cap: the allocator never goes above it. Without an
//! estimate (no congestion control negotiated) the cap is the target, as before.
//! Time is an argument; nothing here reads a clock.

use std::collections::VecDeque;
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
    /// A step down for the estimate goes to the best layer that fits this share of it. An
    /// estimate that fell that far was set from throughput measured before the fall, so
    /// the path carries less than it says for a second or two more.
    pub down_fit: f64,
    /// The estimator probes towards the cap's need with headroom times this, so that the
    /// estimate it settles on clears the headroom.
    pub probe_over: f64,
    /// Below its cap, a viewer's estimator is asked to probe this often.
    pub probe_every: Duration,
    /// How long the estimate must hold the next layer before stepping up.
    pub up_hold: Duration,
    /// How long the lowest layer must fit before video resumes after a pause.
    pub resume_hold: Duration,
    /// How long the estimate must stay under the lowest layer's need before video pauses:
    /// a raw estimate dips for a moment after a loss spell.
    pub pause_hold: Duration,
    /// The pacer queue's oldest packet waiting longer than this steps down.
    pub queue_limit: Duration,
    /// For this long after its first decision a viewer takes no step down for the estimate
    /// alone (the queue and loss rules still apply): before its video flows, the estimate
    /// measures only what little was acknowledged.
    pub warm_up: Duration,
    /// A path losing more than this share of packets (over the last second, from the
    /// transport-wide feedback) steps down like a long queue.
    pub loss_limit: f32,
    /// Paused this long, the estimator is reset and probes again.
    pub reprobe_after: Duration,
    /// A step up needs the session to have sent (media and padding) this share of the new
    /// layer's need, on average over the hold. The padding asks for the need with
    /// [`AllocatorConfig::headroom`] (str0m pads to somewhat less than asked), so that a
    /// path that cannot carry the layer queues, and the estimate falls, within the hold.
    pub carried: f64,
    /// Held below its cap on a clean path this long without a step up, the estimator has
    /// stalled: it is reset to its estimate and probes again.
    pub stall_after: Duration,
    /// In the warm-up, an estimate short of its layer that did not rise by [`PROGRESS`]
    /// over this long is stuck (see the module's rules): the estimator is reset once.
    pub stuck_after: Duration,
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
            down_fit: 0.6,
            probe_over: 1.5,
            probe_every: Duration::from_millis(1000),
            up_hold: Duration::from_millis(2000),
            resume_hold: Duration::from_millis(1000),
            pause_hold: Duration::from_millis(1000),
            queue_limit: Duration::from_millis(200),
            loss_limit: 0.2,
            warm_up: Duration::from_secs(2),
            reprobe_after: Duration::from_secs(5),
            carried: 0.9,
            stall_after: Duration::from_secs(3),
            stuck_after: Duration::from_millis(500),
        }
    }
}

/// The longest wait between stall resets of a viewer held below its cap.
pub const MAX_STALL_WAIT: Duration = Duration::from_secs(60);

/// The window of the estimate's floor that tells a stalled estimator from one that climbs.
const PROGRESS_WINDOW: Duration = Duration::from_secs(1);
/// How much the floor must rise since the hold began to count as progress.
const PROGRESS: f64 = 1.2;

/// Stall resets without a step up that wait [`AllocatorConfig::stall_after`] each, before
/// the waits double.
pub const STALLS_AT_FIRST_WAIT: u32 = 3;

/// What a viewer's session reports of its path, as the allocator reads it each tick.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PathReport {
    /// The send-side bandwidth estimate (none without congestion control).
    pub estimate: Option<u64>,
    /// What the session sent lately, padding included (bits per second).
    pub sent_bps: u64,
    /// How long the oldest packet in its pacer queue has waited.
    pub queue_delay: Duration,
    /// The share of packets lost over the last second.
    pub loss: f32,
    /// The session cannot pad (no RTX for its video, where str0m sends padding): what
    /// the path carried cannot prove a layer, and a step up rests on the estimate alone.
    pub unpadded: bool,
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
    /// Reset the estimator (to [`Allocator::reset_bps`]) and probe again: paused for
    /// [`AllocatorConfig::reprobe_after`], or stalled below the cap.
    pub reset_estimate: bool,
    /// The first decision for this viewer (not a change the path caused).
    pub initial: bool,
    /// The rate the estimator should try to discover now ([`Allocator::desired_bps`]), or,
    /// for one tick before a probe, less.
    pub desired_bps: u64,
    /// The least the viewer's transport should keep sending, padding what media does not
    /// fill (capped by the estimate): below its cap and on a clean path, the need of the
    /// layer the estimate carries with headroom, and at least of the next one, so that the
    /// estimate can grow to it (it grows to no more than 1.5 times what is acknowledged)
    /// and a step up is proven by what the path carried; otherwise 0.
    pub minimum_bps: u64,
}

/// Estimates kept for the floor: a decision every 100 ms over the longest hold, and slack.
const HISTORY: usize = 64;

/// One viewer's allocator.
#[derive(Debug, Clone)]
pub struct Allocator {
    cfg: AllocatorConfig,
    estimate: Option<u64>,
    queue_delay: Duration,
    loss: f32,
    target: Option<Allocation>,
    /// The estimates seen since the last step, with what the session sent then, oldest
    /// first, at most [`HISTORY`].
    history: VecDeque<(Instant, u64, u64)>,
    /// What the session sent lately (bits per second, padding included).
    sent: u64,
    /// The session cannot pad ([`PathReport::unpadded`]).
    unpadded: bool,
    /// When the pause began, or the estimator was last reset during it.
    paused_since: Option<Instant>,
    /// Since when the viewer is held below the cap on a clean path without a step (or
    /// since the estimator's last reset for it, or its estimate's last clear rise).
    held_since: Option<Instant>,
    /// The estimate's floor over [`PROGRESS_WINDOW`] when the hold began: a floor
    /// [`PROGRESS`] times higher is an estimator still finding more, not stalled.
    held_floor: Option<u64>,
    /// Stall resets since the last step: the next one waits
    /// [`AllocatorConfig::stall_after`] for the first [`STALLS_AT_FIRST_WAIT`], then twice
    /// as long each time (to [`MAX_STALL_WAIT`]): a path that really limits the viewer is
    /// not probed from scratch every few seconds.
    stalls: u32,
    /// The last estimator reset on a layer: the estimate alone steps down again only
    /// [`AllocatorConfig::warm_up`] after it.
    reset_at: Option<Instant>,
    /// When the estimator was last asked to probe.
    last_probe: Option<Instant>,
    /// The first decision with an estimate.
    started: Option<Instant>,
    /// The estimator was reset for an estimate stuck in the warm-up ([`Self::stuck`]).
    unstuck: bool,
    /// This decision's reset is for a stuck estimate, to this rate (the layer's need).
    unstick_to: Option<u64>,
    /// The lowest choice at the full frame rate: where a lossy path goes (the choices below
    /// it drop temporal layers, which a loss the estimate has not seen yet does not call for).
    base: usize,
}

impl Allocator {
    /// An allocator with no estimate yet.
    pub fn new(cfg: AllocatorConfig) -> Self {
        Allocator {
            cfg,
            estimate: None,
            queue_delay: Duration::ZERO,
            loss: 0.0,
            target: None,
            history: VecDeque::new(),
            sent: 0,
            unpadded: false,
            paused_since: None,
            held_since: None,
            held_floor: None,
            stalls: 0,
            reset_at: None,
            last_probe: None,
            started: None,
            unstuck: false,
            unstick_to: None,
            base: 0,
        }
    }

    /// The lowest choice at the full frame rate (0 when every choice is a whole layer).
    pub fn set_base(&mut self, base: usize) {
        self.base = base;
    }

    /// The path's estimated capacity, in bits per second.
    pub fn set_estimate(&mut self, bps: u64) {
        self.estimate = Some(bps);
    }

    /// The latest estimate.
    pub fn estimate(&self) -> Option<u64> {
        self.estimate
    }

    /// What the viewer's session sent lately, in bits per second: media, repairs and
    /// padding.
    pub fn set_sent(&mut self, bps: u64) {
        self.sent = bps;
    }

    /// Whether the viewer's session cannot pad ([`PathReport::unpadded`]).
    pub fn set_unpadded(&mut self, unpadded: bool) {
        self.unpadded = unpadded;
    }

    /// How long the oldest packet in the viewer's pacer queue has waited.
    pub fn set_queue_delay(&mut self, delay: Duration) {
        self.queue_delay = delay;
    }

    /// The share of packets the path lost over the last second.
    pub fn set_loss(&mut self, loss: f32) {
        self.loss = loss;
    }

    /// The last decision's target.
    pub fn target(&self) -> Option<Allocation> {
        self.target
    }

    /// Renumbers the current target (the choices were renumbered: a layer or a temporal
    /// layer came or went), without counting it as a decision.
    pub fn retarget(&mut self, target: Allocation) {
        if self.target.is_some() {
            self.target = Some(target);
        }
    }

    /// What a layer of `bitrate` (payload bits per second) takes with the audio beside it.
    pub fn need(&self, bitrate: u64) -> u64 {
        self.cfg.audio_bps + (bitrate as f64 * self.cfg.overhead).round() as u64
    }

    /// The rate the estimator should try to discover: beyond the cap's need with headroom
    /// (what the viewer could use), so that it probes past it.
    pub fn desired_bps(&self, layers: &[u64], cap: usize) -> u64 {
        let Some(top) = layers.len().checked_sub(1) else {
            return self.cfg.audio_bps;
        };
        let goal = self.cfg.headroom * self.cfg.probe_over;
        (self.need(layers[cap.min(top)]) as f64 * goal).round() as u64
    }

    /// The estimate to restart from. While paused: under the lowest layer's need (what
    /// resumes it), so that video resumes only once probing finds more. On a layer (a
    /// stall): the estimate itself, so that the layer holds while the new estimator probes;
    /// stuck in the warm-up: the layer's need.
    pub fn reset_bps(&self, layers: &[u64]) -> u64 {
        if let Some(bps) = self.unstick_to {
            return bps;
        }
        match (self.target, self.estimate) {
            (Some(Allocation::Layer(_)), Some(est)) => est,
            _ => layers.first().map_or(self.cfg.audio_bps, |&b| {
                (self.need(b) as f64 * self.cfg.down_below).round() as u64
            }),
        }
    }

    /// Decides the target for `layers` (bitrates, lowest first) under the viewer's `cap`
    /// (the highest rank it allows).
    pub fn decide(&mut self, now: Instant, layers: &[u64], cap: usize) -> Decision {
        let before = self.target;
        let mut reset_estimate = false;
        self.unstick_to = None;
        let mut desired_bps = self.desired_bps(layers, cap);
        let mut minimum_bps = 0;
        let target = match layers.len().checked_sub(1) {
            // No layers yet: nothing to decide.
            None => before.unwrap_or(Allocation::Layer(cap)),
            Some(top) => {
                let cap = cap.min(top);
                match self.estimate {
                    None => Allocation::Layer(cap),
                    Some(est) => {
                        self.record(now, est);
                        let t = self.step(now, est, layers, cap);
                        // A lower cap is the viewer's choice, not the path's.
                        let capped = before.map(|b| match b {
                            Allocation::Layer(i) => Allocation::Layer(i.min(cap)),
                            Allocation::Paused => Allocation::Paused,
                        });
                        if capped.is_some_and(|c| c != t) {
                            // The next step up needs a whole hold from here: after a step
                            // down, as after a step up (an estimate that held for the lower
                            // layer proves nothing yet of the path under the higher one).
                            self.history.clear();
                            self.record(now, est);
                            self.held_since = None;
                            self.stalls = 0;
                        }
                        reset_estimate = self.reprobe(now, t)
                            | self.stalled(now, t, cap)
                            | self.stuck(now, est, t, layers);
                        if reset_estimate && matches!(t, Allocation::Layer(_)) {
                            self.reset_at = Some(now);
                        }
                        if self.probe_due(now, est, t, layers, cap) {
                            // The estimator probes when the desired rate rises: lowered for
                            // this tick, it rises again at the next.
                            desired_bps = self.cfg.audio_bps;
                        }
                        minimum_bps = self.padding_to(est, t, layers, cap);
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
            initial: before.is_none(),
            desired_bps,
            minimum_bps,
        }
    }

    /// Whether the path neither queues nor loses much: where padding and probes may run.
    fn clean(&self) -> bool {
        self.queue_delay <= self.cfg.queue_limit / 2 && self.loss <= self.cfg.loss_limit / 4.0
    }

    /// What to pad up to on `target` with the estimate `est` (see [`Decision::minimum_bps`]).
    fn padding_to(&self, est: u64, target: Allocation, layers: &[u64], cap: usize) -> u64 {
        let top = cap.min(layers.len() - 1);
        match target {
            Allocation::Layer(i) if i < top && self.clean() => {
                let promised = (i + 1..=top)
                    .rev()
                    .find(|&k| self.need(layers[k]) as f64 * self.cfg.headroom <= est as f64)
                    .unwrap_or(i + 1);
                (self.need(layers[promised]) as f64 * self.cfg.headroom).round() as u64
            }
            _ => 0,
        }
    }

    /// Whether to make the estimator probe now. It probes on its own only where its
    /// sending is application-limited; a viewer held on a lower layer after its path
    /// recovered sends too much of its estimate for that, and the estimate could climb
    /// only at 1.5 times what flows. So below the cap, once the estimate has been steady
    /// for [`AllocatorConfig::probe_every`] (and the pacer queue is short), ask for a probe.
    /// Likewise on a layer whose need (with headroom) the estimate `est` falls short of: a
    /// viewer's first burst (its cached group of pictures, at several times the layer's
    /// rate) can sink the estimate to a fifth of what the path carries, and it climbs
    /// back by a few percent a second, too slow for the [`AllocatorConfig::warm_up`].
    fn probe_due(
        &mut self,
        now: Instant,
        est: u64,
        target: Allocation,
        layers: &[u64],
        cap: usize,
    ) -> bool {
        let below_cap = match target {
            Allocation::Layer(k) => {
                // Short of the layer's need only in the warm-up (the join's burst); after
                // it, an estimate that short steps down instead.
                let need = self.need(layers[k.min(layers.len() - 1)]) as f64;
                let warming = !self.warm(now);
                k < cap || (warming && (est as f64) < need * self.cfg.headroom)
            }
            Allocation::Paused => true,
        };
        let every = self.cfg.probe_every;
        let steady = self
            .history
            .front()
            .is_some_and(|(t, _, _)| now.saturating_duration_since(*t) >= every);
        let quiet = self.queue_delay <= self.cfg.queue_limit / 2;
        let due = self
            .last_probe
            .is_none_or(|t| now.saturating_duration_since(t) >= every);
        if below_cap && steady && quiet && due {
            self.last_probe = Some(now);
            return true;
        }
        false
    }

    /// The highest rank up to `below` whose need fits in `est`.
    fn best_fit(&self, est: u64, layers: &[u64], below: usize) -> Allocation {
        (0..=below)
            .rev()
            .find(|&i| self.need(layers[i]) <= est)
            .map_or(Allocation::Paused, Allocation::Layer)
    }

    fn step(&mut self, now: Instant, est: u64, layers: &[u64], cap: usize) -> Allocation {
        self.started.get_or_insert(now);
        let warm = self.warm(now);
        let current = match self.target {
            // First decision: the best the estimate carries, and never a pause: what the
            // estimate has seen before the first video is audio at most.
            None => {
                return match self.best_fit(est, layers, cap) {
                    // Nothing fits: the cheapest choice, until the estimate says more.
                    Allocation::Paused => Allocation::Layer(0),
                    layer => layer,
                };
            }
            Some(t) => t,
        };
        match current {
            Allocation::Layer(i) => {
                let i = i.min(cap);
                if warm && (est as f64) < self.need(layers[i]) as f64 * self.cfg.down_below {
                    let fit = (est as f64 * self.cfg.down_fit) as u64;
                    return match self.best_fit(fit, layers, i) {
                        // Not even the lowest fits the share: pause only when the
                        // estimate stayed under the lowest layer for the pause hold.
                        Allocation::Paused => {
                            let low = self.need(layers[0]) as f64 * self.cfg.down_below;
                            let lossy = self.loss > self.cfg.loss_limit / 2.0;
                            match self.ceiling(now, self.cfg.pause_hold) {
                                Some(c) if (c as f64) < low && lossy => Allocation::Paused,
                                _ => Allocation::Layer(0),
                            }
                        }
                        layer => layer,
                    };
                }
                if self.queue_delay > self.cfg.queue_limit || self.loss > self.cfg.loss_limit {
                    return Allocation::Layer(self.base.min(i));
                }
                if self.loss > self.cfg.loss_limit / 2.0 {
                    // Never up while the path still loses much.
                    return Allocation::Layer(i);
                }
                match self.proven(now, layers, cap, self.cfg.up_hold) {
                    Some(k) if k > i => Allocation::Layer(k),
                    _ => Allocation::Layer(i),
                }
            }
            Allocation::Paused => match self.floor(now, self.cfg.resume_hold) {
                Some(f) if f >= self.need(layers[0]) => Allocation::Layer(0),
                _ => Allocation::Paused,
            },
        }
    }

    /// Keeps `est` in the history, bounded in count and age.
    fn record(&mut self, now: Instant, est: u64) {
        // One sample beyond the longest hold, so that a hold can be judged whole even
        // when ticks come a little late.
        let longest = self
            .cfg
            .up_hold
            .max(self.cfg.resume_hold)
            .max(self.cfg.pause_hold);
        let keep = longest + Duration::from_secs(1);
        while self.history.len() >= HISTORY
            || self
                .history
                .front()
                .is_some_and(|(t, _, _)| now.saturating_duration_since(*t) > keep)
        {
            self.history.pop_front();
        }
        self.history.push_back((now, est, self.sent));
    }

    /// The best rank up to `cap` that the estimate's floor over the last `hold` carries
    /// with headroom, and whose need the path carried ([`AllocatorConfig::carried`]) on
    /// average over it; `None` when the history is shorter than `hold` or nothing fits.
    fn proven(&self, now: Instant, layers: &[u64], cap: usize, hold: Duration) -> Option<usize> {
        let floor = self.floor(now, hold)?;
        let (n, total) = self
            .history
            .iter()
            .filter(|(t, _, _)| now.saturating_duration_since(*t) <= hold)
            .fold((0u64, 0u64), |(n, sum), (_, _, sent)| (n + 1, sum + sent));
        let carried = total.checked_div(n).unwrap_or(0) as f64;
        (0..=cap.min(layers.len() - 1)).rev().find(|&k| {
            let need = self.need(layers[k]) as f64;
            need * self.cfg.headroom <= floor as f64
                && (self.unpadded || need * self.cfg.carried <= carried)
        })
    }

    /// The estimates of the last `hold`, if the history spans it.
    fn window(&self, now: Instant, hold: Duration) -> Option<impl Iterator<Item = u64> + '_> {
        let (oldest, _, _) = self.history.front()?;
        (now.saturating_duration_since(*oldest) >= hold).then(|| {
            self.history
                .iter()
                .filter(move |(t, _, _)| now.saturating_duration_since(*t) <= hold)
                .map(|(_, e, _)| *e)
        })
    }

    /// The lowest estimate of the last `hold`, if the history spans it.
    fn floor(&self, now: Instant, hold: Duration) -> Option<u64> {
        self.window(now, hold)?.min()
    }

    /// The highest estimate of the last `hold`, if the history spans it.
    fn ceiling(&self, now: Instant, hold: Duration) -> Option<u64> {
        self.window(now, hold)?.max()
    }

    /// On a layer below the cap and a clean path, whether the viewer was held there for
    /// [`AllocatorConfig::stall_after`] without a step: then the estimator is due for a
    /// reset (and the next one waits as long again).
    fn stalled(&mut self, now: Instant, target: Allocation, cap: usize) -> bool {
        let below_cap = matches!(target, Allocation::Layer(k) if k < cap);
        if !below_cap || !self.clean() {
            self.held_since = None;
            return false;
        }
        // (None until the history spans the window: after a step.)
        let floor = self.floor(now, PROGRESS_WINDOW);
        let rose = match (self.held_floor, floor) {
            (Some(held), Some(f)) => f as f64 >= held as f64 * PROGRESS,
            _ => false,
        };
        // The lowest floor of the hold: a rise counts from a dip, not from where it began.
        self.held_floor = match (self.held_floor, floor) {
            (Some(h), Some(f)) => Some(h.min(f)),
            (h, f) => h.or(f),
        };
        let since = match self.held_since {
            // A probe that succeeded: the estimator is finding more. Resetting it now would
            // throw that away (a new estimator's first figures undershoot).
            Some(_) if rose => None,
            held => held,
        };
        let Some(since) = since else {
            self.held_since = Some(now);
            self.held_floor = floor;
            return false;
        };
        let doublings = self.stalls.saturating_sub(STALLS_AT_FIRST_WAIT - 1).min(8);
        let wait = (self.cfg.stall_after * 2u32.pow(doublings)).min(MAX_STALL_WAIT);
        if now.saturating_duration_since(since) >= wait {
            self.held_since = Some(now);
            self.held_floor = floor;
            self.stalls += 1;
            return true;
        }
        false
    }

    /// Whether the estimate has seen enough to step down on: the first decision, and the
    /// last estimator reset on a layer, were at least [`AllocatorConfig::warm_up`] ago.
    fn warm(&self, now: Instant) -> bool {
        let since = |t: Option<Instant>| t.map(|t| now.saturating_duration_since(t));
        since(self.started).is_some_and(|d| d >= self.cfg.warm_up)
            && since(self.reset_at).is_none_or(|d| d >= self.cfg.warm_up)
    }

    /// In the join's warm-up, on a clean path and a layer whose need with headroom `est`
    /// falls short of, whether the estimate did not rise by [`PROGRESS`] over
    /// [`AllocatorConfig::stuck_after`] (see the module's rules). Once per viewer.
    fn stuck(&mut self, now: Instant, est: u64, target: Allocation, layers: &[u64]) -> bool {
        let Allocation::Layer(k) = target else {
            return false;
        };
        let short = (est as f64) < self.need(layers[k]) as f64 * self.cfg.headroom;
        // The join's warm-up only: after a reset, the new estimator's first figures are
        // the stall rule's to judge.
        let joining = self
            .started
            .is_some_and(|t| now.saturating_duration_since(t) < self.cfg.warm_up);
        if self.unstuck || !joining || !short || !self.clean() {
            return false;
        }
        let span = self
            .floor(now, self.cfg.stuck_after)
            .zip(self.ceiling(now, self.cfg.stuck_after));
        // Not falling either: an estimate that came down in the window is an estimator
        // answering an overuse (a path that does not carry the layer), not a stuck one.
        let first = self
            .window(now, self.cfg.stuck_after)
            .and_then(|mut w| w.next());
        let level = first.is_some_and(|f| est >= f);
        let stuck = level && span.is_some_and(|(lo, hi)| (hi as f64) < lo as f64 * PROGRESS);
        self.unstuck = stuck;
        if stuck {
            self.unstick_to = Some(self.need(layers[k]).max(est));
        }
        stuck
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
