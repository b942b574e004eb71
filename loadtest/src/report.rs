//! What a run held: the live progress line, the final table and its JSON, from the
//! viewers' accounting and, when the target is a Cascade node, its `/proc` entry and its
//! `/metrics` (other servers get a note saying what was not measured).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::accounting::delay_histogram;
use crate::qos::{self, Qos};
use crate::schedule::RateSchedule;
use crate::viewer::{Phase, ViewerState};

/// Three quantiles, milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Quantiles {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

impl Quantiles {
    pub(crate) fn of(h: &Histogram<u64>) -> Quantiles {
        let q = |x: f64| h.value_at_quantile(x) as f64 / 1000.0;
        if h.is_empty() {
            Quantiles::default()
        } else {
            Quantiles {
                p50: q(0.50),
                p95: q(0.95),
                p99: q(0.99),
            }
        }
    }
}

/// The result of a run (also what `--json` prints).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Viewers asked for.
    pub viewers: usize,
    /// Viewers that received video.
    pub connected: usize,
    /// Viewers that gave up.
    pub failed: usize,
    /// Distinct failure reasons (up to 5).
    pub failures: Vec<String>,
    /// POST to first video packet.
    pub join_ms: Quantiles,
    /// Seconds of the measurement window.
    pub window_s: f64,
    /// Mean payload bitrate a connected viewer received over the window, kbit/s.
    pub received_kbps: f64,
    /// Packets lost over packets sent, in the window, percent.
    pub loss_pct: f64,
    /// Send stamp to receipt, in the window.
    pub delay_ms: Quantiles,
    /// Connected viewers by the layer most of their video came on: low, mid, high.
    pub layers: [usize; 3],
    /// The target's CPU over the window, in cores (when its pid is known).
    pub node_cpu_cores: Option<f64>,
    /// The target's resident memory at the end, MiB.
    pub node_rss_mib: Option<f64>,
    /// RTP packets the target sent per second (from its `/metrics`).
    pub forwarded_pps: Option<f64>,
    /// Packets the target sent to child nodes over relay links per second (its `/metrics`).
    pub relay_forwarded_pps: Option<f64>,
    /// This load generator's CPU over the window, in cores.
    pub loadgen_cpu_cores: f64,
    /// Viewers that went through the impairment proxy.
    pub impaired: usize,
    /// RTP packets the publisher sent per second, over the whole run.
    pub published_pps: f64,
    /// Keyframes the publisher sent because the server asked.
    pub keyframes_requested: u64,
    /// Video layers the publisher sent (1 when the server did not accept simulcast).
    pub publisher_layers: usize,
    /// Packets (video and audio) all viewers received per second, in the window.
    pub delivered_pps: f64,
    /// Each connected viewer's longest time between two video packets in the window.
    pub max_gap_ms: Quantiles,
    /// Video gaps of at least `--freeze-ms` in the window, all viewers together.
    pub freezes: usize,
    /// Those gaps' lengths.
    pub freeze_ms: Quantiles,
    /// The longest of them.
    pub freeze_max_ms: f64,
    /// CPU of every Cascade node measured (the target, the viewer targets and `--cpu-of`),
    /// summed, in cores over the window.
    pub cluster_cpu_cores: Option<f64>,
    /// Processes in `cluster_cpu_cores`.
    pub cluster_nodes: usize,
    /// Node CPU (the cluster's when measured, else the target's) per delivered packet, µs.
    pub cpu_us_per_delivered: Option<f64>,
    /// Each viewer's layers, freezes, audio gaps and reactions to the rate schedule, and
    /// their summary (`qos.rs`).
    pub qos: Option<Qos>,
    /// With several viewer targets: the viewer figures of each.
    pub by_target: Vec<TargetPart>,
    /// What could not be measured on this server, and why.
    pub notes: Vec<String>,
}

/// The viewer figures of the viewers of one target (`--viewer-targets`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct TargetPart {
    /// The target's base URL.
    pub target: String,
    /// Viewers sent there.
    pub viewers: usize,
    /// Of them, those that received video.
    pub connected: usize,
    /// Packets lost over packets sent, in the window, percent.
    pub loss_pct: f64,
    /// Send stamp to receipt, in the window.
    pub delay_ms: Quantiles,
    /// POST to first video packet.
    pub join_ms: Quantiles,
    /// Each connected viewer's longest video gap in the window.
    pub max_gap_ms: Quantiles,
}

/// CPU seconds (user + system) and resident bytes of a process, from `/proc`.
pub fn proc_usage(pid: &str) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the ")" that ends the command name; utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    // USER_HZ is 100 on Linux.
    Some((ticks / 100.0, rss_kb * 1024.0))
}

/// A snapshot of every viewer's counters, to diff over a window.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    expected: u64,
    received: u64,
    bytes: u64,
}

/// Sums the viewers' counters; with `phase_starts_us` (µs on the generator's clock), also
/// starts a measurement window with those phases: delay histograms, gaps, layer changes
/// and phase bytes start anew.
pub fn snapshot(viewers: &[Arc<Mutex<ViewerState>>], phase_starts_us: Option<&[u64]>) -> Snapshot {
    let mut s = Snapshot::default();
    for v in viewers {
        if let Ok(mut v) = v.lock() {
            let (e, r) = v.acc.totals();
            s.expected += e;
            s.received += r;
            s.bytes += v.acc.bytes;
            if let Some(phases) = phase_starts_us {
                v.acc.delay.reset();
                v.acc.start_window(phases);
            }
        }
    }
    s
}

/// Fills the viewer-side fields of a report: joins, failures, layers, and the window's
/// loss, bitrate, delay, video gaps and freezes (gaps of at least `freeze`) measured
/// against `start`.
pub fn viewers_part(
    viewers: &[Arc<Mutex<ViewerState>>],
    start: &Snapshot,
    window: Duration,
    freeze: Duration,
    r: &mut Report,
) {
    let mut joins = delay_histogram();
    let mut delay = delay_histogram();
    let mut gaps = delay_histogram();
    let mut freezes = delay_histogram();
    let freeze_us = freeze.as_micros() as u64;
    let end = snapshot(viewers, None);
    r.viewers = viewers.len();
    for v in viewers {
        let Ok(v) = v.lock() else { continue };
        match &v.phase {
            Phase::Watching(j) => {
                r.connected += 1;
                let _ = joins.record((j.as_micros() as u64).max(1));
                let top = (0..3).max_by_key(|&i| v.acc.per_layer[i]).unwrap_or(0);
                r.layers[top] += 1;
                let _ = gaps.record(v.acc.video_gaps.max_us.max(1));
            }
            Phase::Failed(why) => {
                r.failed += 1;
                if r.failures.len() < 5 && !r.failures.contains(why) {
                    r.failures.push(why.clone());
                }
            }
            Phase::Joining => {}
        }
        if v.impaired {
            r.impaired += 1;
        }
        let _ = delay.add(&v.acc.delay);
        for &(_, g) in v
            .acc
            .video_gaps
            .kept
            .iter()
            .filter(|&&(_, g)| g >= freeze_us)
        {
            let _ = freezes.record(g);
        }
    }
    r.join_ms = Quantiles::of(&joins);
    r.delay_ms = Quantiles::of(&delay);
    r.max_gap_ms = Quantiles::of(&gaps);
    r.freezes = freezes.len() as usize;
    r.freeze_ms = Quantiles::of(&freezes);
    r.freeze_max_ms = if freezes.is_empty() {
        0.0
    } else {
        freezes.max() as f64 / 1000.0
    };
    r.window_s = window.as_secs_f64();
    let expected = end.expected.saturating_sub(start.expected);
    let received = end.received.saturating_sub(start.received);
    r.loss_pct = if expected == 0 {
        0.0
    } else {
        100.0 * expected.saturating_sub(received) as f64 / expected as f64
    };
    if r.window_s > 0.0 {
        r.delivered_pps = received as f64 / r.window_s;
    }
    if r.connected > 0 && r.window_s > 0.0 {
        r.received_kbps = (end.bytes - start.bytes.min(end.bytes)) as f64 * 8.0
            / 1000.0
            / r.window_s
            / r.connected as f64;
    }
}

/// The QoS report over the viewers that received video, in `window`.
pub fn qos_part(
    viewers: &[Arc<Mutex<ViewerState>>],
    schedule: &RateSchedule,
    window: qos::Window,
    freeze: Duration,
) -> Qos {
    let freeze_ms = freeze.as_secs_f64() * 1000.0;
    let mut each = Vec::new();
    for (index, v) in viewers.iter().enumerate() {
        let Ok(v) = v.lock() else { continue };
        if !matches!(v.phase, Phase::Watching(_)) {
            continue;
        }
        let input = qos::ViewerInput {
            index,
            asked: &v.layer,
            impaired: v.impaired,
            acc: &v.acc,
        };
        each.push(qos::viewer(input, schedule, window, freeze_ms));
    }
    qos::report(each, schedule, freeze_ms)
}

impl Report {
    /// The final table.
    pub fn table(&self) -> String {
        let opt =
            |x: Option<f64>, unit: &str| x.map_or("n/a".to_string(), |v| format!("{v:.2}{unit}"));
        let q = |q: &Quantiles| {
            format!(
                "p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms",
                q.p50, q.p95, q.p99
            )
        };
        let mut rows = vec![
            (
                "viewers connected",
                format!(
                    "{} of {} ({} failed)",
                    self.connected, self.viewers, self.failed
                ),
            ),
            ("join (POST to first video)", q(&self.join_ms)),
            ("window", format!("{:.1} s", self.window_s)),
            (
                "received per viewer",
                format!("{:.0} kbit/s", self.received_kbps),
            ),
            ("loss", format!("{:.3} %", self.loss_pct)),
            ("one-way delay", q(&self.delay_ms)),
            (
                "layers (low/mid/high)",
                format!(
                    "{} / {} / {}",
                    self.layers[0], self.layers[1], self.layers[2]
                ),
            ),
            (
                "longest video gap per viewer",
                format!(
                    "{}; {} freezes (p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms)",
                    q(&self.max_gap_ms),
                    self.freezes,
                    self.freeze_ms.p50,
                    self.freeze_ms.p95,
                    self.freeze_max_ms
                ),
            ),
            (
                "delivered to viewers",
                format!("{:.0} packets/s", self.delivered_pps),
            ),
            ("node CPU", opt(self.node_cpu_cores, " cores")),
            ("node RSS", opt(self.node_rss_mib, " MiB")),
            ("node forwarded", opt(self.forwarded_pps, " packets/s")),
            (
                "node forwarded to child nodes",
                opt(self.relay_forwarded_pps, " packets/s"),
            ),
            (
                "load generator CPU",
                format!("{:.2} cores", self.loadgen_cpu_cores),
            ),
            (
                "publisher sent",
                format!(
                    "{:.0} packets/s ({} keyframes on request)",
                    self.published_pps, self.keyframes_requested
                ),
            ),
        ];
        if let Some(c) = self.cluster_cpu_cores {
            rows.push((
                "cluster CPU",
                format!("{c:.2} cores ({} processes)", self.cluster_nodes),
            ));
        }
        if let Some(us) = self.cpu_us_per_delivered {
            rows.push(("node CPU per delivered packet", format!("{us:.2} µs")));
        }
        rows.extend(self.qos.iter().flat_map(Qos::rows));
        for t in &self.by_target {
            rows.push((
                "viewers of a target",
                format!(
                    "{}: {}/{} connected, loss {:.3} %, delay {}, longest gap p95 {:.0} ms",
                    t.target,
                    t.connected,
                    t.viewers,
                    t.loss_pct,
                    q(&t.delay_ms),
                    t.max_gap_ms.p95
                ),
            ));
        }
        if self.impaired > 0 {
            rows.push((
                "through the impairment proxy",
                format!("{} viewers", self.impaired),
            ));
        }
        for f in &self.failures {
            rows.push(("a failure", f.clone()));
        }
        for n in &self.notes {
            rows.push(("note", n.clone()));
        }
        let w = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        rows.iter()
            .map(|(k, v)| format!("{k:<w$}  {v}\n"))
            .collect()
    }
}

/// One progress line.
pub fn progress(
    elapsed: Duration,
    viewers: &[Arc<Mutex<ViewerState>>],
    node_cpu: Option<f64>,
) -> String {
    let (mut up, mut failed) = (0, 0);
    let mut delay = delay_histogram();
    let (mut e, mut r) = (0u64, 0u64);
    for v in viewers {
        let Ok(v) = v.lock() else { continue };
        match v.phase {
            Phase::Watching(_) => up += 1,
            Phase::Failed(_) => failed += 1,
            Phase::Joining => {}
        }
        let (ve, vr) = v.acc.totals();
        e += ve;
        r += vr;
        let _ = delay.add(&v.acc.delay);
    }
    let loss = if e == 0 {
        0.0
    } else {
        100.0 * e.saturating_sub(r) as f64 / e as f64
    };
    format!(
        "[{:>5.0}s] viewers {up}/{} watching, {failed} failed | loss {loss:.3} % | delay p95 {:.1} ms | node cpu {}",
        elapsed.as_secs_f64(),
        viewers.len(),
        delay.value_at_quantile(0.95) as f64 / 1000.0,
        node_cpu.map_or("n/a".into(), |c| format!("{c:.2}")),
    )
}
