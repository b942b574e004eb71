//! The report queue: what viewers reported, dismissed or deleted by a moderator.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use super::log;
use crate::chat::http::{remove, Report};
use crate::chat::room::{self};
use crate::chat::store;
use crate::db::now_ms;
use crate::error::{ApiResult, Problem};
use crate::extract::{Caller, Json, Path, Query};
use crate::{ControlPlane, Error};

/// `POST reports/{id}/resolve`
#[derive(Debug, Deserialize, ToSchema)]
pub struct Resolve {
    /// `dismiss` it, or `delete` the message.
    pub action: ResolveAction,
}

/// What resolving a report does.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ResolveAction {
    /// Nothing wrong.
    Dismiss,
    /// Delete the message.
    Delete,
}

/// `GET reports` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ReportQuery {
    /// `open` (default), `dismissed`, `deleted` or `all`.
    pub status: Option<String>,
}

/// The moderation queue: reports, newest first.
#[utoipa::path(get, path = "/api/v1/channels/{slug}/reports", tag = "moderation", security(("access_token" = [])), params(("slug" = String, Path), ReportQuery),
    responses((status = 200, body = [Report]), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn reports(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(slug): Path<String>,
    Query(q): Query<ReportQuery>,
) -> ApiResult<axum::Json<Vec<Report>>> {
    let room = room::moderated(&cp, &slug, &caller).await?;
    let status = q.status.unwrap_or_else(|| "open".into());
    if !["open", "dismissed", "deleted", "all"].contains(&status.as_str()) {
        return Err(Error::BadRequest(
            "status is open, dismissed, deleted or all".into(),
        ));
    }
    let list: Vec<Report> = sqlx::query_as(
        "SELECT r.id, r.message_id, u.username AS reporter, r.reason, r.status, r.created_at \
         FROM chat_reports r JOIN users u ON u.id = r.reporter_id WHERE r.channel_id = $1 \
         AND ($2 = 'all' OR r.status = $2) ORDER BY r.created_at DESC LIMIT 200",
    )
    .bind(room.id())
    .bind(&status)
    .fetch_all(cp.pool())
    .await?;
    Ok(axum::Json(list))
}

/// Resolve a report: dismiss it, or delete the message (from every client).
#[utoipa::path(post, path = "/api/v1/channels/{slug}/reports/{id}/resolve", tag = "moderation", security(("access_token" = [])), params(("slug" = String, Path), ("id" = String, Path)), request_body = Resolve,
    responses((status = 204), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn resolve(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path((slug, id)): Path<(String, String)>,
    Json(req): Json<Resolve>,
) -> ApiResult<StatusCode> {
    let room = room::moderated(&cp, &slug, &caller).await?;
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT message_id FROM chat_reports WHERE channel_id = $1 AND id = $2")
            .bind(room.id())
            .bind(&id)
            .fetch_optional(cp.pool())
            .await?;
    let (message_id,) = row.ok_or(Error::NotFound)?;
    let now = now_ms();
    let status = match req.action {
        ResolveAction::Dismiss => "dismissed",
        ResolveAction::Delete => "deleted",
    };
    // Every open report of the same message is settled by one decision.
    sqlx::query(
        "UPDATE chat_reports SET status = $3, resolved_by = $4, resolved_at = $5 \
         WHERE channel_id = $1 AND message_id = $2 AND status = 'open'",
    )
    .bind(room.id())
    .bind(message_id)
    .bind(status)
    .bind(&caller.0.id)
    .bind(now)
    .execute(cp.pool())
    .await?;
    if req.action == ResolveAction::Delete {
        remove(&cp, &room, store::Which::One(message_id)).await?;
    }
    log(
        &cp,
        Some(room.id()),
        &caller,
        status,
        &message_id.to_string(),
        "",
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
