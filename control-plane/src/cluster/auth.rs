//! Who may call the cluster API: media nodes with the cluster token, and for the
//! operator's endpoints (list, drain) also an admin's access token.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::extract::{bearer, caller};
use crate::model::Role;
use crate::{ControlPlane, Error};

/// The shared secret media nodes present as `Authorization: Bearer …` (redacted in logs).
#[derive(Clone)]
pub struct ClusterToken(String);

impl ClusterToken {
    /// Wraps the secret.
    pub fn new(secret: impl Into<String>) -> ClusterToken {
        ClusterToken(secret.into())
    }

    /// Compares in constant time (over SHA-256 of both, so the length leaks nothing).
    fn matches(&self, presented: &str) -> bool {
        let h = |s: &str| aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes());
        aws_lc_rs::constant_time::verify_slices_are_equal(
            h(&self.0).as_ref(),
            h(presented).as_ref(),
        )
        .is_ok()
    }
}

impl std::fmt::Debug for ClusterToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterToken(<redacted>)")
    }
}

/// The configured token; without one the cluster API does not exist (404).
fn configured(cp: &ControlPlane) -> Result<&ClusterToken, Error> {
    cp.config().cluster_token.as_ref().ok_or(Error::Missing(
        "the cluster API is off (no cluster token configured)",
    ))
}

/// A media node: the request carries the cluster token.
#[derive(Debug)]
pub(crate) struct NodeAuth;

impl FromRequestParts<ControlPlane> for NodeAuth {
    type Rejection = Error;
    async fn from_request_parts(parts: &mut Parts, cp: &ControlPlane) -> Result<Self, Error> {
        let token = configured(cp)?;
        let presented = bearer(parts).ok_or(Error::Unauthorized("a cluster token is required"))?;
        if token.matches(presented) {
            Ok(NodeAuth)
        } else {
            Err(Error::Unauthorized("invalid cluster token"))
        }
    }
}

/// A media node, or a signed-in admin.
#[derive(Debug)]
pub(crate) struct Operator;

impl FromRequestParts<ControlPlane> for Operator {
    type Rejection = Error;
    async fn from_request_parts(parts: &mut Parts, cp: &ControlPlane) -> Result<Self, Error> {
        let token = configured(cp)?;
        let presented = bearer(parts).ok_or(Error::Unauthorized("a cluster token is required"))?;
        if token.matches(presented) {
            return Ok(Operator);
        }
        if presented.matches('.').count() != 2 {
            return Err(Error::Unauthorized("invalid cluster token"));
        }
        let user = caller(cp, presented).await?;
        if user.0.role() == Role::Admin {
            Ok(Operator)
        } else {
            Err(Error::Forbidden("only an admin may do this"))
        }
    }
}
