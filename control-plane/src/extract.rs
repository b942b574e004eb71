//! Request extractors: JSON bodies and paths with problem+json errors, the caller's
//! address, and the signed-in user behind an access token or an API key (whose scopes
//! and channel are enforced here, once, for every route).

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, MatchedPath, RawPathParams};
use axum::http::header;
use axum::http::request::Parts;

use crate::apikeys::{self, KeyGrant, KeyRefusal};
use crate::model::{Role, UserRow, USER_COLUMNS};
use crate::tokens::{TokenError, TokenKind};
use crate::{ControlPlane, Error};

/// A JSON body whose rejections are problem documents.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(Error))]
pub(crate) struct Json<T>(pub T);

/// A path whose rejections are problem documents.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(Error))]
pub(crate) struct Path<T>(pub T);

/// A query whose rejections are problem documents.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(Error))]
pub(crate) struct Query<T>(pub T);

/// The client's address (the socket peer; put a trusted proxy's header handling in front
/// if there is one).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = Error;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Error> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
        Ok(ClientIp(ip))
    }
}

/// The `Authorization: Bearer` value, if any.
pub(crate) fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The signed-in user, and the API key it came with, if any. Every request re-reads the
/// user, so a suspension or "sign out everywhere" takes effect at once, not when the
/// access token expires.
#[derive(Debug, Clone)]
pub(crate) struct Caller(pub UserRow, pub Option<KeyGrant>);

impl Caller {
    pub(crate) fn require(&self, role: Role) -> Result<(), Error> {
        if self.0.role() == role || self.0.role() == Role::Admin {
            Ok(())
        } else {
            Err(Error::Forbidden("this needs a different role"))
        }
    }

    /// Refuses a channel-bound API key acting on another channel (`None`: every
    /// channel). Access tokens and unbound keys pass.
    pub(crate) fn key_channel_allows(&self, channel_id: Option<&str>) -> Result<(), Error> {
        match self.1.as_ref().and_then(|k| k.channel.as_ref()) {
            Some((bound, _)) if Some(bound.as_str()) != channel_id => {
                Err(Error::KeyScope(KeyRefusal::OtherChannel))
            }
            _ => Ok(()),
        }
    }
}

/// Checks an API key's scopes and channel against the route being called.
async fn key_allows<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
    key: &KeyGrant,
) -> Result<(), Error> {
    let route = parts
        .extensions
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    let needed = apikeys::scope::required(&parts.method, &route)
        .ok_or(Error::KeyScope(KeyRefusal::NotForKeys))?;
    if !needed.iter().any(|s| key.scopes.contains(s)) {
        return Err(Error::KeyScope(KeyRefusal::MissingScope(needed[0])));
    }
    if let Some((_, bound_slug)) = &key.channel {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| Error::BadRequest(e.body_text()))?;
        if let Some((_, slug)) = params.iter().find(|(name, _)| *name == "slug") {
            if slug != bound_slug {
                return Err(Error::KeyScope(KeyRefusal::OtherChannel));
            }
        }
    }
    Ok(())
}

/// The caller behind a bearer credential: an access token, or an API key allowed on
/// this route.
async fn authenticate(parts: &mut Parts, cp: &ControlPlane, bearer: &str) -> Result<Caller, Error> {
    if !apikeys::is_api_key(bearer) {
        return caller(cp, bearer).await;
    }
    let (user_id, grant) = apikeys::verify(cp, bearer).await?;
    let user = crate::accounts::user_by_id(cp, &user_id)
        .await?
        .ok_or(Error::Unauthorized("invalid or revoked API key"))?;
    if user.suspended() {
        return Err(Error::Forbidden("account suspended"));
    }
    key_allows(parts, cp, &grant).await?;
    Ok(Caller(user, Some(grant)))
}

pub(crate) async fn caller(cp: &ControlPlane, token: &str) -> Result<Caller, Error> {
    let claims = cp
        .signer()
        .verifier()
        .verify(token, TokenKind::Access)
        .map_err(|e| match e {
            TokenError::Expired => Error::Unauthorized("access token expired"),
            TokenError::Invalid => Error::Unauthorized("invalid access token"),
        })?;
    let user: Option<UserRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {USER_COLUMNS} FROM users WHERE id = $1"
    )))
    .bind(&claims.sub)
    .fetch_optional(cp.pool())
    .await?;
    let user = user.ok_or(Error::Unauthorized("invalid access token"))?;
    if user.session_version != claims.sv {
        return Err(Error::Unauthorized("session was signed out"));
    }
    if user.suspended() {
        return Err(Error::Forbidden("account suspended"));
    }
    Ok(Caller(user, None))
}

impl FromRequestParts<ControlPlane> for Caller {
    type Rejection = Error;
    async fn from_request_parts(parts: &mut Parts, cp: &ControlPlane) -> Result<Self, Error> {
        let token = bearer(parts)
            .ok_or(Error::Unauthorized("sign in first"))?
            .to_owned();
        authenticate(parts, cp, &token).await
    }
}

/// The signed-in user if there is an access token; an invalid one is still an error.
#[derive(Debug, Clone)]
pub(crate) struct MaybeCaller(pub Option<Caller>);

impl FromRequestParts<ControlPlane> for MaybeCaller {
    type Rejection = Error;
    async fn from_request_parts(parts: &mut Parts, cp: &ControlPlane) -> Result<Self, Error> {
        match bearer(parts).map(str::to_owned) {
            None => Ok(MaybeCaller(None)),
            Some(token) => Ok(MaybeCaller(Some(authenticate(parts, cp, &token).await?))),
        }
    }
}

/// The raw bearer credential (a stream key), not interpreted here.
#[derive(Clone)]
pub(crate) struct BearerSecret(pub String);

impl std::fmt::Debug for BearerSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerSecret(<redacted>)")
    }
}

impl<S: Send + Sync> FromRequestParts<S> for BearerSecret {
    type Rejection = Error;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Error> {
        bearer(parts)
            .map(|b| BearerSecret(b.to_owned()))
            .ok_or(Error::Unauthorized("a stream key is required"))
    }
}
