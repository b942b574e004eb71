//! Where the media front (`signaling`) meets the control plane: its `Authorizer` trait
//! answered by the control plane in this process, or by signed tokens and the control
//! plane's revocation list alone (a media-only node).

use std::sync::{Arc, RwLock};

use control_plane::gate::{check_offline, Refusal, Want};
use control_plane::revocation::RevocationList;
use control_plane::tokens::Verifier;
use control_plane::ControlPlane;
use futures_util::future::BoxFuture;
use signaling::{Action, Authorizer, Denied, Grant};

use crate::signing_keys::Follower;

fn want(action: Action) -> Want {
    match action {
        Action::Publish => Want::Publish,
        Action::View => Want::View,
    }
}

fn answer(r: Result<control_plane::gate::Grant, Refusal>) -> Result<Grant, Denied> {
    match r {
        Ok(g) => Ok(Grant {
            tags: g.tags,
            listed: g.listed,
            identified: g.identified,
            viewer: g.viewer,
            ladder: g.ladder,
        }),
        Err(Refusal::Unauthenticated) => Err(Denied::Unauthenticated),
        Err(Refusal::Forbidden) => Err(Denied::Forbidden),
        Err(Refusal::NotFound) => Err(Denied::NotFound),
        Err(Refusal::SubscriptionRequired) => Err(Denied::SubscriptionRequired),
        Err(Refusal::Unavailable) => Err(Denied::Unavailable),
    }
}

/// Channels and stream keys from the control plane in this process.
pub struct Accounts(pub ControlPlane);

impl Authorizer for Accounts {
    fn authorize<'a>(
        &'a self,
        action: Action,
        stream: &'a str,
        bearer: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Grant, Denied>> {
        Box::pin(async move { answer(self.0.check(want(action), stream, bearer).await) })
    }
}

/// A media-only node: tokens signed by a remote control plane, checked offline against
/// the revocation list followed from it (`crate::follow`).
pub struct Tokens {
    /// The control plane's public key(s), as `keys` last read them.
    pub verifier: Verifier,
    /// Follows the control plane's keys as they rotate.
    pub keys: Arc<Follower>,
    /// Its revocation list, as last fetched.
    pub revoked: Arc<RwLock<RevocationList>>,
}

impl Tokens {
    fn check(&self, action: Action, stream: &str, bearer: Option<&str>) -> Result<Grant, Denied> {
        let revoked = self.revoked.read().unwrap_or_else(|p| p.into_inner());
        answer(check_offline(
            &self.verifier,
            &revoked,
            want(action),
            stream,
            bearer,
        ))
    }
}

impl Authorizer for Tokens {
    fn authorize<'a>(
        &'a self,
        action: Action,
        stream: &'a str,
        bearer: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Grant, Denied>> {
        Box::pin(async move {
            let result = self.check(action, stream, bearer);
            // Signed with a key this node has not heard of yet (a rotation that has just
            // come into force): read the control plane's keys, then check once more.
            let unknown = bearer.is_some_and(|b| self.verifier.names_unknown_key(b));
            if matches!(result, Err(Denied::Unauthenticated))
                && unknown
                && self.keys.unknown_key().await
            {
                return self.check(action, stream, bearer);
            }
            result
        })
    }
}
