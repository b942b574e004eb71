//! Moderation under `/api/v1/channels/{slug}/...`: moderators (appointed by the owner),
//! bans and timeouts, blocked terms, the report queue, follows, the moderation log; and
//! the admins' global bans. Every action is logged with who and why.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::room::{self, Room};
use crate::db::now_ms;
use crate::error::{ApiResult, Problem};
use crate::extract::{Caller, Path};
use crate::model::{UserRow, USER_COLUMNS};
use crate::tokens::random_id;
use crate::{ControlPlane, Error};

mod bans;
mod moderators;
mod reports;
mod terms;

pub use bans::*;
pub use moderators::*;
pub use reports::*;
pub use terms::*;

/// A moderation log entry.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct LogEntry {
    /// Opaque id.
    pub id: String,
    /// Unix milliseconds.
    pub at: i64,
    /// Who acted.
    pub actor: String,
    /// What they did.
    pub action: String,
    /// On whom or what.
    pub target: String,
    /// Why.
    pub reason: String,
}

/// Appends to the moderation log.
pub(crate) async fn log(
    cp: &ControlPlane,
    room: Option<&str>,
    actor: &Caller,
    action: &str,
    target: &str,
    reason: &str,
) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO moderation_log (id, channel_id, at, actor_id, action, target, reason) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(random_id())
    .bind(room.map(str::to_owned))
    .bind(now_ms())
    .bind(&actor.0.id)
    .bind(action)
    .bind(target)
    .bind(reason)
    .execute(cp.pool())
    .await?;
    Ok(())
}

/// Whether `user` follows the room's channel.
pub(crate) async fn follows(cp: &ControlPlane, room: &Room, user: &UserRow) -> ApiResult<bool> {
    let row: Option<(i64,)> = sqlx::query_as(
        "SELECT created_at FROM channel_follows WHERE channel_id = $1 AND user_id = $2",
    )
    .bind(room.id())
    .bind(&user.id)
    .fetch_optional(cp.pool())
    .await?;
    Ok(row.is_some())
}

async fn user_named(cp: &ControlPlane, username: &str) -> ApiResult<UserRow> {
    let user: Option<UserRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {USER_COLUMNS} FROM users WHERE username = $1"
    )))
    .bind(username.trim().to_ascii_lowercase())
    .fetch_optional(cp.pool())
    .await?;
    user.ok_or(Error::Missing("no such user"))
}

fn reason(raw: &str) -> ApiResult<String> {
    crate::model::text("reason", raw.trim(), 200)
}

/// The moderation log, newest first.
#[utoipa::path(get, path = "/api/v1/channels/{slug}/modlog", tag = "moderation", security(("access_token" = [])), params(("slug" = String, Path)),
    responses((status = 200, body = [LogEntry]), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn modlog(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(slug): Path<String>,
) -> ApiResult<axum::Json<Vec<LogEntry>>> {
    let room = room::moderated(&cp, &slug, &caller).await?;
    let list: Vec<LogEntry> = sqlx::query_as(
        "SELECT l.id, l.at, u.username AS actor, l.action, l.target, l.reason \
         FROM moderation_log l JOIN users u ON u.id = l.actor_id WHERE l.channel_id = $1 \
         ORDER BY l.at DESC LIMIT 500",
    )
    .bind(room.id())
    .fetch_all(cp.pool())
    .await?;
    Ok(axum::Json(list))
}

/// Follow the channel (followers-only rooms let followers post).
#[utoipa::path(post, path = "/api/v1/channels/{slug}/follow", tag = "chat", security(("access_token" = [])), params(("slug" = String, Path)),
    responses((status = 204), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn follow(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(slug): Path<String>,
) -> ApiResult<StatusCode> {
    let room = room::readable(&cp, &slug, Some(&caller)).await?;
    sqlx::query(
        "INSERT INTO channel_follows (channel_id, user_id, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT DO NOTHING",
    )
    .bind(room.id())
    .bind(&caller.0.id)
    .bind(now_ms())
    .execute(cp.pool())
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Stop following.
#[utoipa::path(delete, path = "/api/v1/channels/{slug}/follow", tag = "chat", security(("access_token" = [])), params(("slug" = String, Path)),
    responses((status = 204), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn unfollow(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(slug): Path<String>,
) -> ApiResult<StatusCode> {
    let room = room::readable(&cp, &slug, Some(&caller)).await?;
    sqlx::query("DELETE FROM channel_follows WHERE channel_id = $1 AND user_id = $2")
        .bind(room.id())
        .bind(&caller.0.id)
        .execute(cp.pool())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
