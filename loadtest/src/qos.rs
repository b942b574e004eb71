//! The QoS report: how each viewer's picture followed its path over the measurement
//! window. Its layer over time, its freezes and audio drop-outs (from the gaps
//! [`Accounting`] keeps), how long it took to step down after the path's rate dropped and
//! back up after it rose, and how much of the cap it used in each phase of the rate
//! schedule. Pure: built from the accounting and the window's bounds, on the load
//! generator's clock; times in the report are milliseconds into the window.

use serde::Serialize;

use crate::accounting::Accounting;
use crate::schedule::RateSchedule;

/// The measurement window, microseconds on the load generator's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Its start (the rate schedule's origin).
    pub start_us: u64,
    /// Its end.
    pub end_us: u64,
}

impl Window {
    fn ms(&self, t_us: u64) -> f64 {
        (t_us as f64 - self.start_us as f64) / 1000.0
    }

    fn len_ms(&self) -> f64 {
        self.ms(self.end_us)
    }
}

/// Where each phase of the window starts (one per step of `schedule`, one without a
/// schedule), µs on the generator's clock: what [`Accounting::start_window`] counts bytes by.
pub fn phase_starts_us(schedule: &RateSchedule, start_us: u64) -> Vec<u64> {
    if schedule.steps().is_empty() {
        return vec![start_us];
    }
    schedule
        .steps()
        .iter()
        .map(|s| start_us + s.at.as_micros() as u64)
        .collect()
}

/// A viewer's video layer (0..=2, low to high) from `t_ms` on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LayerAt {
    /// When its first packet arrived (0 for the layer in force when the window started).
    pub t_ms: f64,
    /// 0 low, 1 mid, 2 high.
    pub layer: u8,
}

/// A gap between two packets of a kind.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Gap {
    /// When the last packet before it arrived (negative: before the window).
    pub at_ms: f64,
    /// Its length.
    pub ms: f64,
}

/// How a viewer followed one change of its path's rate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reaction {
    /// When the rate changed.
    pub at_ms: f64,
    /// The rate before, bits per second (0: no cap).
    pub from_bps: u64,
    /// The rate after.
    pub to_bps: u64,
    /// The viewer's layer when the rate changed.
    pub layer_before: u8,
    /// The layer that counts as done: at most this after a drop (one below
    /// `layer_before`), at least this after a rise (the layer held before the last drop,
    /// else the top layer).
    pub goal_layer: u8,
    /// From the change to the first packet on a goal layer (0 when already there);
    /// `null` when none came before the next change or the window's end.
    pub after_ms: Option<f64>,
}

/// What a viewer received in one phase of the rate schedule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseUse {
    /// Its start.
    pub from_ms: f64,
    /// Its end (the next step, or the window's end).
    pub to_ms: f64,
    /// The cap on this viewer's path, bits per second (0: none, or not behind the proxy).
    pub rate_bps: u64,
    /// Payload (RTP headers, SRTP and UDP/IP not counted) received, kbit/s.
    pub received_kbps: f64,
    /// `received_kbps` over the cap, 0 to about 1; `null` without a cap.
    pub cap_share: Option<f64>,
    /// Milliseconds of the phase spent on each layer (low, mid, high).
    pub layer_ms: [f64; 3],
}

/// One viewer's QoS over the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ViewerQos {
    /// Its index, in start order.
    pub viewer: usize,
    /// The layer it asked for (`auto`: the server's choice).
    pub layer_asked: String,
    /// Whether it went through the impairment proxy (the only ones the schedule caps).
    pub impaired: bool,
    /// Its video layer over time: the layer in force at 0, then each change.
    pub layers: Vec<LayerAt>,
    /// Its longest time without a video packet (one still open at the end included).
    pub max_video_gap_ms: f64,
    /// Video gaps of at least `--freeze-ms`.
    pub freezes: Vec<Gap>,
    /// Its longest time without an audio packet (one still open at the end included).
    pub max_audio_gap_ms: f64,
    /// Each drop of its path's rate, and how soon it stepped down.
    pub step_downs: Vec<Reaction>,
    /// Each rise of its path's rate, and how soon it stepped back up.
    pub step_ups: Vec<Reaction>,
    /// Each phase of the rate schedule (one phase without a schedule).
    pub phases: Vec<PhaseUse>,
    /// Video frames it received whole (every packet, repairs included).
    pub frames_whole: u64,
    /// Video frames sent to it (every picture id from its first to its newest).
    pub frames_sent: u64,
}

/// Reaction times over viewers.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Reactions {
    /// Rate changes met, over all viewers behind the proxy.
    pub count: usize,
    /// Of them, those with no step before the next change (or the end).
    pub missed: usize,
    /// Median of the others' `after_ms`.
    pub p50_ms: Option<f64>,
    /// Their longest.
    pub max_ms: Option<f64>,
}

/// One phase over the viewers behind the proxy (all viewers when none is).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseSummary {
    /// Its start.
    pub from_ms: f64,
    /// Its end.
    pub to_ms: f64,
    /// The cap (0: none).
    pub rate_bps: u64,
    /// Median of the viewers' `received_kbps`.
    pub received_kbps_p50: f64,
    /// Median of the viewers' `cap_share`.
    pub cap_share_p50: Option<f64>,
    /// The lowest.
    pub cap_share_min: Option<f64>,
    /// The highest.
    pub cap_share_max: Option<f64>,
    /// Viewers by the layer they spent most of the phase on: low, mid, high.
    pub layers: [usize; 3],
}

/// The QoS part of a report (`qos` in the JSON).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Qos {
    /// The rate schedule's steps: (ms into the window, bits per second); empty: no cap.
    pub schedule: Vec<(f64, u64)>,
    /// A video gap at least this long is a freeze.
    pub freeze_ms: f64,
    /// Every viewer that received video.
    pub viewers: Vec<ViewerQos>,
    /// Time to step down after a rate drop.
    pub step_down: Reactions,
    /// Time to step back up after a rate rise.
    pub step_up: Reactions,
    /// Each phase of the schedule.
    pub phases: Vec<PhaseSummary>,
    /// Freezes, all viewers together.
    pub freezes: usize,
    /// The longest video gap of any viewer.
    pub max_video_gap_ms: f64,
    /// The longest audio gap of any viewer.
    pub max_audio_gap_ms: f64,
    /// Frames received whole over frames sent, all viewers together.
    pub frames_whole_share: Option<f64>,
}

/// The layer in force at `t_ms`.
fn layer_at(layers: &[LayerAt], t_ms: f64) -> Option<u8> {
    layers
        .iter()
        .take_while(|c| c.t_ms <= t_ms)
        .last()
        .map(|c| c.layer)
}

/// Milliseconds on each layer between `from_ms` and `to_ms`.
fn layer_ms(layers: &[LayerAt], from_ms: f64, to_ms: f64) -> [f64; 3] {
    let mut out = [0.0; 3];
    for (i, c) in layers.iter().enumerate() {
        let until = layers.get(i + 1).map_or(to_ms, |n| n.t_ms);
        let span = until.min(to_ms) - c.t_ms.max(from_ms);
        if span > 0.0 {
            out[usize::from(c.layer.min(2))] += span;
        }
    }
    out
}

/// How the viewer followed each rate change between consecutive `phases`.
fn reactions(layers: &[LayerAt], phases: &[PhaseUse]) -> (Vec<Reaction>, Vec<Reaction>) {
    // No cap is the highest rate of all.
    let cap = |bps: u64| if bps == 0 { u64::MAX } else { bps };
    let (mut downs, mut ups) = (Vec::new(), Vec::new());
    // The layer held when the rate first dropped, until the viewer is back on it.
    let mut held: Option<u8> = None;
    for pair in phases.windows(2) {
        let (prev, ph) = (&pair[0], &pair[1]);
        let Some(before) = layer_at(layers, ph.from_ms) else {
            continue;
        };
        let mut later = layers
            .iter()
            .filter(|c| c.t_ms > ph.from_ms && c.t_ms < ph.to_ms);
        let (from_bps, to_bps) = (prev.rate_bps, ph.rate_bps);
        let reaction = |goal_layer: u8, after_ms: Option<f64>| Reaction {
            at_ms: ph.from_ms,
            from_bps,
            to_bps,
            layer_before: before,
            goal_layer,
            after_ms,
        };
        if cap(to_bps) < cap(from_bps) {
            held.get_or_insert(before);
            let goal = before.saturating_sub(1);
            let after_ms = if before == 0 {
                Some(0.0)
            } else {
                later.find(|c| c.layer <= goal).map(|c| c.t_ms - ph.from_ms)
            };
            downs.push(reaction(goal, after_ms));
        } else if cap(to_bps) > cap(from_bps) {
            let goal = held.unwrap_or(2);
            let after_ms = if before >= goal {
                Some(0.0)
            } else {
                later.find(|c| c.layer >= goal).map(|c| c.t_ms - ph.from_ms)
            };
            if after_ms.is_some() {
                held = None;
            }
            ups.push(reaction(goal, after_ms));
        }
    }
    (downs, ups)
}

/// What one viewer needs to be reported on.
#[derive(Debug, Clone, Copy)]
pub struct ViewerInput<'a> {
    /// Its index, in start order.
    pub index: usize,
    /// The layer it asked for.
    pub asked: &'a str,
    /// Whether its path is capped by the schedule.
    pub impaired: bool,
    /// What it received (its window started with [`phase_starts_us`]).
    pub acc: &'a Accounting,
}

/// One viewer's QoS over `window`, its path following `schedule` when impaired.
pub fn viewer(
    v: ViewerInput<'_>,
    schedule: &RateSchedule,
    window: Window,
    freeze_ms: f64,
) -> ViewerQos {
    let layers: Vec<LayerAt> = v
        .acc
        .layers
        .iter()
        .filter(|&&(t, _)| t <= window.end_us)
        .map(|&(t, layer)| LayerAt {
            t_ms: window.ms(t).max(0.0),
            layer,
        })
        .collect();
    let gap = |(at, len): (u64, u64)| Gap {
        at_ms: window.ms(at),
        ms: len as f64 / 1000.0,
    };
    let open = v.acc.video_gaps.open_us(window.end_us);
    let freezes = v
        .acc
        .video_gaps
        .kept
        .iter()
        .copied()
        .chain(open)
        .map(gap)
        .filter(|g| g.ms >= freeze_ms && g.at_ms < window.len_ms())
        .collect();
    let starts = phase_starts_us(schedule, window.start_us);
    let steps = schedule.steps();
    let mut phases = Vec::new();
    for (i, &start) in starts.iter().enumerate() {
        let from_ms = window.ms(start);
        if from_ms >= window.len_ms() {
            break;
        }
        let to_ms = starts
            .get(i + 1)
            .map_or(window.len_ms(), |&n| window.ms(n).min(window.len_ms()));
        let rate_bps = match steps.get(i) {
            Some(s) if v.impaired => s.rate_bps,
            _ => 0,
        };
        let bytes = v.acc.phase_bytes.get(i).copied().unwrap_or(0);
        let received_kbps = if to_ms > from_ms {
            bytes as f64 * 8.0 / (to_ms - from_ms)
        } else {
            0.0
        };
        phases.push(PhaseUse {
            from_ms,
            to_ms,
            rate_bps,
            received_kbps,
            cap_share: (rate_bps > 0).then(|| received_kbps * 1000.0 / rate_bps as f64),
            layer_ms: layer_ms(&layers, from_ms, to_ms),
        });
    }
    let (step_downs, step_ups) = reactions(&layers, &phases);
    let (frames_whole, frames_sent) = v.acc.frames.totals();
    ViewerQos {
        viewer: v.index,
        layer_asked: v.asked.to_owned(),
        impaired: v.impaired,
        max_video_gap_ms: v.acc.video_gaps.longest(window.end_us) as f64 / 1000.0,
        max_audio_gap_ms: v.acc.audio_gaps.longest(window.end_us) as f64 / 1000.0,
        layers,
        freezes,
        step_downs,
        step_ups,
        phases,
        frames_whole,
        frames_sent,
    }
}

/// The median and largest of `xs` (sorted in place).
fn median_max(xs: &mut [f64]) -> (Option<f64>, Option<f64>) {
    xs.sort_by(f64::total_cmp);
    (
        xs.get(xs.len().saturating_sub(1) / 2).copied(),
        xs.last().copied(),
    )
}

fn summarize<'a>(all: impl Iterator<Item = &'a Reaction>) -> Reactions {
    let mut r = Reactions::default();
    let mut times = Vec::new();
    for x in all {
        r.count += 1;
        match x.after_ms {
            Some(t) => times.push(t),
            None => r.missed += 1,
        }
    }
    (r.p50_ms, r.max_ms) = median_max(&mut times);
    r
}

/// The QoS report over `viewers` (each from [`viewer`]).
pub fn report(viewers: Vec<ViewerQos>, schedule: &RateSchedule, freeze_ms: f64) -> Qos {
    let any_impaired = viewers.iter().any(|v| v.impaired);
    let counted: Vec<&ViewerQos> = viewers
        .iter()
        .filter(|v| v.impaired || !any_impaired)
        .collect();
    let mut phases = Vec::new();
    for (i, p) in counted
        .first()
        .map_or(&[][..], |v| &v.phases[..])
        .iter()
        .enumerate()
    {
        let of = |i: usize| counted.iter().filter_map(move |v| v.phases.get(i));
        let mut kbps: Vec<f64> = of(i).map(|p| p.received_kbps).collect();
        let mut share: Vec<f64> = of(i).filter_map(|p| p.cap_share).collect();
        let mut layers = [0; 3];
        for q in of(i) {
            let top = (0..3).max_by(|&a, &b| q.layer_ms[a].total_cmp(&q.layer_ms[b]));
            if let Some(top) = top.filter(|&t| q.layer_ms[t] > 0.0) {
                layers[top] += 1;
            }
        }
        let (share_p50, share_max) = median_max(&mut share);
        phases.push(PhaseSummary {
            from_ms: p.from_ms,
            to_ms: p.to_ms,
            rate_bps: p.rate_bps,
            received_kbps_p50: median_max(&mut kbps).0.unwrap_or(0.0),
            cap_share_p50: share_p50,
            cap_share_min: share.first().copied(),
            cap_share_max: share_max,
            layers,
        });
    }
    let max = |f: fn(&ViewerQos) -> f64| viewers.iter().map(f).fold(0.0, f64::max);
    Qos {
        schedule: schedule
            .steps()
            .iter()
            .map(|s| (s.at.as_secs_f64() * 1000.0, s.rate_bps))
            .collect(),
        freeze_ms,
        step_down: summarize(counted.iter().flat_map(|v| &v.step_downs)),
        step_up: summarize(counted.iter().flat_map(|v| &v.step_ups)),
        phases,
        freezes: viewers.iter().map(|v| v.freezes.len()).sum(),
        max_video_gap_ms: max(|v| v.max_video_gap_ms),
        max_audio_gap_ms: max(|v| v.max_audio_gap_ms),
        frames_whole_share: {
            let sent: u64 = viewers.iter().map(|v| v.frames_sent).sum();
            let whole: u64 = viewers.iter().map(|v| v.frames_whole).sum();
            (sent > 0).then(|| whole as f64 / sent as f64)
        },
        viewers,
    }
}

#[cfg(test)]
#[path = "qos_tests.rs"]
mod tests;
