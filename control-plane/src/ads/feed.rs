//! Cues for the media-only nodes of a cluster: every cue is also a row of `cues` (kept an
//! hour), and `GET /api/v1/cluster/cues?since=&wait=` (the cluster token) is a long poll
//! over them, as `GET /revocations` is for revocations: it answers as soon as a cue newer
//! than `since` exists (at once for this replica's own, within [`RECHECK`] for another's),
//! or after `wait` seconds. A node follows it (`src/ads.rs`) and tells its viewers.

use std::collections::HashSet;
use std::time::Duration;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::Cue;
use crate::cluster::auth::NodeAuth;
use crate::db::now_ms;
use crate::error::{ApiResult, Problem};
use crate::extract::Query;
use crate::tokens::random_id;
use crate::ControlPlane;

/// How long cues are kept for nodes.
pub const KEEP_MS: i64 = 3_600_000;
/// How far before `since` an answer reaches back (nodes drop what they told already), so
/// a cue stamped by another replica's clock a little late is not missed.
pub const OVERLAP_MS: i64 = 2_000;
/// Longest wait of a long poll, seconds.
pub const MAX_WAIT_SECS: u64 = 25;
/// How often a waiting poll looks for other replicas' cues.
pub const RECHECK: Duration = Duration::from_millis(250);
/// Most cues in one answer.
pub const MAX_CUES: i64 = 100;

/// `?since` (the newest `created_at` the node has seen, Unix ms) and `wait` (seconds).
#[derive(Debug, Deserialize, IntoParams)]
pub struct CueQuery {
    /// Unix ms.
    pub since: Option<i64>,
    /// Seconds, at most 25.
    pub wait: Option<u64>,
}

/// A cue as a node takes it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct CueRow {
    /// Opaque id (nodes tell each once).
    pub id: String,
    /// The stream.
    pub stream: String,
    /// `adbreak` or `sponsor`.
    pub event: String,
    /// Its JSON data.
    pub data: String,
    /// Until when a viewer who joins later is told, Unix ms.
    pub until_ms: i64,
    /// A JSON array of the user ids told `"skip": true`.
    pub exempt: String,
    /// Unix ms, the replica's clock.
    pub created_at: i64,
}

/// The cues since a time.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CueFeed {
    /// The replica's clock, Unix ms.
    pub now: i64,
    /// Oldest first.
    pub cues: Vec<CueRow>,
}

impl CueRow {
    /// The users it exempts.
    pub fn exempt_set(&self) -> HashSet<String> {
        serde_json::from_str(&self.exempt).unwrap_or_default()
    }
}

/// Records `cue` for the nodes elsewhere (best effort: logged on failure).
pub(crate) async fn record(cp: &ControlPlane, cue: &Cue) {
    let now = now_ms();
    let exempt = serde_json::to_string(&*cue.exempt).unwrap_or_else(|_| "[]".into());
    let r = sqlx::query(
        "INSERT INTO cues (id, stream, event, data, until_ms, exempt, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(random_id())
    .bind(&cue.stream)
    .bind(cue.event)
    .bind(cue.data.to_string())
    .bind(cue.until_ms)
    .bind(exempt)
    .bind(now)
    .execute(cp.pool())
    .await;
    if let Err(e) = r {
        tracing::warn!("recording a cue for the cluster: {e}");
    }
    let _ = sqlx::query("DELETE FROM cues WHERE created_at < $1")
        .bind(now - KEEP_MS)
        .execute(cp.pool())
        .await;
}

async fn newest(cp: &ControlPlane) -> Result<i64, sqlx::Error> {
    let (n,): (Option<i64>,) = sqlx::query_as("SELECT MAX(created_at) FROM cues")
        .fetch_one(cp.pool())
        .await?;
    Ok(n.unwrap_or(0))
}

/// The cues for media nodes (the cluster token): a long poll.
#[utoipa::path(get, path = "/api/v1/cluster/cues", tag = "cluster", security(("cluster_token" = [])), params(CueQuery),
    responses((status = 200, body = CueFeed), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn feed(
    State(cp): State<ControlPlane>,
    _: NodeAuth,
    Query(q): Query<CueQuery>,
) -> ApiResult<axum::Json<CueFeed>> {
    let since = q.since.unwrap_or(0);
    let wait = Duration::from_secs(q.wait.unwrap_or(0).min(MAX_WAIT_SECS));
    let deadline = tokio::time::Instant::now() + wait;
    // Subscribed before reading, so a cue between the read and the wait is seen.
    let mut events = cp.cue_events();
    loop {
        let now = tokio::time::Instant::now();
        if newest(&cp).await? > since || now >= deadline {
            break;
        }
        let _ = tokio::time::timeout(RECHECK.min(deadline - now), events.recv()).await;
    }
    let cues: Vec<CueRow> = sqlx::query_as(
        "SELECT id, stream, event, data, until_ms, exempt, created_at FROM cues \
         WHERE created_at > $1 ORDER BY created_at, id LIMIT $2",
    )
    .bind(since - OVERLAP_MS)
    .bind(MAX_CUES)
    .fetch_all(cp.pool())
    .await?;
    Ok(axum::Json(CueFeed {
        now: now_ms(),
        cues,
    }))
}
