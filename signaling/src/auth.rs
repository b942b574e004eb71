//! Who may publish or watch. The WHIP/WHEP handlers call an [`Authorizer`]: the control
//! plane (in `src/gatekeeper.rs`), or here: open, or stream keys from the config. A yes is
//! a [`Grant`]: the session is bound to its tags and ends when one is revoked.

use std::collections::HashMap;

use futures_util::future::BoxFuture;

/// What a request wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Publish (WHIP).
    Publish,
    /// Watch (WHEP).
    View,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No usable credentials: 401.
    Unauthenticated,
    /// Valid credentials for something else: 403.
    Forbidden,
    /// No such stream may exist (e.g. no channel of that name): 404.
    NotFound,
    /// The stream is for the channel's subscribers: 403 with the code
    /// `subscription_required`.
    SubscriptionRequired,
    /// The authority could not be asked (database down): 503.
    Unavailable,
}

/// What an accepted request's session is bound to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Grant {
    /// Revocation tags (opaque here): the session ends when one of them is revoked.
    pub tags: Vec<String>,
    /// Whether a published stream may be listed publicly (home page, `/api/streams`,
    /// metrics labels). Unlisted and private channels are not.
    pub listed: bool,
    /// Whether a signed-in user's credential was verified (a viewer token naming a user,
    /// a stream key, a publish token): such viewers are exempt from per-address caps.
    pub identified: bool,
    /// Who is watching, when known (a user's id): whom per-viewer events name (an ad
    /// break's `skip` for a subscriber of an ad-free tier), and analytics' unique viewers.
    pub viewer: Option<String>,
    /// Whether a published stream may be transcoded into lower layers when the node runs
    /// with `--ladder` (the channel's setting, docs/PROCESSING.md).
    pub ladder: bool,
}

impl Grant {
    /// Bound to nothing, listed, laddered when the node ladders: what an open node or
    /// static keys grant.
    pub fn open() -> Grant {
        Grant {
            tags: Vec::new(),
            listed: true,
            identified: false,
            viewer: None,
            ladder: true,
        }
    }
}

/// Decides whether `bearer` may do `action` on `stream`.
pub trait Authorizer: Send + Sync + 'static {
    /// Checks one request.
    fn authorize<'a>(
        &'a self,
        action: Action,
        stream: &'a str,
        bearer: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Grant, Denied>>;
}

/// Anyone may publish and watch anything (the `serve` default with no keys configured).
#[derive(Debug, Default, Clone)]
pub struct Open;

impl Authorizer for Open {
    fn authorize<'a>(
        &'a self,
        _: Action,
        _: &'a str,
        _: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Grant, Denied>> {
        Box::pin(async { Ok(Grant::open()) })
    }
}

/// Publishing needs the stream's key from the config; watching is open.
#[derive(Debug, Default, Clone)]
pub struct StaticKeys {
    keys: HashMap<String, String>,
}

impl StaticKeys {
    /// Keys by stream name.
    pub fn new(keys: HashMap<String, String>) -> Self {
        StaticKeys { keys }
    }
}

/// Compares in time independent of where the first difference is.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Authorizer for StaticKeys {
    fn authorize<'a>(
        &'a self,
        action: Action,
        stream: &'a str,
        bearer: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Grant, Denied>> {
        let result = match action {
            Action::View => Ok(Grant::open()),
            Action::Publish => match (self.keys.get(stream), bearer) {
                (Some(key), Some(b)) if same(key, b) => Ok(Grant::open()),
                (Some(_), Some(_)) => Err(Denied::Forbidden),
                (Some(_), None) => Err(Denied::Unauthenticated),
                // A stream with no key configured cannot be published when keys are in use.
                (None, Some(_)) => Err(Denied::Forbidden),
                (None, None) => Err(Denied::Unauthenticated),
            },
        };
        Box::pin(async move { result })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn static_keys_gate_publishing_only() {
        let a = StaticKeys::new([("live".to_string(), "s3cret".to_string())].into());
        assert_eq!(
            a.authorize(Action::Publish, "live", Some("s3cret")).await,
            Ok(Grant::open())
        );
        assert_eq!(
            a.authorize(Action::Publish, "live", Some("nope")).await,
            Err(Denied::Forbidden)
        );
        assert_eq!(
            a.authorize(Action::Publish, "live", None).await,
            Err(Denied::Unauthenticated)
        );
        assert_eq!(
            a.authorize(Action::Publish, "other", Some("s3cret")).await,
            Err(Denied::Forbidden)
        );
        assert_eq!(
            a.authorize(Action::View, "live", None).await,
            Ok(Grant::open())
        );
    }
}
