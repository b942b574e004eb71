//! A channel as every list shows it (live now, trending, following, recommendations, the
//! channel page): title and category (the studio's while live), live or not, viewers,
//! thumbnail. One query, filtered and ordered by its callers; public channels only.

use serde::Serialize;
use utoipa::ToSchema;

use super::LIVE_FRESH_MS;
use crate::db::now_ms;
use crate::ControlPlane;

/// A channel in a list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Card {
    /// The channel's id (not sent).
    #[serde(skip)]
    pub(crate) id: String,
    /// The channel's slug (its page: `/watch/{channel}`).
    pub channel: String,
    /// The stream's title while live (as set in the studio), else the channel's.
    pub title: String,
    /// The stream's category while live (as set in the studio), else the channel's.
    pub category: String,
    /// The channel's tags.
    pub tags: Vec<String>,
    /// The owner's username.
    pub owner: String,
    /// Live now.
    pub live: bool,
    /// Concurrent viewers (0 when offline).
    pub viewers: i64,
    /// When the live stream started (Unix ms).
    pub started_at: Option<i64>,
    /// The trending score (docs/DISCOVERY.md; 0 when offline).
    pub score: f64,
    /// The newest frame the studio posted (a JPEG URL that changes with the frame).
    pub thumbnail: Option<String>,
    /// Followers.
    pub followers: i64,
    /// Why it is recommended (`co_viewing`, `trending`), on recommendations only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct CardRow {
    pub id: String,
    slug: String,
    title: String,
    category: String,
    tags: String,
    owner: String,
    live: i64,
    viewers: Option<i64>,
    started_at: Option<i64>,
    score: Option<f64>,
    etag: Option<String>,
    followers: i64,
}

impl CardRow {
    pub(crate) fn card(self) -> Card {
        Card {
            id: self.id,
            thumbnail: self
                .etag
                .map(|e| format!("/api/v1/channels/{}/thumbnail?v={e}", self.slug)),
            channel: self.slug,
            title: self.title,
            category: self.category,
            tags: serde_json::from_str(&self.tags).unwrap_or_default(),
            owner: self.owner,
            live: self.live != 0,
            viewers: self.viewers.unwrap_or(0),
            started_at: self.started_at,
            score: self.score.unwrap_or(0.0),
            followers: self.followers,
            reason: None,
        }
    }
}

/// Cards of public channels matching `filter` (SQL over `c` channels, `l` live_streams,
/// `s` stream_info; `$1` is taken, `args` are `$2`, `$3`, …), in `order`.
pub(crate) async fn query(
    cp: &ControlPlane,
    filter: &str,
    order: &str,
    limit: i64,
    args: &[&str],
) -> Result<Vec<Card>, sqlx::Error> {
    let sql = format!(
        "SELECT c.id, c.slug, \
         CASE WHEN l.channel_id IS NOT NULL AND s.title IS NOT NULL AND s.title <> '' \
         THEN s.title ELSE c.title END AS title, \
         CASE WHEN l.channel_id IS NOT NULL AND s.category IS NOT NULL AND s.category <> '' \
         THEN s.category ELSE c.category END AS category, \
         c.tags, u.username AS owner, \
         CASE WHEN l.channel_id IS NULL THEN 0 ELSE 1 END AS live, \
         l.viewers, l.started_at, l.score, t.etag, \
         (SELECT COUNT(*) FROM channel_follows f WHERE f.channel_id = c.id) AS followers \
         FROM channels c JOIN users u ON u.id = c.owner_id \
         LEFT JOIN live_streams l ON l.channel_id = c.id AND l.updated_at > $1 \
         LEFT JOIN stream_info s ON s.channel_id = c.id \
         LEFT JOIN thumbnails t ON t.channel_id = c.id \
         WHERE c.visibility = 'public' AND ({filter}) ORDER BY {order} LIMIT {limit}"
    );
    let mut q =
        sqlx::query_as::<_, CardRow>(sqlx::AssertSqlSafe(sql)).bind(now_ms() - LIVE_FRESH_MS);
    for a in args {
        q = q.bind(*a);
    }
    Ok(q.fetch_all(cp.pool())
        .await?
        .into_iter()
        .map(CardRow::card)
        .collect())
}

/// A `?limit=` checked: 1 to 100, 20 by default.
pub(crate) fn limit(l: Option<i64>) -> Result<i64, crate::Error> {
    match l.unwrap_or(20) {
        n @ 1..=100 => Ok(n),
        _ => Err(crate::Error::Invalid("limit is 1 to 100".into())),
    }
}
