//! Cueing an ad break (the channel's owner, an admin, or an API key with
//! `channel:manage`), and the channel's default ad tag.
//!
//! A break starts [`LEAD_MS`] after the cue: the frame that reaches each node at that
//! wall-clock time, which each viewer's event stream names in the viewer's own RTP
//! timestamps (`signaling/src/cues.rs`, docs/ADS.md); subscribers of an ad-free tier are
//! told it with `"skip": true`. One break at a time.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::{ad_tag, url, Cue, LEAD_MS};
use crate::channels::owned;
use crate::db::now_ms;
use crate::error::{ApiResult, Problem};
use crate::extract::{Caller, Json, Path};
use crate::tokens::random_id;
use crate::webhooks::event::{rfc3339, Event, EventType};
use crate::{ControlPlane, Error};

/// Shortest and longest break, seconds.
pub const DURATION_RANGE: (i64, i64) = (1, 600);

/// `POST /channels/{slug}/ad-breaks`
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewAdBreak {
    /// Seconds (1 to 600).
    #[schema(minimum = 1, maximum = 600)]
    pub duration_s: i64,
    /// The ad tag (a VAST endpoint); the channel's default when absent. `{stream}` and
    /// `{duration}` are filled in.
    #[serde(default)]
    pub ad_tag_url: Option<String>,
}

/// A break as cued.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdBreak {
    /// Opaque id.
    pub id: String,
    /// The channel's slug (its stream).
    pub stream: String,
    /// When it starts, Unix ms (the cue's time plus 2 s): the frame that reaches the node
    /// then, which each viewer's player starts the break on (its `adbreak` event names it
    /// in the viewer's RTP timestamps), so a viewer further behind live starts it later.
    pub starts_at: i64,
    /// The same, RFC 3339.
    pub start: String,
    /// Seconds.
    pub duration_s: i64,
    /// The ad tag, filled in; `null`: none (the player shows its own slate).
    pub ad_tag_url: Option<String>,
}

/// A channel's ad settings.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct AdSettings {
    /// The default ad tag of its breaks (`{stream}`, `{duration}` filled in); `null`:
    /// none.
    pub ad_tag_url: Option<String>,
}

/// Users entitled to skip the channel's breaks: active subscribers of an ad-free tier.
pub(crate) async fn exempt(cp: &ControlPlane, channel_id: &str) -> ApiResult<HashSet<String>> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT DISTINCT s.user_id FROM subscriptions s JOIN tiers t ON t.id = s.tier_id \
         WHERE s.channel_id = $1 AND t.ad_free = 1 AND s.status IN ('active', 'trialing')",
    )
    .bind(channel_id)
    .fetch_all(cp.pool())
    .await?;
    Ok(rows.into_iter().map(|(u,)| u).collect())
}

async fn default_tag(cp: &ControlPlane, channel_id: &str) -> ApiResult<Option<String>> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT ad_tag_url FROM channel_ads WHERE channel_id = $1")
            .bind(channel_id)
            .fetch_optional(cp.pool())
            .await?;
    Ok(row.map(|(u,)| u))
}

/// Cue an ad break: every viewer's player is told at once, to start 2 s later.
#[utoipa::path(post, path = "/api/v1/channels/{slug}/ad-breaks", tag = "ads", security(("access_token" = []), ("api_key" = [])), params(("slug" = String, Path)), request_body = NewAdBreak,
    responses((status = 201, body = AdBreak), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn cue(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(slug): Path<String>,
    Json(req): Json<NewAdBreak>,
) -> ApiResult<(StatusCode, axum::Json<AdBreak>)> {
    let ch = owned(&cp, &caller, &slug).await?;
    if !(DURATION_RANGE.0..=DURATION_RANGE.1).contains(&req.duration_s) {
        return Err(Error::Invalid("duration_s must be 1 to 600".into()));
    }
    let template = match req.ad_tag_url.as_deref() {
        Some(u) => Some(url("ad_tag_url", u)?),
        None => default_tag(&cp, &ch.id).await?,
    };
    let tag = template.map(|t| ad_tag(&t, &ch.slug, req.duration_s));
    let now = now_ms();
    let running: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM ad_breaks WHERE channel_id = $1 AND starts_at + duration_s * 1000 > $2 \
         LIMIT 1",
    )
    .bind(&ch.id)
    .bind(now)
    .fetch_optional(cp.pool())
    .await?;
    if running.is_some() {
        return Err(Error::Conflict("a break is already under way"));
    }
    let brk = AdBreak {
        id: random_id(),
        stream: ch.slug.clone(),
        starts_at: now + LEAD_MS,
        start: rfc3339(now + LEAD_MS),
        duration_s: req.duration_s,
        ad_tag_url: tag,
    };
    sqlx::query(
        "INSERT INTO ad_breaks (id, channel_id, duration_s, ad_tag_url, starts_at, created_by, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&brk.id)
    .bind(&ch.id)
    .bind(brk.duration_s)
    .bind(&brk.ad_tag_url)
    .bind(brk.starts_at)
    .bind(&caller.0.id)
    .bind(now)
    .execute(cp.pool())
    .await?;
    let data = json!({
        "id": brk.id,
        "starts_at": brk.starts_at,
        "start": brk.start,
        "duration_s": brk.duration_s,
        "ad_tag_url": brk.ad_tag_url,
        "skip": false,
    });
    cp.send_cue(Cue {
        stream: ch.slug.clone(),
        event: "adbreak",
        data,
        until_ms: brk.starts_at + brk.duration_s * 1000,
        exempt: Arc::new(exempt(&cp, &ch.id).await?),
    })
    .await;
    let hook = json!({
        "stream": ch.slug,
        "break_id": brk.id,
        "starts_at": brk.start,
        "duration_s": brk.duration_s,
        "ad_tag_url": brk.ad_tag_url,
    });
    cp.webhooks()
        .emit(Some(&ch.id), Event::Other(EventType::AdBreakStarted, hook))
        .await;
    Ok((StatusCode::CREATED, axum::Json(brk)))
}

/// A channel's ad settings (its owner).
#[utoipa::path(get, path = "/api/v1/channels/{slug}/ads", tag = "ads", security(("access_token" = []), ("api_key" = [])), params(("slug" = String, Path)),
    responses((status = 200, body = AdSettings), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn settings(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(slug): Path<String>,
) -> ApiResult<axum::Json<AdSettings>> {
    let ch = owned(&cp, &caller, &slug).await?;
    Ok(axum::Json(AdSettings {
        ad_tag_url: default_tag(&cp, &ch.id).await?,
    }))
}

/// Set a channel's default ad tag (`null` removes it).
#[utoipa::path(put, path = "/api/v1/channels/{slug}/ads", tag = "ads", security(("access_token" = []), ("api_key" = [])), params(("slug" = String, Path)), request_body = AdSettings,
    responses((status = 200, body = AdSettings), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn set_settings(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(slug): Path<String>,
    Json(req): Json<AdSettings>,
) -> ApiResult<axum::Json<AdSettings>> {
    let ch = owned(&cp, &caller, &slug).await?;
    match req.ad_tag_url.as_deref() {
        Some(u) => {
            let u = url("ad_tag_url", u)?;
            sqlx::query(
                "INSERT INTO channel_ads (channel_id, ad_tag_url, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (channel_id) DO UPDATE SET ad_tag_url = excluded.ad_tag_url, \
                 updated_at = excluded.updated_at",
            )
            .bind(&ch.id)
            .bind(&u)
            .bind(now_ms())
            .execute(cp.pool())
            .await?;
            Ok(axum::Json(AdSettings {
                ad_tag_url: Some(u),
            }))
        }
        None => {
            sqlx::query("DELETE FROM channel_ads WHERE channel_id = $1")
                .bind(&ch.id)
                .execute(cp.pool())
                .await?;
            Ok(axum::Json(AdSettings { ad_tag_url: None }))
        }
    }
}
