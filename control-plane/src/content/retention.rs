//! How long a channel keeps its recordings, and the sweeper that deletes the expired
//! ones. The rule ([`expired`], pure): a recording older than the channel's `keep_days`
//! goes, unless its media was read in the last [`WATCH_GRACE_MS`] (reads are written at
//! most once a minute, so a viewer who is playing or seeking keeps it; one paused for
//! longer does not). Uploads are never swept.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::channels::owned;
use crate::db::now_ms;
use crate::error::{ApiResult, Problem};
use crate::extract::{Caller, Json, Path};
use crate::{ControlPlane, Error};

/// A video read this recently is being watched, ms.
pub const WATCH_GRACE_MS: i64 = 10 * 60_000;
/// A day, ms.
const DAY_MS: i64 = 86_400_000;
/// Longest retention one may set (ten years); longer: keep forever.
pub const MAX_DAYS: i64 = 3650;
/// Recordings looked at per sweep.
const BATCH: i64 = 200;

/// Whether a recording made at `created_at`, last read at `last_read_at`, on a channel
/// that keeps recordings `keep_days` (None: forever) goes at `now` (all Unix ms).
pub fn expired(
    created_at: i64,
    last_read_at: Option<i64>,
    keep_days: Option<i64>,
    now: i64,
) -> bool {
    let Some(days) = keep_days else {
        return false;
    };
    if now.saturating_sub(created_at) < days.saturating_mul(DAY_MS) {
        return false;
    }
    last_read_at.is_none_or(|t| now.saturating_sub(t) >= WATCH_GRACE_MS)
}

/// A channel's retention of recordings.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Retention {
    /// Days a recording is kept (1 to 3650); null: forever.
    pub keep_days: Option<i64>,
}

/// How long the channel keeps its recordings (its owner).
#[utoipa::path(get, path = "/api/v1/channels/{slug}/retention", tag = "videos", security(("access_token" = [])), params(("slug" = String, Path)),
    responses((status = 200, body = Retention), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn get(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(slug): Path<String>,
) -> ApiResult<axum::Json<Retention>> {
    let ch = owned(&cp, &caller, &slug).await?;
    let row: Option<(Option<i64>,)> =
        sqlx::query_as("SELECT keep_days FROM channel_retention WHERE channel_id = $1")
            .bind(&ch.id)
            .fetch_optional(cp.pool())
            .await?;
    Ok(axum::Json(Retention {
        keep_days: row.and_then(|r| r.0),
    }))
}

/// Set how long the channel keeps its recordings (its owner); the sweeper applies it
/// within a minute.
#[utoipa::path(put, path = "/api/v1/channels/{slug}/retention", tag = "videos", security(("access_token" = [])), params(("slug" = String, Path)), request_body = Retention,
    responses((status = 200, body = Retention), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn set(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(slug): Path<String>,
    Json(req): Json<Retention>,
) -> ApiResult<axum::Json<Retention>> {
    let ch = owned(&cp, &caller, &slug).await?;
    if req.keep_days.is_some_and(|d| !(1..=MAX_DAYS).contains(&d)) {
        return Err(Error::Invalid(
            "keep_days must be 1 to 3650, or null to keep recordings forever".into(),
        ));
    }
    sqlx::query(
        "INSERT INTO channel_retention (channel_id, keep_days, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (channel_id) DO UPDATE SET keep_days = excluded.keep_days, \
         updated_at = excluded.updated_at",
    )
    .bind(&ch.id)
    .bind(req.keep_days)
    .bind(now_ms())
    .execute(cp.pool())
    .await?;
    Ok(axum::Json(req))
}

/// A recording past its channel's days: id, storage key, made, last read, days.
type Candidate = (String, String, i64, Option<i64>, Option<i64>);

/// Deletes the recordings expired at `now` (Unix ms); returns their ids. Each row goes
/// by a DELETE that re-checks the last read, so a read between the look and the delete
/// keeps it; its media goes after the row.
pub async fn sweep(cp: &ControlPlane, now: i64) -> ApiResult<Vec<String>> {
    let rows: Vec<Candidate> = sqlx::query_as(
        "SELECT v.id, v.storage_key, v.created_at, v.last_read_at, r.keep_days \
         FROM videos v JOIN channel_retention r ON r.channel_id = v.channel_id \
         WHERE v.kind = 'recording' AND r.keep_days IS NOT NULL \
         AND v.created_at <= $1 - r.keep_days * 86400000 ORDER BY v.created_at LIMIT $2",
    )
    .bind(now)
    .bind(BATCH)
    .fetch_all(cp.pool())
    .await?;
    let mut gone = Vec::new();
    for (id, key, created, read, days) in rows {
        if !expired(created, read, days, now) {
            continue;
        }
        let done = sqlx::query(
            "DELETE FROM videos WHERE id = $1 AND (last_read_at IS NULL OR last_read_at <= $2)",
        )
        .bind(&id)
        .bind(now - WATCH_GRACE_MS)
        .execute(cp.pool())
        .await?;
        if done.rows_affected() == 0 {
            continue;
        }
        crate::discovery::search::remove(
            cp.pool(),
            cp.db().backend(),
            crate::discovery::search::Kind::Video,
            &id,
        )
        .await?;
        if let Err(e) = cp.content().storage()?.delete(&key).await {
            tracing::warn!(video = %id, "removing an expired recording's media: {e}");
        }
        gone.push(id);
    }
    Ok(gone)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    #[test]
    fn forever_keeps_everything() {
        assert!(!expired(0, None, None, 100 * 365 * 24 * H));
    }

    #[test]
    fn a_recording_goes_after_its_days_on_a_virtual_clock() {
        let made = 1_000 * H;
        let week = Some(7);
        assert!(!expired(made, None, week, made));
        assert!(!expired(made, None, week, made + 7 * 24 * H - 1));
        assert!(expired(made, None, week, made + 7 * 24 * H));
    }

    #[test]
    fn one_being_watched_stays_until_the_viewer_has_been_gone_ten_minutes() {
        let made = 1_000 * H;
        let due = made + 24 * H;
        let days = Some(1);
        // Read a minute ago (a player seeking writes at most once a minute): kept.
        assert!(!expired(made, Some(due - 60_000), days, due));
        assert!(!expired(made, Some(due - WATCH_GRACE_MS + 1), days, due));
        // The last read ten minutes ago: it goes.
        assert!(expired(made, Some(due - WATCH_GRACE_MS), days, due));
        // Read long ago, before it was due: it goes.
        assert!(expired(made, Some(made + H), days, due));
    }

    #[test]
    fn extremes_do_not_overflow() {
        assert!(!expired(i64::MAX, None, Some(MAX_DAYS), i64::MIN));
        assert!(expired(i64::MIN, None, Some(i64::MAX), i64::MAX));
    }
}
