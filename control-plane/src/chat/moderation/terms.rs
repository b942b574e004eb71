//! A channel's blocked terms (masked or refused; `*` wildcards).

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::log;
use crate::chat::room::{self};
use crate::chat::rules::{self, TermAction};
use crate::db::now_ms;
use crate::error::{ApiResult, Problem};
use crate::extract::{Caller, Json, Path};
use crate::tokens::random_id;
use crate::{ControlPlane, Error};

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
