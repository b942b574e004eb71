//! Live Q&A: viewers ask (moderated like chat: bans, timeouts, length, blocked terms) and
//! upvote once each; moderators mark questions answered or pinned, or hide them.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::chat::event::Author;
use crate::chat::room;
use crate::chat::{rules, Code, Event, Refusal};
use crate::db::{duplicate, now_ms};
use crate::error::{ApiResult, Problem};
use crate::extract::{Caller, Json, MaybeCaller, Path, Query};
use crate::tokens::random_id;
use crate::{ControlPlane, Error};

/// Questions one account may have open in a room.
pub const MAX_OPEN_PER_USER: i64 = 5;

/// A question.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Question {
    /// Opaque id.
    pub id: String,
    /// Who asked.
    pub user: Author,
    /// Plain text.
    pub text: String,
    /// Accounts that upvoted it.
    pub upvotes: i64,
    /// Marked answered.
    pub answered: bool,
    /// Pinned on top.
    pub pinned: bool,
    /// Hidden by a moderator (clients remove it).
    pub hidden: bool,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// `POST questions`
#[derive(Debug, Deserialize, ToSchema)]
pub struct Ask {
    /// 1 to 500 characters.
    pub text: String,
}

/// `PATCH questions/{id}`
#[derive(Debug, Deserialize, ToSchema)]
pub struct QuestionEdit {
    /// Answered or not.
    pub answered: Option<bool>,
    /// Pinned or not.
    pub pinned: Option<bool>,
    /// Hidden or not.
    pub hidden: Option<bool>,
}

/// `GET questions` query.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// `votes` (default: pinned, then most upvoted) or `time` (newest first).
    pub sort: Option<String>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    username: String,
    display_name: String,
    text: String,
    upvotes: i64,
    answered: i64,
    pinned: i64,
    hidden: i64,
    created_at: i64,
}

impl From<Row> for Question {
    fn from(r: Row) -> Question {
        Question {
            id: r.id,
            user: Author {
                username: r.username,
                display_name: r.display_name,
            },
            text: r.text,
            upvotes: r.upvotes,
            answered: r.answered != 0,
            pinned: r.pinned != 0,
            hidden: r.hidden != 0,
            created_at: r.created_at,
        }
    }
}

const SELECT: &str = "SELECT q.id, u.username, u.display_name, q.text, q.upvotes, q.answered, \
    q.pinned, q.hidden, q.created_at FROM questions q JOIN users u ON u.id = q.user_id";

async fn one(cp: &ControlPlane, room: &str, id: &str) -> ApiResult<Question> {
    let r: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE q.channel_id = $1 AND q.id = $2"
    )))
    .bind(room)
    .bind(id)
    .fetch_optional(cp.pool())
    .await?;
    r.map(Question::from)
        .ok_or(Error::Missing("no such question"))
}

async fn announce(cp: &ControlPlane, room: &str, q: &Question) {
    cp.chat()
        .publish(
            room,
            &Event::Question {
                question: q.clone(),
            },
        )
        .await;
}

/// The room's questions (not hidden), at most 200.
#[utoipa::path(get, path = "/api/v1/channels/{slug}/questions", tag = "qa", params(("slug" = String, Path), ListQuery),
    responses((status = 200, body = [Question]), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn list(
    State(cp): State<ControlPlane>,
    MaybeCaller(caller): MaybeCaller,
    Path(slug): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Vec<Question>>> {
    let room = room::readable(&cp, &slug, caller.as_ref()).await?;
    let order = match q.sort.as_deref() {
        None | Some("votes") => "q.pinned DESC, q.upvotes DESC, q.created_at",
        Some("time") => "q.created_at DESC",
        Some(_) => return Err(Error::BadRequest("sort is votes or time".into())),
    };
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE q.channel_id = $1 AND q.hidden = 0 ORDER BY {order} LIMIT 200"
    )))
    .bind(room.id())
    .fetch_all(cp.pool())
    .await?;
    Ok(axum::Json(rows.into_iter().map(Question::from).collect()))
}

/// Ask a question.
#[utoipa::path(post, path = "/api/v1/channels/{slug}/questions", tag = "qa", security(("access_token" = [])), params(("slug" = String, Path)), request_body = Ask,
    responses((status = 201, body = Question), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn ask(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(slug): Path<String>,
    Json(req): Json<Ask>,
) -> ApiResult<(StatusCode, axum::Json<Question>)> {
    let room = room::readable(&cp, &slug, Some(&caller)).await?;
    if let Some(r) = room::restriction(&cp, &room, &caller.0, false).await? {
        return Err(r.into());
    }
    let text = room.terms.apply(&rules::text(&req.text)?)?;
    let (open,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM questions WHERE channel_id = $1 AND user_id = $2 \
         AND answered = 0 AND hidden = 0",
    )
    .bind(room.id())
    .bind(&caller.0.id)
    .fetch_one(cp.pool())
    .await?;
    if open >= MAX_OPEN_PER_USER {
        return Err(Refusal::new(
            Code::Flood,
            format!("at most {MAX_OPEN_PER_USER} open questions each"),
        )
        .into());
    }
    let id = random_id();
    sqlx::query(
        "INSERT INTO questions (id, channel_id, user_id, text, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&id)
    .bind(room.id())
    .bind(&caller.0.id)
    .bind(&text)
    .bind(now_ms())
    .execute(cp.pool())
    .await?;
    let q = one(&cp, room.id(), &id).await?;
    announce(&cp, room.id(), &q).await;
    Ok((StatusCode::CREATED, axum::Json(q)))
}

/// Upvote a question (once per account).
#[utoipa::path(post, path = "/api/v1/channels/{slug}/questions/{id}/upvote", tag = "qa", security(("access_token" = [])), params(("slug" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = Question), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn upvote(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path((slug, id)): Path<(String, String)>,
) -> ApiResult<axum::Json<Question>> {
    let room = room::readable(&cp, &slug, Some(&caller)).await?;
    let q = one(&cp, room.id(), &id).await?;
    if q.hidden {
        return Err(Error::Missing("no such question"));
    }
    let mut tx = cp.pool().begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO question_votes (question_id, user_id, created_at) VALUES ($1, $2, $3)",
    )
    .bind(&id)
    .bind(&caller.0.id)
    .bind(now_ms())
    .execute(&mut *tx)
    .await;
    match inserted {
        Ok(_) => {}
        Err(e) if duplicate(&e) => {
            return Err(Refusal::new(Code::Conflict, "you upvoted this question already").into())
        }
        Err(e) => return Err(e.into()),
    }
    sqlx::query("UPDATE questions SET upvotes = upvotes + 1 WHERE id = $1")
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    let q = one(&cp, room.id(), &id).await?;
    announce(&cp, room.id(), &q).await;
    Ok(axum::Json(q))
}

/// Mark answered or pinned, or hide (moderators).
#[utoipa::path(patch, path = "/api/v1/channels/{slug}/questions/{id}", tag = "qa", security(("access_token" = [])), params(("slug" = String, Path), ("id" = String, Path)), request_body = QuestionEdit,
    responses((status = 200, body = Question), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn edit(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path((slug, id)): Path<(String, String)>,
    Json(req): Json<QuestionEdit>,
) -> ApiResult<axum::Json<Question>> {
    let room = room::moderated(&cp, &slug, &caller).await?;
    let q = one(&cp, room.id(), &id).await?;
    let answered = req.answered.unwrap_or(q.answered);
    let pinned = req.pinned.unwrap_or(q.pinned);
    let hidden = req.hidden.unwrap_or(q.hidden);
    sqlx::query("UPDATE questions SET answered = $2, pinned = $3, hidden = $4 WHERE id = $1")
        .bind(&id)
        .bind(i64::from(answered))
        .bind(i64::from(pinned))
        .bind(i64::from(hidden))
        .execute(cp.pool())
        .await?;
    if hidden && !q.hidden {
        crate::chat::moderation::log(&cp, Some(room.id()), &caller, "hide_question", &id, "")
            .await?;
    }
    let q = one(&cp, room.id(), &id).await?;
    announce(&cp, room.id(), &q).await;
    Ok(axum::Json(q))
}
