//! Prometheus metrics of the media engine. Counters are atomics: workers bump them
//! without locks; labelled per-stream gauges are touched only on the control path.

use prometheus::core::Collector;
use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// Every metric the engine exports.
#[derive(Clone)]
pub struct Metrics {
    /// The registry `/metrics` renders.
    pub registry: Registry,
    /// Open sessions by role.
    pub sessions: IntGaugeVec,
    /// Streams with a publisher.
    pub streams_active: IntGauge,
    /// Viewers per listed stream (set at scrape time from the directory).
    pub viewers: IntGaugeVec,
    /// Viewers of unlisted streams, summed: their names are not exported.
    pub viewers_unlisted: IntGauge,
    /// Transcoded ladders running (`--ladder`; set at scrape time).
    pub ladders_running: IntGauge,
    /// Sessions closed, by role and reason.
    pub sessions_closed: IntCounterVec,
    /// RTP packets received from publishers.
    pub packets_in: IntCounter,
    /// RTP payload bytes received from publishers.
    pub bytes_in: IntCounter,
    /// RTP packets handed to viewers' streams.
    pub packets_out: IntCounter,
    /// RTP payload bytes handed to viewers' streams.
    pub bytes_out: IntCounter,
    /// RTP packets queued on relay links to child nodes.
    pub relay_packets_out: IntCounter,
    /// UDP datagrams sent, and failed sends.
    pub datagrams_out: IntCounterVec,
    /// Garbage or unroutable datagrams.
    pub datagrams_dropped: IntCounterVec,
    /// Packets not forwarded to a viewer, by reason.
    pub forward_drops: IntCounterVec,
    /// Video frames a recording could not take, by reason (`no_parameter_sets`: an H.264
    /// keyframe without its SPS and PPS in band, an AV1 one without its sequence header, so
    /// no file could start; `codec_changed`: a publisher restart in another video codec
    /// than the file's).
    pub recording_skipped: IntCounterVec,
    /// NACKs received from viewers and sent to publishers.
    pub nacks: IntCounterVec,
    /// The budget's level: 0 within budget, 1 new viewers capped below the top layer, 2
    /// the top layer shed for all, 3 new viewers refused.
    pub budget_pressure: IntGauge,
    /// The process's CPU, as a share of the machine's cores, sampled every second.
    pub cpu_share: prometheus::Gauge,
    /// The egress the budget measures (RTP payload to viewers, bits/s), sampled each second.
    pub egress: prometheus::Gauge,
    /// The configured `--egress-budget`; 0 when none is set.
    pub egress_budget: prometheus::Gauge,
    /// Retransmissions sent to viewers.
    pub retransmissions: IntCounter,
    /// Keyframe requests sent to publishers (`sent`), and wants held back by the throttle
    /// (`throttled`: counted per packet a waiting viewer sees, so it dwarfs `sent`).
    pub keyframe_requests: IntCounterVec,
    /// Viewers moved onto another layer or publisher.
    pub layer_switches: IntCounter,
    /// Viewers whose video started from a cached group of pictures (`cache`), or who
    /// waited for the publisher's next keyframe (`keyframe`).
    pub video_starts: IntCounterVec,
    /// Viewers' allocators deciding another layer (`layer`) or pausing video (`paused`).
    pub allocation_changes: IntCounterVec,
    /// How late a worker woke for its timers.
    pub loop_lag: Histogram,
    /// ICE-TCP connections open (RFC 6544), over all workers.
    pub tcp_connections: IntGauge,
    /// ICE-TCP connections closed or refused, by reason.
    pub tcp_closed: IntCounterVec,
    /// Packets written to ICE-TCP connections (`ok`), or dropped because the
    /// connection's write queue was full (`queue_full`).
    pub tcp_frames_out: IntCounterVec,
    /// `chat` data channel frames not passed on: from a peer (`in`: binary, oversized,
    /// not UTF-8, the taker's queue full, ...) or to a peer (`out`: the worker's chat
    /// queue full, the peer's send buffer full, the channel closed), by reason.
    pub chat_dropped: IntCounterVec,
    /// 1, labelled with the build's version.
    pub build_info: IntGaugeVec,
    /// Viewers' join time on the server: session opened (the WHEP POST) to its first
    /// video packet written.
    pub viewer_join: Histogram,
    /// Viewers' receiver reports: fraction lost since the previous report.
    pub viewer_loss: Histogram,
    /// Viewers' receiver reports: packets newly reported lost.
    pub viewer_lost: IntCounter,
    /// Viewers' receiver reports: interarrival jitter.
    pub viewer_jitter: Histogram,
    /// Viewers' receiver reports: round-trip time.
    pub viewer_rtt: Histogram,
    /// Publishers' keyframe intervals (lowest encoding), node-wide.
    pub keyframe_interval: Histogram,
    /// The last keyframe interval per listed stream.
    pub stream_keyframe_interval: prometheus::GaugeVec,
    /// Streams with viewers here and no publisher sending, by `publisher`: `not_yet_live`
    /// or `gone`.
    pub streams_waiting: IntGaugeVec,
    /// Viewers of those streams.
    pub viewers_waiting: IntGaugeVec,
}

/// The names, help texts and buckets below are constants, valid and unique, so creating
/// and registering them cannot fail: a failure is a bug in this file.
const INVARIANT: &str = "constant, valid and unique metric definitions";

fn add<C: Collector + Clone + 'static>(r: &Registry, c: C) -> C {
    r.register(Box::new(c.clone())).expect(INVARIANT);
    c
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    add(r, IntCounter::new(name, help).expect(INVARIANT))
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    add(
        r,
        IntCounterVec::new(Opts::new(name, help), labels).expect(INVARIANT),
    )
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    add(
        r,
        IntGaugeVec::new(Opts::new(name, help), labels).expect(INVARIANT),
    )
}

fn histogram(r: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    add(
        r,
        Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets)).expect(INVARIANT),
    )
}

impl Metrics {
    /// Creates and registers the metrics, prefixed `cascade_`.
    pub fn new() -> Self {
        let r = Registry::new_custom(Some("cascade".into()), None).expect(INVARIANT);
        let lag = HistogramOpts::new("worker_loop_lag_seconds", "Timer wake-up lateness")
            .buckets(vec![0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1]);
        let m = Metrics {
            sessions: gauge_vec(&r, "sessions", "Open sessions", &["role"]),
            streams_active: add(
                &r,
                IntGauge::new("streams_active", "Streams with a live publisher").expect(INVARIANT),
            ),
            viewers: gauge_vec(&r, "viewers", "Viewers per listed stream", &["stream"]),
            viewers_unlisted: add(
                &r,
                IntGauge::new("viewers_unlisted", "Viewers of unlisted streams, summed")
                    .expect(INVARIANT),
            ),
            ladders_running: add(
                &r,
                IntGauge::new("ladders_running", "Transcoded ladders running (--ladder)")
                    .expect(INVARIANT),
            ),
            sessions_closed: counter_vec(
                &r,
                "sessions_closed_total",
                "Sessions closed, by reason",
                &["role", "reason"],
            ),
            packets_in: counter(&r, "rtp_packets_in_total", "RTP packets from publishers"),
            bytes_in: counter(
                &r,
                "rtp_bytes_in_total",
                "RTP payload bytes from publishers",
            ),
            packets_out: counter(&r, "rtp_packets_out_total", "RTP packets to viewers"),
            bytes_out: counter(&r, "rtp_bytes_out_total", "RTP payload bytes to viewers"),
            relay_packets_out: counter(
                &r,
                "relay_packets_out_total",
                "RTP packets queued on relay links to child nodes",
            ),
            datagrams_out: counter_vec(
                &r,
                "udp_datagrams_out_total",
                "UDP datagrams sent",
                &["result"],
            ),
            datagrams_dropped: counter_vec(
                &r,
                "udp_datagrams_dropped_total",
                "Incoming datagrams dropped",
                &["reason"],
            ),
            forward_drops: counter_vec(
                &r,
                "forward_drops_total",
                "Packets not forwarded to a viewer",
                &["reason"],
            ),
            recording_skipped: counter_vec(
                &r,
                "recording_video_skipped_total",
                "Video frames a recording could not take",
                &["reason"],
            ),
            allocation_changes: counter_vec(
                &r,
                "allocation_changes_total",
                "Viewers' bandwidth allocators deciding another layer or pausing video",
                &["to"],
            ),
            nacks: counter_vec(
                &r,
                "nacks_total",
                "NACKs received from viewers or sent to publishers",
                &["direction"],
            ),
            budget_pressure: add(
                &r,
                IntGauge::new(
                    "budget_pressure",
                    "0 within budget, 1 new viewers capped, 2 top layer shed, 3 viewers refused",
                )
                .expect(INVARIANT),
            ),
            cpu_share: add(
                &r,
                prometheus::Gauge::new("cpu_share", "Process CPU as a share of the cores")
                    .expect(INVARIANT),
            ),
            egress: add(
                &r,
                prometheus::Gauge::new(
                    "egress_bits_per_second",
                    "RTP payload sent to viewers, bits/s over the last second (what the budget measures)",
                )
                .expect(INVARIANT),
            ),
            egress_budget: add(
                &r,
                prometheus::Gauge::new(
                    "egress_budget_bits_per_second",
                    "The configured egress budget (--egress-budget), bits/s; 0 when none is set",
                )
                .expect(INVARIANT),
            ),
            retransmissions: counter(
                &r,
                "retransmissions_total",
                "Packets retransmitted to viewers",
            ),
            keyframe_requests: counter_vec(
                &r,
                "keyframe_requests_total",
                "Keyframe requests sent, or wants held back by the throttle",
                &["outcome"],
            ),
            layer_switches: counter(
                &r,
                "layer_switches_total",
                "Viewers moved onto another layer or publisher",
            ),
            video_starts: counter_vec(
                &r,
                "viewer_video_starts_total",
                "Viewers whose video started from the cached group of pictures, or at a keyframe",
                &["from"],
            ),
            loop_lag: add(&r, Histogram::with_opts(lag).expect(INVARIANT)),
            tcp_connections: add(
                &r,
                IntGauge::new("tcp_connections", "ICE-TCP connections open").expect(INVARIANT),
            ),
            tcp_closed: counter_vec(
                &r,
                "tcp_connections_closed_total",
                "ICE-TCP connections closed or refused, by reason",
                &["reason"],
            ),
            tcp_frames_out: counter_vec(
                &r,
                "tcp_frames_out_total",
                "Packets written to ICE-TCP connections, or dropped on a full write queue",
                &["result"],
            ),
            chat_dropped: counter_vec(
                &r,
                "chat_frames_dropped_total",
                "Chat data channel frames dropped, by direction and reason",
                &["direction", "reason"],
            ),
            viewer_join: add(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "viewer_join_seconds",
                        "Viewers: WHEP POST (session opened) to the first video packet written",
                    )
                    .buckets(vec![0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0, 10.0]),
                )
                .expect(INVARIANT),
            ),
            viewer_loss: histogram(
                &r,
                "viewer_loss_ratio",
                "Viewers' RTCP receiver reports: fraction of packets lost since the previous one",
                vec![0.0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5],
            ),
            viewer_lost: counter(
                &r,
                "viewer_packets_lost_total",
                "Packets viewers reported lost in RTCP receiver reports",
            ),
            viewer_jitter: histogram(
                &r,
                "viewer_jitter_seconds",
                "Viewers' RTCP receiver reports: interarrival jitter",
                vec![0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2],
            ),
            viewer_rtt: histogram(
                &r,
                "viewer_rtt_seconds",
                "Round-trip time to viewers, from their RTCP receiver reports",
                vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0],
            ),
            keyframe_interval: histogram(
                &r,
                "keyframe_interval_seconds",
                "Time between publishers' keyframes (lowest encoding)",
                vec![0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 60.0],
            ),
            stream_keyframe_interval: add(
                &r,
                prometheus::GaugeVec::new(
                    Opts::new(
                        "stream_keyframe_interval_seconds",
                        "The last keyframe interval per listed stream (lowest encoding)",
                    ),
                    &["stream"],
                )
                .expect(INVARIANT),
            ),
            streams_waiting: gauge_vec(
                &r,
                "streams_waiting",
                "Streams with viewers on this node and no publisher sending, by whether it was live",
                &["publisher"],
            ),
            viewers_waiting: gauge_vec(
                &r,
                "viewers_waiting",
                "Viewers of streams with no publisher sending, by whether it was live",
                &["publisher"],
            ),
            build_info: gauge_vec(
                &r,
                "build_info",
                "1, labelled with the build's version",
                &["version"],
            ),
            registry: r,
        };
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        // CPU, memory and file descriptors of the node process itself.
        let _ = m.registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ));
        m
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_exported_with_the_prefix() {
        let m = Metrics::new();
        m.sessions.with_label_values(&["viewer"]).inc();
        m.forward_drops.with_label_values(&["stale"]).inc();
        let names: Vec<String> = m
            .registry
            .gather()
            .iter()
            .map(|f| f.name().to_string())
            .collect();
        for n in [
            "cascade_sessions",
            "cascade_rtp_packets_out_total",
            "cascade_worker_loop_lag_seconds",
        ] {
            assert!(names.iter().any(|x| x == n), "{n} in {names:?}");
        }
    }
}
