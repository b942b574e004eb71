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
    /// The control plane's public key(s).
    pub verifier: Verifier,
    /// Its revocation list, as last fetched.
    pub revoked: Arc<RwLock<RevocationList>>,
}

impl Authorizer for Tokens {
    fn authorize<'a>(
        &'a self,
        action: Action,
        stream: &'a str,
        bearer: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Grant, Denied>> {
        let revoked = self.revoked.read().unwrap_or_else(|p| p.into_inner());
        let result = answer(check_offline(
            &self.verifier,
            &revoked,
            want(action),
            stream,
            bearer,
        ));
        Box::pin(async move { result })
    }
}
