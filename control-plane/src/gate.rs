//! The one question a media node asks: may this bearer publish to, or watch, this
//! stream? Answered in-process from the database ([`ControlPlane::check`]) or offline from
//! a signed token and the revocation list ([`check_offline`]).
//!
//! Publishing takes a channel's stream key (or a publish token minted from one); watching
//! a public or unlisted channel takes nothing, a private one a viewer token. Every answer
//! binds the session to the channel's identity, not its slug: a yes comes with the
//! [`Grant`]'s revocation tags, and the node ends the session when one is revoked.

use crate::accounts::user_by_id;
use crate::channels::{by_slug, may_watch};
use crate::extract::Caller;
use crate::keys;
use crate::model::Visibility;
use crate::revocation::{
    channel_tag, key_tag, paywall_tag, token_tags, user_tag, RevocationList, ANONYMOUS,
};
use crate::tokens::{Claims, TokenKind, Verifier};
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
    /// The stream is for the channel's subscribers and the viewer has no active
    /// subscription (or is anonymous).
    SubscriptionRequired,
    /// The database could not answer.
    Unavailable,
}

/// A yes: what the session is bound to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Grant {
    /// Revocation tags (`key:…`, `channel:…`, `user:…`, `watch:…`): revoking any ends the
    /// session.
    pub tags: Vec<String>,
    /// Whether the stream may be listed publicly (a public channel's publisher).
    pub listed: bool,
    /// Whether a signed-in user's credential was verified (not an anonymous viewer).
    pub identified: bool,
    /// The viewer's user id, when identified.
    pub viewer: Option<String>,
    /// Whether the node may transcode the publisher's stream into lower layers (when it
    /// runs with `--ladder`): the channel's setting (`crate::ladder`), read at go-live.
    pub ladder: bool,
}

/// Checks a signed token's signature, expiry, kind and channel slug.
fn token_for(
    verifier: &Verifier,
    token: &str,
    kind: TokenKind,
    stream: &str,
) -> Result<Claims, Refusal> {
    match verifier.verify(token, kind) {
        Ok(c) if c.chan.as_deref() == Some(stream) && c.cid.is_some() => Ok(c),
        Ok(_) => Err(Refusal::Forbidden),
        Err(_) => Err(Refusal::Unauthenticated),
    }
}

/// A media node with no database: publishing takes a publish token, watching a viewer
/// token, each signed by the control plane for this channel and not named by the
/// revocation list the node follows.
pub fn check_offline(
    verifier: &Verifier,
    revoked: &RevocationList,
    want: Want,
    stream: &str,
    bearer: Option<&str>,
) -> Result<Grant, Refusal> {
    let bearer = bearer.ok_or(Refusal::Unauthenticated)?;
    let kind = match want {
        Want::Publish => TokenKind::Publish,
        Want::View => TokenKind::View,
    };
    let claims = token_for(verifier, bearer, kind, stream)?;
    if revoked.refuses(&claims) {
        return Err(Refusal::Unauthenticated);
    }
    Ok(Grant {
        tags: token_tags(&claims),
        listed: want == Want::Publish && claims.lst,
        identified: claims.sub != ANONYMOUS,
        viewer: (want == Want::View && claims.sub != ANONYMOUS).then(|| claims.sub.clone()),
        ladder: want == Want::Publish && !claims.nol,
    })
}

/// A session admitted only while the channel's paywall is open is bound to it too; one
/// the paywall admits anyway (a subscriber now) is not, whatever its token says.
fn with_paywall(mut tags: Vec<String>, channel_id: &str, while_open: bool) -> Vec<String> {
    let tag = paywall_tag(channel_id);
    tags.retain(|t| *t != tag);
    if while_open {
        tags.push(tag);
    }
    tags
}

impl ControlPlane {
    /// Answers for the node in this process.
    pub async fn check(
        &self,
        want: Want,
        stream: &str,
        bearer: Option<&str>,
    ) -> Result<Grant, Refusal> {
        match want {
            Want::Publish => self.check_publish(stream, bearer).await,
            Want::View => self.check_view(stream, bearer).await,
        }
    }

    async fn check_publish(&self, stream: &str, bearer: Option<&str>) -> Result<Grant, Refusal> {
        let bearer = bearer.ok_or(Refusal::Unauthenticated)?;
        let key = if bearer.starts_with("csk_") {
            keys::find(self, bearer)
                .await
                .map_err(|_| Refusal::Unavailable)?
                .ok_or(Refusal::Unauthenticated)?
        } else {
            // A publish token holds only while what it was minted from does: its key is
            // live, its channel is the same channel, its owner is active and has not
            // signed out everywhere since.
            let claims = token_for(self.signer().verifier(), bearer, TokenKind::Publish, stream)?;
            let key = keys::by_id(self, &claims.sub)
                .await
                .map_err(|_| Refusal::Unavailable)?
                .ok_or(Refusal::Unauthenticated)?;
            let same = claims.cid.as_deref() == Some(key.channel_id.as_str())
                && claims.own.as_deref() == Some(key.owner_id.as_str())
                && claims.sv == key.owner_sv;
            if !same || key.revoked_at.is_some() {
                return Err(Refusal::Unauthenticated);
            }
            key
        };
        if key.slug != stream || !key.live() {
            return Err(Refusal::Forbidden);
        }
        keys::touch(self, &key.id).await;
        Ok(Grant {
            tags: vec![
                channel_tag(&key.channel_id),
                key_tag(&key.id),
                user_tag(&key.owner_id),
            ],
            listed: key.claim().listed,
            identified: true,
            viewer: None,
            ladder: !key.claim().ladder_off,
        })
    }

    async fn check_view(&self, stream: &str, bearer: Option<&str>) -> Result<Grant, Refusal> {
        let channel = by_slug(self, stream)
            .await
            .map_err(|_| Refusal::Unavailable)?
            .ok_or(Refusal::NotFound)?;
        if Visibility::parse(&channel.visibility) != Visibility::Private {
            // Open to all; a signed-in viewer's token still tells who is watching, and
            // binds the session to them (a ban from watching ends it).
            let claims = bearer
                .and_then(|b| token_for(self.signer().verifier(), b, TokenKind::View, stream).ok())
                .filter(|c| c.cid.as_deref() == Some(&channel.id) && c.sub != ANONYMOUS);
            if let Some(c) = &claims {
                self.refuse_watch_banned(&channel.id, &c.sub).await?;
            }
            let viewer = match &claims {
                Some(c) => user_by_id(self, &c.sub)
                    .await
                    .map_err(|_| Refusal::Unavailable)?
                    .filter(|u| !u.suspended() && u.session_version == c.sv),
                None => None,
            };
            let while_open = self.refuse_unentitled(&channel, viewer.as_ref()).await?;
            let tags = claims
                .as_ref()
                .map_or_else(|| vec![channel_tag(&channel.id)], token_tags);
            return Ok(Grant {
                tags: with_paywall(tags, &channel.id, while_open),
                listed: false,
                identified: claims.is_some(),
                viewer: claims.as_ref().map(|c| c.sub.clone()),
                ladder: false,
            });
        }
        let bearer = bearer.ok_or(Refusal::Unauthenticated)?;
        let claims = token_for(self.signer().verifier(), bearer, TokenKind::View, stream)?;
        if claims.cid.as_deref() != Some(channel.id.as_str()) {
            // A token for a deleted channel whose slug someone took again.
            return Err(Refusal::Forbidden);
        }
        // Still allowed now: the viewer is active, has not signed out everywhere, and
        // still may watch (owner, admin or an allowed viewer).
        let user = match claims.sub.as_str() {
            ANONYMOUS => None,
            id => user_by_id(self, id)
                .await
                .map_err(|_| Refusal::Unavailable)?,
        };
        let user = user
            .filter(|u| !u.suspended() && u.session_version == claims.sv)
            .ok_or(Refusal::Unauthenticated)?;
        let caller = Caller(user, None);
        if !may_watch(self, &channel, Some(&caller))
            .await
            .map_err(|_| Refusal::Unavailable)?
        {
            return Err(Refusal::Unauthenticated);
        }
        self.refuse_watch_banned(&channel.id, &caller.0.id).await?;
        let while_open = self.refuse_unentitled(&channel, Some(&caller.0)).await?;
        Ok(Grant {
            tags: with_paywall(token_tags(&claims), &channel.id, while_open),
            listed: false,
            identified: true,
            viewer: Some(caller.0.id.clone()),
            ladder: false,
        })
    }

    /// A paywalled channel (or stream) admits its owner, admins and subscribers; the
    /// others only while it is open (then true: the session ends when it closes).
    async fn refuse_unentitled(
        &self,
        channel: &crate::channels::ChannelRow,
        viewer: Option<&crate::model::UserRow>,
    ) -> Result<bool, Refusal> {
        use crate::money::access::{admission, Admission};
        match admission(self, &channel.id, &channel.owner_id, viewer).await {
            Ok(Admission::Always) => Ok(false),
            Ok(Admission::WhileOpen) => Ok(true),
            Ok(Admission::Refused) => Err(Refusal::SubscriptionRequired),
            Err(_) => Err(Refusal::Unavailable),
        }
    }

    async fn refuse_watch_banned(&self, channel_id: &str, user_id: &str) -> Result<(), Refusal> {
        match crate::chat::room::watch_banned(self, channel_id, user_id).await {
            Ok(false) => Ok(()),
            Ok(true) => Err(Refusal::Forbidden),
            Err(_) => Err(Refusal::Unavailable),
        }
    }
}
