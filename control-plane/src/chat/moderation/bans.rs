//! Bans and timeouts per channel (a ban may also stop watching), and admins' global bans.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{log, reason, user_named};
use crate::chat::http::remove;
use crate::chat::room::{self};
use crate::chat::rules::{Code, Refusal};
use crate::chat::store;
use crate::db::{now_ms, unique_violation};
use crate::error::{ApiResult, Problem};
use crate::extract::{Caller, Json, Path};
use crate::model::Role;
use crate::{ControlPlane, Error};

/// `POST bans`: a ban (no duration) or a timeout.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewBan {
    /// Who.
    pub username: String,
    /// Why (shown to them; up to 200 characters).
    #[serde(default)]
    pub reason: String,
    /// A timeout of this many seconds (1 to 1,209,600); none: a ban until lifted.
    pub duration_secs: Option<i64>,
    /// Also stop them watching the channel.
    #[serde(default)]
    pub watch: bool,
}

/// A ban or timeout.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ban {
    /// Who.
    pub username: String,
    /// Why.
    pub reason: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// When a timeout ends (Unix milliseconds); none for a ban.
    pub expires_at: Option<i64>,
    /// They cannot watch either.
    pub watch: bool,
}

/// `POST /admin/bans`
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewGlobalBan {
    /// Who.
    pub username: String,
    /// Why.
    #[serde(default)]
    pub reason: String,
}

/// Bans and timeouts in force.
#[utoipa::path(get, path = "/api/v1/channels/{slug}/bans", tag = "moderation", security(("access_token" = [])), params(("slug" = String, Path)),
    responses((status = 200, body = [Ban]), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn bans(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(slug): Path<String>,
) -> ApiResult<axum::Json<Vec<Ban>>> {
    let room = room::moderated(&cp, &slug, &caller).await?;
    let rows: Vec<(String, String, i64, Option<i64>, i64)> = sqlx::query_as(
        "SELECT u.username, b.reason, b.created_at, b.expires_at, b.watch FROM channel_bans b \
         JOIN users u ON u.id = b.user_id WHERE b.channel_id = $1 \
         AND (b.expires_at IS NULL OR b.expires_at > $2) ORDER BY b.created_at DESC",
    )
    .bind(room.id())
    .bind(now_ms())
    .fetch_all(cp.pool())
    .await?;
    Ok(axum::Json(
        rows.into_iter()
            .map(|(username, reason, created_at, expires_at, watch)| Ban {
                username,
                reason,
                created_at,
                expires_at,
                watch: watch != 0,
            })
            .collect(),
    ))
}

/// Ban or time out a user. A ban also removes their messages from every client.
#[utoipa::path(post, path = "/api/v1/channels/{slug}/bans", tag = "moderation", security(("access_token" = [])), params(("slug" = String, Path)), request_body = NewBan,
    responses((status = 201, body = Ban), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn ban(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(slug): Path<String>,
    Json(req): Json<NewBan>,
) -> ApiResult<(StatusCode, axum::Json<Ban>)> {
    let room = room::moderated(&cp, &slug, &caller).await?;
    let user = user_named(&cp, &req.username).await?;
    if room.role_of(Some(&user)).moderates() {
        return Err(Refusal::new(
            Code::Forbidden,
            "moderators cannot be banned from their channel",
        )
        .into());
    }
    let reason = reason(&req.reason)?;
    if let Some(d) = req.duration_secs {
        if !(1..=1_209_600).contains(&d) {
            return Err(Error::Invalid("duration_secs must be 1 to 1209600".into()));
        }
    }
    let now = now_ms();
    let expires_at = req.duration_secs.map(|d| now + d * 1000);
    sqlx::query(
        "INSERT INTO channel_bans (channel_id, user_id, reason, actor_id, created_at, \
         expires_at, watch) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (channel_id, user_id) DO UPDATE SET reason = $3, actor_id = $4, \
         created_at = $5, expires_at = $6, watch = $7",
    )
    .bind(room.id())
    .bind(&user.id)
    .bind(&reason)
    .bind(&caller.0.id)
    .bind(now)
    .bind(expires_at)
    .bind(i64::from(req.watch))
    .execute(cp.pool())
    .await?;
    let action = if expires_at.is_some() {
        "timeout"
    } else {
        "ban"
    };
    log(
        &cp,
        Some(room.id()),
        &caller,
        action,
        &user.username,
        &reason,
    )
    .await?;
    if expires_at.is_none() {
        remove(&cp, &room, store::Which::ByUser(&user.id)).await?;
    }
    if req.watch {
        // Their viewer tokens from before are refused and their sessions end (on every
        // node, through the revocation list); new ones are not minted while banned.
        cp.revoke(crate::revocation::watch_tag(room.id(), &user.id), 0, true)
            .await?;
    }
    Ok((
        StatusCode::CREATED,
        axum::Json(Ban {
            username: user.username,
            reason,
            created_at: now,
            expires_at,
            watch: req.watch,
        }),
    ))
}

/// Lift a ban or timeout.
#[utoipa::path(delete, path = "/api/v1/channels/{slug}/bans/{username}", tag = "moderation", security(("access_token" = [])), params(("slug" = String, Path), ("username" = String, Path)),
    responses((status = 204), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn unban(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path((slug, username)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let room = room::moderated(&cp, &slug, &caller).await?;
    let user = user_named(&cp, &username).await?;
    sqlx::query("DELETE FROM channel_bans WHERE channel_id = $1 AND user_id = $2")
        .bind(room.id())
        .bind(&user.id)
        .execute(cp.pool())
        .await?;
    log(&cp, Some(room.id()), &caller, "unban", &user.username, "").await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ban a user from chat everywhere (admins).
#[utoipa::path(post, path = "/api/v1/admin/bans", tag = "admin", security(("access_token" = [])), request_body = NewGlobalBan,
    responses((status = 204), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn global_ban(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Json(req): Json<NewGlobalBan>,
) -> ApiResult<StatusCode> {
    caller.require(Role::Admin)?;
    let user = user_named(&cp, &req.username).await?;
    let reason = reason(&req.reason)?;
    let result = sqlx::query(
        "INSERT INTO global_bans (user_id, reason, actor_id, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&user.id)
    .bind(&reason)
    .bind(&caller.0.id)
    .bind(now_ms())
    .execute(cp.pool())
    .await;
    match result {
        Err(e) if unique_violation(&e, "user_id") => {}
        other => {
            other?;
        }
    }
    log(&cp, None, &caller, "global_ban", &user.username, &reason).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lift a global ban (admins).
#[utoipa::path(delete, path = "/api/v1/admin/bans/{username}", tag = "admin", security(("access_token" = [])), params(("username" = String, Path)),
    responses((status = 204), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn global_unban(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(username): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Role::Admin)?;
    let user = user_named(&cp, &username).await?;
    sqlx::query("DELETE FROM global_bans WHERE user_id = $1")
        .bind(&user.id)
        .execute(cp.pool())
        .await?;
    log(&cp, None, &caller, "global_unban", &user.username, "").await?;
    Ok(StatusCode::NO_CONTENT)
}
