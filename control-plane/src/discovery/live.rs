//! Browse and search over HTTP: categories, live now (by category or tag, most watched
//! first), trending, the studio's stream title and category, and search.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::cards::{self, Card};
use super::search::{self, Hit};
use crate::error::{ApiResult, Problem};
use crate::extract::{Caller, Json, Path, Query};
use crate::{channels, model, ControlPlane, Error};

/// A category to browse.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Category {
    /// Its slug (`?category=` takes it).
    pub slug: String,
    /// Its name.
    pub name: String,
    /// Public channels live in it now.
    pub live: i64,
}

/// Categories, in their order, with how many channels are live in each.
#[utoipa::path(get, path = "/api/v1/categories", tag = "discovery",
    responses((status = 200, body = [Category])))]
pub(crate) async fn categories(
    State(cp): State<ControlPlane>,
) -> ApiResult<axum::Json<Vec<Category>>> {
    let all: Vec<(String, String)> =
        sqlx::query_as("SELECT slug, name FROM categories ORDER BY position")
            .fetch_all(cp.pool())
            .await?;
    let live = cards::query(&cp, "l.channel_id IS NOT NULL", "c.id", 1000, &[]).await?;
    Ok(axum::Json(
        all.into_iter()
            .map(|(slug, name)| Category {
                live: live
                    .iter()
                    .filter(|c| files_under(&c.category, &slug, &name))
                    .count() as i64,
                slug,
                name,
            })
            .collect(),
    ))
}

/// Whether free-text `category` is filed under the category `slug`/`name`.
fn files_under(category: &str, slug: &str, name: &str) -> bool {
    let c = category.trim();
    c.eq_ignore_ascii_case(slug) || c.eq_ignore_ascii_case(name)
}

/// Filters of the live list.
#[derive(Debug, Deserialize, IntoParams)]
pub struct LiveQuery {
    /// A category's slug (or any category text).
    pub category: Option<String>,
    /// A tag.
    pub tag: Option<String>,
    /// At most this many, 1 to 100 [default: 20].
    pub limit: Option<i64>,
}

/// Public channels live now, most watched first.
#[utoipa::path(get, path = "/api/v1/live", tag = "discovery", params(LiveQuery),
    responses((status = 200, body = [Card]), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn live(
    State(cp): State<ControlPlane>,
    Query(q): Query<LiveQuery>,
) -> ApiResult<axum::Json<Vec<Card>>> {
    let limit = cards::limit(q.limit)?;
    let mut filter = String::from("l.channel_id IS NOT NULL");
    let mut args: Vec<String> = Vec::new();
    if let Some(cat) = q
        .category
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        let cat = model::text("category", cat, 50)?.to_lowercase();
        let name: Option<(String,)> = sqlx::query_as("SELECT name FROM categories WHERE slug = $1")
            .bind(&cat)
            .fetch_optional(cp.pool())
            .await?;
        let name = name.map_or_else(|| cat.clone(), |(n,)| n.to_lowercase());
        // The studio's category while live, else the channel's.
        filter.push_str(
            " AND LOWER(CASE WHEN s.category IS NOT NULL AND s.category <> '' \
             THEN s.category ELSE c.category END) IN ($2, $3)",
        );
        args.extend([cat, name]);
    }
    if let Some(tag) = q.tag.as_deref().filter(|t| !t.is_empty()) {
        if tag.len() > 32
            || !tag
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(Error::Invalid(
                "a tag is 1 to 32 characters of a-z, 0-9 and -".into(),
            ));
        }
        // Tags are stored as a JSON array of such words: the quoted word is exact.
        filter.push_str(&format!(" AND c.tags LIKE ${}", args.len() + 2));
        args.push(format!("%\"{tag}\"%"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let list = cards::query(
        &cp,
        &filter,
        "l.viewers DESC, l.started_at, c.id",
        limit,
        &args,
    )
    .await?;
    Ok(axum::Json(list))
}

/// A limit alone.
#[derive(Debug, Deserialize, IntoParams)]
pub struct LimitQuery {
    /// At most this many, 1 to 100 [default: 20].
    pub limit: Option<i64>,
}

/// Live channels by trending score (docs/DISCOVERY.md), highest first.
#[utoipa::path(get, path = "/api/v1/trending", tag = "discovery", params(LimitQuery),
    responses((status = 200, body = [Card]), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn trending(
    State(cp): State<ControlPlane>,
    Query(q): Query<LimitQuery>,
) -> ApiResult<axum::Json<Vec<Card>>> {
    let limit = cards::limit(q.limit)?;
    Ok(axum::Json(
        cards::query(
            &cp,
            "l.channel_id IS NOT NULL",
            "l.score DESC, l.viewers DESC, c.id",
            limit,
            &[],
        )
        .await?,
    ))
}

/// The stream's title and category as set in the studio (empty: the channel's).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StreamInfo {
    /// Up to 140 characters.
    #[serde(default)]
    pub title: String,
    /// Up to 50 characters.
    #[serde(default)]
    pub category: String,
}

/// Set the live stream's title and category (the channel's owner).
#[utoipa::path(put, path = "/api/v1/channels/{slug}/stream-info", tag = "discovery", security(("access_token" = [])),
    params(("slug" = String, Path)), request_body = StreamInfo,
    responses((status = 200, body = StreamInfo), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn set_stream_info(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(slug): Path<String>,
    Json(req): Json<StreamInfo>,
) -> ApiResult<axum::Json<StreamInfo>> {
    let ch = channels::owned(&cp, &caller, &slug).await?;
    let info = StreamInfo {
        title: model::text("title", req.title.trim(), 140)?,
        category: model::text("category", req.category.trim(), 50)?,
    };
    sqlx::query(
        "INSERT INTO stream_info (channel_id, title, category, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (channel_id) DO UPDATE SET title = excluded.title, \
         category = excluded.category, updated_at = excluded.updated_at",
    )
    .bind(&ch.id)
    .bind(&info.title)
    .bind(&info.category)
    .bind(crate::db::now_ms())
    .execute(cp.pool())
    .await?;
    search::reindex_stream_if_live(&cp, &ch.id).await?;
    Ok(axum::Json(info))
}

/// The stream's title and category as set in the studio.
#[utoipa::path(get, path = "/api/v1/channels/{slug}/stream-info", tag = "discovery", security(("access_token" = [])),
    params(("slug" = String, Path)),
    responses((status = 200, body = StreamInfo), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn stream_info(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(slug): Path<String>,
) -> ApiResult<axum::Json<StreamInfo>> {
    let ch = channels::owned(&cp, &caller, &slug).await?;
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT title, category FROM stream_info WHERE channel_id = $1")
            .bind(&ch.id)
            .fetch_optional(cp.pool())
            .await?;
    let (title, category) = row.unwrap_or_default();
    Ok(axum::Json(StreamInfo { title, category }))
}

/// A search.
#[derive(Debug, Deserialize, IntoParams)]
pub struct SearchQuery {
    /// Words, each matched as a prefix of a word of the title, description, tags or
    /// category; anything else in it is ignored.
    pub q: Option<String>,
    /// `channel`, `stream` or `video` (default: all).
    pub kind: Option<String>,
    /// At most this many, 1 to 100 [default: 20].
    pub limit: Option<i64>,
}

/// Search public channels, live streams and videos, best match first.
#[utoipa::path(get, path = "/api/v1/search", tag = "discovery", params(SearchQuery),
    responses((status = 200, body = [Hit]), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn search(
    State(cp): State<ControlPlane>,
    Query(q): Query<SearchQuery>,
) -> ApiResult<axum::Json<Vec<Hit>>> {
    let limit = cards::limit(q.limit)?;
    let text = q.q.unwrap_or_default();
    if text.len() > 500 {
        return Err(Error::Invalid("q is at most 500 bytes".into()));
    }
    Ok(axum::Json(
        search::find(&cp, &text, q.kind.as_deref(), limit).await?,
    ))
}
