//! The one question a media node asks: may this bearer publish to, or watch, this
//! stream? Answered in-process from the database ([`ControlPlane::check`]) or offline from
//! a signed token alone ([`check_offline`]).
//!
//! Publishing takes a channel's stream key (or a publish token for that channel);
//! watching a public or unlisted channel takes nothing, a private one a viewer token.

use crate::channels::by_slug;
use crate::keys;
use crate::model::Visibility;
use crate::tokens::{TokenKind, Verifier};
use crate::ControlPlane;

/// What the bearer wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// WHIP.
    Publish,
    /// WHEP.
    View,
}

/// Why the answer is no.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No credential, or one that is invalid, expired or revoked.
    Unauthenticated,
    /// A valid credential for another channel, or of a suspended owner.
    Forbidden,
    /// No such channel.
    NotFound,
    /// The database could not answer.
    Unavailable,
}

/// Checks a signed token's kind, expiry and channel.
fn token_for(
    verifier: &Verifier,
    token: &str,
    kind: TokenKind,
    stream: &str,
) -> Result<(), Refusal> {
    match verifier.verify(token, kind) {
        Ok(c) if c.chan.as_deref() == Some(stream) => Ok(()),
        Ok(_) => Err(Refusal::Forbidden),
        Err(_) => Err(Refusal::Unauthenticated),
    }
}

/// A media node with no database: publishing takes a publish token, watching a viewer
/// token, each signed by the control plane for this stream.
pub fn check_offline(
    verifier: &Verifier,
    want: Want,
    stream: &str,
    bearer: Option<&str>,
) -> Result<(), Refusal> {
    let bearer = bearer.ok_or(Refusal::Unauthenticated)?;
    let kind = match want {
        Want::Publish => TokenKind::Publish,
        Want::View => TokenKind::View,
    };
    token_for(verifier, bearer, kind, stream)
}

impl ControlPlane {
    /// Answers for the node in this process.
    pub async fn check(
        &self,
        want: Want,
        stream: &str,
        bearer: Option<&str>,
    ) -> Result<(), Refusal> {
        match want {
            Want::Publish => self.check_publish(stream, bearer).await,
            Want::View => self.check_view(stream, bearer).await,
        }
    }

    async fn check_publish(&self, stream: &str, bearer: Option<&str>) -> Result<(), Refusal> {
        let bearer = bearer.ok_or(Refusal::Unauthenticated)?;
        if bearer.starts_with("csk_") {
            let key = keys::find(self, bearer)
                .await
                .map_err(|_| Refusal::Unavailable)?
                .ok_or(Refusal::Unauthenticated)?;
            if key.slug != stream || key.owner_status == "suspended" {
                return Err(Refusal::Forbidden);
            }
            keys::touch(self, &key.id).await;
            return Ok(());
        }
        token_for(self.signer().verifier(), bearer, TokenKind::Publish, stream)
    }

    async fn check_view(&self, stream: &str, bearer: Option<&str>) -> Result<(), Refusal> {
        let channel = by_slug(self, stream)
            .await
            .map_err(|_| Refusal::Unavailable)?
            .ok_or(Refusal::NotFound)?;
        if Visibility::parse(&channel.visibility) != Visibility::Private {
            return Ok(());
        }
        let bearer = bearer.ok_or(Refusal::Unauthenticated)?;
        token_for(self.signer().verifier(), bearer, TokenKind::View, stream)
    }
}
