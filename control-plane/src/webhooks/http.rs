//! `/webhooks`: endpoints (a channel's, by its owner; every channel's, by an admin),
//! secret rotation, the delivery log, redelivery and a test event. An API key needs
//! `channel:manage` and reaches only its own channel's endpoints.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::dispatch::seal_context;
use super::event::{Event, EventType};
use super::sign::Secret;
use super::target;
use crate::channels::owned;
use crate::db::now_ms;
use crate::error::{ApiResult, Problem};
use crate::extract::{Caller, Json, Path, Query};
use crate::model::{self, Role};
use crate::tokens::random_id;
use crate::{ControlPlane, Error};

/// Endpoints per channel (and all-channels endpoints in all).
pub const MAX_ENDPOINTS: i64 = 10;

/// An endpoint as listed: never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct Endpoint {
    /// Opaque id.
    pub id: String,
    /// The channel's slug; absent: every channel (admins).
    pub channel: Option<String>,
    /// Where events are POSTed.
    pub url: String,
    /// The owner's note.
    pub description: String,
    /// The event types sent to it.
    pub events: Vec<EventType>,
    /// Off: nothing is queued for it.
    pub enabled: bool,
    /// After a rotation, the old secret also signs until then (Unix milliseconds).
    pub previous_secret_until: Option<i64>,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds.
    pub updated_at: i64,
}

/// A new endpoint, or a rotated secret: the only time the secret is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointWithSecret {
    /// `whsec_…`: verify signatures with it (docs/WEBHOOKS.md).
    pub secret: String,
    /// The endpoint.
    #[serde(flatten)]
    pub endpoint: Endpoint,
}

/// `POST /webhooks`
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewEndpoint {
    /// A channel's slug; absent: every channel (admins only).
    pub channel: Option<String>,
    /// An `https://` (or `http://`) URL on a public address.
    #[schema(max_length = 2048)]
    pub url: String,
    /// The event types to send, at least one.
    pub events: Vec<String>,
    /// A note.
    #[serde(default)]
    #[schema(max_length = 200)]
    pub description: String,
}

/// `PATCH /webhooks/{id}`: what changes.
#[derive(Debug, Deserialize, ToSchema, Default)]
pub struct EditEndpoint {
    /// A new URL.
    pub url: Option<String>,
    /// New event types.
    pub events: Option<Vec<String>>,
    /// A new note.
    pub description: Option<String>,
    /// On or off.
    pub enabled: Option<bool>,
}

/// `GET /webhooks` query.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// Only this channel's endpoints.
    pub channel: Option<String>,
}

/// `GET /webhooks/{id}/deliveries` query.
#[derive(Debug, Deserialize, IntoParams)]
pub struct LogQuery {
    /// How many, newest first (at most 100, default 50).
    pub limit: Option<i64>,
}

/// One delivery: an event to an endpoint, and where it stands.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Delivery {
    /// Opaque id.
    pub id: String,
    /// The event's id: the `webhook-id` header.
    pub event_id: String,
    /// The event's type.
    #[sqlx(rename = "type")]
    #[serde(rename = "type")]
    pub kind: String,
    /// Attempts so far.
    pub attempts: i64,
    /// When the next attempt is due (Unix milliseconds); absent when finished.
    pub next_attempt_at: Option<i64>,
    /// The last answer's status.
    pub last_status: Option<i64>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When a 2xx answered.
    pub delivered_at: Option<i64>,
    /// When it was given up (a day of failures).
    pub failed_at: Option<i64>,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// One attempt of a delivery.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct AttemptLog {
    /// The delivery's id.
    pub delivery_id: String,
    /// The event's id.
    pub event_id: String,
    /// 1 for the first.
    pub attempt: i64,
    /// Unix milliseconds.
    pub at: i64,
    /// The answer's status, if any came.
    pub status: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
    /// How long it took.
    pub duration_ms: i64,
}

/// The delivery log of one endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryLog {
    /// Deliveries, newest first.
    pub deliveries: Vec<Delivery>,
    /// Attempts, newest first.
    pub attempts: Vec<AttemptLog>,
}

/// `POST …/redeliver` and `POST …/test` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Queued {
    /// The event queued (its `webhook-id`).
    pub event_id: String,
}

#[derive(Debug, sqlx::FromRow)]
struct Row {
    id: String,
    channel_id: Option<String>,
    slug: Option<String>,
    owner_id: Option<String>,
    url: String,
    description: String,
    events: String,
    enabled: i64,
    old_secret_until: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

const SELECT: &str = "SELECT w.id, w.channel_id, c.slug, c.owner_id, w.url, w.description, \
    w.events, w.enabled, w.old_secret_until, w.created_at, w.updated_at \
    FROM webhook_endpoints w LEFT JOIN channels c ON c.id = w.channel_id";

impl Row {
    fn view(self) -> Endpoint {
        let events: Vec<String> = serde_json::from_str(&self.events).unwrap_or_default();
        Endpoint {
            id: self.id,
            channel: self.slug,
            url: self.url,
            description: self.description,
            events: events.iter().filter_map(|e| EventType::parse(e)).collect(),
            enabled: self.enabled != 0,
            previous_secret_until: self.old_secret_until.filter(|t| *t > now_ms()),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

fn events(list: &[String]) -> ApiResult<String> {
    if list.is_empty() || list.len() > EventType::ALL.len() {
        return Err(Error::Invalid(
            "events must name at least one event type".into(),
        ));
    }
    let mut out: Vec<&str> = Vec::new();
    for e in list {
        let t = EventType::parse(e).ok_or_else(|| {
            let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
            Error::Invalid(format!(
                "unknown event type {e:?}; known: {}",
                known.join(", ")
            ))
        })?;
        if !out.contains(&t.as_str()) {
            out.push(t.as_str());
        }
    }
    serde_json::to_string(&out).map_err(|e| Error::Internal(e.to_string()))
}

fn url(cp: &ControlPlane, url: &str) -> ApiResult<String> {
    target::check(url, cp.webhooks().settings().allow_private)
        .map(|u| u.to_string())
        .map_err(|e| Error::Invalid(e.to_string()))
}

/// The endpoint, if the caller may manage it (its channel's owner, or an admin; an API
/// key only its own channel's); 404 otherwise.
async fn managed(cp: &ControlPlane, caller: &Caller, id: &str) -> ApiResult<Row> {
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} WHERE w.id = $1")))
        .bind(id)
        .fetch_optional(cp.pool())
        .await?;
    let row = row.ok_or(Error::NotFound)?;
    let admin = caller.0.role() == Role::Admin;
    let owner = row.owner_id.as_deref() == Some(caller.0.id.as_str());
    if !(admin || owner)
        || caller
            .key_channel_allows(row.channel_id.as_deref())
            .is_err()
    {
        return Err(Error::NotFound);
    }
    Ok(row)
}

/// Register an endpoint. Its secret is shown only in this answer.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", security(("access_token" = []), ("api_key" = [])), request_body = NewEndpoint,
    responses((status = 201, body = EndpointWithSecret), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn create(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Json(req): Json<NewEndpoint>,
) -> ApiResult<(StatusCode, axum::Json<EndpointWithSecret>)> {
    let channel = match &req.channel {
        Some(slug) => Some(owned(&cp, &caller, slug).await?),
        None => {
            caller.require(Role::Admin)?;
            None
        }
    };
    let channel_id = channel.as_ref().map(|c| c.id.clone());
    caller.key_channel_allows(channel_id.as_deref())?;
    let url = url(&cp, &req.url)?;
    let events = events(&req.events)?;
    let description = model::text("description", req.description.trim(), 200)?;
    let (count,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM webhook_endpoints WHERE channel_id = $1 \
         OR (channel_id IS NULL AND $1 IS NULL)",
    )
    .bind(&channel_id)
    .fetch_one(cp.pool())
    .await?;
    if count >= MAX_ENDPOINTS {
        return Err(Error::Conflict("endpoint limit reached: delete one first"));
    }
    let id = random_id();
    let secret = Secret::random();
    let sealed = cp
        .webhooks()
        .secret_key()
        .seal(secret.bytes(), &seal_context(&id));
    let now = now_ms();
    sqlx::query(
        "INSERT INTO webhook_endpoints (id, channel_id, created_by, url, description, events, \
         secret_sealed, enabled, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $8)",
    )
    .bind(&id)
    .bind(&channel_id)
    .bind(&caller.0.id)
    .bind(&url)
    .bind(&description)
    .bind(&events)
    .bind(&sealed)
    .bind(now)
    .execute(cp.pool())
    .await?;
    let endpoint = managed(&cp, &caller, &id).await?.view();
    Ok((
        StatusCode::CREATED,
        axum::Json(EndpointWithSecret {
            secret: secret.to_text(),
            endpoint,
        }),
    ))
}

/// The endpoints the caller manages (a channel's with `?channel=`), newest first.
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks", security(("access_token" = []), ("api_key" = [])), params(ListQuery),
    responses((status = 200, body = Vec<Endpoint>), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn list(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Vec<Endpoint>>> {
    let rows: Vec<Row> = match &q.channel {
        Some(slug) => {
            let ch = owned(&cp, &caller, slug).await?;
            caller.key_channel_allows(Some(&ch.id))?;
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{SELECT} WHERE w.channel_id = $1 ORDER BY w.created_at DESC LIMIT 200"
            )))
            .bind(&ch.id)
            .fetch_all(cp.pool())
            .await?
        }
        None => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{SELECT} WHERE ($1 = 1 OR c.owner_id = $2) ORDER BY w.created_at DESC LIMIT 200"
        )))
        .bind(i64::from(caller.0.role() == Role::Admin))
        .bind(&caller.0.id)
        .fetch_all(cp.pool())
        .await?
        .into_iter()
        .filter(|r: &Row| caller.key_channel_allows(r.channel_id.as_deref()).is_ok())
        .collect(),
    };
    Ok(axum::Json(rows.into_iter().map(Row::view).collect()))
}

/// One endpoint.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "webhooks", security(("access_token" = []), ("api_key" = [])), params(("id" = String, Path)),
    responses((status = 200, body = Endpoint), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn get(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Endpoint>> {
    Ok(axum::Json(managed(&cp, &caller, &id).await?.view()))
}

/// Change an endpoint's URL, events, note or enabled flag.
#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", tag = "webhooks", security(("access_token" = []), ("api_key" = [])), params(("id" = String, Path)), request_body = EditEndpoint,
    responses((status = 200, body = Endpoint), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn edit(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<EditEndpoint>,
) -> ApiResult<axum::Json<Endpoint>> {
    let row = managed(&cp, &caller, &id).await?;
    let new_url = match &req.url {
        Some(u) => url(&cp, u)?,
        None => row.url,
    };
    let new_events = match &req.events {
        Some(list) => events(list)?,
        None => row.events,
    };
    let description = match &req.description {
        Some(d) => model::text("description", d.trim(), 200)?,
        None => row.description,
    };
    let enabled = req.enabled.map_or(row.enabled, i64::from);
    sqlx::query(
        "UPDATE webhook_endpoints SET url = $2, events = $3, description = $4, enabled = $5, \
         updated_at = $6 WHERE id = $1",
    )
    .bind(&id)
    .bind(&new_url)
    .bind(&new_events)
    .bind(&description)
    .bind(enabled)
    .bind(now_ms())
    .execute(cp.pool())
    .await?;
    Ok(axum::Json(managed(&cp, &caller, &id).await?.view()))
}

/// Delete an endpoint and its queue.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks", security(("access_token" = []), ("api_key" = [])), params(("id" = String, Path)),
    responses((status = 204), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn delete(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    managed(&cp, &caller, &id).await?;
    sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1")
        .bind(&id)
        .execute(cp.pool())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new secret, shown once; the old one also signs for the overlap (24 h), so the
/// receiver can switch without losing an event.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/rotate", tag = "webhooks", security(("access_token" = []), ("api_key" = [])), params(("id" = String, Path)),
    responses((status = 200, body = EndpointWithSecret), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn rotate(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<EndpointWithSecret>> {
    managed(&cp, &caller, &id).await?;
    let secret = Secret::random();
    let sealed = cp
        .webhooks()
        .secret_key()
        .seal(secret.bytes(), &seal_context(&id));
    let now = now_ms();
    let until = now + cp.webhooks().settings().rotation_overlap_ms;
    sqlx::query(
        "UPDATE webhook_endpoints SET old_secret_sealed = secret_sealed, old_secret_until = $2, \
         secret_sealed = $3, updated_at = $4 WHERE id = $1",
    )
    .bind(&id)
    .bind(until)
    .bind(&sealed)
    .bind(now)
    .execute(cp.pool())
    .await?;
    let endpoint = managed(&cp, &caller, &id).await?.view();
    Ok(axum::Json(EndpointWithSecret {
        secret: secret.to_text(),
        endpoint,
    }))
}

/// The delivery log: the last deliveries and attempts, newest first.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks", security(("access_token" = []), ("api_key" = [])), params(("id" = String, Path), LogQuery),
    responses((status = 200, body = DeliveryLog), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn deliveries(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<LogQuery>,
) -> ApiResult<axum::Json<DeliveryLog>> {
    managed(&cp, &caller, &id).await?;
    let limit = q.limit.unwrap_or(50).clamp(1, 100);
    let deliveries: Vec<Delivery> = sqlx::query_as(
        "SELECT d.id, d.event_id, e.type, d.attempts, d.next_attempt_at, d.last_status, \
         d.last_error, d.delivered_at, d.failed_at, d.created_at FROM webhook_deliveries d \
         JOIN webhook_events e ON e.id = d.event_id WHERE d.endpoint_id = $1 \
         ORDER BY d.created_at DESC, d.id LIMIT $2",
    )
    .bind(&id)
    .bind(limit)
    .fetch_all(cp.pool())
    .await?;
    let attempts: Vec<AttemptLog> = sqlx::query_as(
        "SELECT delivery_id, event_id, attempt, at, status, error, duration_ms \
         FROM webhook_attempts WHERE endpoint_id = $1 ORDER BY at DESC, attempt DESC LIMIT $2",
    )
    .bind(&id)
    .bind(limit)
    .fetch_all(cp.pool())
    .await?;
    Ok(axum::Json(DeliveryLog {
        deliveries,
        attempts,
    }))
}

/// Send an event again (same `webhook-id`, fresh retries).
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/events/{event_id}/redeliver", tag = "webhooks", security(("access_token" = []), ("api_key" = [])), params(("id" = String, Path), ("event_id" = String, Path)),
    responses((status = 202, body = Queued), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn redeliver(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path((id, event_id)): Path<(String, String)>,
) -> ApiResult<(StatusCode, axum::Json<Queued>)> {
    managed(&cp, &caller, &id).await?;
    if !cp.webhooks().redeliver(&id, &event_id).await? {
        return Err(Error::Missing("this endpoint was never sent that event"));
    }
    Ok((StatusCode::ACCEPTED, axum::Json(Queued { event_id })))
}

/// Send a `webhook.test` event to this endpoint.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/test", tag = "webhooks", security(("access_token" = []), ("api_key" = [])), params(("id" = String, Path)),
    responses((status = 202, body = Queued), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn test(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, axum::Json<Queued>)> {
    managed(&cp, &caller, &id).await?;
    let event_id = cp.webhooks().emit_to(&id, Event::Test).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(Queued { event_id })))
}
