//! Follows as discovery uses them (following and unfollowing are chat's routes,
//! `chat/moderation`): followed channels live now, the channel page's summary with its
//! follower count, and the notifications followers get when a channel goes live: stored,
//! listed, marked read, and pushed to the user's open pages as server-sent events.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::cards::{self, Card};
use crate::channels::{self, Channel};
use crate::db::now_ms;
use crate::error::{ApiResult, Problem};
use crate::extract::{Caller, Json, MaybeCaller, Path};
use crate::tokens::random_id;
use crate::{ControlPlane, Error};

/// Notifications are kept this long (30 days).
const KEEP_MS: i64 = 30 * 24 * 3600 * 1000;
/// An open event stream also looks at the database this often (a notification written
/// by another process wakes no one here).
const RECHECK: Duration = Duration::from_secs(10);

/// Tells every follower of `channel_id` that it is live (once per [`super::RENOTIFY_MS`]);
/// returns how many were told.
pub(crate) async fn notify_followers(
    cp: &ControlPlane,
    channel_id: &str,
    stream: &str,
    now: i64,
) -> Result<u64, sqlx::Error> {
    let title: Option<(String,)> = sqlx::query_as("SELECT title FROM channels WHERE id = $1")
        .bind(channel_id)
        .fetch_optional(cp.pool())
        .await?;
    let Some((title,)) = title else { return Ok(0) };
    let done = sqlx::query(
        "INSERT INTO notifications (id, user_id, kind, channel_id, text, created_at) \
         SELECT $1 || f.user_id, f.user_id, 'live', f.channel_id, $2, $3 \
         FROM channel_follows f WHERE f.channel_id = $4 AND NOT EXISTS ( \
         SELECT 1 FROM notifications n WHERE n.user_id = f.user_id \
         AND n.channel_id = f.channel_id AND n.kind = 'live' AND n.created_at > $5)",
    )
    .bind(format!("{}:", random_id()))
    .bind(format!("{title} is live"))
    .bind(now)
    .bind(channel_id)
    .bind(now - super::RENOTIFY_MS)
    .execute(cp.pool())
    .await?;
    let told: Vec<(String,)> = sqlx::query_as(
        "SELECT user_id FROM notifications WHERE channel_id = $1 AND created_at = $2",
    )
    .bind(channel_id)
    .bind(now)
    .fetch_all(cp.pool())
    .await?;
    for (user,) in told {
        let _ = cp.discovery().notified.send(user);
    }
    tracing::debug!(stream, told = done.rows_affected(), "followers notified");
    // Notifications are kept KEEP_MS.
    sqlx::query("DELETE FROM notifications WHERE created_at < $1")
        .bind(now - KEEP_MS)
        .execute(cp.pool())
        .await?;
    Ok(done.rows_affected())
}

/// Channels the caller follows that are live now, most watched first.
#[utoipa::path(get, path = "/api/v1/me/following/live", tag = "discovery", security(("access_token" = [])),
    responses((status = 200, body = [Card]), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn following_live(
    State(cp): State<ControlPlane>,
    caller: Caller,
) -> ApiResult<axum::Json<Vec<Card>>> {
    Ok(axum::Json(
        cards::query(
            &cp,
            "l.channel_id IS NOT NULL AND c.id IN \
             (SELECT channel_id FROM channel_follows WHERE user_id = $2)",
            "l.viewers DESC, c.id",
            100,
            &[&caller.0.id],
        )
        .await?,
    ))
}

/// What a channel's page shows besides its player.
#[derive(Debug, Serialize, ToSchema)]
pub struct Profile {
    /// The channel.
    pub channel: Channel,
    /// Live or not, viewers, thumbnail, followers.
    pub card: Card,
    /// Whether the caller follows it (false when signed out).
    pub following: bool,
    /// Past broadcasts and videos, newest first: empty until videos exist (the content
    /// module fills it through [`past`]).
    pub videos: Vec<serde_json::Value>,
}

/// Most videos a channel's page lists.
const PAST_LIMIT: i64 = 50;

/// The channel's past broadcasts and uploads for its page: its public videos, newest
/// first, each with its title, kind, duration, still picture and the page that plays it.
pub(crate) async fn past(cp: &ControlPlane, channel_id: &str) -> ApiResult<Vec<serde_json::Value>> {
    type Row = (String, String, String, i64, i64, Option<String>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, title, kind, duration_ms, created_at, thumbnail_url FROM videos \
         WHERE channel_id = $1 AND visibility = 'public' ORDER BY created_at DESC LIMIT $2",
    )
    .bind(channel_id)
    .bind(PAST_LIMIT)
    .fetch_all(cp.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(id, title, kind, duration_ms, created_at, thumbnail_url)| {
                serde_json::json!({
                    "id": id,
                    "title": title,
                    "kind": kind,
                    "duration_ms": duration_ms,
                    "created_at": created_at,
                    "thumbnail_url": thumbnail_url,
                    "url": format!("/video/{id}"),
                })
            },
        )
        .collect())
}

/// A public channel's page: the channel, whether it is live, followers, whether the caller
/// follows it, its videos.
#[utoipa::path(get, path = "/api/v1/channels/{slug}/profile", tag = "discovery",
    params(("slug" = String, Path)),
    responses((status = 200, body = Profile), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn profile(
    State(cp): State<ControlPlane>,
    MaybeCaller(caller): MaybeCaller,
    Path(slug): Path<String>,
) -> ApiResult<axum::Json<Profile>> {
    let ch = channels::by_slug(&cp, &slug)
        .await?
        .ok_or(Error::NotFound)?;
    if !channels::may_watch(&cp, &ch, caller.as_ref()).await? {
        return Err(Error::NotFound);
    }
    // A channel that is not public has no card in lists; its page still shows it.
    let card = cards::query(&cp, "c.id = $2", "c.id", 1, &[&ch.id])
        .await?
        .pop()
        .unwrap_or_else(|| Card {
            id: ch.id.clone(),
            channel: ch.slug.clone(),
            title: ch.title.clone(),
            category: ch.category.clone(),
            tags: serde_json::from_str(&ch.tags).unwrap_or_default(),
            owner: ch.owner.clone(),
            live: false,
            viewers: 0,
            started_at: None,
            score: 0.0,
            thumbnail: None,
            followers: 0,
            reason: None,
        });
    let following = match &caller {
        None => false,
        Some(c) => sqlx::query_as::<_, (i64,)>(
            "SELECT created_at FROM channel_follows WHERE channel_id = $1 AND user_id = $2",
        )
        .bind(&ch.id)
        .bind(&c.0.id)
        .fetch_optional(cp.pool())
        .await?
        .is_some(),
    };
    let videos = past(&cp, &ch.id).await?;
    Ok(axum::Json(Profile {
        channel: ch.into(),
        card,
        following,
        videos,
    }))
}

/// An in-app notification.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Notification {
    /// Opaque id.
    pub id: String,
    /// `live`: a followed channel went live.
    pub kind: String,
    /// The channel's slug.
    pub channel: String,
    /// What to show.
    pub text: String,
    /// Unix ms.
    pub created_at: i64,
    /// When it was marked read (Unix ms), or null.
    pub read_at: Option<i64>,
}

/// The caller's notifications, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct Notifications {
    /// Newest first (at most 50).
    pub items: Vec<Notification>,
    /// How many are unread.
    pub unread: i64,
}

async fn newest(
    cp: &ControlPlane,
    user: &str,
    after: i64,
) -> Result<Vec<Notification>, sqlx::Error> {
    sqlx::query_as(
        "SELECT n.id, n.kind, c.slug AS channel, n.text, n.created_at, n.read_at \
         FROM notifications n JOIN channels c ON c.id = n.channel_id \
         WHERE n.user_id = $1 AND n.created_at > $2 ORDER BY n.created_at DESC, n.id LIMIT 50",
    )
    .bind(user)
    .bind(after)
    .fetch_all(cp.pool())
    .await
}

/// The caller's notifications.
#[utoipa::path(get, path = "/api/v1/me/notifications", tag = "discovery", security(("access_token" = [])),
    responses((status = 200, body = Notifications), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn notifications(
    State(cp): State<ControlPlane>,
    caller: Caller,
) -> ApiResult<axum::Json<Notifications>> {
    let items = newest(&cp, &caller.0.id, i64::MIN).await?;
    let (unread,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM notifications WHERE user_id = $1 AND read_at IS NULL")
            .bind(&caller.0.id)
            .fetch_one(cp.pool())
            .await?;
    Ok(axum::Json(Notifications { items, unread }))
}

/// Which notifications to mark read.
#[derive(Debug, Deserialize, ToSchema)]
pub struct MarkRead {
    /// These (at most 100); absent: all.
    pub ids: Option<Vec<String>>,
}

/// Mark notifications read.
#[utoipa::path(post, path = "/api/v1/me/notifications/read", tag = "discovery", security(("access_token" = [])),
    request_body = MarkRead,
    responses((status = 204), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn mark_read(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Json(req): Json<MarkRead>,
) -> ApiResult<StatusCode> {
    let now = now_ms();
    match req.ids {
        None => {
            sqlx::query(
                "UPDATE notifications SET read_at = $1 WHERE user_id = $2 AND read_at IS NULL",
            )
            .bind(now)
            .bind(&caller.0.id)
            .execute(cp.pool())
            .await?;
        }
        Some(ids) if ids.len() > 100 => {
            return Err(Error::Invalid("at most 100 ids at once".into()));
        }
        Some(ids) => {
            for id in ids {
                sqlx::query(
                    "UPDATE notifications SET read_at = $1 \
                     WHERE id = $2 AND user_id = $3 AND read_at IS NULL",
                )
                .bind(now)
                .bind(&id)
                .bind(&caller.0.id)
                .execute(cp.pool())
                .await?;
            }
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

/// New notifications as they come, as server-sent events (`notification`, the
/// notification as JSON), for an open page; the client reads it with `fetch` (it needs the
/// `Authorization` header an `EventSource` cannot send).
#[utoipa::path(get, path = "/api/v1/me/notifications/events", tag = "discovery", security(("access_token" = [])),
    responses((status = 200, content_type = "text/event-stream", description = "`notification` events"),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn events(
    State(cp): State<ControlPlane>,
    caller: Caller,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let user = caller.0.id.clone();
    let rx = cp.discovery().subscribe();
    let since = now_ms();
    let state = (cp, user, rx, since, Vec::<Notification>::new());
    let stream = futures_util::stream::unfold(
        state,
        |(cp, user, mut rx, mut since, mut queue)| async move {
            loop {
                if let Some(n) = queue.pop() {
                    let data = serde_json::to_string(&n).unwrap_or_default();
                    let ev = Event::default().event("notification").data(data);
                    return Some((Ok(ev), (cp, user, rx, since, queue)));
                }
                // Woken for this user, or the periodic look (another process's notification).
                let woke = tokio::time::timeout(RECHECK, async {
                    loop {
                        match rx.recv().await {
                            Ok(u) if u == user => return true,
                            Ok(_) => {}
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                                return true
                            }
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => return false,
                        }
                    }
                })
                .await;
                if woke == Ok(false) {
                    return None;
                }
                match newest(&cp, &user, since).await {
                    Ok(list) => {
                        if let Some(n) = list.first() {
                            since = n.created_at;
                        }
                        // Oldest last in `list`; `pop` sends oldest first.
                        queue = list;
                    }
                    Err(e) => tracing::warn!("notifications: {e}"),
                }
            }
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}
