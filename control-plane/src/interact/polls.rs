//! Polls: single or multiple choice, an optional duration, one vote per account, live
//! results (announced at most every [`RESULTS_EVERY`] per poll, however fast votes come),
//! and the final result when closed by hand or by time.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{json_list, line};
use crate::chat::room;
use crate::chat::{Code, Event, Refusal};
use crate::db::{duplicate, now_ms};
use crate::error::{ApiResult, Problem};
use crate::extract::{Caller, Json, MaybeCaller, Path};
use crate::model::UserRow;
use crate::tokens::random_id;
use crate::{ControlPlane, Error};

/// Live results go out at most this often per poll.
pub const RESULTS_EVERY: Duration = Duration::from_millis(500);
/// Options per poll.
pub const MAX_OPTIONS: usize = 10;

/// One option and its votes.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PollOption {
    /// Its text.
    pub text: String,
    /// Accounts that chose it.
    pub votes: i64,
}

/// A poll and its results.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Poll {
    /// Opaque id.
    pub id: String,
    /// The question.
    pub question: String,
    /// The options with their votes.
    pub options: Vec<PollOption>,
    /// Several options may be chosen.
    pub multiple: bool,
    /// When it closes by itself (Unix milliseconds).
    pub closes_at: Option<i64>,
    /// No more votes.
    pub closed: bool,
    /// Accounts that voted.
    pub total_votes: i64,
    /// What the caller chose (in answers to them only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub my_choices: Option<Vec<usize>>,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// `POST polls`
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewPoll {
    /// 1 to 200 characters.
    pub question: String,
    /// 2 to 10 options of 1 to 100 characters.
    pub options: Vec<String>,
    /// Several choices allowed.
    #[serde(default)]
    pub multiple: bool,
    /// Closes by itself after this many seconds (10 to 86,400).
    pub duration_secs: Option<i64>,
}

/// `POST polls/{id}/votes`
#[derive(Debug, Deserialize, ToSchema)]
pub struct Vote {
    /// Indices of the options chosen (one unless the poll is multiple choice).
    pub choices: Vec<usize>,
}

#[derive(sqlx::FromRow)]
struct PollRow {
    id: String,
    question: String,
    options: String,
    multiple: i64,
    created_at: i64,
    closes_at: Option<i64>,
    closed_at: Option<i64>,
}

const SELECT: &str =
    "SELECT id, question, options, multiple, created_at, closes_at, closed_at FROM polls";

impl PollRow {
    fn closed(&self, now: i64) -> bool {
        self.closed_at.is_some() || self.closes_at.is_some_and(|t| t <= now)
    }
}

async fn row(cp: &ControlPlane, room: &str, id: &str) -> ApiResult<PollRow> {
    let r: Option<PollRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE channel_id = $1 AND id = $2"
    )))
    .bind(room)
    .bind(id)
    .fetch_optional(cp.pool())
    .await?;
    r.ok_or(Error::Missing("no such poll"))
}

async fn view(cp: &ControlPlane, r: PollRow, user: Option<&UserRow>) -> ApiResult<Poll> {
    let texts: Vec<String> = json_list(&r.options);
    let votes: Vec<(String, String)> =
        sqlx::query_as("SELECT user_id, choices FROM poll_votes WHERE poll_id = $1")
            .bind(&r.id)
            .fetch_all(cp.pool())
            .await?;
    let mut counts = vec![0i64; texts.len()];
    let mut mine = None;
    for (voter, choices) in &votes {
        let choices: Vec<usize> = json_list(choices);
        for &c in &choices {
            if let Some(n) = counts.get_mut(c) {
                *n += 1;
            }
        }
        if user.is_some_and(|u| &u.id == voter) {
            mine = Some(choices);
        }
    }
    let closed = r.closed(now_ms());
    Ok(Poll {
        options: texts
            .into_iter()
            .zip(counts)
            .map(|(text, votes)| PollOption { text, votes })
            .collect(),
        multiple: r.multiple != 0,
        closes_at: r.closes_at,
        closed,
        total_votes: votes.len() as i64,
        my_choices: user.map(|_| mine.unwrap_or_default()),
        created_at: r.created_at,
        id: r.id,
        question: r.question,
    })
}

/// The room's open polls (for a client joining).
pub(crate) async fn open(
    cp: &ControlPlane,
    room: &str,
    user: Option<&UserRow>,
) -> ApiResult<Vec<Poll>> {
    let rows: Vec<PollRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE channel_id = $1 AND closed_at IS NULL \
         AND (closes_at IS NULL OR closes_at > $2) ORDER BY created_at DESC LIMIT 10"
    )))
    .bind(room)
    .bind(now_ms())
    .fetch_all(cp.pool())
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(view(cp, r, user).await?);
    }
    Ok(out)
}

/// Announces a poll's state to the room now.
async fn announce(cp: &ControlPlane, room: &str, id: &str) -> ApiResult<Poll> {
    let poll = view(cp, row(cp, room, id).await?, None).await?;
    cp.chat()
        .publish(room, &Event::Poll { poll: poll.clone() })
        .await;
    Ok(poll)
}

/// Announces a poll's results soon, once for all the votes until then.
fn announce_soon(cp: &ControlPlane, room: &str, id: &str) {
    let key = format!("{room}/{id}");
    if !cp.debounce(&key) {
        return;
    }
    let (cp, room, id) = (cp.clone(), room.to_owned(), id.to_owned());
    tokio::spawn(async move {
        tokio::time::sleep(RESULTS_EVERY).await;
        cp.debounced(&key);
        if let Err(e) = announce(&cp, &room, &id).await {
            tracing::warn!("poll results not announced: {e}");
        }
    });
}

/// Polls of the room, newest first (the 20 latest).
#[utoipa::path(get, path = "/api/v1/channels/{slug}/polls", tag = "polls", params(("slug" = String, Path)),
    responses((status = 200, body = [Poll]), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn list(
    State(cp): State<ControlPlane>,
    MaybeCaller(caller): MaybeCaller,
    Path(slug): Path<String>,
) -> ApiResult<axum::Json<Vec<Poll>>> {
    let room = room::readable(&cp, &slug, caller.as_ref()).await?;
    let rows: Vec<PollRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE channel_id = $1 ORDER BY created_at DESC LIMIT 20"
    )))
    .bind(room.id())
    .fetch_all(cp.pool())
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(view(&cp, r, caller.as_ref().map(|c| &c.0)).await?);
    }
    Ok(axum::Json(out))
}

/// Start a poll (moderators); every client of the room sees it at once.
#[utoipa::path(post, path = "/api/v1/channels/{slug}/polls", tag = "polls", security(("access_token" = [])), params(("slug" = String, Path)), request_body = NewPoll,
    responses((status = 201, body = Poll), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn create(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(slug): Path<String>,
    Json(req): Json<NewPoll>,
) -> ApiResult<(StatusCode, axum::Json<Poll>)> {
    let room = room::moderated(&cp, &slug, &caller).await?;
    let question = line("question", &req.question, 200)?;
    if !(2..=MAX_OPTIONS).contains(&req.options.len()) {
        return Err(Error::Invalid(format!(
            "a poll has 2 to {MAX_OPTIONS} options"
        )));
    }
    let options = req
        .options
        .iter()
        .map(|o| line("option", o, 100))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(d) = req.duration_secs {
        if !(10..=86_400).contains(&d) {
            return Err(Error::Invalid("duration_secs must be 10 to 86400".into()));
        }
    }
    let now = now_ms();
    let id = random_id();
    let closes_at = req.duration_secs.map(|d| now + d * 1000);
    sqlx::query(
        "INSERT INTO polls (id, channel_id, question, options, multiple, created_by, \
         created_at, closes_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&id)
    .bind(room.id())
    .bind(&question)
    .bind(serde_json::to_string(&options).map_err(|e| Error::Internal(e.to_string()))?)
    .bind(i64::from(req.multiple))
    .bind(&caller.0.id)
    .bind(now)
    .bind(closes_at)
    .execute(cp.pool())
    .await?;
    if let Some(d) = req.duration_secs {
        // The final result when time is up (a restart loses the announcement, not the
        // closing: reads judge by `closes_at`).
        let (cp, room, id) = (cp.clone(), room.id().to_owned(), id.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(d as u64)).await;
            let _ = announce(&cp, &room, &id).await;
        });
    }
    let poll = announce(&cp, room.id(), &id).await?;
    Ok((StatusCode::CREATED, axum::Json(poll)))
}

/// Vote (once per account).
#[utoipa::path(post, path = "/api/v1/channels/{slug}/polls/{id}/votes", tag = "polls", security(("access_token" = [])), params(("slug" = String, Path), ("id" = String, Path)), request_body = Vote,
    responses((status = 200, body = Poll), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn vote(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path((slug, id)): Path<(String, String)>,
    Json(req): Json<Vote>,
) -> ApiResult<axum::Json<Poll>> {
    let room = room::readable(&cp, &slug, Some(&caller)).await?;
    let r = row(&cp, room.id(), &id).await?;
    if r.closed(now_ms()) {
        return Err(Refusal::new(Code::Conflict, "the poll is closed").into());
    }
    let n = json_list::<String>(&r.options).len();
    let mut choices = req.choices.clone();
    choices.sort_unstable();
    choices.dedup();
    let ok = !choices.is_empty()
        && choices.iter().all(|&c| c < n)
        && (r.multiple != 0 || choices.len() == 1);
    if !ok {
        return Err(Error::Invalid(if r.multiple != 0 {
            format!("choose 1 to {n} options by index")
        } else {
            "choose one option by index".into()
        }));
    }
    let result = sqlx::query(
        "INSERT INTO poll_votes (poll_id, user_id, choices, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&id)
    .bind(&caller.0.id)
    .bind(serde_json::to_string(&choices).map_err(|e| Error::Internal(e.to_string()))?)
    .bind(now_ms())
    .execute(cp.pool())
    .await;
    match result {
        Ok(_) => {}
        Err(e) if duplicate(&e) => {
            return Err(Refusal::new(Code::Conflict, "you voted in this poll already").into())
        }
        Err(e) => return Err(e.into()),
    }
    announce_soon(&cp, room.id(), &id);
    Ok(axum::Json(view(&cp, r, Some(&caller.0)).await?))
}

/// Close a poll and show the final result (moderators).
#[utoipa::path(post, path = "/api/v1/channels/{slug}/polls/{id}/close", tag = "polls", security(("access_token" = [])), params(("slug" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = Poll), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn close(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path((slug, id)): Path<(String, String)>,
) -> ApiResult<axum::Json<Poll>> {
    let room = room::moderated(&cp, &slug, &caller).await?;
    row(&cp, room.id(), &id).await?;
    sqlx::query(
        "UPDATE polls SET closed_at = $3 WHERE channel_id = $1 AND id = $2 AND closed_at IS NULL",
    )
    .bind(room.id())
    .bind(&id)
    .bind(now_ms())
    .execute(cp.pool())
    .await?;
    crate::chat::moderation::log(&cp, Some(room.id()), &caller, "close_poll", &id, "").await?;
    Ok(axum::Json(announce(&cp, room.id(), &id).await?))
}
