//! Analytics (`docs/ANALYTICS.md`): viewer sessions, concurrency and players' reports
//! recorded as the node in this process samples them, and per stream and per channel
//! figures computed from them, the chat record and the ledger.
//!
//! - `track.rs`: the pure diff of two looks at the node.
//! - `record.rs`: those changes into the database (`broadcasts`, `viewer_sessions`,
//!   `analytics_minutes`), fed every second by `src/webhooks.rs` in `serve`.
//! - `report.rs`: the figures (pure percentiles and sums over rows) and their queries.
//! - `http.rs`: `GET …/analytics` (JSON or CSV) and `POST /playback-stats`.

pub mod http;
pub mod record;
pub mod report;
pub mod track;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

pub use track::{LiveSample, SessionSample};

const INVARIANT: &str = "constant, valid and unique metric definitions";

/// How often concurrency is sampled unless configured.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);

/// The process's analytics state: what the node looked like last, each live stream's
/// broadcast, and the aggregate metrics.
pub struct Analytics {
    state: Mutex<State>,
    every: Duration,
    pub(crate) metrics: Metrics,
}

impl std::fmt::Debug for Analytics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analytics")
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    tracker: track::Tracker,
    /// Live streams: (channel id, broadcast id).
    broadcasts: HashMap<String, (String, String)>,
    /// Sessions left open by an earlier run were closed (once, at the first look).
    swept: bool,
}

/// Aggregates only: no label but a report's outcome, and revenue's currency (an ISO 4217
/// code or `other`) and kind (`tip`, `subscription`).
pub(crate) struct Metrics {
    viewer_seconds: IntCounter,
    sessions: IntCounter,
    concurrent: IntGauge,
    stall_ms: IntCounter,
    watched_ms: IntCounter,
    reports: IntCounterVec,
    chat_messages: IntCounter,
    revenue: IntCounterVec,
}

impl Metrics {
    fn new(registry: &Registry) -> Metrics {
        let c = |name: &str, help: &str| crate::metrics::counter(registry, name, help);
        let viewer_seconds = c(
            "analytics_viewer_seconds_total",
            "Seconds watched by the node's viewers, summed over viewers (sampled every second)",
        );
        let sessions = c(
            "analytics_viewer_sessions_total",
            "Viewer sessions the node opened",
        );
        let stall_ms = c(
            "analytics_stall_milliseconds_total",
            "Milliseconds players reported stalled (rebuffering)",
        );
        let watched_ms = c(
            "analytics_reported_watch_milliseconds_total",
            "Milliseconds players reported playing or stalled: the rebuffer ratio's denominator",
        );
        let concurrent = IntGauge::new(
            "analytics_concurrent_viewers",
            "Viewers of the node's live streams at the last sample",
        )
        .expect(INVARIANT);
        registry
            .register(Box::new(concurrent.clone()))
            .expect(INVARIANT);
        let reports = IntCounterVec::new(
            Opts::new(
                "analytics_playback_reports_total",
                "Players' playback reports by outcome (accepted, invalid, limited, unknown)",
            ),
            &["result"],
        )
        .expect(INVARIANT);
        registry
            .register(Box::new(reports.clone()))
            .expect(INVARIANT);
        let chat_messages = c(
            "chat_messages_total",
            "Chat messages accepted and stored (refused ones are not counted)",
        );
        let revenue = IntCounterVec::new(
            Opts::new(
                "revenue_minor_units_total",
                "Gross revenue posted to the ledger, in minor units (cents), by currency \
                 (ISO 4217, else other) and kind (tip, subscription); each payment once",
            ),
            &["currency", "kind"],
        )
        .expect(INVARIANT);
        registry
            .register(Box::new(revenue.clone()))
            .expect(INVARIANT);
        Metrics {
            viewer_seconds,
            sessions,
            concurrent,
            stall_ms,
            watched_ms,
            reports,
            chat_messages,
            revenue,
        }
    }

    /// A chat message was stored.
    pub(crate) fn chat_message(&self) {
        self.chat_messages.inc();
    }

    /// A payment's gross was posted to the ledger (once per payment: not on a repeat).
    pub(crate) fn revenue(&self, currency: &str, kind: &str, minor: i64) {
        let label = crate::money::currency_label(currency);
        self.revenue
            .with_label_values(&[label, kind])
            .inc_by(u64::try_from(minor).unwrap_or(0));
    }
}

impl Analytics {
    /// Analytics with its metrics on `registry`, sampling concurrency `every` period.
    pub(crate) fn new(registry: &Registry, every: Duration) -> Analytics {
        Analytics {
            state: Mutex::new(State::default()),
            every,
            metrics: Metrics::new(registry),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts over from what the database holds (a control-plane replica taking the
    /// cluster's audience over): `broadcasts` (stream, channel id, broadcast id) live,
    /// `open` sessions (id, join time recorded) open; nothing is swept.
    pub(crate) fn resume(
        &self,
        broadcasts: Vec<(String, String, String)>,
        open: Vec<(String, bool)>,
    ) {
        let mut st = self.state();
        st.tracker = track::Tracker::resume(broadcasts.iter().map(|(s, _, _)| s.clone()), open);
        st.broadcasts = broadcasts
            .into_iter()
            .map(|(stream, channel, id)| (stream, (channel, id)))
            .collect();
        st.swept = true;
    }

    /// Forgets everything, as at the process's start (the next look sweeps what the
    /// database holds open).
    pub(crate) fn restart(&self) {
        *self.state() = State::default();
        self.metrics.concurrent.set(0);
    }
}
