//! Surveys: several questions (a choice, a scale, free text), one response per account,
//! results for moderators as JSON or CSV.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{json_list, line};
use crate::chat::room;
use crate::chat::{Code, Event, Refusal};
use crate::db::{duplicate, now_ms};
use crate::error::{ApiResult, Problem};
use crate::extract::{Caller, Json, MaybeCaller, Path, Query};
use crate::tokens::random_id;
use crate::{ControlPlane, Error};

/// Questions per survey.
pub const MAX_QUESTIONS: usize = 20;
/// Longest free-text answer.
pub const MAX_ANSWER: usize = 1000;

/// What kind of answer a question takes.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// One of `options`, by index.
    Choice,
    /// A whole number from `min` to `max`.
    Scale,
    /// Free text.
    Text,
}

/// One question of a survey.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SurveyQuestion {
    /// Its kind.
    pub kind: Kind,
    /// What is asked (1 to 200 characters).
    pub prompt: String,
    /// A choice's options (2 to 10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// A scale's lowest value [default: 1].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<i64>,
    /// A scale's highest value [default: 5].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<i64>,
}

/// A survey.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Survey {
    /// Opaque id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// Its questions.
    pub questions: Vec<SurveyQuestion>,
    /// No more responses.
    pub closed: bool,
    /// Responses so far.
    pub responses: i64,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// `POST surveys`
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewSurvey {
    /// 1 to 200 characters.
    pub title: String,
    /// 1 to 20 questions.
    pub questions: Vec<SurveyQuestion>,
}

/// `POST surveys/{id}/responses`: one answer per question, in order (an option index,
/// a number, or text).
#[derive(Debug, Deserialize, ToSchema)]
pub struct Response_ {
    /// The answers.
    #[schema(value_type = Vec<Object>)]
    pub answers: Vec<serde_json::Value>,
}

/// `GET surveys/{id}/results` query.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ResultsQuery {
    /// `json` (default) or `csv`.
    pub format: Option<String>,
}

/// A question's results.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuestionResult {
    /// What was asked.
    pub prompt: String,
    /// A choice: responses per option; a scale: per value from `min`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub counts: Vec<i64>,
    /// A scale: the mean.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    /// Free text: the answers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub texts: Vec<String>,
}

/// A survey's results.
#[derive(Debug, Serialize, ToSchema)]
pub struct Results {
    /// The survey.
    pub survey: Survey,
    /// Per question, in order.
    pub questions: Vec<QuestionResult>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    title: String,
    questions: String,
    created_at: i64,
    closed_at: Option<i64>,
}

async fn load(cp: &ControlPlane, room: &str, id: &str) -> ApiResult<Survey> {
    let r: Option<Row> = sqlx::query_as(
        "SELECT id, title, questions, created_at, closed_at FROM surveys \
         WHERE channel_id = $1 AND id = $2",
    )
    .bind(room)
    .bind(id)
    .fetch_optional(cp.pool())
    .await?;
    let r = r.ok_or(Error::Missing("no such survey"))?;
    view(cp, r).await
}

/// Tells the room a survey opened or closed.
async fn announce(cp: &ControlPlane, room: &str, id: &str) -> ApiResult<Survey> {
    let survey = load(cp, room, id).await?;
    cp.chat()
        .publish(
            room,
            &Event::Survey {
                survey: survey.clone(),
            },
        )
        .await;
    Ok(survey)
}

async fn view(cp: &ControlPlane, r: Row) -> ApiResult<Survey> {
    let (responses,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM survey_responses WHERE survey_id = $1")
            .bind(&r.id)
            .fetch_one(cp.pool())
            .await?;
    Ok(Survey {
        questions: json_list(&r.questions),
        closed: r.closed_at.is_some(),
        responses,
        created_at: r.created_at,
        id: r.id,
        title: r.title,
    })
}

fn check_question(q: &SurveyQuestion) -> Result<SurveyQuestion, Error> {
    let prompt = line("prompt", &q.prompt, 200)?;
    let mut out = SurveyQuestion {
        kind: q.kind,
        prompt,
        options: Vec::new(),
        min: None,
        max: None,
    };
    match q.kind {
        Kind::Choice => {
            if !(2..=10).contains(&q.options.len()) {
                return Err(Error::Invalid("a choice has 2 to 10 options".into()));
            }
            out.options = q
                .options
                .iter()
                .map(|o| line("option", o, 100))
                .collect::<Result<_, _>>()?;
        }
        Kind::Scale => {
            let (min, max) = (q.min.unwrap_or(1), q.max.unwrap_or(5));
            if !(0..=1).contains(&min) || !(2..=10).contains(&max) {
                return Err(Error::Invalid("a scale runs from 0 or 1 to 2..10".into()));
            }
            out.min = Some(min);
            out.max = Some(max);
        }
        Kind::Text => {}
    }
    Ok(out)
}

/// Checks one answer against its question; the stored form.
fn check_answer(q: &SurveyQuestion, a: &serde_json::Value) -> Result<serde_json::Value, Error> {
    let bad = |what: &str| Error::Invalid(format!("\"{}\": {what}", q.prompt));
    match q.kind {
        Kind::Choice => match a.as_u64() {
            Some(i) if (i as usize) < q.options.len() => Ok(a.clone()),
            _ => Err(bad("choose an option by index")),
        },
        Kind::Scale => match a.as_i64() {
            Some(v) if (q.min.unwrap_or(1)..=q.max.unwrap_or(5)).contains(&v) => Ok(a.clone()),
            _ => Err(bad("a whole number on the scale")),
        },
        Kind::Text => match a.as_str() {
            Some(t) => Ok(crate::model::text("answer", t.trim(), MAX_ANSWER)?.into()),
            None => Err(bad("text")),
        },
    }
}

/// The room's surveys, newest first.
#[utoipa::path(get, path = "/api/v1/channels/{slug}/surveys", tag = "surveys", params(("slug" = String, Path)),
    responses((status = 200, body = [Survey]), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn list(
    State(cp): State<ControlPlane>,
    MaybeCaller(caller): MaybeCaller,
    Path(slug): Path<String>,
) -> ApiResult<axum::Json<Vec<Survey>>> {
    let room = room::readable(&cp, &slug, caller.as_ref()).await?;
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, title, questions, created_at, closed_at FROM surveys \
         WHERE channel_id = $1 ORDER BY created_at DESC LIMIT 20",
    )
    .bind(room.id())
    .fetch_all(cp.pool())
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(view(&cp, r).await?);
    }
    Ok(axum::Json(out))
}

/// Open a survey (moderators).
#[utoipa::path(post, path = "/api/v1/channels/{slug}/surveys", tag = "surveys", security(("access_token" = [])), params(("slug" = String, Path)), request_body = NewSurvey,
    responses((status = 201, body = Survey), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn create(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(slug): Path<String>,
    Json(req): Json<NewSurvey>,
) -> ApiResult<(StatusCode, axum::Json<Survey>)> {
    let room = room::moderated(&cp, &slug, &caller).await?;
    let title = line("title", &req.title, 200)?;
    if !(1..=MAX_QUESTIONS).contains(&req.questions.len()) {
        return Err(Error::Invalid(format!(
            "a survey has 1 to {MAX_QUESTIONS} questions"
        )));
    }
    let questions = req
        .questions
        .iter()
        .map(check_question)
        .collect::<Result<Vec<_>, _>>()?;
    let id = random_id();
    sqlx::query(
        "INSERT INTO surveys (id, channel_id, title, questions, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&id)
    .bind(room.id())
    .bind(&title)
    .bind(serde_json::to_string(&questions).map_err(|e| Error::Internal(e.to_string()))?)
    .bind(&caller.0.id)
    .bind(now_ms())
    .execute(cp.pool())
    .await?;
    let survey = announce(&cp, room.id(), &id).await?;
    Ok((StatusCode::CREATED, axum::Json(survey)))
}

/// Respond (once per account).
#[utoipa::path(post, path = "/api/v1/channels/{slug}/surveys/{id}/responses", tag = "surveys", security(("access_token" = [])), params(("slug" = String, Path), ("id" = String, Path)), request_body = Response_,
    responses((status = 201), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn respond(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path((slug, id)): Path<(String, String)>,
    Json(req): Json<Response_>,
) -> ApiResult<StatusCode> {
    let room = room::readable(&cp, &slug, Some(&caller)).await?;
    let survey = load(&cp, room.id(), &id).await?;
    if survey.closed {
        return Err(Refusal::new(Code::Conflict, "the survey is closed").into());
    }
    if req.answers.len() != survey.questions.len() {
        return Err(Error::Invalid(format!(
            "answer each of the {} questions, in order",
            survey.questions.len()
        )));
    }
    let answers = survey
        .questions
        .iter()
        .zip(&req.answers)
        .map(|(q, a)| check_answer(q, a))
        .collect::<Result<Vec<_>, _>>()?;
    let result = sqlx::query(
        "INSERT INTO survey_responses (survey_id, user_id, answers, created_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(&id)
    .bind(&caller.0.id)
    .bind(serde_json::Value::Array(answers).to_string())
    .bind(now_ms())
    .execute(cp.pool())
    .await;
    match result {
        Ok(_) => Ok(StatusCode::CREATED),
        Err(e) if duplicate(&e) => {
            Err(Refusal::new(Code::Conflict, "you answered this survey already").into())
        }
        Err(e) => Err(e.into()),
    }
}

/// Close a survey (moderators).
#[utoipa::path(post, path = "/api/v1/channels/{slug}/surveys/{id}/close", tag = "surveys", security(("access_token" = [])), params(("slug" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = Survey), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn close(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path((slug, id)): Path<(String, String)>,
) -> ApiResult<axum::Json<Survey>> {
    let room = room::moderated(&cp, &slug, &caller).await?;
    load(&cp, room.id(), &id).await?;
    sqlx::query(
        "UPDATE surveys SET closed_at = $3 WHERE channel_id = $1 AND id = $2 AND closed_at IS NULL",
    )
    .bind(room.id())
    .bind(&id)
    .bind(now_ms())
    .execute(cp.pool())
    .await?;
    let survey = announce(&cp, room.id(), &id).await?;
    Ok(axum::Json(survey))
}

/// Results (moderators): JSON, or CSV with one row per response.
#[utoipa::path(get, path = "/api/v1/channels/{slug}/surveys/{id}/results", tag = "surveys", security(("access_token" = [])), params(("slug" = String, Path), ("id" = String, Path), ResultsQuery),
    responses((status = 200, body = Results), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn results(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path((slug, id)): Path<(String, String)>,
    Query(q): Query<ResultsQuery>,
) -> ApiResult<Response> {
    let room = room::moderated(&cp, &slug, &caller).await?;
    let survey = load(&cp, room.id(), &id).await?;
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT u.username, r.answers, r.created_at FROM survey_responses r \
         JOIN users u ON u.id = r.user_id WHERE r.survey_id = $1 ORDER BY r.created_at",
    )
    .bind(&id)
    .fetch_all(cp.pool())
    .await?;
    let answers: Vec<(String, i64, Vec<serde_json::Value>)> = rows
        .into_iter()
        .map(|(u, a, at)| (u, at, json_list(&a)))
        .collect();
    match q.format.as_deref() {
        None | Some("json") => Ok(axum::Json(summarize(survey, &answers)).into_response()),
        Some("csv") => csv(&survey, &answers),
        Some(_) => Err(Error::BadRequest("format is json or csv".into())),
    }
}

fn summarize(survey: Survey, answers: &[(String, i64, Vec<serde_json::Value>)]) -> Results {
    let questions = survey
        .questions
        .iter()
        .enumerate()
        .map(|(i, q)| {
            let all = answers.iter().filter_map(|(_, _, a)| a.get(i));
            let mut r = QuestionResult {
                prompt: q.prompt.clone(),
                counts: Vec::new(),
                mean: None,
                texts: Vec::new(),
            };
            match q.kind {
                Kind::Choice => {
                    r.counts = vec![0; q.options.len()];
                    for v in all.filter_map(serde_json::Value::as_u64) {
                        if let Some(n) = r.counts.get_mut(v as usize) {
                            *n += 1;
                        }
                    }
                }
                Kind::Scale => {
                    let (min, max) = (q.min.unwrap_or(1), q.max.unwrap_or(5));
                    r.counts = vec![0; (max - min + 1) as usize];
                    let values: Vec<i64> = all.filter_map(serde_json::Value::as_i64).collect();
                    for v in &values {
                        if let Some(n) = r.counts.get_mut((v - min) as usize) {
                            *n += 1;
                        }
                    }
                    if !values.is_empty() {
                        r.mean = Some(values.iter().sum::<i64>() as f64 / values.len() as f64);
                    }
                }
                Kind::Text => {
                    r.texts = all.filter_map(|v| v.as_str().map(str::to_owned)).collect();
                }
            }
            r
        })
        .collect();
    Results { survey, questions }
}

fn csv(survey: &Survey, answers: &[(String, i64, Vec<serde_json::Value>)]) -> ApiResult<Response> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let internal = |e: csv::Error| Error::Internal(e.to_string());
    let mut header = vec!["respondent".to_owned(), "answered_at".to_owned()];
    header.extend(survey.questions.iter().map(|q| q.prompt.clone()));
    w.write_record(&header).map_err(internal)?;
    for (user, at, list) in answers {
        let mut rec = vec![user.clone(), at.to_string()];
        for (q, a) in survey.questions.iter().zip(list) {
            rec.push(match (q.kind, a) {
                (Kind::Choice, v) => v
                    .as_u64()
                    .and_then(|i| q.options.get(i as usize).cloned())
                    .unwrap_or_default(),
                (_, serde_json::Value::String(s)) => defuse(s),
                (_, v) => v.to_string(),
            });
        }
        w.write_record(&rec).map_err(internal)?;
    }
    let body = w.into_inner().map_err(|e| Error::Internal(e.to_string()))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"survey-{}.csv\"", survey.id),
            ),
        ],
        body,
    )
        .into_response())
}

/// Free text that a spreadsheet would read as a formula gets a leading quote.
fn defuse(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_owned()
    }
}
