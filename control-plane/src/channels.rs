//! Channels: create, list, read, edit and delete; who may watch a private one; viewer
//! tokens for WHEP.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::{now_ms, unique_violation};
use crate::error::{ApiResult, Problem};
use crate::extract::{Caller, Json, MaybeCaller, Path, Query};
use crate::model::{self, PageQuery, Role, Visibility};
use crate::revocation::{channel_tag, watch_tag, ANONYMOUS};
use crate::tokens::{now_secs, random_id, ChannelClaim, TokenKind};
use crate::{ControlPlane, Error};

/// Most channels one user may own.
pub const MAX_CHANNELS_PER_USER: i64 = 20;

/// A channel.
#[derive(Debug, Serialize, ToSchema)]
pub struct Channel {
    /// Opaque id.
    pub id: String,
    /// Unique name; also the stream name in `/whip/{slug}` and `/whep/{slug}`.
    pub slug: String,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Category.
    pub category: String,
    /// Who may find and watch it.
    pub visibility: Visibility,
    /// The owner's username.
    pub owner: String,
    /// Where a broadcaster publishes (WHIP).
    pub whip_path: String,
    /// Where a viewer watches (WHEP).
    pub whep_path: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds.
    pub updated_at: i64,
}

/// A page of channels.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelPage {
    /// Channels on this page, newest first.
    pub items: Vec<Channel>,
    /// This page's number.
    pub page: u32,
    /// Page size.
    pub per_page: u32,
    /// Channels in all.
    pub total: i64,
}

/// `POST /channels`
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewChannel {
    /// 3 to 40 of a-z, 0-9 and -.
    #[schema(min_length = 3, max_length = 40, pattern = "^[a-z0-9][a-z0-9-]{2,39}$")]
    pub slug: String,
    /// Title, 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100)]
    pub title: String,
    /// Description.
    #[schema(max_length = 2000)]
    #[serde(default)]
    pub description: String,
    /// Up to 10 tags of a-z, 0-9 and -.
    #[serde(default)]
    #[schema(max_items = 10)]
    pub tags: Vec<String>,
    /// Category.
    #[schema(max_length = 50)]
    #[serde(default)]
    pub category: String,
    /// Who may find and watch it [default: public].
    #[serde(default)]
    pub visibility: Visibility,
}

/// `PATCH /channels/{slug}`: fields to change.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ChannelEdit {
    /// Title, 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100)]
    pub title: Option<String>,
    /// Description.
    #[schema(max_length = 2000)]
    pub description: Option<String>,
    /// Up to 10 tags.
    #[schema(max_items = 10)]
    pub tags: Option<Vec<String>>,
    /// Category.
    #[schema(max_length = 50)]
    pub category: Option<String>,
    /// Who may find and watch it.
    pub visibility: Option<Visibility>,
}

/// `POST /channels/{slug}/viewers`
#[derive(Debug, Deserialize, ToSchema)]
pub struct ViewerGrant {
    /// The user to let watch this private channel.
    #[schema(max_length = 32)]
    pub username: String,
}

/// A signed token to watch one channel.
#[derive(Debug, Serialize, ToSchema)]
pub struct ViewerToken {
    /// Send as `Authorization: Bearer …` on the WHEP POST.
    pub token: String,
    /// The channel it is for.
    pub channel: String,
    /// Seconds it stays valid (the session it starts lasts longer).
    pub expires_in: i64,
}

/// A `channels` row joined with its owner.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ChannelRow {
    pub id: String,
    pub owner_id: String,
    pub owner: String,
    pub slug: String,
    pub title: String,
    pub description: String,
    pub tags: String,
    pub category: String,
    pub visibility: String,
    pub created_at: i64,
    pub updated_at: i64,
}

const CHANNEL_SELECT: &str = "SELECT c.id, c.owner_id, u.username AS owner, c.slug, c.title, \
    c.description, c.tags, c.category, c.visibility, c.created_at, c.updated_at \
    FROM channels c JOIN users u ON u.id = c.owner_id";

impl From<ChannelRow> for Channel {
    fn from(r: ChannelRow) -> Self {
        Channel {
            whip_path: format!("/whip/{}", r.slug),
            whep_path: format!("/whep/{}", r.slug),
            tags: serde_json::from_str(&r.tags).unwrap_or_default(),
            visibility: Visibility::parse(&r.visibility),
            id: r.id,
            slug: r.slug,
            title: r.title,
            description: r.description,
            category: r.category,
            owner: r.owner,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

fn tags(list: &[String]) -> Result<String, Error> {
    if list.len() > 10 {
        return Err(Error::Invalid("at most 10 tags".into()));
    }
    for t in list {
        let ok = (1..=32).contains(&t.len())
            && t.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            return Err(Error::Invalid(
                "tags must be 1 to 32 characters of a-z, 0-9 and -".into(),
            ));
        }
    }
    serde_json::to_string(list).map_err(|e| Error::Internal(e.to_string()))
}

fn title(s: &str) -> Result<String, Error> {
    let t = model::text("title", s.trim(), 100)?;
    if t.is_empty() {
        return Err(Error::Invalid("title must not be empty".into()));
    }
    Ok(t)
}

pub(crate) async fn by_slug(cp: &ControlPlane, slug: &str) -> ApiResult<Option<ChannelRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{CHANNEL_SELECT} WHERE c.slug = $1"
    )))
    .bind(slug)
    .fetch_optional(cp.pool())
    .await?)
}

/// Whether `user` may see and watch `ch`.
pub(crate) async fn may_watch(
    cp: &ControlPlane,
    ch: &ChannelRow,
    user: Option<&Caller>,
) -> ApiResult<bool> {
    if Visibility::parse(&ch.visibility) != Visibility::Private {
        return Ok(true);
    }
    let Some(u) = user else { return Ok(false) };
    if u.0.id == ch.owner_id || u.0.role() == Role::Admin {
        return Ok(true);
    }
    let granted: Option<(String,)> = sqlx::query_as(
        "SELECT user_id FROM channel_viewers WHERE channel_id = $1 AND user_id = $2",
    )
    .bind(&ch.id)
    .bind(&u.0.id)
    .fetch_optional(cp.pool())
    .await?;
    Ok(granted.is_some())
}

/// The channel, if `caller` owns it (or is an admin); 404 if they cannot see it at all.
pub(crate) async fn owned(cp: &ControlPlane, caller: &Caller, slug: &str) -> ApiResult<ChannelRow> {
    let ch = by_slug(cp, slug).await?.ok_or(Error::NotFound)?;
    if ch.owner_id == caller.0.id || caller.0.role() == Role::Admin {
        Ok(ch)
    } else if may_watch(cp, &ch, Some(caller)).await? {
        Err(Error::Forbidden("only the channel's owner may do this"))
    } else {
        Err(Error::NotFound)
    }
}

/// Create a channel. A viewer who creates one becomes a broadcaster.
#[utoipa::path(post, path = "/api/v1/channels", tag = "channels", security(("access_token" = [])), request_body = NewChannel,
    responses((status = 201, body = Channel), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn create(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Json(req): Json<NewChannel>,
) -> ApiResult<(StatusCode, axum::Json<Channel>)> {
    let slug = model::slug(&req.slug)?;
    let title = title(&req.title)?;
    let description = model::text("description", &req.description, 2000)?;
    let category = model::text("category", req.category.trim(), 50)?;
    let tags = tags(&req.tags)?;
    let (owned,): (i64,) = sqlx::query_as("SELECT count(*) FROM channels WHERE owner_id = $1")
        .bind(&caller.0.id)
        .fetch_one(cp.pool())
        .await?;
    if owned >= MAX_CHANNELS_PER_USER {
        return Err(Error::Conflict("channel limit reached"));
    }
    let now = now_ms();
    let result = sqlx::query(
        "INSERT INTO channels (id, owner_id, slug, title, description, tags, category, \
         visibility, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
    )
    .bind(random_id())
    .bind(&caller.0.id)
    .bind(&slug)
    .bind(&title)
    .bind(&description)
    .bind(&tags)
    .bind(&category)
    .bind(req.visibility.as_str())
    .bind(now)
    .execute(cp.pool())
    .await;
    match result {
        Ok(_) => {}
        Err(e) if unique_violation(&e, "slug") => return Err(Error::Conflict("slug is taken")),
        Err(e) => return Err(e.into()),
    }
    if caller.0.role() == Role::Viewer {
        sqlx::query("UPDATE users SET role = 'broadcaster', updated_at = $2 WHERE id = $1 AND role = 'viewer'")
            .bind(&caller.0.id)
            .bind(now)
            .execute(cp.pool())
            .await?;
    }
    let ch = by_slug(&cp, &slug).await?.ok_or(Error::NotFound)?;
    crate::discovery::search::index_channel(&cp, &ch.id).await?;
    Ok((StatusCode::CREATED, axum::Json(ch.into())))
}

/// Public channels, newest first.
#[utoipa::path(get, path = "/api/v1/channels", tag = "channels", params(PageQuery),
    responses((status = 200, body = ChannelPage), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn list(
    State(cp): State<ControlPlane>,
    Query(page): Query<PageQuery>,
) -> ApiResult<axum::Json<ChannelPage>> {
    page_of(&cp, page, "c.visibility = $1", Visibility::Public.as_str()).await
}

/// The caller's own channels, newest first.
#[utoipa::path(get, path = "/api/v1/me/channels", tag = "channels", security(("access_token" = [])), params(PageQuery),
    responses((status = 200, body = ChannelPage), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn mine(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Query(page): Query<PageQuery>,
) -> ApiResult<axum::Json<ChannelPage>> {
    page_of(&cp, page, "c.owner_id = $1", &caller.0.id).await
}

async fn page_of(
    cp: &ControlPlane,
    page: PageQuery,
    filter: &str,
    arg: &str,
) -> ApiResult<axum::Json<ChannelPage>> {
    let (page, per_page, offset) = page.resolve()?;
    let (total,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM channels c WHERE {filter}"
    )))
    .bind(arg)
    .fetch_one(cp.pool())
    .await?;
    let rows: Vec<ChannelRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{CHANNEL_SELECT} WHERE {filter} ORDER BY c.created_at DESC, c.id LIMIT $2 OFFSET $3"
    )))
    .bind(arg)
    .bind(i64::from(per_page))
    .bind(offset)
    .fetch_all(cp.pool())
    .await?;
    Ok(axum::Json(ChannelPage {
        items: rows.into_iter().map(Channel::from).collect(),
        page,
        per_page,
        total,
    }))
}

/// One channel (a private one only for its owner and allowed viewers).
#[utoipa::path(get, path = "/api/v1/channels/{slug}", tag = "channels",
    params(("slug" = String, Path, description = "Channel slug")),
    responses((status = 200, body = Channel), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn get(
    State(cp): State<ControlPlane>,
    caller: MaybeCaller,
    Path(slug): Path<String>,
) -> ApiResult<axum::Json<Channel>> {
    let ch = by_slug(&cp, &slug).await?.ok_or(Error::NotFound)?;
    if !may_watch(&cp, &ch, caller.0.as_ref()).await? {
        return Err(Error::NotFound);
    }
    Ok(axum::Json(ch.into()))
}

/// Edit a channel (owner or admin).
#[utoipa::path(patch, path = "/api/v1/channels/{slug}", tag = "channels", security(("access_token" = [])),
    params(("slug" = String, Path, description = "Channel slug")), request_body = ChannelEdit,
    responses((status = 200, body = Channel), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn edit(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(slug): Path<String>,
    Json(req): Json<ChannelEdit>,
) -> ApiResult<axum::Json<Channel>> {
    let ch = owned(&cp, &caller, &slug).await?;
    let title = match req.title {
        Some(t) => title(&t)?,
        None => ch.title,
    };
    let description = match req.description {
        Some(d) => model::text("description", &d, 2000)?,
        None => ch.description,
    };
    let tags = match req.tags {
        Some(t) => tags(&t)?,
        None => ch.tags,
    };
    let category = match req.category {
        Some(c) => model::text("category", c.trim(), 50)?,
        None => ch.category,
    };
    let visibility = req
        .visibility
        .map_or(ch.visibility, |v| v.as_str().to_owned());
    sqlx::query(
        "UPDATE channels SET title = $2, description = $3, tags = $4, category = $5, \
         visibility = $6, updated_at = $7 WHERE id = $1",
    )
    .bind(&ch.id)
    .bind(&title)
    .bind(&description)
    .bind(&tags)
    .bind(&category)
    .bind(&visibility)
    .bind(now_ms())
    .execute(cp.pool())
    .await?;
    let fresh = by_slug(&cp, &slug).await?.ok_or(Error::NotFound)?;
    crate::discovery::search::index_channel(&cp, &fresh.id).await?;
    if Visibility::parse(&fresh.visibility) == Visibility::Public {
        // A live stream's document carries the channel's description and tags.
        crate::discovery::search::reindex_stream_if_live(&cp, &fresh.id).await?;
    }
    Ok(axum::Json(fresh.into()))
}

/// Delete a channel, its keys and its videos with their stored media (owner or admin).
#[utoipa::path(delete, path = "/api/v1/channels/{slug}", tag = "channels", security(("access_token" = [])),
    params(("slug" = String, Path, description = "Channel slug")),
    responses((status = 204), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn delete(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(slug): Path<String>,
) -> ApiResult<StatusCode> {
    let ch = owned(&cp, &caller, &slug).await?;
    crate::content::videos::remove_all_of(&cp, &ch.id).await?;
    sqlx::query("DELETE FROM channels WHERE id = $1")
        .bind(&ch.id)
        .execute(cp.pool())
        .await?;
    // Its broadcast and viewers end; its tokens die with it, even if the slug is taken again.
    cp.revoke(channel_tag(&ch.id), 0, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Let a user watch this private channel (owner or admin).
#[utoipa::path(post, path = "/api/v1/channels/{slug}/viewers", tag = "channels", security(("access_token" = [])),
    params(("slug" = String, Path, description = "Channel slug")), request_body = ViewerGrant,
    responses((status = 204), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn grant(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(slug): Path<String>,
    Json(req): Json<ViewerGrant>,
) -> ApiResult<StatusCode> {
    let ch = owned(&cp, &caller, &slug).await?;
    let user: Option<(String,)> = sqlx::query_as("SELECT id FROM users WHERE username = $1")
        .bind(req.username.trim().to_lowercase())
        .fetch_optional(cp.pool())
        .await?;
    let (user_id,) = user.ok_or(Error::NotFound)?;
    sqlx::query(
        "INSERT INTO channel_viewers (channel_id, user_id, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (channel_id, user_id) DO NOTHING",
    )
    .bind(&ch.id)
    .bind(&user_id)
    .bind(now_ms())
    .execute(cp.pool())
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Stop letting a user watch this private channel (owner or admin).
#[utoipa::path(delete, path = "/api/v1/channels/{slug}/viewers/{username}", tag = "channels", security(("access_token" = [])),
    params(("slug" = String, Path, description = "Channel slug"), ("username" = String, Path, description = "Username")),
    responses((status = 204), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn revoke_grant(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path((slug, username)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let ch = owned(&cp, &caller, &slug).await?;
    let user: Option<(String,)> = sqlx::query_as("SELECT id FROM users WHERE username = $1")
        .bind(username.to_lowercase())
        .fetch_optional(cp.pool())
        .await?;
    let Some((user_id,)) = user else {
        return Ok(StatusCode::NO_CONTENT);
    };
    let removed = sqlx::query("DELETE FROM channel_viewers WHERE channel_id = $1 AND user_id = $2")
        .bind(&ch.id)
        .bind(&user_id)
        .execute(cp.pool())
        .await?
        .rows_affected();
    if removed > 0 {
        // They stop watching now, not when their viewer token would have expired.
        cp.revoke(watch_tag(&ch.id, &user_id), 0, true).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A short-lived token to watch this channel over WHEP: anyone may have one for a public
/// or unlisted channel, only the owner and allowed viewers for a private one.
#[utoipa::path(post, path = "/api/v1/channels/{slug}/viewer-token", tag = "channels",
    params(("slug" = String, Path, description = "Channel slug")),
    responses((status = 200, body = ViewerToken), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn viewer_token(
    State(cp): State<ControlPlane>,
    caller: MaybeCaller,
    Path(slug): Path<String>,
) -> ApiResult<axum::Json<ViewerToken>> {
    let ch = by_slug(&cp, &slug).await?.ok_or(Error::NotFound)?;
    if !may_watch(&cp, &ch, caller.0.as_ref()).await? {
        return Err(match caller.0 {
            None => Error::Unauthorized("sign in to watch this channel"),
            Some(_) => Error::NotFound,
        });
    }
    if let Some(c) = &caller.0 {
        if crate::chat::room::watch_banned(&cp, &ch.id, &c.0.id).await? {
            let why = "you are banned from watching this channel";
            return Err(crate::chat::Refusal::new(crate::chat::Code::Banned, why).into());
        }
    }
    // A media node elsewhere trusts this token alone: a paywalled channel's is for
    // subscribers (and the owner and admins).
    use crate::money::access::{admission, Admission};
    // The token is dated from before the decision: a paywall closing after it (revoking
    // what it let in) refuses this token too, however long the minting takes.
    let decided_at = now_secs();
    let viewer = caller.0.as_ref().map(|c| &c.0);
    let admitted = admission(&cp, &ch.id, &ch.owner_id, viewer).await?;
    if admitted == Admission::Refused {
        return Err(Error::SubscriptionRequired);
    }
    let (sub, sv) = caller
        .0
        .as_ref()
        .map_or((ANONYMOUS, 0), |c| (c.0.id.as_str(), c.0.session_version));
    let ttl = cp.config().view_ttl_secs;
    let claim = ChannelClaim {
        slug: &ch.slug,
        id: &ch.id,
        owner: None,
        listed: false,
        paywall_open: admitted == Admission::WhileOpen,
        ladder_off: false,
    };
    let token = cp
        .signer()
        .issue_channel(TokenKind::View, sub, sv, claim, decided_at, ttl)?;
    Ok(axum::Json(ViewerToken {
        token,
        channel: ch.slug,
        expires_in: ttl,
    }))
}
