//! Moderators of a channel, appointed and removed by its owner.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::{log, user_named};
use crate::chat::room::{self, Room, RoomRole};
use crate::chat::rules::{Code, Refusal};
use crate::db::now_ms;
use crate::error::{ApiResult, Problem};
use crate::extract::{Caller, Path};
use crate::model::Role;
use crate::ControlPlane;

/// A moderator of a channel.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Moderator {
    /// Their username.
    pub username: String,
    /// Unix milliseconds.
    pub added_at: i64,
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
