//! Recommendations. For a signed-in viewer: channels watched by the people who watched
//! the channels this viewer watched or follows (co-viewing, from the analytics'
//! `viewer_sessions` of the last [`LOOKBACK_MS`]), not already watched, followed or owned;
//! live ones first, then by how many such people; filled up with trending live channels.
//! For an anonymous viewer: trending.

use axum::extract::State;

use super::cards::{self, Card};
use super::live::LimitQuery;
use crate::db::now_ms;
use crate::error::{ApiResult, Problem};
use crate::extract::{MaybeCaller, Query};
use crate::ControlPlane;

/// Co-viewing looks this far back (30 days).
const LOOKBACK_MS: i64 = 30 * 24 * 3600 * 1000;

/// Channels co-viewed with what `user` watched or follows: (channel id, viewers in
/// common), most first.
async fn co_viewed(cp: &ControlPlane, user: &str) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "WITH seeds AS (SELECT channel_id FROM viewer_sessions WHERE viewer = $1 \
         AND opened_at > $2 UNION SELECT channel_id FROM channel_follows WHERE user_id = $1), \
         peers AS (SELECT DISTINCT p.viewer FROM viewer_sessions p JOIN seeds s \
         ON s.channel_id = p.channel_id WHERE p.viewer <> $1 AND p.opened_at > $2) \
         SELECT o.channel_id, COUNT(DISTINCT o.viewer) AS n FROM viewer_sessions o \
         JOIN peers ON peers.viewer = o.viewer \
         WHERE o.opened_at > $2 AND o.channel_id NOT IN (SELECT channel_id FROM seeds) \
         AND o.channel_id NOT IN (SELECT id FROM channels WHERE owner_id = $1) \
         GROUP BY o.channel_id ORDER BY n DESC, o.channel_id LIMIT 100",
    )
    .bind(user)
    .bind(now_ms() - LOOKBACK_MS)
    .fetch_all(cp.pool())
    .await
}

/// Channels for the caller: co-viewing (live first), then trending.
#[utoipa::path(get, path = "/api/v1/recommendations", tag = "discovery", params(LimitQuery),
    responses((status = 200, body = [Card]), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn recommendations(
    State(cp): State<ControlPlane>,
    MaybeCaller(caller): MaybeCaller,
    Query(q): Query<LimitQuery>,
) -> ApiResult<axum::Json<Vec<Card>>> {
    let limit = cards::limit(q.limit)?;
    let mut out: Vec<Card> = Vec::new();
    let mut skip: Vec<String> = Vec::new();
    if let Some(caller) = &caller {
        let user = caller.0.id.as_str();
        let co = co_viewed(&cp, user).await?;
        if !co.is_empty() {
            let ids: Vec<&str> = co.iter().map(|(id, _)| id.as_str()).collect();
            let marks: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 2)).collect();
            let filter = format!("c.id IN ({})", marks.join(", "));
            let mut found = cards::query(&cp, &filter, "c.id", 100, &ids).await?;
            let rank = |id: &str| co.iter().position(|(c, _)| c == id).unwrap_or(usize::MAX);
            found.sort_by_key(|c| (!c.live, rank(&c.id)));
            for mut c in found {
                c.reason = Some("co_viewing".into());
                out.push(c);
            }
        }
        // Followed and own channels are not recommended by trending either.
        let mine: Vec<(String,)> = sqlx::query_as(
            "SELECT c.slug FROM channels c WHERE c.owner_id = $1 OR c.id IN \
             (SELECT channel_id FROM channel_follows WHERE user_id = $1)",
        )
        .bind(user)
        .fetch_all(cp.pool())
        .await?;
        skip.extend(mine.into_iter().map(|(s,)| s));
    }
    out.truncate(usize::try_from(limit).unwrap_or(0));
    if (out.len() as i64) < limit {
        let trending = cards::query(
            &cp,
            "l.channel_id IS NOT NULL",
            "l.score DESC, l.viewers DESC, c.id",
            100,
            &[],
        )
        .await?;
        for mut c in trending {
            if out.len() as i64 >= limit {
                break;
            }
            if skip.contains(&c.channel) || out.iter().any(|o| o.channel == c.channel) {
                continue;
            }
            c.reason = Some("trending".into());
            out.push(c);
        }
    }
    Ok(axum::Json(out))
}
