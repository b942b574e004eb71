//! Prometheus metrics of the media engine. Counters are atomics: workers bump them
//! without locks; labelled per-stream gauges are touched only on the control path.

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
    /// Viewers per stream.
    pub viewers: IntGaugeVec,
    /// Sessions closed, by reason.
    pub sessions_closed: IntCounterVec,
    /// RTP packets received from publishers.
    pub packets_in: IntCounter,
    /// RTP payload bytes received from publishers.
    pub bytes_in: IntCounter,
    /// RTP packets handed to viewers' streams.
    pub packets_out: IntCounter,
    /// RTP payload bytes handed to viewers' streams.
    pub bytes_out: IntCounter,
    /// UDP datagrams sent, and failed sends.
    pub datagrams_out: IntCounterVec,
    /// Garbage or unroutable datagrams.
    pub datagrams_dropped: IntCounterVec,
    /// Packets not forwarded to a viewer, by reason.
    pub forward_drops: IntCounterVec,
    /// NACKs received from viewers and sent to publishers.
    pub nacks: IntCounterVec,
    /// Retransmissions sent to viewers.
    pub retransmissions: IntCounter,
    /// Keyframe requests: wanted by viewers, sent to publishers, throttled.
    pub keyframe_requests: IntCounterVec,
    /// Viewers moved onto another layer or publisher.
    pub layer_switches: IntCounter,
    /// How late a worker woke for its timers.
    pub loop_lag: Histogram,
}

impl Metrics {
    /// Creates and registers the metrics.
    pub fn new() -> Self {
        let registry =
            Registry::new_custom(Some("cascade".into()), None).expect("a valid static prefix"); // Invariant: constant, valid name.
        let m = Metrics {
            sessions: IntGaugeVec::new(Opts::new("sessions", "Open sessions"), &["role"]).unwrap(),
            streams_active: IntGauge::new("streams_active", "Streams with a live publisher")
                .unwrap(),
            viewers: IntGaugeVec::new(Opts::new("viewers", "Viewers per stream"), &["stream"])
                .unwrap(),
            sessions_closed: IntCounterVec::new(
                Opts::new("sessions_closed_total", "Sessions closed, by reason"),
                &["role", "reason"],
            )
            .unwrap(),
            packets_in: IntCounter::new("rtp_packets_in_total", "RTP packets from publishers")
                .unwrap(),
            bytes_in: IntCounter::new("rtp_bytes_in_total", "RTP payload bytes from publishers")
                .unwrap(),
            packets_out: IntCounter::new("rtp_packets_out_total", "RTP packets to viewers")
                .unwrap(),
            bytes_out: IntCounter::new("rtp_bytes_out_total", "RTP payload bytes to viewers")
                .unwrap(),
            datagrams_out: IntCounterVec::new(
                Opts::new("udp_datagrams_out_total", "UDP datagrams sent"),
                &["result"],
            )
            .unwrap(),
            datagrams_dropped: IntCounterVec::new(
                Opts::new("udp_datagrams_dropped_total", "Incoming datagrams dropped"),
                &["reason"],
            )
            .unwrap(),
            forward_drops: IntCounterVec::new(
                Opts::new("forward_drops_total", "Packets not forwarded to a viewer"),
                &["reason"],
            )
            .unwrap(),
            nacks: IntCounterVec::new(
                Opts::new(
                    "nacks_total",
                    "NACKs received from viewers or sent to publishers",
                ),
                &["direction"],
            )
            .unwrap(),
            retransmissions: IntCounter::new(
                "retransmissions_total",
                "Packets retransmitted to viewers",
            )
            .unwrap(),
            keyframe_requests: IntCounterVec::new(
                Opts::new("keyframe_requests_total", "Keyframe requests"),
                &["outcome"],
            )
            .unwrap(),
            layer_switches: IntCounter::new(
                "layer_switches_total",
                "Viewers moved onto another layer or publisher",
            )
            .unwrap(),
            loop_lag: Histogram::with_opts(
                HistogramOpts::new("worker_loop_lag_seconds", "Timer wake-up lateness")
                    .buckets(vec![0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1]),
            )
            .unwrap(),
            registry,
        };
        // Invariant: names are unique constants, so registration cannot fail.
        let r = &m.registry;
        r.register(Box::new(m.sessions.clone())).unwrap();
        r.register(Box::new(m.streams_active.clone())).unwrap();
        r.register(Box::new(m.viewers.clone())).unwrap();
        r.register(Box::new(m.sessions_closed.clone())).unwrap();
        r.register(Box::new(m.packets_in.clone())).unwrap();
        r.register(Box::new(m.bytes_in.clone())).unwrap();
        r.register(Box::new(m.packets_out.clone())).unwrap();
        r.register(Box::new(m.bytes_out.clone())).unwrap();
        r.register(Box::new(m.datagrams_out.clone())).unwrap();
        r.register(Box::new(m.datagrams_dropped.clone())).unwrap();
        r.register(Box::new(m.forward_drops.clone())).unwrap();
        r.register(Box::new(m.nacks.clone())).unwrap();
        r.register(Box::new(m.retransmissions.clone())).unwrap();
        r.register(Box::new(m.keyframe_requests.clone())).unwrap();
        r.register(Box::new(m.layer_switches.clone())).unwrap();
        r.register(Box::new(m.loop_lag.clone())).unwrap();
        // CPU, memory and file descriptors of the node process itself.
        let _ = r.register(Box::new(
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
