//! Where the media front (`signaling`) meets the control plane: its `Authorizer` trait
//! answered by the control plane in this process, or by signed tokens alone.

use control_plane::gate::{check_offline, Refusal, Want};
use control_plane::tokens::Verifier;
use control_plane::ControlPlane;
use futures_util::future::BoxFuture;
use signaling::{Action, Authorizer, Denied};

fn want(action: Action) -> Want {
    match action {
        Action::Publish => Want::Publish,
        Action::View => Want::View,
    }
}

fn denied(r: Refusal) -> Denied {
    match r {
        Refusal::Unauthenticated => Denied::Unauthenticated,
        Refusal::Forbidden => Denied::Forbidden,
        Refusal::NotFound => Denied::NotFound,
        Refusal::Unavailable => Denied::Unavailable,
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
    ) -> BoxFuture<'a, Result<(), Denied>> {
        Box::pin(async move {
            self.0
                .check(want(action), stream, bearer)
                .await
                .map_err(denied)
        })
    }
}

/// A media-only node: tokens signed by a remote control plane, checked offline.
pub struct Tokens(pub Verifier);

impl Authorizer for Tokens {
    fn authorize<'a>(
        &'a self,
        action: Action,
        stream: &'a str,
        bearer: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), Denied>> {
        let result = check_offline(&self.0, want(action), stream, bearer).map_err(denied);
        Box::pin(async move { result })
    }
}
