//! Request extractors: JSON bodies and paths with problem+json errors, the caller's
//! address, and the signed-in user behind an access token.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;

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

/// The signed-in user. Every request re-reads the user, so a suspension or "sign out
/// everywhere" takes effect at once, not when the access token expires.
#[derive(Debug, Clone)]
pub(crate) struct Caller(pub UserRow);

impl Caller {
    pub(crate) fn require(&self, role: Role) -> Result<(), Error> {
        if self.0.role() == role || self.0.role() == Role::Admin {
            Ok(())
        } else {
            Err(Error::Forbidden("this needs a different role"))
        }
    }
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
    Ok(Caller(user))
}

impl FromRequestParts<ControlPlane> for Caller {
    type Rejection = Error;
    async fn from_request_parts(parts: &mut Parts, cp: &ControlPlane) -> Result<Self, Error> {
        let token = bearer(parts).ok_or(Error::Unauthorized("sign in first"))?;
        caller(cp, token).await
    }
}

/// The signed-in user if there is an access token; an invalid one is still an error.
#[derive(Debug, Clone)]
pub(crate) struct MaybeCaller(pub Option<Caller>);

impl FromRequestParts<ControlPlane> for MaybeCaller {
    type Rejection = Error;
    async fn from_request_parts(parts: &mut Parts, cp: &ControlPlane) -> Result<Self, Error> {
        match bearer(parts) {
            None => Ok(MaybeCaller(None)),
            Some(token) => Ok(MaybeCaller(Some(caller(cp, token).await?))),
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
