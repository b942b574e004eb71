//! `/api/v1/channels/{slug}/chat/...`: history, posting, deletion, reports, the pinned
//! message and the room's settings.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::event::{Event, Message, Mode, Settings};
use super::moderation::log;
use super::room;
use super::rules::{Code, Refusal};
use super::store;
use crate::db::now_ms;
use crate::error::{ApiResult, Problem};
use crate::extract::{Caller, Json, MaybeCaller, Path, Query};
use crate::tokens::random_id;
use crate::ControlPlane;

/// `GET chat/messages` query.
#[derive(Debug, Deserialize, IntoParams)]
pub struct HistoryQuery {
    /// Only messages after this id.
    pub since: Option<i64>,
    /// At most this many (1 to 500) [default: 50].
    pub limit: Option<i64>,
}

/// Messages, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct History {
    /// The messages.
    pub messages: Vec<Message>,
    /// More messages after `since` were left out (the newest are here).
    pub truncated: bool,
}

/// `POST chat/messages`
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewMessage {
    /// 1 to 500 characters.
    pub text: String,
    /// The message this answers.
    pub reply_to: Option<i64>,
}

/// `POST chat/messages/{id}/report`
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewReport {
    /// Why (up to 200 characters).
    #[serde(default)]
    pub reason: String,
}

/// `PUT chat/pinned`
#[derive(Debug, Deserialize, ToSchema)]
pub struct Pin {
    /// The message to pin.
    pub id: i64,
}

/// `PATCH chat/settings`
#[derive(Debug, Deserialize, ToSchema)]
pub struct SettingsEdit {
    /// Seconds between two posts of one user, 0 to 3600.
    pub slow_mode_secs: Option<i64>,
    /// Who may post.
    pub mode: Option<Mode>,
    /// Whether the built-in blocked terms apply.
    pub default_terms: Option<bool>,
}

/// A report in the moderation queue.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Report {
    /// Opaque id.
    pub id: String,
    /// The reported message.
    pub message_id: i64,
    /// Who reported it.
    pub reporter: String,
    /// Why.
    pub reason: String,
    /// `open`, `dismissed` or `deleted`.
    pub status: String,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// Chat history: the latest 50, or what came after `since`.
#[utoipa::path(get, path = "/api/v1/channels/{slug}/chat/messages", tag = "chat", params(("slug" = String, Path), HistoryQuery),
    responses((status = 200, body = History), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn history(
    State(cp): State<ControlPlane>,
    MaybeCaller(caller): MaybeCaller,
    Path(slug): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> ApiResult<axum::Json<History>> {
    let room = room::readable(&cp, &slug, caller.as_ref()).await?;
    let (messages, truncated) = store::history(
        &cp,
        room.id(),
        q.since,
        q.limit.unwrap_or(store::JOIN_HISTORY),
    )
    .await?;
    Ok(axum::Json(History {
        messages,
        truncated,
    }))
}

/// Post a message (the same checks as over the live connection).
#[utoipa::path(post, path = "/api/v1/channels/{slug}/chat/messages", tag = "chat", security(("access_token" = [])), params(("slug" = String, Path)), request_body = NewMessage,
    responses((status = 201, body = Message), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn post(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(slug): Path<String>,
    Json(req): Json<NewMessage>,
) -> ApiResult<(StatusCode, axum::Json<Message>)> {
    let room = room::readable(&cp, &slug, Some(&caller)).await?;
    let m = super::post(&cp, &room, &caller, &req.text, req.reply_to).await?;
    Ok((StatusCode::CREATED, axum::Json(m)))
}

/// Delete a message: its author, or a moderator. It disappears from every client.
#[utoipa::path(delete, path = "/api/v1/channels/{slug}/chat/messages/{id}", tag = "chat", security(("access_token" = [])), params(("slug" = String, Path), ("id" = i64, Path)),
    responses((status = 204), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn delete(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path((slug, id)): Path<(String, i64)>,
) -> ApiResult<StatusCode> {
    let room = room::readable(&cp, &slug, Some(&caller)).await?;
    let author = store::author(&cp, room.id(), id)
        .await?
        .ok_or(Refusal::new(Code::NotFound, "no such message"))?;
    let moderates = room.role_of(Some(&caller.0)).moderates();
    if author != caller.0.id && !moderates {
        return Err(Refusal::new(
            Code::Forbidden,
            "only its author or a moderator may delete it",
        )
        .into());
    }
    if remove(&cp, &room, store::Which::One(id)).await? == 0 {
        return Err(Refusal::new(Code::NotFound, "no such message").into());
    }
    if moderates && author != caller.0.id {
        log(
            &cp,
            Some(room.id()),
            &caller,
            "delete_message",
            &id.to_string(),
            "",
        )
        .await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Removes messages from the record and from every client (unpinning a pinned one);
/// returns how many.
pub(crate) async fn remove(
    cp: &ControlPlane,
    room: &room::Room,
    which: store::Which<'_>,
) -> ApiResult<usize> {
    let ids = store::delete(cp, room.id(), which, now_ms()).await?;
    if ids.is_empty() {
        return Ok(0);
    }
    if room.pinned_id.is_some_and(|p| ids.contains(&p)) {
        set_pinned(cp, &room.channel.slug, room.id(), None).await?;
    }
    let n = ids.len();
    cp.chat().publish(room.id(), &Event::Deleted { ids }).await;
    Ok(n)
}

/// Report a message to the channel's moderators.
#[utoipa::path(post, path = "/api/v1/channels/{slug}/chat/messages/{id}/report", tag = "chat", security(("access_token" = [])), params(("slug" = String, Path), ("id" = i64, Path)), request_body = NewReport,
    responses((status = 201, body = Report), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn report(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path((slug, id)): Path<(String, i64)>,
    Json(req): Json<NewReport>,
) -> ApiResult<(StatusCode, axum::Json<Report>)> {
    let room = room::readable(&cp, &slug, Some(&caller)).await?;
    let reason = crate::model::text("reason", req.reason.trim(), 200)?;
    if store::one(&cp, room.id(), id).await?.is_none() {
        return Err(Refusal::new(Code::NotFound, "no such message").into());
    }
    let r = Report {
        id: random_id(),
        message_id: id,
        reporter: caller.0.username.clone(),
        reason,
        status: "open".into(),
        created_at: now_ms(),
    };
    sqlx::query(
        "INSERT INTO chat_reports (id, channel_id, message_id, reporter_id, reason, status, \
         created_at) VALUES ($1, $2, $3, $4, $5, 'open', $6)",
    )
    .bind(&r.id)
    .bind(room.id())
    .bind(id)
    .bind(&caller.0.id)
    .bind(&r.reason)
    .bind(r.created_at)
    .execute(cp.pool())
    .await?;
    cp.webhooks()
        .emit(
            Some(room.id()),
            crate::webhooks::Event::ChatMessageReported {
                channel: slug.clone(),
                report_id: r.id.clone(),
                message_id: id,
                reporter: r.reporter.clone(),
                reason: r.reason.clone(),
            },
        )
        .await;
    Ok((StatusCode::CREATED, axum::Json(r)))
}

/// Pin a message above the chat (moderators).
#[utoipa::path(put, path = "/api/v1/channels/{slug}/chat/pinned", tag = "chat", security(("access_token" = [])), params(("slug" = String, Path)), request_body = Pin,
    responses((status = 200, body = Message), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn pin(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(slug): Path<String>,
    Json(req): Json<Pin>,
) -> ApiResult<axum::Json<Message>> {
    let room = room::moderated(&cp, &slug, &caller).await?;
    let m = store::one(&cp, room.id(), req.id)
        .await?
        .ok_or(Refusal::new(Code::NotFound, "no such message"))?;
    set_pinned(&cp, &slug, room.id(), Some(m.clone())).await?;
    log(
        &cp,
        Some(room.id()),
        &caller,
        "pin",
        &req.id.to_string(),
        "",
    )
    .await?;
    Ok(axum::Json(m))
}

/// Unpin (moderators).
#[utoipa::path(delete, path = "/api/v1/channels/{slug}/chat/pinned", tag = "chat", security(("access_token" = [])), params(("slug" = String, Path)),
    responses((status = 204), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn unpin(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(slug): Path<String>,
) -> ApiResult<StatusCode> {
    let room = room::moderated(&cp, &slug, &caller).await?;
    set_pinned(&cp, &slug, room.id(), None).await?;
    log(&cp, Some(room.id()), &caller, "unpin", "", "").await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_pinned(
    cp: &ControlPlane,
    slug: &str,
    room: &str,
    message: Option<Message>,
) -> ApiResult<()> {
    sqlx::query("UPDATE chat_rooms SET pinned_id = $2 WHERE channel_id = $1")
        .bind(room)
        .bind(message.as_ref().map(|m| m.id))
        .execute(cp.pool())
        .await?;
    cp.chat().rooms.forget(slug);
    cp.chat().publish(room, &Event::Pinned { message }).await;
    Ok(())
}

/// The pinned message of a room, if any.
pub(crate) async fn pinned(cp: &ControlPlane, room: &room::Room) -> ApiResult<Option<Message>> {
    match room.pinned_id {
        Some(id) => store::one(cp, room.id(), id).await,
        None => Ok(None),
    }
}

/// The room's settings.
#[utoipa::path(get, path = "/api/v1/channels/{slug}/chat/settings", tag = "chat", params(("slug" = String, Path)),
    responses((status = 200, body = Settings), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn settings(
    State(cp): State<ControlPlane>,
    MaybeCaller(caller): MaybeCaller,
    Path(slug): Path<String>,
) -> ApiResult<axum::Json<Settings>> {
    let room = room::readable(&cp, &slug, caller.as_ref()).await?;
    Ok(axum::Json(room.settings))
}

/// Change slow mode, who may post, or the default blocked terms (moderators).
#[utoipa::path(patch, path = "/api/v1/channels/{slug}/chat/settings", tag = "chat", security(("access_token" = [])), params(("slug" = String, Path)), request_body = SettingsEdit,
    responses((status = 200, body = Settings), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn edit_settings(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(slug): Path<String>,
    Json(req): Json<SettingsEdit>,
) -> ApiResult<axum::Json<Settings>> {
    let room = room::moderated(&cp, &slug, &caller).await?;
    let mut s = room.settings;
    if let Some(secs) = req.slow_mode_secs {
        if !(0..=3600).contains(&secs) {
            return Err(crate::Error::Invalid(
                "slow_mode_secs must be 0 to 3600".into(),
            ));
        }
        s.slow_mode_secs = secs;
    }
    if let Some(mode) = req.mode {
        s.mode = mode;
    }
    if let Some(d) = req.default_terms {
        s.default_terms = d;
    }
    sqlx::query(
        "UPDATE chat_rooms SET slow_mode_secs = $2, mode = $3, default_terms = $4 \
         WHERE channel_id = $1",
    )
    .bind(room.id())
    .bind(s.slow_mode_secs)
    .bind(s.mode.as_str())
    .bind(i64::from(s.default_terms))
    .execute(cp.pool())
    .await?;
    cp.chat().rooms.forget(&slug);
    let detail = format!("slow {} s, {}", s.slow_mode_secs, s.mode.as_str());
    log(&cp, Some(room.id()), &caller, "settings", &detail, "").await?;
    cp.chat()
        .publish(room.id(), &Event::Settings { settings: s })
        .await;
    Ok(axum::Json(s))
}
