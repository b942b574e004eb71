//! Videos: a channel's recordings and uploads, listed, read, edited and deleted; who may
//! see one ([`access`]); [`register_recording`], the recorder's way in. Public videos are
//! in search (`discovery::search`, as `Kind::Video`: title and description), kept true on
//! every listing, edit and deletion ([`index`]).

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::Probe;
use crate::channels::ChannelRow;
use crate::channels::{by_slug, may_watch};
use crate::db::now_ms;
use crate::discovery::search;
use crate::error::{ApiResult, Problem};
use crate::extract::{Caller, Json, MaybeCaller, Path, Query};
use crate::model::{Role, UserRow};
use crate::tokens::{now_secs, random_id, ChannelClaim, TokenKind};
use crate::webhooks::{Event, EventType};
use crate::{ControlPlane, Error};

/// How long the media link of a private or subscribers' video works (seeking in a long
/// video reads it again and again).
pub const MEDIA_TOKEN_TTL_SECS: i64 = 6 * 3600;

/// Who may watch a video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum VideoVisibility {
    /// Listed and open to everyone who may watch the channel.
    #[default]
    Public,
    /// Open to anyone with the link, not listed.
    Unlisted,
    /// The owner (and admins) only.
    Private,
    /// Listed; played for the channel's subscribers (and the owner and admins).
    Subscribers,
}

impl VideoVisibility {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            VideoVisibility::Public => "public",
            VideoVisibility::Unlisted => "unlisted",
            VideoVisibility::Private => "private",
            VideoVisibility::Subscribers => "subscribers",
        }
    }
    fn parse(s: &str) -> VideoVisibility {
        match s {
            "unlisted" => VideoVisibility::Unlisted,
            "private" => VideoVisibility::Private,
            "subscribers" => VideoVisibility::Subscribers,
            _ => VideoVisibility::Public,
        }
    }
}

/// A `videos` row with its channel's slug and owner.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct VideoRow {
    pub id: String,
    pub channel_id: String,
    pub slug: String,
    pub owner_id: String,
    pub kind: String,
    pub title: String,
    pub description: String,
    pub visibility: String,
    pub storage_key: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub duration_ms: i64,
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub thumbnail_url: Option<String>,
    pub source_stream: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_read_at: Option<i64>,
}

pub(crate) const VIDEO_SELECT: &str = "SELECT v.id, v.channel_id, c.slug, c.owner_id, v.kind, \
     v.title, v.description, v.visibility, v.storage_key, v.content_type, v.size_bytes, \
     v.duration_ms, v.video_codec, v.audio_codec, v.width, v.height, v.thumbnail_url, \
     v.source_stream, v.created_at, v.updated_at, v.last_read_at \
     FROM videos v JOIN channels c ON c.id = v.channel_id";

/// A video.
#[derive(Debug, Serialize, ToSchema)]
pub struct Video {
    /// Opaque id.
    pub id: String,
    /// The channel's slug.
    pub channel: String,
    /// `recording` or `upload`.
    pub kind: String,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Who may watch it.
    pub visibility: VideoVisibility,
    /// Bytes.
    pub size_bytes: i64,
    /// Milliseconds.
    pub duration_ms: i64,
    /// The MIME type of its media.
    pub content_type: String,
    /// `vp8`, `vp9`, `av1`.
    pub video_codec: Option<String>,
    /// `opus`.
    pub audio_codec: Option<String>,
    /// Pixels.
    pub width: Option<i64>,
    /// Pixels.
    pub height: Option<i64>,
    /// A picture of it, if any.
    pub thumbnail_url: Option<String>,
    /// A recording's stream.
    pub source_stream: Option<String>,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
    /// Where its media is read (with range requests); a private or subscribers' video's
    /// link carries a token for the caller (hours long) and is given only to who may play.
    pub media_url: Option<String>,
}

impl VideoRow {
    fn view(self, media_url: Option<String>) -> Video {
        Video {
            visibility: VideoVisibility::parse(&self.visibility),
            id: self.id,
            channel: self.slug,
            kind: self.kind,
            title: self.title,
            description: self.description,
            size_bytes: self.size_bytes,
            duration_ms: self.duration_ms,
            content_type: self.content_type,
            video_codec: self.video_codec,
            audio_codec: self.audio_codec,
            width: self.width,
            height: self.height,
            // A private video's still needs what its media needs: the link's token (an
            // `<img>` sends no Authorization header). A subscribers' still is for all.
            thumbnail_url: self.thumbnail_url.map(|t| {
                let private = VideoVisibility::parse(&self.visibility) == VideoVisibility::Private;
                match media_url.as_deref().and_then(|m| m.split_once("?token=")) {
                    Some((_, token)) if private => format!("{t}?token={token}"),
                    _ => t,
                }
            }),
            source_stream: self.source_stream,
            created_at: self.created_at,
            updated_at: self.updated_at,
            media_url,
        }
    }

    fn plain_url(&self) -> String {
        format!("/api/v1/videos/{}/media", self.id)
    }
}

pub(crate) async fn by_id(cp: &ControlPlane, id: &str) -> ApiResult<Option<VideoRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{VIDEO_SELECT} WHERE v.id = $1"
    )))
    .bind(id)
    .fetch_optional(cp.pool())
    .await?)
}

fn manages(v: &VideoRow, user: Option<&UserRow>) -> bool {
    user.is_some_and(|u| u.id == v.owner_id || u.role() == Role::Admin)
}

/// Whether `user` (None: anonymous) may play `v`: `Ok` or the refusal to answer
/// (404 for what they may not know of, 403 `subscription_required`, 401 to sign in).
pub(crate) async fn access(
    cp: &ControlPlane,
    v: &VideoRow,
    user: Option<&Caller>,
) -> ApiResult<()> {
    let u = user.map(|c| &c.0);
    if manages(v, u) {
        return Ok(());
    }
    let ch: ChannelRow = by_slug(cp, &v.slug).await?.ok_or(Error::NotFound)?;
    if !may_watch(cp, &ch, user).await? {
        return Err(Error::NotFound);
    }
    match VideoVisibility::parse(&v.visibility) {
        VideoVisibility::Public | VideoVisibility::Unlisted => Ok(()),
        VideoVisibility::Private => Err(Error::NotFound),
        VideoVisibility::Subscribers => match u {
            None => Err(Error::SubscriptionRequired),
            Some(u) if crate::money::access::entitled(cp, &v.channel_id, &u.id).await? => Ok(()),
            Some(_) => Err(Error::SubscriptionRequired),
        },
    }
}

/// The media link for `user`, who may play `v`.
fn media_url(cp: &ControlPlane, v: &VideoRow, user: Option<&Caller>) -> ApiResult<String> {
    let vis = VideoVisibility::parse(&v.visibility);
    let Some(c) =
        user.filter(|_| matches!(vis, VideoVisibility::Private | VideoVisibility::Subscribers))
    else {
        return Ok(v.plain_url());
    };
    let scope = media_scope(&v.id);
    let claim = ChannelClaim {
        slug: &scope,
        id: &v.channel_id,
        owner: None,
        listed: false,
        paywall_open: false,
        ladder_off: false,
    };
    let token = cp.signer().issue_channel(
        TokenKind::View,
        &c.0.id,
        c.0.session_version,
        claim,
        now_secs(),
        MEDIA_TOKEN_TTL_SECS,
    )?;
    Ok(format!("{}?token={token}", v.plain_url()))
}

/// What a media token names in place of a stream: no node has a stream of that name, so
/// the token opens this video's media and nothing live.
pub(crate) fn media_scope(video_id: &str) -> String {
    format!("video:{video_id}")
}

/// `GET /channels/{slug}/videos`
#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// Videos made before this time (Unix ms), for the next page.
    pub before: Option<i64>,
    /// At most this many (1 to 100) [default: 50].
    pub limit: Option<i64>,
}

/// A channel's videos, newest first: public and subscribers' ones for everyone who may
/// watch the channel; all of them for its owner and admins.
#[utoipa::path(get, path = "/api/v1/channels/{slug}/videos", tag = "videos", params(("slug" = String, Path), ListQuery),
    responses((status = 200, body = [Video]), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn list(
    State(cp): State<ControlPlane>,
    caller: MaybeCaller,
    Path(slug): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Vec<Video>>> {
    let ch = by_slug(&cp, &slug).await?.ok_or(Error::NotFound)?;
    if !may_watch(&cp, &ch, caller.0.as_ref()).await? {
        return Err(Error::NotFound);
    }
    let limit = q.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(Error::Invalid("limit must be 1 to 100".into()));
    }
    let all = caller
        .0
        .as_ref()
        .is_some_and(|c| c.0.id == ch.owner_id || c.0.role() == Role::Admin);
    let filter = if all {
        ""
    } else {
        " AND v.visibility IN ('public', 'subscribers')"
    };
    let rows: Vec<VideoRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{VIDEO_SELECT} WHERE v.channel_id = $1 AND v.created_at < $2{filter} \
         ORDER BY v.created_at DESC, v.id LIMIT $3"
    )))
    .bind(&ch.id)
    .bind(q.before.unwrap_or(i64::MAX))
    .bind(limit)
    .fetch_all(cp.pool())
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for v in rows {
        // A link only for who may play it (a subscribers' video is listed for all).
        let url = match access(&cp, &v, caller.0.as_ref()).await {
            Ok(()) => Some(media_url(&cp, &v, caller.0.as_ref())?),
            Err(_) => None,
        };
        out.push(v.view(url));
    }
    Ok(axum::Json(out))
}

/// A video (who may play it; an unlisted one by its link).
#[utoipa::path(get, path = "/api/v1/videos/{id}", tag = "videos", params(("id" = String, Path)),
    responses((status = 200, body = Video), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn get(
    State(cp): State<ControlPlane>,
    caller: MaybeCaller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Video>> {
    let v = by_id(&cp, &id).await?.ok_or(Error::NotFound)?;
    access(&cp, &v, caller.0.as_ref()).await?;
    let url = media_url(&cp, &v, caller.0.as_ref())?;
    Ok(axum::Json(v.view(Some(url))))
}

/// `PATCH /videos/{id}`
#[derive(Debug, Deserialize, ToSchema)]
pub struct EditVideo {
    /// 1 to 100 characters.
    pub title: Option<String>,
    /// Up to 5000 characters.
    pub description: Option<String>,
    /// Who may watch it.
    pub visibility: Option<VideoVisibility>,
}

async fn managed(cp: &ControlPlane, caller: &Caller, id: &str) -> ApiResult<VideoRow> {
    let v = by_id(cp, id).await?.ok_or(Error::NotFound)?;
    if manages(&v, Some(&caller.0)) {
        caller.key_channel_allows(Some(&v.channel_id))?;
        return Ok(v);
    }
    access(cp, &v, Some(caller)).await?;
    Err(Error::Forbidden("only the channel's owner may do this"))
}

/// Edit a video's title, description or visibility (its channel's owner, admins).
#[utoipa::path(patch, path = "/api/v1/videos/{id}", tag = "videos", security(("access_token" = [])), params(("id" = String, Path)), request_body = EditVideo,
    responses((status = 200, body = Video), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn edit(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<EditVideo>,
) -> ApiResult<axum::Json<Video>> {
    let mut v = managed(&cp, &caller, &id).await?;
    if let Some(t) = &req.title {
        v.title = title(t)?;
    }
    if let Some(d) = &req.description {
        v.description = crate::model::text("description", d, 5000)?;
    }
    if let Some(vis) = req.visibility {
        v.visibility = vis.as_str().to_owned();
    }
    v.updated_at = now_ms();
    sqlx::query(
        "UPDATE videos SET title = $1, description = $2, visibility = $3, updated_at = $4 \
         WHERE id = $5",
    )
    .bind(&v.title)
    .bind(&v.description)
    .bind(&v.visibility)
    .bind(v.updated_at)
    .bind(&v.id)
    .execute(cp.pool())
    .await?;
    index(&cp, &v.id).await?;
    let url = media_url(&cp, &v, Some(&caller))?;
    Ok(axum::Json(v.view(Some(url))))
}

/// Delete a video and its stored media (its channel's owner, admins).
#[utoipa::path(delete, path = "/api/v1/videos/{id}", tag = "videos", security(("access_token" = [])), params(("id" = String, Path)),
    responses((status = 204), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn delete(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let v = managed(&cp, &caller, &id).await?;
    remove(&cp, &v.id, &v.storage_key).await?;
    let detail = format!("channel {}: {}", v.slug, v.title);
    crate::audit::record(
        &cp,
        Some(&caller.0.id),
        "video.delete",
        Some(&v.id),
        None,
        &detail,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes the stored media, then the row: a failure leaves the row (and the delete can
/// be tried again), never a listed video without media.
pub(crate) async fn remove(cp: &ControlPlane, id: &str, key: &str) -> ApiResult<()> {
    let storage = cp.content().storage()?;
    storage.delete(key).await?;
    storage.delete(&super::stills::key(id)).await?;
    sqlx::query("DELETE FROM videos WHERE id = $1")
        .bind(id)
        .execute(cp.pool())
        .await?;
    search::remove(cp.pool(), cp.db().backend(), search::Kind::Video, id).await?;
    Ok(())
}

/// Removes every video of a channel that is being deleted, its stored media first (the
/// rows would go with the channel; the files would stay). A failure stops the deletion,
/// which can be tried again.
pub(crate) async fn remove_all_of(cp: &ControlPlane, channel_id: &str) -> ApiResult<()> {
    let videos: Vec<(String, String)> =
        sqlx::query_as("SELECT id, storage_key FROM videos WHERE channel_id = $1")
            .bind(channel_id)
            .fetch_all(cp.pool())
            .await?;
    for (id, key) in videos {
        remove(cp, &id, &key).await?;
    }
    Ok(())
}

/// Keeps search true for video `id`: a public one is indexed by its title and
/// description; any other (or one gone) is not.
pub(crate) async fn index(cp: &ControlPlane, id: &str) -> ApiResult<()> {
    match by_id(cp, id).await? {
        Some(v) if VideoVisibility::parse(&v.visibility) == VideoVisibility::Public => {
            let doc = search::Doc {
                kind: search::Kind::Video,
                id: v.id,
                channel_id: v.channel_id,
                title: v.title,
                body: v.description,
                tags: Vec::new(),
                category: String::new(),
            };
            search::upsert(cp.pool(), cp.db().backend(), &doc).await?;
        }
        _ => search::remove(cp.pool(), cp.db().backend(), search::Kind::Video, id).await?,
    }
    Ok(())
}

pub(crate) fn title(s: &str) -> Result<String, Error> {
    let t = crate::model::text("title", s.trim(), 100)?;
    if t.is_empty() {
        return Err(Error::Invalid("title must not be empty".into()));
    }
    Ok(t)
}

/// What the recorder knows of a finished recording.
#[derive(Debug, Clone)]
pub struct Recording {
    /// The channel's id.
    pub channel_id: String,
    /// The stream it recorded (the channel's slug).
    pub stream: String,
    /// Its title (e.g. the channel's title and the date).
    pub title: String,
    /// Where its bytes are in the media storage.
    pub storage_key: String,
    /// What the container holds.
    pub probe: Probe,
    /// Bytes.
    pub size_bytes: i64,
    /// When the recording began (Unix ms).
    pub started_ms: i64,
}

/// Lists a complete recording as a video and sends `recording.ready`. Returns the video's
/// id. It is public like the live it came from, or for subscribers when the channel's
/// paywall held at any moment of that live (`money::access::closed_since`): a recording
/// never shows everyone what the live showed only to subscribers.
pub async fn register_recording(cp: &ControlPlane, r: Recording) -> ApiResult<String> {
    let visibility = if crate::money::access::closed_since(cp, &r.channel_id, r.started_ms).await? {
        VideoVisibility::Subscribers
    } else {
        VideoVisibility::Public
    };
    let id = insert(
        cp,
        &r.channel_id,
        "recording",
        &r.title,
        &r.storage_key,
        &r.probe,
        r.size_bytes,
        Some(&r.stream),
        visibility,
    )
    .await?;
    let data = serde_json::json!({
        "video_id": id,
        "stream": r.stream,
        "title": r.title,
        "duration_ms": r.probe.duration_ms,
        "size_bytes": r.size_bytes,
        "url": format!("/api/v1/videos/{id}"),
    });
    cp.webhooks()
        .emit(
            Some(&r.channel_id),
            Event::Other(EventType::RecordingReady, data),
        )
        .await;
    Ok(id)
}

/// Inserts a checked video; returns its id.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn insert(
    cp: &ControlPlane,
    channel_id: &str,
    kind: &str,
    title: &str,
    key: &str,
    p: &Probe,
    size: i64,
    stream: Option<&str>,
    visibility: VideoVisibility,
) -> ApiResult<String> {
    let id = random_id();
    let thumbnail = super::stills::store(cp, &id, p).await;
    let now = now_ms();
    let inserted = sqlx::query(
        "INSERT INTO videos (id, channel_id, kind, title, description, visibility, status, \
         storage_key, content_type, size_bytes, duration_ms, video_codec, audio_codec, width, \
         height, source_stream, created_at, updated_at, thumbnail_url) VALUES ($1, $2, $3, $4, \
         '', $15, 'ready', $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, $16)",
    )
    .bind(&id)
    .bind(channel_id)
    .bind(kind)
    .bind(title)
    .bind(key)
    .bind(p.content_type)
    .bind(size)
    .bind(p.duration_ms)
    .bind(&p.video_codec)
    .bind(&p.audio_codec)
    .bind(p.width)
    .bind(p.height)
    .bind(stream)
    .bind(now)
    .bind(visibility.as_str())
    .bind(&thumbnail)
    .execute(cp.pool())
    .await;
    if let Err(e) = inserted {
        if thumbnail.is_some() {
            let _ = cp
                .content()
                .storage()?
                .delete(&super::stills::key(&id))
                .await;
        }
        return Err(e.into());
    }
    index(cp, &id).await?;
    Ok(id)
}
