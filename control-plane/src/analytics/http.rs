//! `GET /channels/{slug}/analytics` (a range) and `…/analytics/streams/{broadcast_id}`
//! (one broadcast), as JSON or CSV (`Accept: text/csv`, `?format=csv`, or
//! `/analytics.csv`), for the channel's owner, admins and `analytics:read` keys; and
//! `POST /playback-stats`, a player's running totals for its session.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::report::{self, csv_rows, Figures, Scope};
use crate::channels::owned;
use crate::db::now_ms;
use crate::error::{ApiResult, Problem};
use crate::extract::{Caller, Path, Query};
use crate::{ControlPlane, Error};

/// Longest range of one report: a year.
pub const MAX_RANGE_MS: i64 = 366 * 24 * 3600 * 1000;
/// Default range: the last 30 days.
pub const DEFAULT_RANGE_MS: i64 = 30 * 24 * 3600 * 1000;
/// Shortest interval between two accepted reports of one session.
pub const REPORT_EVERY_MS: i64 = 5_000;
/// How long after its session closed a player's last report is still taken.
pub const LATE_REPORT_MS: i64 = 60_000;
/// Broadcasts listed in a channel's report.
pub const MAX_BROADCASTS: i64 = 100;

/// `?from&to` (Unix ms; default the last 30 days) and `format=csv`.
#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct RangeQuery {
    /// Start, Unix ms.
    pub from: Option<i64>,
    /// End, Unix ms (default now).
    pub to: Option<i64>,
    /// `csv` for CSV (as `Accept: text/csv`).
    pub format: Option<String>,
}

/// A broadcast: a live period of the channel.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Broadcast {
    /// Opaque id.
    pub id: String,
    /// Unix ms.
    pub started_at: i64,
    /// Unix ms; `null`: live.
    pub ended_at: Option<i64>,
}

/// A channel's figures over a range, and its broadcasts in it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelAnalytics {
    /// The figures.
    #[serde(flatten)]
    pub figures: Figures,
    /// Its broadcasts that started in the range, newest first (at most 100).
    pub broadcasts: Vec<Broadcast>,
}

/// One broadcast's figures.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamAnalytics {
    /// The broadcast.
    pub broadcast: Broadcast,
    /// Its figures (from its start to its end, or now).
    #[serde(flatten)]
    pub figures: Figures,
}

fn wants_csv(headers: &HeaderMap, q: &RangeQuery) -> bool {
    q.format.as_deref() == Some("csv")
        || headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/csv"))
}

fn range(q: &RangeQuery, now: i64) -> Result<(i64, i64), Error> {
    // Any i64 may come in: saturating and checked arithmetic, never an overflow.
    let to = q.to.unwrap_or(now);
    let from = q.from.unwrap_or(to.saturating_sub(DEFAULT_RANGE_MS));
    let span = to.checked_sub(from);
    if from < 0 || from >= to || span.is_none_or(|d| d > MAX_RANGE_MS) {
        return Err(Error::BadRequest(
            "from must be before to, at most a year apart".into(),
        ));
    }
    Ok((from, to))
}

fn csv(name: &str, f: &Figures) -> ApiResult<Response> {
    let internal = |e: csv::Error| Error::Internal(e.to_string());
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["metric", "value"]).map_err(internal)?;
    for (k, v) in csv_rows(f) {
        w.write_record([k, v]).map_err(internal)?;
    }
    let body = w.into_inner().map_err(|e| Error::Internal(e.to_string()))?;
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}.csv\""),
            ),
        ],
        body,
    )
        .into_response())
}

/// A channel's analytics over a range (its owner, admins, `analytics:read` keys).
#[utoipa::path(get, path = "/api/v1/channels/{slug}/analytics", tag = "analytics", security(("access_token" = []), ("api_key" = [])), params(("slug" = String, Path), RangeQuery),
    responses((status = 200, content((ChannelAnalytics = "application/json"), (String = "text/csv"))), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn channel(
    State(cp): State<ControlPlane>,
    caller: Caller,
    headers: HeaderMap,
    Path(slug): Path<String>,
    Query(q): Query<RangeQuery>,
) -> ApiResult<Response> {
    let ch = owned(&cp, &caller, &slug).await?;
    let now = now_ms();
    let (from, to) = range(&q, now)?;
    let scope = Scope {
        channel_id: &ch.id,
        broadcast_id: None,
        from,
        to,
    };
    let figures = report::compute(&cp, scope, now).await?;
    if wants_csv(&headers, &q) {
        return csv(&format!("{}-analytics", ch.slug), &figures);
    }
    let broadcasts: Vec<Broadcast> = sqlx::query_as(
        "SELECT id, started_at, ended_at FROM broadcasts WHERE channel_id = $1 \
         AND started_at >= $2 AND started_at < $3 ORDER BY started_at DESC LIMIT $4",
    )
    .bind(&ch.id)
    .bind(from)
    .bind(to)
    .bind(MAX_BROADCASTS)
    .fetch_all(cp.pool())
    .await?;
    Ok(axum::Json(ChannelAnalytics {
        figures,
        broadcasts,
    })
    .into_response())
}

/// The same as CSV.
#[utoipa::path(get, path = "/api/v1/channels/{slug}/analytics.csv", tag = "analytics", security(("access_token" = []), ("api_key" = [])), params(("slug" = String, Path), RangeQuery),
    responses((status = 200, content_type = "text/csv", body = String), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn channel_csv(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(slug): Path<String>,
    Query(mut q): Query<RangeQuery>,
) -> ApiResult<Response> {
    q.format = Some("csv".into());
    channel(State(cp), caller, HeaderMap::new(), Path(slug), Query(q)).await
}

/// One broadcast's analytics (the channel's owner, admins, `analytics:read` keys).
#[utoipa::path(get, path = "/api/v1/channels/{slug}/analytics/streams/{broadcast_id}", tag = "analytics", security(("access_token" = []), ("api_key" = [])), params(("slug" = String, Path), ("broadcast_id" = String, Path), RangeQuery),
    responses((status = 200, content((StreamAnalytics = "application/json"), (String = "text/csv"))), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn stream(
    State(cp): State<ControlPlane>,
    caller: Caller,
    headers: HeaderMap,
    Path((slug, id)): Path<(String, String)>,
    Query(q): Query<RangeQuery>,
) -> ApiResult<Response> {
    let ch = owned(&cp, &caller, &slug).await?;
    let broadcast: Broadcast = sqlx::query_as(
        "SELECT id, started_at, ended_at FROM broadcasts WHERE id = $1 AND channel_id = $2",
    )
    .bind(&id)
    .bind(&ch.id)
    .fetch_optional(cp.pool())
    .await?
    .ok_or(Error::Missing("no such broadcast"))?;
    let now = now_ms();
    let scope = Scope {
        channel_id: &ch.id,
        broadcast_id: Some(&broadcast.id),
        from: broadcast.started_at,
        to: broadcast
            .ended_at
            .unwrap_or(now)
            .max(broadcast.started_at + 1),
    };
    let figures = report::compute(&cp, scope, now).await?;
    if wants_csv(&headers, &q) {
        return csv(&format!("{}-{}", ch.slug, broadcast.id), &figures);
    }
    Ok(axum::Json(StreamAnalytics { broadcast, figures }).into_response())
}

/// `POST /playback-stats`: a player's totals since its session started.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaybackStats {
    /// The stream (the channel's slug).
    pub stream: String,
    /// The WHEP session's id (16 hex digits, the last part of its resource URL).
    pub session: String,
    /// Milliseconds playing or stalled since the first frame (at most a day).
    pub watched_ms: i64,
    /// Milliseconds stalled (at most `watched_ms`).
    pub stall_ms: i64,
    /// Stalls.
    pub stalls: i64,
    /// Frames decoded.
    pub frames: i64,
}

impl PlaybackStats {
    /// Checks the figures are possible.
    pub fn check(&self) -> Result<(), &'static str> {
        let hex = self.session.len() == 16 && self.session.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex {
            return Err("session must be 16 hex digits");
        }
        if !(0..=86_400_000).contains(&self.watched_ms) {
            return Err("watched_ms must be 0 to 86400000");
        }
        if !(0..=self.watched_ms).contains(&self.stall_ms) {
            return Err("stall_ms must be 0 to watched_ms");
        }
        if !(0..=self.watched_ms / 100 + 1).contains(&self.stalls) {
            return Err("stalls must be 0 to one per 100 ms watched");
        }
        if !(0..=self.watched_ms / 4 + 240).contains(&self.frames) {
            return Err("frames must be 0 to 250 per second watched");
        }
        Ok(())
    }
}

/// A player's playback report for its WHEP session (its running totals, every ~10 s; at
/// most one every 5 s is taken). No credential: the session id is known only to its
/// player. Any content type (a page's `sendBeacon` sends `text/plain`).
#[utoipa::path(post, path = "/api/v1/playback-stats", tag = "analytics", request_body = PlaybackStats,
    responses((status = 204), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn playback_stats(
    State(cp): State<ControlPlane>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let m = &cp.analytics().metrics;
    let stats: PlaybackStats = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => {
            m.reports.with_label_values(&["invalid"]).inc();
            return Err(Error::BadRequest(format!("playback stats: {e}")));
        }
    };
    if let Err(e) = stats.check() {
        m.reports.with_label_values(&["invalid"]).inc();
        return Err(Error::BadRequest(e.into()));
    }
    let now = now_ms();
    let row: Option<(Option<i64>, Option<i64>, i64, i64)> = sqlx::query_as(
        "SELECT v.closed_at, v.reported_at, v.stall_ms, v.watched_ms FROM viewer_sessions v \
         JOIN channels c ON c.id = v.channel_id WHERE v.id = $1 AND c.slug = $2",
    )
    .bind(&stats.session)
    .bind(&stats.stream)
    .fetch_optional(cp.pool())
    .await?;
    let Some((_, reported, stall_before, watched_before)) =
        row.filter(|(closed, ..)| closed.is_none_or(|c| c > now - LATE_REPORT_MS))
    else {
        m.reports.with_label_values(&["unknown"]).inc();
        return Err(Error::Missing("no such session"));
    };
    let limited = || {
        m.reports.with_label_values(&["limited"]).inc();
        Error::RateLimited(u64::try_from(REPORT_EVERY_MS / 1000).unwrap_or(5))
    };
    if reported.is_some_and(|r| r > now - REPORT_EVERY_MS) {
        return Err(limited());
    }
    // Claimed against a concurrent report by the time it read.
    let done = sqlx::query(
        "UPDATE viewer_sessions SET stall_ms = $1, stalls = $2, frames = $3, watched_ms = $4, \
         reported_at = $5 WHERE id = $6 AND (reported_at IS NULL OR reported_at <= $7)",
    )
    .bind(stats.stall_ms)
    .bind(stats.stalls)
    .bind(stats.frames)
    .bind(stats.watched_ms)
    .bind(now)
    .bind(&stats.session)
    .bind(now - REPORT_EVERY_MS)
    .execute(cp.pool())
    .await?;
    if done.rows_affected() == 0 {
        return Err(limited());
    }
    m.reports.with_label_values(&["accepted"]).inc();
    m.stall_ms
        .inc_by(u64::try_from(stats.stall_ms - stall_before).unwrap_or(0));
    m.watched_ms
        .inc_by(u64::try_from(stats.watched_ms - watched_before).unwrap_or(0));
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_at_the_ends_of_i64_is_refused_not_overflowed() {
        let q = |from, to| RangeQuery {
            from,
            to,
            ..Default::default()
        };
        let now = 1_800_000_000_000;
        assert!(range(&q(None, Some(i64::MIN)), now).is_err());
        assert!(range(&q(Some(i64::MIN), Some(i64::MAX)), now).is_err());
        assert!(range(&q(Some(0), Some(i64::MAX)), now).is_err());
        assert!(
            range(&q(None, Some(i64::MAX)), now).is_ok(),
            "a year back from the end"
        );
        assert_eq!(
            range(&q(None, None), now).unwrap(),
            (now - DEFAULT_RANGE_MS, now)
        );
    }

    fn stats(watched_ms: i64, stall_ms: i64, stalls: i64, frames: i64) -> PlaybackStats {
        PlaybackStats {
            stream: "s".into(),
            session: "00000000000000ff".into(),
            watched_ms,
            stall_ms,
            stalls,
            frames,
        }
    }

    #[test]
    fn impossible_reports_are_refused() {
        assert!(stats(10_000, 500, 2, 300).check().is_ok());
        assert!(
            stats(10_000, 20_000, 2, 300).check().is_err(),
            "stalled > watched"
        );
        assert!(stats(-1, 0, 0, 0).check().is_err());
        assert!(stats(10_000, 0, 0, 1_000_000).check().is_err(), "frames");
        assert!(stats(100_000_000, 0, 0, 0).check().is_err(), "over a day");
        let mut s = stats(0, 0, 0, 0);
        s.session = "zz".into();
        assert!(s.check().is_err());
    }
}
