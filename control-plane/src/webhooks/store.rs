//! The queue in the database: events, one delivery per event and endpoint, claims with
//! a lease (so a replica that dies mid-send leaves the delivery to another after the
//! lease), and the record of every attempt.

use sqlx::AnyPool;

use super::event::{Event, EventType};
use super::schedule::Decision;
use crate::db::{Backend, Db};
use crate::tokens::random_id;

/// Attempts and finished events are kept this long, milliseconds.
pub(super) const KEEP_MS: i64 = 7 * 24 * 3_600_000;

/// A claimed delivery with what sending it needs.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct Claimed {
    pub id: String,
    pub endpoint_id: String,
    pub event_id: String,
    pub attempts: i64,
    pub created_at: i64,
    pub body: String,
    pub url: String,
    pub enabled: i64,
    pub secret_sealed: String,
    pub old_secret_sealed: Option<String>,
    pub old_secret_until: Option<i64>,
}

/// What one attempt came to.
#[derive(Debug)]
pub(super) struct Attempt<'a> {
    pub status: Option<u16>,
    pub error: Option<&'a str>,
    pub duration_ms: i64,
    pub decision: Decision,
}

fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn insert_event(
    pool: &AnyPool,
    channel_id: Option<&str>,
    event: &Event,
    now: i64,
) -> Result<String, sqlx::Error> {
    let id = format!("msg_{}", random_id());
    sqlx::query(
        "INSERT INTO webhook_events (id, channel_id, type, body, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&id)
    .bind(channel_id.map(str::to_owned))
    .bind(event.kind().as_str())
    .bind(event.body(now))
    .bind(now)
    .execute(pool)
    .await?;
    Ok(id)
}

async fn insert_delivery(
    pool: &AnyPool,
    event_id: &str,
    endpoint_id: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO webhook_deliveries (id, event_id, endpoint_id, next_attempt_at, created_at) \
         VALUES ($1, $2, $3, $4, $4)",
    )
    .bind(random_id())
    .bind(event_id)
    .bind(endpoint_id)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(())
}

/// Queues `event` for every enabled endpoint that wants it; returns how many.
pub(super) async fn enqueue(
    db: &Db,
    channel_id: Option<&str>,
    event: &Event,
    now: i64,
) -> Result<usize, sqlx::Error> {
    let endpoints: Vec<(String, String)> = sqlx::query_as(
        "SELECT id, events FROM webhook_endpoints WHERE enabled = 1 \
         AND (channel_id IS NULL OR channel_id = $1)",
    )
    .bind(channel_id.map(str::to_owned))
    .fetch_all(db.pool())
    .await?;
    let kind = event.kind();
    let wanted: Vec<&String> = endpoints
        .iter()
        .filter(|(_, events)| subscribed(events, kind))
        .map(|(id, _)| id)
        .collect();
    if wanted.is_empty() {
        return Ok(0);
    }
    let event_id = insert_event(db.pool(), channel_id, event, now).await?;
    for endpoint in &wanted {
        insert_delivery(db.pool(), &event_id, endpoint, now).await?;
    }
    Ok(wanted.len())
}

/// Whether an endpoint's `events` (JSON list) include `kind`.
pub(super) fn subscribed(events: &str, kind: EventType) -> bool {
    serde_json::from_str::<Vec<String>>(events)
        .map(|list| list.iter().any(|e| e == kind.as_str()))
        .unwrap_or(false)
}

/// Queues `event` for one endpoint; returns the event's id.
pub(super) async fn enqueue_to(
    db: &Db,
    endpoint_id: &str,
    event: &Event,
    now: i64,
) -> Result<String, sqlx::Error> {
    let channel: Option<(Option<String>,)> =
        sqlx::query_as("SELECT channel_id FROM webhook_endpoints WHERE id = $1")
            .bind(endpoint_id)
            .fetch_optional(db.pool())
            .await?;
    let channel = channel.and_then(|c| c.0);
    let event_id = insert_event(db.pool(), channel.as_deref(), event, now).await?;
    insert_delivery(db.pool(), &event_id, endpoint_id, now).await?;
    Ok(event_id)
}

/// A fresh delivery of an event this endpoint was sent before; false if it never was.
pub(super) async fn redeliver(
    db: &Db,
    endpoint_id: &str,
    event_id: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let known: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM webhook_deliveries WHERE endpoint_id = $1 AND event_id = $2 LIMIT 1",
    )
    .bind(endpoint_id)
    .bind(event_id)
    .fetch_optional(db.pool())
    .await?;
    if known.is_none() {
        return Ok(false);
    }
    insert_delivery(db.pool(), event_id, endpoint_id, now).await?;
    Ok(true)
}

/// Claims up to `limit` due deliveries (none of the endpoints in `skip`) until `lease`.
/// One UPDATE decides: a row is claimed by one process however many race for it (on
/// PostgreSQL the candidates are also `FOR UPDATE SKIP LOCKED`, so replicas take
/// different rows instead of waiting on each other).
pub(super) async fn claim(
    db: &Db,
    now: i64,
    lease: i64,
    limit: usize,
    skip: &[String],
) -> Result<Vec<Claimed>, sqlx::Error> {
    let skip_sql = if skip.is_empty() {
        String::new()
    } else {
        format!(" AND endpoint_id NOT IN ({})", placeholders(4, skip.len()))
    };
    let lock = if db.backend() == Backend::Postgres {
        " FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    let due = "next_attempt_at <= $2 AND (claimed_until IS NULL OR claimed_until < $2)";
    let sql = format!(
        "UPDATE webhook_deliveries SET claimed_until = $1 WHERE id IN \
         (SELECT id FROM webhook_deliveries WHERE {due}{skip_sql} \
          ORDER BY next_attempt_at LIMIT $3{lock}) AND {due} RETURNING id"
    );
    let mut q = sqlx::query_as::<_, (String,)>(sqlx::AssertSqlSafe(sql))
        .bind(lease)
        .bind(now)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX));
    for e in skip {
        q = q.bind(e);
    }
    let ids: Vec<(String,)> = q.fetch_all(db.pool()).await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT d.id, d.endpoint_id, d.event_id, d.attempts, d.created_at, e.body, p.url, \
         p.enabled, p.secret_sealed, p.old_secret_sealed, p.old_secret_until \
         FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id \
         JOIN webhook_endpoints p ON p.id = d.endpoint_id WHERE d.id IN ({})",
        placeholders(1, ids.len())
    );
    let mut q = sqlx::query_as::<_, Claimed>(sqlx::AssertSqlSafe(sql));
    for (id,) in &ids {
        q = q.bind(id);
    }
    q.fetch_all(db.pool()).await
}

/// Gives a claim back untried (this process had no slot for its endpoint).
pub(super) async fn release(db: &Db, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE webhook_deliveries SET claimed_until = NULL WHERE id = $1")
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Records an attempt and what follows from it.
pub(super) async fn record(
    db: &Db,
    d: &Claimed,
    attempt: &Attempt<'_>,
    now: i64,
) -> Result<(), sqlx::Error> {
    let number = d.attempts + 1;
    sqlx::query(
        "INSERT INTO webhook_attempts (id, delivery_id, endpoint_id, event_id, attempt, at, \
         status, error, duration_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(random_id())
    .bind(&d.id)
    .bind(&d.endpoint_id)
    .bind(&d.event_id)
    .bind(number)
    .bind(now)
    .bind(attempt.status.map(i64::from))
    .bind(attempt.error.map(str::to_owned))
    .bind(attempt.duration_ms)
    .execute(db.pool())
    .await?;
    let (next, delivered, failed) = match attempt.decision {
        Decision::Delivered => (None, Some(now), None),
        Decision::RetryAt(at) => (Some(at), None, None),
        Decision::GiveUp => (None, None, Some(now)),
    };
    sqlx::query(
        "UPDATE webhook_deliveries SET attempts = $2, last_status = $3, last_error = $4, \
         next_attempt_at = $5, delivered_at = $6, failed_at = $7, claimed_until = NULL \
         WHERE id = $1",
    )
    .bind(&d.id)
    .bind(number)
    .bind(attempt.status.map(i64::from))
    .bind(attempt.error.map(str::to_owned))
    .bind(next)
    .bind(delivered)
    .bind(failed)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// When the next delivery comes due, if any is waiting.
pub(super) async fn next_due(db: &Db) -> Result<Option<i64>, sqlx::Error> {
    let (at,): (Option<i64>,) =
        sqlx::query_as("SELECT min(next_attempt_at) FROM webhook_deliveries")
            .fetch_one(db.pool())
            .await?;
    Ok(at)
}

/// Forgets attempts and finished events older than [`KEEP_MS`].
pub(super) async fn prune(db: &Db, now: i64) -> Result<(), sqlx::Error> {
    let before = now - KEEP_MS;
    sqlx::query("DELETE FROM webhook_attempts WHERE at < $1")
        .bind(before)
        .execute(db.pool())
        .await?;
    sqlx::query(
        "DELETE FROM webhook_events WHERE created_at < $1 AND NOT EXISTS \
         (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = webhook_events.id \
          AND d.next_attempt_at IS NOT NULL)",
    )
    .bind(before)
    .execute(db.pool())
    .await?;
    Ok(())
}
