//! The control plane's Prometheus metrics: API requests by route, method and status, with
//! their latency, the database pool, and backups (the newest recorded in the database,
//! failures of this process's scheduled ones). Rendered after the media node's on `/metrics`
//! (or alone by a `cascade control` replica). The requests are observed at the process's
//! HTTP edge (`signaling::requests::timed`, wired in `src/main.rs`) into
//! [`ControlPlane::api_requests`]; labels are bounded: routes are the matched templates
//! (`/api/v1/channels/{slug}`), never the paths asked for.

use prometheus::{HistogramOpts, HistogramVec, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::ControlPlane;

const INVARIANT: &str = "constant, valid and unique metric definitions";

/// A counter `name` registered on `registry`.
pub(crate) fn counter(registry: &Registry, name: &str, help: &str) -> prometheus::IntCounter {
    let c = prometheus::IntCounter::new(name, help).expect(INVARIANT);
    registry.register(Box::new(c.clone())).expect(INVARIANT);
    c
}

/// The metrics and their registry.
#[derive(Clone)]
pub(crate) struct ApiMetrics {
    registry: Registry,
    requests: HistogramVec,
    pool: IntGaugeVec,
    /// 1 while the database answered the last ping (every 5 s), else 0.
    pub(crate) db_up: prometheus::IntGauge,
    /// When the newest recorded backup started (unix seconds); registered with its first
    /// value, so it is absent while no backup is known.
    backup_last: prometheus::Gauge,
    backup_known: std::sync::Arc<std::sync::Once>,
    /// Scheduled backups of this process that failed.
    pub(crate) backup_failures: prometheus::IntCounter,
    /// Nodes' stream lists written to the database (a report with a new list).
    pub(crate) stream_lists_written: prometheus::IntCounter,
    /// Nodes' stream lists this replica parsed from the database.
    pub(crate) stream_lists_parsed: prometheus::IntCounter,
}

impl std::fmt::Debug for ApiMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiMetrics")
    }
}

impl ApiMetrics {
    pub(crate) fn new() -> ApiMetrics {
        let registry = Registry::new_custom(Some("cascade".into()), None).expect(INVARIANT);
        let requests = HistogramVec::new(
            HistogramOpts::new(
                "api_request_duration_seconds",
                "Control plane API requests: time to the response's head, by route, method and status",
            )
            .buckets(vec![0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
            &["route", "method", "status"],
        )
        .expect(INVARIANT);
        let pool = IntGaugeVec::new(
            Opts::new(
                "db_pool_connections",
                "Database pool connections by state (idle, busy) and the pool's maximum (max)",
            ),
            &["state"],
        )
        .expect(INVARIANT);
        let db_up = prometheus::IntGauge::new(
            "db_up",
            "1 while the control plane's database answered its last ping (every 5 s)",
        )
        .expect(INVARIANT);
        db_up.set(1);
        registry.register(Box::new(db_up.clone())).expect(INVARIANT);
        registry
            .register(Box::new(requests.clone()))
            .expect(INVARIANT);
        registry.register(Box::new(pool.clone())).expect(INVARIANT);
        let backup_last = prometheus::Gauge::new(
            "backup_last_success_timestamp_seconds",
            "When the newest successful backup recorded in the database started (unix seconds)",
        )
        .expect(INVARIANT);
        let backup_failures = prometheus::IntCounter::new(
            "backup_failures_total",
            "Scheduled backups (serve --backup-dir) of this process that failed",
        )
        .expect(INVARIANT);
        registry
            .register(Box::new(backup_failures.clone()))
            .expect(INVARIANT);
        let stream_lists_written = counter(
            &registry,
            "cluster_stream_lists_written_total",
            "Media nodes' stream lists written to the database (a stats report with a new list; a report of the load alone writes none)",
        );
        let stream_lists_parsed = counter(
            &registry,
            "cluster_stream_lists_parsed_total",
            "Media nodes' stream lists this replica parsed from the database (for its cluster view or the node list: only those changed since it last read them)",
        );
        ApiMetrics {
            registry,
            requests,
            pool,
            db_up,
            backup_last,
            backup_known: std::sync::Arc::new(std::sync::Once::new()),
            backup_failures,
            stream_lists_written,
            stream_lists_parsed,
        }
    }
}

impl ApiMetrics {
    /// The registry, for metrics kept elsewhere (analytics).
    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }
}

impl ControlPlane {
    /// The histogram of the control plane's requests, `{route, method, status}`, for the
    /// HTTP edge that times [`ControlPlane::router`] (this crate mounts no middleware of
    /// its own for it: the node's routes are timed by the same code).
    pub fn api_requests(&self) -> HistogramVec {
        self.0.metrics.requests.clone()
    }

    /// The control plane's metrics as Prometheus text.
    pub fn render_metrics(&self) -> String {
        let m = &self.0.metrics;
        let pool = self.pool();
        let size = i64::from(pool.size());
        let idle = i64::try_from(pool.num_idle()).unwrap_or(i64::MAX);
        m.pool.with_label_values(&["idle"]).set(idle);
        m.pool
            .with_label_values(&["busy"])
            .set((size - idle).max(0));
        m.pool
            .with_label_values(&["max"])
            .set(i64::from(pool.options().get_max_connections()));
        TextEncoder::new()
            .encode_to_string(&m.registry.gather())
            .unwrap_or_default()
    }

    /// A backup that started at `ms` succeeded (the gauge only moves forward).
    pub(crate) fn note_backup(&self, ms: i64) {
        let m = &self.0.metrics;
        let secs = ms as f64 / 1000.0;
        if secs > m.backup_last.get() {
            m.backup_last.set(secs);
        }
        m.backup_known.call_once(|| {
            m.registry
                .register(Box::new(m.backup_last.clone()))
                .expect(INVARIANT);
        });
    }

    /// Whether the database answers (within 2 s); `cascade_db_up` says the same.
    pub async fn ping(&self) -> Result<(), String> {
        let q = sqlx::query("SELECT 1").execute(self.pool());
        let r = match tokio::time::timeout(std::time::Duration::from_secs(2), q).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("database unreachable: {e}")),
            Err(_) => Err("database unreachable: no answer in 2 s".into()),
        };
        self.0.metrics.db_up.set(i64::from(r.is_ok()));
        r
    }
}
