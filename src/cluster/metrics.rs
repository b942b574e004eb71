//! What an operator sees of a node's relay links, on the node's `/metrics` (names under
//! `cascade_relay_`; labels bounded: no stream or session names, peers are cluster nodes).

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use edge_relay::net::RelayEndpoint;
use prometheus::{GaugeVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// The relay links' metrics.
#[derive(Clone)]
pub struct RelayMetrics {
    /// Subscriptions children hold here.
    pub children: IntGauge,
    /// Streams pulled from a parent.
    pub pulled: IntGauge,
    /// Moves to another parent, by reason (`lost`, `silent`, `failed`).
    pub moves: IntCounterVec,
    /// Round-trip time of each child connection, by peer.
    rtt: GaugeVec,
    /// Datagrams the send queues of child connections dropped, by class.
    queue_drops: IntCounterVec,
    /// QUIC packets sent on child connections, and those declared lost.
    quic_sent: IntCounter,
    quic_lost: IntCounter,
    /// Seconds until this node's certificate expires.
    cert_expiry: IntGauge,
}

impl RelayMetrics {
    /// Registers them on the node's registry (once per process; it prefixes `cascade_`).
    pub fn register(r: &Registry) -> RelayMetrics {
        let m = RelayMetrics {
            children: IntGauge::new("relay_children", "Subscriptions of child nodes served here")
                .expect("a valid metric"), // Invariant: constant, valid names.
            pulled: IntGauge::new("relay_pulled_streams", "Streams pulled from a parent")
                .expect("a valid metric"),
            moves: IntCounterVec::new(
                Opts::new(
                    "relay_parent_moves_total",
                    "Moves of a pulled stream to another parent, by reason",
                ),
                &["reason"],
            )
            .expect("a valid metric"),
            rtt: GaugeVec::new(
                Opts::new(
                    "relay_child_rtt_seconds",
                    "Smoothed round-trip time of each child node's connection",
                ),
                &["peer"],
            )
            .expect("a valid metric"),
            queue_drops: IntCounterVec::new(
                Opts::new(
                    "relay_queue_drops_total",
                    "Datagrams dropped by the send queues of child connections, by class",
                ),
                &["class"],
            )
            .expect("a valid metric"),
            quic_sent: IntCounter::new(
                "relay_quic_packets_sent_total",
                "QUIC packets sent on the connections to child nodes",
            )
            .expect("a valid metric"),
            quic_lost: IntCounter::new(
                "relay_quic_packets_lost_total",
                "QUIC packets to child nodes declared lost (the media datagrams in them are gone)",
            )
            .expect("a valid metric"),
            cert_expiry: IntGauge::new(
                "node_certificate_expiry_seconds",
                "Seconds until this node's relay certificate expires",
            )
            .expect("a valid metric"),
        };
        let _ = r.register(Box::new(m.children.clone()));
        let _ = r.register(Box::new(m.pulled.clone()));
        let _ = r.register(Box::new(m.moves.clone()));
        let _ = r.register(Box::new(m.rtt.clone()));
        let _ = r.register(Box::new(m.queue_drops.clone()));
        for class in ["audio", "base", "higher"] {
            // Exported at 0 from the start, so rate() has a series before the first drop.
            m.queue_drops.with_label_values(&[class]);
        }
        let _ = r.register(Box::new(m.quic_sent.clone()));
        let _ = r.register(Box::new(m.quic_lost.clone()));
        let _ = r.register(Box::new(m.cert_expiry.clone()));
        m
    }

    /// Refreshes the connection figures every second.
    pub fn spawn_sampler(&self, endpoint: RelayEndpoint, not_after: SystemTime) {
        let m = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            // Each child connection's counts when last read: the counter takes what they
            // grew by (a connection's counts start again at 0 when its child reconnects).
            let mut last: HashMap<String, [u64; 5]> = HashMap::new();
            loop {
                tick.tick().await;
                let left = not_after
                    .duration_since(SystemTime::now())
                    .map_or(0, |d| d.as_secs());
                m.cert_expiry.set(i64::try_from(left).unwrap_or(i64::MAX));
                m.rtt.reset();
                let mut seen = HashMap::new();
                for c in endpoint.children() {
                    let s = c.stats();
                    m.rtt
                        .with_label_values(&[c.peer()])
                        .set(s.rtt.as_secs_f64());
                    let now = [
                        s.queue_drops_audio,
                        s.queue_drops_base,
                        s.queue_drops_higher,
                        s.packets_lost,
                        s.packets_sent,
                    ];
                    let before = last.get(c.peer()).copied().unwrap_or_default();
                    let grew: Vec<u64> = (0..now.len())
                        .map(|i| now[i].checked_sub(before[i]).unwrap_or(now[i]))
                        .collect();
                    for (i, class) in ["audio", "base", "higher"].into_iter().enumerate() {
                        if grew[i] > 0 {
                            m.queue_drops.with_label_values(&[class]).inc_by(grew[i]);
                        }
                    }
                    m.quic_lost.inc_by(grew[3]);
                    m.quic_sent.inc_by(grew[4]);
                    seen.insert(c.peer().to_string(), now);
                }
                // Bounded: only children connected now are remembered.
                last = seen;
            }
        });
    }
}
