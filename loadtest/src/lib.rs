//! `cascade loadtest`: one synthetic WHIP publisher and many light WHEP viewers against a
//! WHIP/WHEP server (Cascade or any other), and a report of what the server held.
//!
//! Every viewer is a real WebRTC endpoint (str0m: ICE, DTLS, SRTP) on its own UDP socket
//! (a server tells viewers apart by address), and all of them share a few threads. Loss
//! and delay come from stamps inside each payload, read on the load generator's clock.

#![warn(missing_docs)]

pub mod accounting;
pub mod chat;
pub mod client;
pub mod frames;
pub mod proxy;
pub mod publisher;
pub mod qos;
mod qos_table;
pub mod report;
pub mod schedule;
pub mod stamp;
pub mod viewer;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;

use crate::proxy::Impairment;
use crate::report::{proc_usage, Report};
use crate::schedule::Origin;
use crate::viewer::{Phase, ViewerState};

/// Options of `cascade loadtest`.
#[derive(Debug, Clone, Args)]
pub struct Options {
    /// The server's base URL; WHIP at {target}/whip/{stream}, WHEP at {target}/whep/{stream}.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub target: String,
    /// Stream (channel) name.
    #[arg(long, default_value = "loadtest")]
    pub stream: String,
    /// The WHIP endpoint, for a server with another layout [default: {target}/whip/{stream}].
    #[arg(long)]
    pub whip_url: Option<String>,
    /// The WHEP endpoint, used as is [default: {target}/whep/{stream}?layer=…, Cascade's
    /// layout with its layer choice].
    #[arg(long)]
    pub whep_url: Option<String>,
    /// Stream key (Bearer token) for the WHIP publish.
    #[arg(long)]
    pub key: Option<String>,
    /// Viewer token (Bearer) for the WHEP posts.
    #[arg(long)]
    pub viewer_token: Option<String>,
    /// Viewers to connect.
    #[arg(long, default_value_t = 100)]
    pub viewers: usize,
    /// Viewers started per second.
    #[arg(long, default_value_t = 100.0)]
    pub ramp: f64,
    /// Seconds to measure once every viewer has started and settled.
    #[arg(long, default_value_t = 20.0)]
    pub duration: f64,
    /// Layer mix, e.g. `low:80,mid:15,high:5` (weights; `auto` is the server's choice).
    #[arg(long, default_value = "low:100")]
    pub layers: String,
    /// Seconds between the publisher's regular keyframes.
    #[arg(long, default_value_t = 2.0)]
    pub keyframe_interval: f64,
    /// Load generator threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Send some viewers through an impairing proxy: `delay=30ms,jitter=5ms,loss=1%,rate=2mbit,seed=7`,
    /// each viewer through its own (its rate is its path's alone).
    /// The rate may follow a schedule, `rate=3mbit@0s,400kbit@10s,3mbit@30s`, its times
    /// counted from the measurement window's start (the first step's rate until then).
    #[arg(long)]
    pub impair: Option<Impairment>,
    /// Share of viewers (0 to 1) that go through the proxy when --impair is given.
    #[arg(long, default_value_t = 1.0)]
    pub impair_share: f64,
    /// The target's process id, to read its CPU and memory from /proc [default: the `pid`
    /// in its /healthz, when it runs on this machine; without either, no node CPU].
    #[arg(long)]
    pub target_pid: Option<u32>,
    /// Base URLs the viewers are spread over, round-robin, each in Cascade's layout
    /// (`{url}/whep/{stream}?layer=…`; e.g. a cluster's edges) [default: --target]. The
    /// report then has each one's figures too, and sums the CPU of every one on this machine.
    #[arg(long, value_delimiter = ',')]
    pub viewer_targets: Vec<String>,
    /// More Cascade nodes (base URLs) whose CPU counts in the cluster's total (e.g. relays
    /// no viewer is on); each must run on this machine.
    #[arg(long, value_delimiter = ',')]
    pub cpu_of: Vec<String>,
    /// A video gap at least this long counts as a freeze, in milliseconds (at least 100).
    #[arg(long, default_value_t = 200)]
    pub freeze_ms: u64,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// No progress lines.
    #[arg(long)]
    pub quiet: bool,
    /// Chat clients instead of media viewers (`--chat-viewers`).
    #[command(flatten)]
    pub chat: chat::ChatOptions,
}

/// Parses `low:80,mid:15,high:5` into the layer each of `n` viewers asks for, spread evenly.
pub fn layer_plan(spec: &str, n: usize) -> Result<Vec<String>, String> {
    let mut weights = Vec::new();
    for part in spec.split(',').filter(|p| !p.is_empty()) {
        let (layer, w) = part.split_once(':').unwrap_or((part, "1"));
        let w: f64 = w
            .parse()
            .map_err(|_| format!("{part}: expected layer:weight"))?;
        if !["low", "mid", "high", "auto"].contains(&layer) || w < 0.0 {
            return Err(format!(
                "{part}: layers are low, mid, high, auto with weights ≥ 0"
            ));
        }
        weights.push((layer.to_owned(), w));
    }
    let total: f64 = weights.iter().map(|(_, w)| w).sum();
    if total <= 0.0 {
        return Err("the layer mix has no weight".into());
    }
    // Largest remainder, then interleave so every prefix keeps the mix.
    let mut counts: Vec<(String, usize)> = weights
        .iter()
        .map(|(l, w)| (l.clone(), (w / total * n as f64).floor() as usize))
        .collect();
    let mut left = n - counts.iter().map(|(_, c)| c).sum::<usize>();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| {
        let fa = weights[a].1 / total * n as f64 % 1.0;
        let fb = weights[b].1 / total * n as f64 % 1.0;
        fb.total_cmp(&fa)
    });
    for &i in order.iter().cycle() {
        if left == 0 {
            break;
        }
        counts[i].1 += 1;
        left -= 1;
    }
    let mut plan = Vec::with_capacity(n);
    let mut given = vec![0usize; counts.len()];
    for k in 0..n {
        // The layer furthest behind its share of the first k+1 viewers.
        let i = (0..counts.len())
            .max_by(|&a, &b| {
                let da = counts[a].1 as f64 * (k + 1) as f64 / n as f64 - given[a] as f64;
                let db = counts[b].1 as f64 * (k + 1) as f64 / n as f64 - given[b] as f64;
                da.total_cmp(&db)
            })
            .unwrap_or(0);
        given[i] += 1;
        plan.push(counts[i].0.clone());
    }
    Ok(plan)
}

/// The body of a GET, if it answers.
async fn get_text(http: &reqwest::Client, url: String) -> Option<String> {
    http.get(url).send().await.ok()?.text().await.ok()
}

async fn target_pid(http: &reqwest::Client, opts: &Options) -> Option<String> {
    if let Some(p) = opts.target_pid {
        return Some(p.to_string());
    }
    local_pid(http, &opts.target).await
}

/// The pid in a Cascade node's /healthz, when that process is on this machine.
pub(crate) async fn local_pid(http: &reqwest::Client, base: &str) -> Option<String> {
    let body = get_text(http, format!("{base}/healthz")).await?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    let pid = v.get("pid")?.as_u64()?.to_string();
    // Only if that process is on this machine.
    std::path::Path::new(&format!("/proc/{pid}"))
        .exists()
        .then_some(pid)
}

/// A counter of the target's /metrics (`cascade_rtp_packets_out_total`: to viewers;
/// `cascade_relay_packets_out_total`: to child nodes).
async fn packets_out(http: &reqwest::Client, target: &str, counter: &str) -> Option<f64> {
    let text = get_text(http, format!("{target}/metrics")).await?;
    text.lines()
        .find(|l| l.starts_with(counter) && l.as_bytes().get(counter.len()) == Some(&b' '))?
        .rsplit(' ')
        .next()?
        .parse()
        .ok()
}

const VIEWER_PACKETS: &str = "cascade_rtp_packets_out_total";
const RELAY_PACKETS: &str = "cascade_relay_packets_out_total";

/// Runs a chat load test (`--chat-viewers`); prints progress to stderr unless `quiet`.
pub fn run_chat(opts: Options) -> Result<chat::ChatReport, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?
        .block_on(chat::run(&opts))
}

/// Runs a load test; prints progress to stderr unless `quiet`.
pub fn run(opts: Options) -> Result<Report, String> {
    let plan = layer_plan(&opts.layers, opts.viewers)?;
    if opts.freeze_ms < accounting::GAP_NOTE_US / 1000 {
        return Err(format!(
            "--freeze-ms must be at least {}",
            accounting::GAP_NOTE_US / 1000
        ));
    }
    if !(0.0..=1.0).contains(&opts.impair_share) {
        return Err("--impair-share must be between 0 and 1".into());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(drive(opts, plan))
}

async fn drive(opts: Options, plan: Vec<String>) -> Result<Report, String> {
    let epoch = Instant::now();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .pool_max_idle_per_host(64)
        .build()
        .map_err(|e| e.to_string())?;
    let pid = target_pid(&http, &opts).await;
    let say = |line: String| {
        if !opts.quiet {
            eprintln!("{line}");
        }
    };
    let whip_url = opts
        .whip_url
        .clone()
        .unwrap_or_else(|| format!("{}/whip/{}", opts.target, opts.stream));
    // Clients bind the address that routes to the server, so a server elsewhere reaches them.
    let ip = client::local_ip_towards(&whip_url)
        .await
        .map_err(|e| e.to_string())?;
    let targets: Vec<String> = if opts.viewer_targets.is_empty() {
        vec![opts.target.clone()]
    } else {
        opts.viewer_targets.clone()
    };
    // Every node named, once, for the cluster's CPU (only with more than the target).
    let mut cluster_pids: Vec<String> = Vec::new();
    if !opts.viewer_targets.is_empty() || !opts.cpu_of.is_empty() {
        let mut urls = vec![opts.target.clone()];
        urls.extend(targets.iter().cloned());
        urls.extend(opts.cpu_of.iter().cloned());
        for u in urls {
            let p = if u == opts.target {
                pid.clone()
            } else {
                local_pid(&http, &u).await
            };
            match p {
                Some(p) if !cluster_pids.contains(&p) => cluster_pids.push(p),
                Some(_) => {}
                None => return Err(format!("{u}: no Cascade node on this machine answers")),
            }
        }
    }
    let mut notes = Vec::new();
    if pid.is_none() {
        notes.push(
            "no node CPU or memory: the target's pid is unknown (no Cascade /healthz \
             on this machine); pass --target-pid"
                .to_string(),
        );
    }

    // The publisher first; viewers once it is connected.
    let pub_stats = Arc::new(publisher::PublisherStats::default());
    let publisher = tokio::spawn(publisher::run(
        http.clone(),
        ip,
        whip_url,
        opts.key.clone(),
        Duration::from_secs_f64(opts.keyframe_interval.max(0.1)),
        epoch,
        pub_stats.clone(),
    ));
    let up_by = Instant::now() + Duration::from_secs(15);
    while !pub_stats.connected.load(Ordering::Relaxed) {
        if publisher.is_finished() {
            return Err(match publisher.await {
                Ok(Err(e)) => format!("publisher: {e}"),
                _ => "publisher stopped".into(),
            });
        }
        if Instant::now() > up_by {
            return Err("publisher did not connect within 15 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The rate schedule's time 0: set when the measurement window starts.
    let origin: Origin = Default::default();
    let impaired_every = opts.impair.as_ref().map(|_| opts.impair_share);
    let mut viewers = Vec::with_capacity(plan.len());
    let mut groups: Vec<Vec<Arc<Mutex<ViewerState>>>> = vec![Vec::new(); targets.len()];
    let mut tasks = Vec::with_capacity(plan.len());
    let gap = Duration::from_secs_f64(1.0 / opts.ramp.max(0.01));
    let ramp_start = Instant::now();
    let mut next_progress = Instant::now() + Duration::from_secs(1);
    let mut last_cpu = pid
        .as_deref()
        .and_then(proc_usage)
        .map(|u| (Instant::now(), u.0));
    let mut node_cpu = None;
    let mut tick_progress = |viewers: &[Arc<Mutex<ViewerState>>], force: bool| {
        if Instant::now() >= next_progress || force {
            next_progress += Duration::from_secs(1);
            if let (Some(p), Some((t0, c0))) = (pid.as_deref(), last_cpu) {
                if let Some((c1, _)) = proc_usage(p) {
                    node_cpu = Some((c1 - c0) / t0.elapsed().as_secs_f64());
                    last_cpu = Some((Instant::now(), c1));
                }
            }
            say(report::progress(epoch.elapsed(), viewers, node_cpu));
        }
    };
    for (i, layer) in plan.iter().enumerate() {
        // Impaired viewers spread evenly: viewer i is impaired when the share's running
        // total crosses an integer.
        let impaired =
            impaired_every.is_some_and(|s| ((i + 1) as f64 * s).floor() > (i as f64 * s).floor());
        let state = Arc::new(Mutex::new(ViewerState {
            location: None,
            impaired,
            layer: layer.clone(),
            phase: Phase::Joining,
            acc: Default::default(),
        }));
        let url = match &opts.whep_url {
            Some(u) => u.clone(),
            None => format!(
                "{}/whep/{}?layer={layer}",
                targets[i % targets.len()],
                opts.stream
            ),
        };
        groups[i % targets.len()].push(state.clone());
        let imp = opts.impair.clone().filter(|_| impaired).map(|mut imp| {
            // Each viewer's path draws its own losses (the same seed for all would
            // drop the same packets for every viewer at once).
            imp.seed = imp.seed.wrapping_add(i as u64);
            (imp, origin.clone())
        });
        tasks.push(tokio::spawn(viewer::run(
            http.clone(),
            ip,
            url,
            opts.viewer_token.clone(),
            imp,
            epoch,
            state.clone(),
        )));
        viewers.push(state);
        tick_progress(&viewers, false);
        tokio::time::sleep_until((ramp_start + gap * (i as u32 + 1)).into()).await;
    }
    // Settle: every viewer joined or failed (bounded by the join timeout), plus 2 s.
    let settle_by = Instant::now() + viewer::JOIN_TIMEOUT + Duration::from_secs(1);
    while Instant::now() < settle_by
        && viewers
            .iter()
            .any(|v| v.lock().is_ok_and(|v| v.phase == Phase::Joining))
    {
        tick_progress(&viewers, false);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let settle_end = Instant::now() + Duration::from_secs(2);
    while Instant::now() < settle_end {
        tick_progress(&viewers, false);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The measurement window, and the rate schedule's time 0.
    let t0 = Instant::now();
    let _ = origin.set(t0);
    let schedule = opts
        .impair
        .as_ref()
        .map(|i| i.rate.clone())
        .unwrap_or_default();
    let start_us = t0.duration_since(epoch).as_micros() as u64;
    let phase_starts = qos::phase_starts_us(&schedule, start_us);
    let start = report::snapshot(&viewers, Some(&phase_starts));
    let group_starts: Vec<_> = groups.iter().map(|g| report::snapshot(g, None)).collect();
    let node0 = pid.as_deref().and_then(proc_usage);
    let cluster0: Vec<Option<(f64, f64)>> = cluster_pids.iter().map(|p| proc_usage(p)).collect();
    let self0 = proc_usage("self");
    let out0 = packets_out(&http, &opts.target, VIEWER_PACKETS).await;
    let relay0 = packets_out(&http, &opts.target, RELAY_PACKETS).await;
    let window = Duration::from_secs_f64(opts.duration.max(1.0));
    while t0.elapsed() < window {
        tick_progress(&viewers, false);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let secs = t0.elapsed().as_secs_f64();
    let mut r = Report::default();
    let freeze = Duration::from_millis(opts.freeze_ms);
    let qos_window = qos::Window {
        start_us,
        end_us: epoch.elapsed().as_micros() as u64,
    };
    report::viewers_part(&viewers, &start, t0.elapsed(), freeze, &mut r);
    r.qos = Some(report::qos_part(&viewers, &schedule, qos_window, freeze));
    if targets.len() > 1 {
        for ((target, g), g0) in targets.iter().zip(&groups).zip(&group_starts) {
            let mut part = Report::default();
            report::viewers_part(g, g0, t0.elapsed(), freeze, &mut part);
            r.by_target.push(report::TargetPart {
                target: target.clone(),
                viewers: part.viewers,
                connected: part.connected,
                loss_pct: part.loss_pct,
                delay_ms: part.delay_ms,
                join_ms: part.join_ms,
                max_gap_ms: part.max_gap_ms,
            });
        }
    }
    if let (Some(p), Some((c0, _))) = (pid.as_deref(), node0) {
        if let Some((c1, rss)) = proc_usage(p) {
            r.node_cpu_cores = Some((c1 - c0) / secs);
            r.node_rss_mib = Some(rss / (1024.0 * 1024.0));
        }
    }
    if !cluster_pids.is_empty() {
        let mut total = 0.0;
        for (p, c0) in cluster_pids.iter().zip(&cluster0) {
            match (c0, proc_usage(p)) {
                (Some((c0, _)), Some((c1, _))) => total += c1 - c0,
                _ => notes.push(format!(
                    "process {p} ended during the window: its CPU is left out"
                )),
            }
        }
        r.cluster_cpu_cores = Some(total / secs);
        r.cluster_nodes = cluster_pids.len();
    }
    if r.delivered_pps > 0.0 {
        r.cpu_us_per_delivered = r
            .cluster_cpu_cores
            .or(r.node_cpu_cores)
            .map(|c| c / r.delivered_pps * 1e6);
    }
    if let (Some((c0, _)), Some((c1, _))) = (self0, proc_usage("self")) {
        r.loadgen_cpu_cores = (c1 - c0) / secs;
    }
    if let (Some(a), Some(b)) = (
        relay0,
        packets_out(&http, &opts.target, RELAY_PACKETS).await,
    ) {
        r.relay_forwarded_pps = Some((b - a) / secs);
    }
    if let (Some(a), Some(b)) = (out0, packets_out(&http, &opts.target, VIEWER_PACKETS).await) {
        r.forwarded_pps = Some((b - a) / secs);
    } else {
        notes.push(
            "no forwarded packets: the target has no Cascade /metrics \
             (cascade_rtp_packets_out_total)"
                .to_string(),
        );
    }
    r.publisher_layers = pub_stats.layers.load(Ordering::Relaxed);
    if r.publisher_layers == 1 {
        notes.push(
            "the server did not accept simulcast: the publisher sent one layer (the mid \
             one, which every viewer counts under)"
                .into(),
        );
    } else if opts.whep_url.is_some() {
        notes.push(
            "--whep-url is used as is: the server chose each viewer's layer (--layers is \
             Cascade's ?layer=)"
                .into(),
        );
    }
    r.notes = notes;
    r.published_pps =
        pub_stats.packets.load(Ordering::Relaxed) as f64 / epoch.elapsed().as_secs_f64();
    r.keyframes_requested = pub_stats.keyframes_requested.load(Ordering::Relaxed);
    tick_progress(&viewers, true);
    for t in &tasks {
        t.abort();
    }
    publisher.abort();
    // End every session on the server, so that a long-lived server is clean for the next run.
    let mut locations: Vec<String> = viewers
        .iter()
        .filter_map(|v| v.lock().ok()?.location.clone())
        .collect();
    locations.extend(pub_stats.location.lock().ok().and_then(|l| l.clone()));
    for chunk in locations.chunks(64) {
        let mut set = tokio::task::JoinSet::new();
        for loc in chunk {
            let (http, url) = (http.clone(), loc.clone());
            set.spawn(async move { http.delete(url).send().await.is_ok() });
        }
        set.join_all().await;
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_plans_keep_the_mix_in_every_prefix() {
        let p = layer_plan("low:80,mid:15,high:5", 100).unwrap();
        let count = |l: &str| p.iter().filter(|x| *x == l).count();
        assert_eq!((count("low"), count("mid"), count("high")), (80, 15, 5));
        let first20 = &p[..20];
        assert_eq!(first20.iter().filter(|x| *x == "low").count(), 16);
        assert_eq!(layer_plan("high", 3).unwrap(), ["high", "high", "high"]);
        assert_eq!(layer_plan("low:1,high:1", 3).unwrap().len(), 3);
        assert!(layer_plan("ultra:1", 3).is_err());
        assert!(layer_plan("low:0", 3).is_err());
    }
}
