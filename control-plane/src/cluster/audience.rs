//! What a media node tells the control plane of its audience, every second, beside its
//! stats: the streams it publishes or serves with their viewers here, and its viewer
//! sessions (`PUT /api/v1/cluster/nodes/{id}/audience`). Checked and bounded here, kept
//! in `node_audiences` (one row per node, replaced), and read back for the nodes the
//! registry counts alive, whose reports [`super::merge`] folds into one look at the
//! cluster.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::NodeAuth;
use super::registry::checked;
use crate::analytics::SessionSample;
use crate::db::now_ms;
use crate::error::{ApiResult, Problem};
use crate::extract::{Json, Path};
use crate::{ControlPlane, Error};

/// Most streams one report may list.
pub const MAX_STREAMS: usize = 1_000;
/// Most viewer sessions one report may list (a node with more reports the first ones).
pub const MAX_SESSIONS: usize = 10_000;
/// The endpoint's body limit: room for [`MAX_SESSIONS`] sessions at their longest.
pub const MAX_BODY: usize = 4 * 1024 * 1024;
/// Reports older than this are deleted (their node died or registered again).
const KEEP_MS: i64 = 60_000;

/// One node's audience now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Audience {
    /// Streams with a publisher here or carried here for viewers (at most 1000).
    #[serde(default)]
    pub streams: Vec<StreamHere>,
    /// Connected viewer sessions (at most 10000).
    #[serde(default)]
    pub sessions: Vec<SessionSample>,
}

/// A stream on one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StreamHere {
    /// The stream's name (a channel's slug).
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// Its publisher is connected to this node (an origin's ingest).
    #[serde(default)]
    pub publisher: bool,
    /// That publisher is sending (only with `publisher`).
    #[serde(default)]
    pub active: bool,
    /// Viewers of it on this node.
    #[serde(default)]
    pub viewers: u32,
}

impl Audience {
    /// Refuses what no node sends: too many entries, names or ids out of shape,
    /// duplicates, an active stream without a publisher.
    pub fn check(&self) -> ApiResult<()> {
        if self.streams.len() > MAX_STREAMS {
            return Err(Error::Invalid(format!("at most {MAX_STREAMS} streams")));
        }
        if self.sessions.len() > MAX_SESSIONS {
            return Err(Error::Invalid(format!("at most {MAX_SESSIONS} sessions")));
        }
        let mut names = std::collections::HashSet::with_capacity(self.streams.len());
        for s in &self.streams {
            if checked("stream name", &s.name, 100)? != s.name || !names.insert(&s.name) {
                return Err(Error::Invalid(format!(
                    "stream {:?} is listed twice or has spaces around it",
                    s.name
                )));
            }
            if s.active && !s.publisher {
                return Err(Error::Invalid(format!(
                    "stream {:?} is active without a publisher here",
                    s.name
                )));
            }
        }
        let mut ids = std::collections::HashSet::with_capacity(self.sessions.len());
        for s in &self.sessions {
            let hex =
                !s.id.is_empty() && s.id.len() <= 32 && s.id.bytes().all(|b| b.is_ascii_hexdigit());
            if !hex {
                return Err(Error::Invalid(
                    "a session id is 1 to 32 hexadecimal digits".into(),
                ));
            }
            if !ids.insert(&s.id) {
                return Err(Error::Invalid(format!("session {} is listed twice", s.id)));
            }
            checked("a session's stream", &s.stream, 100)?;
            if let Some(v) = &s.viewer {
                checked("a session's viewer", v, 128)?;
            }
            if s.join_ms.is_some_and(|ms| !(0..=86_400_000).contains(&ms)) {
                return Err(Error::Invalid("join_ms must be from 0 to 86400000".into()));
            }
        }
        Ok(())
    }
}

/// Report a node's audience (every second, after its stats): webhooks and analytics of
/// the whole cluster are made from the reports of the nodes alive.
#[utoipa::path(put, path = "/api/v1/cluster/nodes/{id}/audience", tag = "cluster", security(("cluster_token" = [])),
    params(("id" = String, Path, description = "Node id")), request_body = Audience,
    responses((status = 204), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn report(
    State(cp): State<ControlPlane>,
    _: NodeAuth,
    Path(id): Path<String>,
    Json(req): Json<Audience>,
) -> ApiResult<StatusCode> {
    req.check()?;
    let known: Option<(String,)> = sqlx::query_as("SELECT id FROM cluster_nodes WHERE id = $1")
        .bind(&id)
        .fetch_optional(cp.pool())
        .await?;
    if known.is_none() {
        return Err(Error::Missing("no such node: register again"));
    }
    let report = serde_json::to_string(&req).map_err(|e| Error::Internal(e.to_string()))?;
    sqlx::query(
        "INSERT INTO node_audiences (node_id, report, reported_at) VALUES ($1, $2, $3) \
         ON CONFLICT (node_id) DO UPDATE SET report = excluded.report, \
         reported_at = excluded.reported_at",
    )
    .bind(&id)
    .bind(&report)
    .bind(now_ms())
    .execute(cp.pool())
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The reports of the nodes alive now (their stats and their audience both within the
/// registry's liveness window); old reports are deleted on the way.
pub(crate) async fn alive(cp: &ControlPlane) -> Result<Vec<Audience>, sqlx::Error> {
    let now = now_ms();
    let since = now - cp.config().cluster_tuning.node_timeout_ms;
    sqlx::query("DELETE FROM node_audiences WHERE reported_at < $1")
        .bind(now - KEEP_MS)
        .execute(cp.pool())
        .await?;
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT a.report FROM node_audiences a JOIN cluster_nodes n ON n.id = a.node_id \
         WHERE n.last_seen >= $1 AND a.reported_at >= $1",
    )
    .bind(since)
    .fetch_all(cp.pool())
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(r,)| serde_json::from_str(&r).ok())
        .collect())
}
