//! `/api-keys`: made, listed (never the key) and revoked by a signed-in user. An API key
//! cannot call these itself.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{new_key, parse_scopes, stored_hash, Scope};
use crate::audit;
use crate::channels::owned;
use crate::db::now_ms;
use crate::error::{ApiResult, Problem};
use crate::extract::{Caller, ClientIp, Json, Path};
use crate::model::{self, Role};
use crate::{ControlPlane, Error};

/// Live (unrevoked) keys per user.
pub const MAX_KEYS_PER_USER: i64 = 20;

/// An API key as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKey {
    /// Its id (also the part after `cak_` in the key).
    pub id: String,
    /// The owner's note.
    pub name: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// The channel it is bound to; absent: every channel its user may act on.
    pub channel: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds (noted at most once a minute).
    pub last_used_at: Option<i64>,
    /// Unix milliseconds, if revoked.
    pub revoked_at: Option<i64>,
}

/// A new key: the only time it is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewApiKey {
    /// Send as `Authorization: Bearer …`.
    pub key: String,
    /// Its listing.
    #[serde(flatten)]
    pub listing: ApiKey,
}

/// `POST /api-keys`
#[derive(Debug, Deserialize, ToSchema)]
pub struct KeyRequest {
    /// A note, e.g. "analytics exporter".
    #[schema(max_length = 64)]
    #[serde(default)]
    pub name: String,
    /// At least one of `analytics:read`, `channel:manage`, `chat:moderate`.
    pub scopes: Vec<String>,
    /// Bind it to this channel (one the caller owns, or any for an admin).
    pub channel: Option<String>,
}

#[derive(Debug, sqlx::FromRow)]
struct Row {
    id: String,
    name: String,
    scopes: String,
    slug: Option<String>,
    created_at: i64,
    last_used_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl Row {
    fn view(self) -> ApiKey {
        ApiKey {
            id: self.id,
            name: self.name,
            scopes: parse_scopes(&self.scopes),
            channel: self.slug,
            created_at: self.created_at,
            last_used_at: self.last_used_at,
            revoked_at: self.revoked_at,
        }
    }
}

const SELECT: &str = "SELECT k.id, k.name, k.scopes, c.slug, k.created_at, k.last_used_at, \
    k.revoked_at FROM api_keys k LEFT JOIN channels c ON c.id = k.channel_id";

/// Make an API key. The key is shown only in this answer.
#[utoipa::path(post, path = "/api/v1/api-keys", tag = "api-keys", security(("access_token" = [])), request_body = KeyRequest,
    responses((status = 201, body = NewApiKey), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn create(
    State(cp): State<ControlPlane>,
    ip: ClientIp,
    caller: Caller,
    Json(req): Json<KeyRequest>,
) -> ApiResult<(StatusCode, axum::Json<NewApiKey>)> {
    let name = model::text("name", req.name.trim(), 64)?;
    let mut scopes: Vec<Scope> = Vec::new();
    for s in &req.scopes {
        let scope = Scope::parse(s).ok_or_else(|| {
            Error::Invalid(format!(
                "unknown scope {s:?}: analytics:read, channel:manage or chat:moderate"
            ))
        })?;
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    if scopes.is_empty() {
        return Err(Error::Invalid("scopes must name at least one scope".into()));
    }
    let channel_id = match &req.channel {
        Some(slug) => Some(owned(&cp, &caller, slug).await?.id),
        None if caller.0.role() == Role::Admin => None,
        None => {
            let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM channels WHERE owner_id = $1")
                .bind(&caller.0.id)
                .fetch_one(cp.pool())
                .await?;
            if n == 0 {
                return Err(Error::Forbidden("API keys are for channel owners"));
            }
            None
        }
    };
    let (live,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM api_keys WHERE user_id = $1 AND revoked_at IS NULL")
            .bind(&caller.0.id)
            .fetch_one(cp.pool())
            .await?;
    if live >= MAX_KEYS_PER_USER {
        return Err(Error::Conflict("API key limit reached: revoke one first"));
    }
    let (id, key) = new_key();
    let scope_text: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
    sqlx::query(
        "INSERT INTO api_keys (id, user_id, channel_id, name, scopes, key_hash, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&id)
    .bind(&caller.0.id)
    .bind(&channel_id)
    .bind(&name)
    .bind(scope_text.join(" "))
    .bind(stored_hash(&key))
    .bind(now_ms())
    .execute(cp.pool())
    .await?;
    let listing = one(&cp, &id).await?.ok_or(Error::NotFound)?;
    audit::record(
        &cp,
        Some(&caller.0.id),
        "api_key.create",
        Some(&id),
        Some(ip.0),
        &scope_text.join(" "),
    )
    .await;
    Ok((StatusCode::CREATED, axum::Json(NewApiKey { key, listing })))
}

async fn one(cp: &ControlPlane, id: &str) -> ApiResult<Option<ApiKey>> {
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} WHERE k.id = $1")))
        .bind(id)
        .fetch_optional(cp.pool())
        .await?;
    Ok(row.map(Row::view))
}

/// The caller's API keys, newest first (never the keys themselves).
#[utoipa::path(get, path = "/api/v1/api-keys", tag = "api-keys", security(("access_token" = [])),
    responses((status = 200, body = Vec<ApiKey>), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn list(
    State(cp): State<ControlPlane>,
    caller: Caller,
) -> ApiResult<axum::Json<Vec<ApiKey>>> {
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE k.user_id = $1 ORDER BY k.created_at DESC, k.id LIMIT 100"
    )))
    .bind(&caller.0.id)
    .fetch_all(cp.pool())
    .await?;
    Ok(axum::Json(rows.into_iter().map(Row::view).collect()))
}

/// Revoke a key (its owner, or an admin): it is refused from the next request on.
#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "api-keys", security(("access_token" = [])), params(("id" = String, Path)),
    responses((status = 204), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn revoke(
    State(cp): State<ControlPlane>,
    ip: ClientIp,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let n = sqlx::query(
        "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL \
         AND (user_id = $3 OR $4 = 1)",
    )
    .bind(&id)
    .bind(now_ms())
    .bind(&caller.0.id)
    .bind(i64::from(caller.0.role() == Role::Admin))
    .execute(cp.pool())
    .await?
    .rows_affected();
    if n == 0 {
        return Err(Error::NotFound);
    }
    audit::record(
        &cp,
        Some(&caller.0.id),
        "api_key.revoke",
        Some(&id),
        Some(ip.0),
        "",
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
