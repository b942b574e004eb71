//! Stream keys: made, listed (masked), revoked and rotated by a channel's owner; and the
//! publish token a remote media node accepts in place of a key.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::audit;
use crate::channels::owned;
use crate::db::now_ms;
use crate::error::{ApiResult, Problem};
use crate::extract::{BearerSecret, Caller, ClientIp, Json, Path};
use crate::revocation::key_tag;
use crate::tokens::{hash_secret, now_secs, random_id, random_secret, ChannelClaim, TokenKind};
use crate::{model, ControlPlane, Error};

/// Most live (unrevoked) keys per channel.
pub const MAX_KEYS_PER_CHANNEL: i64 = 10;

/// A stream key as listed: never the key itself.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct StreamKey {
    /// Opaque id.
    pub id: String,
    /// The owner's note.
    pub label: String,
    /// The key's first characters, then `…`.
    pub masked: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds, if revoked.
    pub revoked_at: Option<i64>,
    /// Unix milliseconds of the last publish with it.
    pub last_used_at: Option<i64>,
}

/// A new stream key: the only time the key is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewStreamKey {
    /// The key: paste it into OBS as the Bearer token, with `whip_path` as the server.
    pub key: String,
    /// Its listing.
    #[serde(flatten)]
    pub listing: StreamKey,
    /// Where to publish with it.
    pub whip_path: String,
}

/// `POST /channels/{slug}/keys`
#[derive(Debug, Deserialize, ToSchema, Default)]
pub struct KeyRequest {
    /// A note, e.g. "OBS at home".
    #[schema(max_length = 64)]
    #[serde(default)]
    pub label: String,
}

/// A publish token for a remote media node.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublishToken {
    /// Send as `Authorization: Bearer …` on the WHIP POST to a media node.
    pub token: String,
    /// The channel it publishes to.
    pub channel: String,
    /// Seconds it stays valid.
    pub expires_in: i64,
}

/// A stream key with the channel and owner it belongs to.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct KeyOwner {
    pub id: String,
    pub revoked_at: Option<i64>,
    pub channel_id: String,
    pub slug: String,
    pub visibility: String,
    pub owner_id: String,
    pub owner_status: String,
    pub owner_sv: i64,
    /// Rows of `channel_ladder_off` for the channel: 1 when its owner turned the
    /// transcoded ladder off (`crate::ladder`).
    pub ladder_off: i64,
}

impl KeyOwner {
    /// Whether the key may publish: not revoked, and its owner not suspended.
    pub(crate) fn live(&self) -> bool {
        self.revoked_at.is_none() && self.owner_status != "suspended"
    }

    /// What a publish token minted from it, and a session opened with it, are bound to.
    pub(crate) fn claim(&self) -> ChannelClaim<'_> {
        ChannelClaim {
            slug: &self.slug,
            id: &self.channel_id,
            owner: Some(&self.owner_id),
            listed: model::Visibility::parse(&self.visibility) == model::Visibility::Public,
            paywall_open: false,
            ladder_off: self.ladder_off != 0,
        }
    }
}

const KEY_OWNER_SELECT: &str = "SELECT k.id, k.revoked_at, c.id AS channel_id, c.slug, \
     c.visibility, u.id AS owner_id, u.status AS owner_status, \
     u.session_version AS owner_sv, (SELECT COUNT(*) FROM channel_ladder_off o \
     WHERE o.channel_id = c.id) AS ladder_off FROM stream_keys k \
     JOIN channels c ON c.id = k.channel_id JOIN users u ON u.id = c.owner_id";

/// Looks up an unrevoked key by its secret.
pub(crate) async fn find(cp: &ControlPlane, secret: &str) -> ApiResult<Option<KeyOwner>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{KEY_OWNER_SELECT} WHERE k.key_hash = $1 AND k.revoked_at IS NULL"
    )))
    .bind(hash_secret(secret))
    .fetch_optional(cp.pool())
    .await?)
}

/// A publish token for `owner`'s key, valid `ttl` seconds.
pub(crate) fn mint_publish_token(
    cp: &ControlPlane,
    owner: &KeyOwner,
    ttl: i64,
) -> ApiResult<String> {
    cp.signer().issue_channel(
        TokenKind::Publish,
        &owner.id,
        owner.owner_sv,
        owner.claim(),
        now_secs(),
        ttl,
    )
}

/// Looks up a key by its id, revoked or not (a publish token names its key by id).
pub(crate) async fn by_id(cp: &ControlPlane, id: &str) -> ApiResult<Option<KeyOwner>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{KEY_OWNER_SELECT} WHERE k.id = $1"
    )))
    .bind(id)
    .fetch_optional(cp.pool())
    .await?)
}

/// Notes that a key was used (best effort).
pub(crate) async fn touch(cp: &ControlPlane, id: &str) {
    let r = sqlx::query("UPDATE stream_keys SET last_used_at = $2 WHERE id = $1")
        .bind(id)
        .bind(now_ms())
        .execute(cp.pool())
        .await;
    if let Err(e) = r {
        tracing::warn!("could not note a stream key's use: {e}");
    }
}

async fn insert(
    cp: &ControlPlane,
    channel_id: &str,
    slug: &str,
    label: &str,
) -> ApiResult<NewStreamKey> {
    let (live,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM stream_keys WHERE channel_id = $1 AND revoked_at IS NULL",
    )
    .bind(channel_id)
    .fetch_one(cp.pool())
    .await?;
    if live >= MAX_KEYS_PER_CHANNEL {
        return Err(Error::Conflict("key limit reached: revoke one first"));
    }
    let key = random_secret("csk_");
    let listing = StreamKey {
        id: random_id(),
        label: label.to_owned(),
        masked: format!("{}…", &key[..8]),
        created_at: now_ms(),
        revoked_at: None,
        last_used_at: None,
    };
    sqlx::query(
        "INSERT INTO stream_keys (id, channel_id, key_hash, prefix, label, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&listing.id)
    .bind(channel_id)
    .bind(hash_secret(&key))
    .bind(&listing.masked)
    .bind(&listing.label)
    .bind(listing.created_at)
    .execute(cp.pool())
    .await?;
    Ok(NewStreamKey {
        key,
        listing,
        whip_path: format!("/whip/{slug}"),
    })
}

/// Make a stream key for the channel (owner or admin). The key is shown only here.
#[utoipa::path(post, path = "/api/v1/channels/{slug}/keys", tag = "keys", security(("access_token" = [])),
    params(("slug" = String, Path, description = "Channel slug")), request_body = KeyRequest,
    responses((status = 201, body = NewStreamKey), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn create(
    State(cp): State<ControlPlane>,
    ip: ClientIp,
    caller: Caller,
    Path(slug): Path<String>,
    Json(req): Json<KeyRequest>,
) -> ApiResult<(StatusCode, axum::Json<NewStreamKey>)> {
    let ch = owned(&cp, &caller, &slug).await?;
    let label = model::text("label", req.label.trim(), 64)?;
    let new = insert(&cp, &ch.id, &ch.slug, &label).await?;
    audit::record(
        &cp,
        Some(&caller.0.id),
        "key.create",
        Some(&new.listing.id),
        Some(ip.0),
        &ch.slug,
    )
    .await;
    Ok((StatusCode::CREATED, axum::Json(new)))
}

/// The channel's keys, masked, newest first (owner or admin).
#[utoipa::path(get, path = "/api/v1/channels/{slug}/keys", tag = "keys", security(("access_token" = [])),
    params(("slug" = String, Path, description = "Channel slug")),
    responses((status = 200, body = Vec<StreamKey>), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn list(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(slug): Path<String>,
) -> ApiResult<axum::Json<Vec<StreamKey>>> {
    let ch = owned(&cp, &caller, &slug).await?;
    let keys: Vec<StreamKey> = sqlx::query_as(
        "SELECT id, label, prefix AS masked, created_at, revoked_at, last_used_at \
         FROM stream_keys WHERE channel_id = $1 ORDER BY created_at DESC, id LIMIT 100",
    )
    .bind(&ch.id)
    .fetch_all(cp.pool())
    .await?;
    Ok(axum::Json(keys))
}

async fn revoke_key(cp: &ControlPlane, channel_id: &str, key_id: &str) -> ApiResult<()> {
    let n = sqlx::query(
        "UPDATE stream_keys SET revoked_at = $3 WHERE id = $1 AND channel_id = $2 AND revoked_at IS NULL",
    )
    .bind(key_id)
    .bind(channel_id)
    .bind(now_ms())
    .execute(cp.pool())
    .await?
    .rows_affected();
    if n == 0 {
        return Err(Error::NotFound);
    }
    // Publish tokens minted from it, and live sessions opened with it, end too.
    cp.revoke(key_tag(key_id), 0, true).await
}

/// Revoke a key: publishing with it stops being accepted (owner or admin).
#[utoipa::path(delete, path = "/api/v1/channels/{slug}/keys/{id}", tag = "keys", security(("access_token" = [])),
    params(("slug" = String, Path, description = "Channel slug"), ("id" = String, Path, description = "Key id")),
    responses((status = 204), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn revoke(
    State(cp): State<ControlPlane>,
    ip: ClientIp,
    caller: Caller,
    Path((slug, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let ch = owned(&cp, &caller, &slug).await?;
    revoke_key(&cp, &ch.id, &id).await?;
    audit::record(
        &cp,
        Some(&caller.0.id),
        "key.revoke",
        Some(&id),
        Some(ip.0),
        &ch.slug,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Replace a key with a new one (same label); the old one is revoked (owner or admin).
#[utoipa::path(post, path = "/api/v1/channels/{slug}/keys/{id}/rotate", tag = "keys", security(("access_token" = [])),
    params(("slug" = String, Path, description = "Channel slug"), ("id" = String, Path, description = "Key id")),
    responses((status = 201, body = NewStreamKey), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn rotate(
    State(cp): State<ControlPlane>,
    ip: ClientIp,
    caller: Caller,
    Path((slug, id)): Path<(String, String)>,
) -> ApiResult<(StatusCode, axum::Json<NewStreamKey>)> {
    let ch = owned(&cp, &caller, &slug).await?;
    let label: Option<(String,)> = sqlx::query_as(
        "SELECT label FROM stream_keys WHERE id = $1 AND channel_id = $2 AND revoked_at IS NULL",
    )
    .bind(&id)
    .bind(&ch.id)
    .fetch_optional(cp.pool())
    .await?;
    let (label,) = label.ok_or(Error::NotFound)?;
    revoke_key(&cp, &ch.id, &id).await?;
    let new = insert(&cp, &ch.id, &ch.slug, &label).await?;
    let detail = format!("{} -> {}", id, new.listing.id);
    audit::record(
        &cp,
        Some(&caller.0.id),
        "key.rotate",
        Some(&ch.slug),
        Some(ip.0),
        &detail,
    )
    .await;
    Ok((StatusCode::CREATED, axum::Json(new)))
}

/// Exchange a stream key (as the Bearer credential) for a short-lived publish token that
/// media nodes elsewhere check offline with the control plane's public key.
#[utoipa::path(post, path = "/api/v1/publish-token", tag = "keys", security(("stream_key" = [])),
    responses((status = 200, body = PublishToken), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn publish_token(
    State(cp): State<ControlPlane>,
    key: BearerSecret,
) -> ApiResult<axum::Json<PublishToken>> {
    let owner = find(&cp, &key.0)
        .await?
        .ok_or(Error::Unauthorized("invalid or revoked stream key"))?;
    if !owner.live() {
        return Err(Error::Forbidden("account suspended"));
    }
    let ttl = cp.config().publish_ttl_secs;
    let token = mint_publish_token(&cp, &owner, ttl)?;
    Ok(axum::Json(PublishToken {
        token,
        channel: owner.slug,
        expires_in: ttl,
    }))
}
