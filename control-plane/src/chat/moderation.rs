//! Moderation under `/api/v1/channels/{slug}/...`: moderators (appointed by the owner),
//! bans and timeouts, blocked terms, the report queue, follows, the moderation log; and
//! the admins' global bans. Every action is logged with who and why.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::http::{remove, Report};
use super::room::{self, Room, RoomRole};
use super::rules::{self, Code, Refusal, TermAction};
use super::store;
use crate::db::{now_ms, unique_violation};
use crate::error::{ApiResult, Problem};
use crate::extract::{Caller, Json, Path, Query};
use crate::model::{Role, UserRow, USER_COLUMNS};
use crate::tokens::random_id;
use crate::{ControlPlane, Error};

/// A moderator of a channel.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Moderator {
    /// Their username.
    pub username: String,
    /// Unix milliseconds.
    pub added_at: i64,
}

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

/// `POST blocked-terms`
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewTerm {
    /// A word with `*` wildcards, or a phrase; 1 to 50 characters.
    pub term: String,
    /// Mask it or refuse the message.
    pub action: TermAction,
}

/// A blocked term of a channel.
#[derive(Debug, Serialize, ToSchema)]
pub struct BlockedTerm {
    /// Opaque id.
    pub id: String,
    /// The term.
    pub term: String,
    /// What it does.
    pub action: TermAction,
}

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

/// `POST /admin/bans`
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewGlobalBan {
    /// Who.
    pub username: String,
    /// Why.
    #[serde(default)]
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

/// The channel's moderators (moderators may see the list).
#[utoipa::path(get, path = "/api/v1/channels/{slug}/moderators", tag = "moderation", security(("access_token" = [])), params(("slug" = String, Path)),
    responses((status = 200, body = [Moderator]), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn moderators(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(slug): Path<String>,
) -> ApiResult<axum::Json<Vec<Moderator>>> {
    let room = room::moderated(&cp, &slug, &caller).await?;
    let list: Vec<Moderator> = sqlx::query_as(
        "SELECT u.username, m.created_at AS added_at FROM channel_moderators m \
         JOIN users u ON u.id = m.user_id WHERE m.channel_id = $1 ORDER BY m.created_at",
    )
    .bind(room.id())
    .fetch_all(cp.pool())
    .await?;
    Ok(axum::Json(list))
}

async fn owner_room(
    cp: &ControlPlane,
    slug: &str,
    caller: &Caller,
) -> ApiResult<std::sync::Arc<Room>> {
    let room = room::moderated(cp, slug, caller).await?;
    match room.role_of(Some(&caller.0)) {
        RoomRole::Owner | RoomRole::Admin => Ok(room),
        _ => Err(Refusal::new(
            Code::Forbidden,
            "only the channel's owner may appoint moderators",
        )
        .into()),
    }
}

/// Appoint a moderator (the owner).
#[utoipa::path(put, path = "/api/v1/channels/{slug}/moderators/{username}", tag = "moderation", security(("access_token" = [])), params(("slug" = String, Path), ("username" = String, Path)),
    responses((status = 204), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn appoint(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path((slug, username)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let room = owner_room(&cp, &slug, &caller).await?;
    let user = user_named(&cp, &username).await?;
    sqlx::query(
        "INSERT INTO channel_moderators (channel_id, user_id, added_by, created_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(room.id())
    .bind(&user.id)
    .bind(&caller.0.id)
    .bind(now_ms())
    .execute(cp.pool())
    .await?;
    if user.role() == Role::Viewer {
        // The account-wide role says "moderates somewhere"; the room decides where.
        sqlx::query("UPDATE users SET role = 'moderator' WHERE id = $1 AND role = 'viewer'")
            .bind(&user.id)
            .execute(cp.pool())
            .await?;
    }
    cp.chat().rooms.forget(&slug);
    log(
        &cp,
        Some(room.id()),
        &caller,
        "appoint_moderator",
        &user.username,
        "",
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove a moderator (the owner).
#[utoipa::path(delete, path = "/api/v1/channels/{slug}/moderators/{username}", tag = "moderation", security(("access_token" = [])), params(("slug" = String, Path), ("username" = String, Path)),
    responses((status = 204), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn dismiss(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path((slug, username)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let room = owner_room(&cp, &slug, &caller).await?;
    let user = user_named(&cp, &username).await?;
    sqlx::query("DELETE FROM channel_moderators WHERE channel_id = $1 AND user_id = $2")
        .bind(room.id())
        .bind(&user.id)
        .execute(cp.pool())
        .await?;
    cp.chat().rooms.forget(&slug);
    log(
        &cp,
        Some(room.id()),
        &caller,
        "remove_moderator",
        &user.username,
        "",
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
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

/// The channel's own blocked terms.
#[utoipa::path(get, path = "/api/v1/channels/{slug}/blocked-terms", tag = "moderation", security(("access_token" = [])), params(("slug" = String, Path)),
    responses((status = 200, body = [BlockedTerm]), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn terms(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(slug): Path<String>,
) -> ApiResult<axum::Json<Vec<BlockedTerm>>> {
    let room = room::moderated(&cp, &slug, &caller).await?;
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT id, term, action FROM blocked_terms WHERE channel_id = $1 ORDER BY created_at",
    )
    .bind(room.id())
    .fetch_all(cp.pool())
    .await?;
    Ok(axum::Json(
        rows.into_iter()
            .map(|(id, term, action)| BlockedTerm {
                id,
                term,
                action: TermAction::parse(&action),
            })
            .collect(),
    ))
}

/// Most blocked terms per channel.
pub const MAX_TERMS: i64 = 500;

/// Block a term: masked or rejected in every later message.
#[utoipa::path(post, path = "/api/v1/channels/{slug}/blocked-terms", tag = "moderation", security(("access_token" = [])), params(("slug" = String, Path)), request_body = NewTerm,
    responses((status = 201, body = BlockedTerm), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn add_term(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(slug): Path<String>,
    Json(req): Json<NewTerm>,
) -> ApiResult<(StatusCode, axum::Json<BlockedTerm>)> {
    let room = room::moderated(&cp, &slug, &caller).await?;
    let term = rules::term(&req.term).map_err(|r| Error::Invalid(r.detail))?;
    let (count,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM blocked_terms WHERE channel_id = $1")
            .bind(room.id())
            .fetch_one(cp.pool())
            .await?;
    if count >= MAX_TERMS {
        return Err(Error::Conflict(
            "the channel has the most blocked terms it may",
        ));
    }
    let t = BlockedTerm {
        id: random_id(),
        term,
        action: req.action,
    };
    sqlx::query(
        "INSERT INTO blocked_terms (id, channel_id, term, action, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&t.id)
    .bind(room.id())
    .bind(&t.term)
    .bind(t.action.as_str())
    .bind(now_ms())
    .execute(cp.pool())
    .await?;
    cp.chat().rooms.forget(&slug);
    log(
        &cp,
        Some(room.id()),
        &caller,
        "block_term",
        &t.term,
        t.action.as_str(),
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(t)))
}

/// Unblock a term.
#[utoipa::path(delete, path = "/api/v1/channels/{slug}/blocked-terms/{id}", tag = "moderation", security(("access_token" = [])), params(("slug" = String, Path), ("id" = String, Path)),
    responses((status = 204), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn remove_term(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path((slug, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let room = room::moderated(&cp, &slug, &caller).await?;
    let gone = sqlx::query("DELETE FROM blocked_terms WHERE channel_id = $1 AND id = $2")
        .bind(room.id())
        .bind(&id)
        .execute(cp.pool())
        .await?;
    if gone.rows_affected() == 0 {
        return Err(Error::NotFound);
    }
    cp.chat().rooms.forget(&slug);
    log(&cp, Some(room.id()), &caller, "unblock_term", &id, "").await?;
    Ok(StatusCode::NO_CONTENT)
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
