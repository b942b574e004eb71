//! The figures of a time range (a channel's) or of one broadcast: computed from the
//! viewer sessions, the per-minute concurrency samples, the chat record and the ledger.
//! The arithmetic is pure ([`figures`], [`percentiles`]); the queries bound what they
//! read.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;
use utoipa::ToSchema;

use crate::ControlPlane;

/// Most sessions read for one report (a larger range is cut at its newest sessions).
pub const MAX_SESSIONS: i64 = 200_000;

/// 50th, 90th and 99th percentiles; `null` without data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, ToSchema)]
pub struct Percentiles {
    /// Median.
    pub p50: Option<f64>,
    /// 90th percentile.
    pub p90: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
}

/// Revenue of one currency, minor units.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Revenue {
    /// Lowercase ISO 4217.
    pub currency: String,
    /// Paid by viewers (subscriptions and tips).
    pub gross: i64,
    /// The platform's fees.
    pub fees: i64,
    /// The channel's share: gross − fees.
    pub net: i64,
    /// Gross from tips.
    pub tips: i64,
    /// Gross from subscriptions.
    pub subscriptions: i64,
}

/// A range's figures (`docs/ANALYTICS.md` defines each).
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct Figures {
    /// Start of the range, Unix ms.
    pub from: i64,
    /// End of the range, Unix ms.
    pub to: i64,
    /// Highest concurrent viewers sampled.
    pub peak_viewers: i64,
    /// Mean of the concurrency samples.
    pub average_viewers: f64,
    /// Concurrency samples taken.
    pub samples: i64,
    /// Minutes watched, summed over sessions (within the range).
    pub viewer_minutes: f64,
    /// Distinct viewers: users by id, anonymous viewers by session.
    pub unique_viewers: i64,
    /// Viewer sessions.
    pub sessions: i64,
    /// Seconds watched per unique viewer.
    pub average_watch_seconds: f64,
    /// Seconds from the WHEP offer to the first video sent, over sessions.
    pub join_seconds: Percentiles,
    /// Share of the reported watch time spent stalled, over sessions that reported.
    pub rebuffer_ratio: Percentiles,
    /// Stalls reported, summed.
    pub stalls: i64,
    /// Chat messages posted (not deleted).
    pub chat_messages: i64,
    /// Distinct users who posted.
    pub chatters: i64,
    /// Per currency.
    pub revenue: Vec<Revenue>,
}

/// A session as the figures need it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SessionRow {
    /// Who (user id or `anon:<session>`).
    pub viewer: String,
    /// Unix ms.
    pub opened_at: i64,
    /// Unix ms; `None`: still open.
    pub closed_at: Option<i64>,
    /// Join time, ms.
    pub join_ms: Option<i64>,
    /// Reported stall time, ms.
    pub stall_ms: i64,
    /// Reported stalls.
    pub stalls: i64,
    /// Reported watch time, ms.
    pub watched_ms: i64,
}

/// Nearest-rank percentiles of `v` (sorted here).
pub fn percentiles(mut v: Vec<f64>) -> Percentiles {
    if v.is_empty() {
        return Percentiles::default();
    }
    v.sort_by(f64::total_cmp);
    let at = |p: f64| {
        let rank = (p * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1]
    };
    Percentiles {
        p50: Some(at(0.5)),
        p90: Some(at(0.9)),
        p99: Some(at(0.99)),
    }
}

/// The session figures of `[from, to)` at `now`: viewer minutes (each session clipped to
/// the range; an open one runs to `now`), unique viewers, watch time, join and rebuffer
/// percentiles.
pub fn figures(from: i64, to: i64, now: i64, rows: &[SessionRow]) -> Figures {
    let mut watched_ms = 0i64;
    let mut viewers = HashSet::new();
    let mut joins = Vec::new();
    let mut rebuffer = Vec::new();
    let mut stalls = 0;
    for r in rows {
        let end = r.closed_at.unwrap_or(now).min(to);
        watched_ms += (end - r.opened_at.max(from)).max(0);
        viewers.insert(r.viewer.as_str());
        if let Some(j) = r.join_ms {
            joins.push(j as f64 / 1000.0);
        }
        if r.watched_ms > 0 {
            rebuffer.push((r.stall_ms as f64 / r.watched_ms as f64).min(1.0));
        }
        stalls += r.stalls;
    }
    let unique = i64::try_from(viewers.len()).unwrap_or(i64::MAX);
    Figures {
        from,
        to,
        viewer_minutes: watched_ms as f64 / 60_000.0,
        unique_viewers: unique,
        sessions: i64::try_from(rows.len()).unwrap_or(i64::MAX),
        average_watch_seconds: if unique > 0 {
            watched_ms as f64 / 1000.0 / unique as f64
        } else {
            0.0
        },
        join_seconds: percentiles(joins),
        rebuffer_ratio: percentiles(rebuffer),
        stalls,
        ..Figures::default()
    }
}

/// Whose figures: a channel over a range, or one broadcast (its sessions and samples).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scope<'a> {
    pub channel_id: &'a str,
    pub broadcast_id: Option<&'a str>,
    pub from: i64,
    pub to: i64,
}

/// Computes a scope's figures.
pub(crate) async fn compute(
    cp: &ControlPlane,
    scope: Scope<'_>,
    now: i64,
) -> Result<Figures, sqlx::Error> {
    let Scope {
        channel_id,
        broadcast_id,
        from,
        to,
    } = scope;
    let rows: Vec<SessionRow> = sqlx::query_as(
        "SELECT viewer, opened_at, closed_at, join_ms, stall_ms, stalls, watched_ms \
         FROM viewer_sessions WHERE channel_id = $1 AND opened_at < $3 \
         AND (closed_at IS NULL OR closed_at > $2) ORDER BY opened_at DESC LIMIT $4",
    )
    .bind(channel_id)
    .bind(from)
    .bind(to)
    .bind(MAX_SESSIONS)
    .fetch_all(cp.pool())
    .await?;
    let mut f = figures(from, to, now, &rows);
    // Samples of the broadcast, or of the range's minutes.
    let (samples, sum, peak): (Option<i64>, Option<i64>, Option<i64>) = match broadcast_id {
        Some(b) => {
            sqlx::query_as(
                "SELECT CAST(SUM(samples) AS BIGINT), CAST(SUM(viewer_sum) AS BIGINT), MAX(peak) FROM analytics_minutes \
                 WHERE channel_id = $1 AND broadcast_id = $2",
            )
            .bind(channel_id)
            .bind(b)
            .fetch_one(cp.pool())
            .await?
        }
        None => {
            sqlx::query_as(
                "SELECT CAST(SUM(samples) AS BIGINT), CAST(SUM(viewer_sum) AS BIGINT), MAX(peak) FROM analytics_minutes \
                 WHERE channel_id = $1 AND minute >= $2 AND minute < $3",
            )
            .bind(channel_id)
            .bind(from - from.rem_euclid(60_000))
            .bind(to)
            .fetch_one(cp.pool())
            .await?
        }
    };
    f.samples = samples.unwrap_or(0);
    f.peak_viewers = peak.unwrap_or(0);
    if f.samples > 0 {
        f.average_viewers = sum.unwrap_or(0) as f64 / f.samples as f64;
    }
    let (messages, chatters): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT user_id) FROM chat_messages WHERE channel_id = $1 \
         AND created_at >= $2 AND created_at < $3 AND deleted_at IS NULL",
    )
    .bind(channel_id)
    .bind(from)
    .bind(to)
    .fetch_one(cp.pool())
    .await?;
    f.chat_messages = messages;
    f.chatters = chatters;
    f.revenue = revenue(cp, channel_id, from, to).await?;
    Ok(f)
}

/// The ledger's payments to the channel in the range, per currency: each payment's two
/// legs (`gateway:stripe` debited, the channel's earnings and `platform:fees` credited)
/// by the transaction's kind.
async fn revenue(
    cp: &ControlPlane,
    channel_id: &str,
    from: i64,
    to: i64,
) -> Result<Vec<Revenue>, sqlx::Error> {
    let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
        "SELECT t.kind, p.credit_account, p.currency, CAST(SUM(p.amount) AS BIGINT) FROM ledger_transactions t \
         JOIN ledger_postings p ON p.txn_id = t.id WHERE t.channel_id = $1 \
         AND t.kind IN ('subscription', 'tip') AND t.created_at >= $2 AND t.created_at < $3 \
         AND p.debit_account = 'gateway:stripe' GROUP BY t.kind, p.credit_account, p.currency",
    )
    .bind(channel_id)
    .bind(from)
    .bind(to)
    .fetch_all(cp.pool())
    .await?;
    let mut by: BTreeMap<String, Revenue> = BTreeMap::new();
    for (kind, credit, currency, amount) in rows {
        let r = by.entry(currency.clone()).or_insert_with(|| Revenue {
            currency,
            ..Revenue::default()
        });
        r.gross += amount;
        if credit == "platform:fees" {
            r.fees += amount;
        } else {
            r.net += amount;
        }
        match kind.as_str() {
            "tip" => r.tips += amount,
            _ => r.subscriptions += amount,
        }
    }
    Ok(by.into_values().collect())
}

/// A report as CSV rows: `metric,value` (revenue as `revenue_<field>_<currency>`).
pub fn csv_rows(f: &Figures) -> Vec<(String, String)> {
    let p = |v: Option<f64>| v.map_or_else(String::new, |x| format!("{x:.3}"));
    let mut rows = vec![
        ("from".into(), f.from.to_string()),
        ("to".into(), f.to.to_string()),
        ("peak_viewers".into(), f.peak_viewers.to_string()),
        (
            "average_viewers".into(),
            format!("{:.3}", f.average_viewers),
        ),
        ("samples".into(), f.samples.to_string()),
        ("viewer_minutes".into(), format!("{:.3}", f.viewer_minutes)),
        ("unique_viewers".into(), f.unique_viewers.to_string()),
        ("sessions".into(), f.sessions.to_string()),
        (
            "average_watch_seconds".into(),
            format!("{:.3}", f.average_watch_seconds),
        ),
        ("join_seconds_p50".into(), p(f.join_seconds.p50)),
        ("join_seconds_p90".into(), p(f.join_seconds.p90)),
        ("join_seconds_p99".into(), p(f.join_seconds.p99)),
        ("rebuffer_ratio_p50".into(), p(f.rebuffer_ratio.p50)),
        ("rebuffer_ratio_p90".into(), p(f.rebuffer_ratio.p90)),
        ("rebuffer_ratio_p99".into(), p(f.rebuffer_ratio.p99)),
        ("stalls".into(), f.stalls.to_string()),
        ("chat_messages".into(), f.chat_messages.to_string()),
        ("chatters".into(), f.chatters.to_string()),
    ];
    for r in &f.revenue {
        for (name, v) in [
            ("gross", r.gross),
            ("fees", r.fees),
            ("net", r.net),
            ("tips", r.tips),
            ("subscriptions", r.subscriptions),
        ] {
            rows.push((format!("revenue_{name}_{}", r.currency), v.to_string()));
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(viewer: &str, opened: i64, closed: Option<i64>) -> SessionRow {
        SessionRow {
            viewer: viewer.into(),
            opened_at: opened,
            closed_at: closed,
            join_ms: Some(500),
            stall_ms: 0,
            stalls: 0,
            watched_ms: 0,
        }
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        assert_eq!(percentiles(vec![]), Percentiles::default());
        let p = percentiles((1..=100).map(f64::from).collect());
        assert_eq!((p.p50, p.p90, p.p99), (Some(50.0), Some(90.0), Some(99.0)));
        assert_eq!(percentiles(vec![3.0]).p99, Some(3.0));
    }

    #[test]
    fn sessions_are_clipped_to_the_range_and_viewers_counted_once() {
        let rows = [
            row("u1", 0, Some(120_000)),
            row("u1", 120_000, Some(180_000)),
            row("anon:s", 60_000, None),
        ];
        let f = figures(60_000, 240_000, 200_000, &rows);
        // u1: 60 s + 60 s within the range; the open one: 60 s → 200 s (now).
        assert!((f.viewer_minutes - (2.0 + 140.0 / 60.0)).abs() < 1e-9);
        assert_eq!((f.unique_viewers, f.sessions), (2, 3));
        assert_eq!(f.join_seconds.p50, Some(0.5));
        assert!(f.rebuffer_ratio.p50.is_none());
    }
}
