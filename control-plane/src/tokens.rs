//! Signed tokens and random secrets.
//!
//! Access, viewer and publish tokens are EdDSA (Ed25519) JWTs. The control plane holds
//! the private keys (sealed in the database, so replicas share them: see
//! [`crate::keystore`]); a media node needs only the public keys to check a token offline,
//! with [`Verifier`]. Each token names its key in the header (`kid`).

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, RwLock};

use crate::db::{now_ms, Db, DbError};
use crate::keystore::{Keyring, PublicKey, SecretKey};

/// What a token lets its bearer do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// Call the API as a user.
    Access,
    /// Watch one channel.
    View,
    /// Publish to one channel.
    Publish,
}

/// A token's claims.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user (access, view) or the stream key's id (publish).
    pub sub: String,
    /// The kind of token.
    pub typ: TokenKind,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Expires at, seconds since the epoch.
    pub exp: i64,
    /// The user's session version when issued (access tokens).
    #[serde(default)]
    pub sv: i64,
    /// The channel's slug (view, publish).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chan: Option<String>,
    /// The channel's id (view, publish): a slug can pass to a new channel, an id cannot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cid: Option<String>,
    /// The channel owner's user id (publish); `sv` is then the owner's session version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub own: Option<String>,
    /// Whether the channel may be listed publicly (publish): a node without the
    /// database learns it here.
    #[serde(default)]
    pub lst: bool,
    /// The viewer passed an open paywall (view): neither the owner, an admin nor a
    /// subscriber, so the session ends when the paywall closes (the `paywall:` tag).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pwo: bool,
    /// The channel's owner turned the transcoded ladder off (publish): a node without the
    /// database learns it here. Absent (older tokens, view tokens): not off.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nol: bool,
}

impl Claims {
    /// Claims of `kind` for `sub`, valid `ttl_secs` from `now_secs`, bound to no channel.
    fn new(kind: TokenKind, sub: &str, sv: i64, now_secs: i64, ttl_secs: i64) -> Claims {
        Claims {
            sub: sub.to_owned(),
            typ: kind,
            iat: now_secs,
            exp: now_secs + ttl_secs,
            sv,
            chan: None,
            cid: None,
            own: None,
            lst: false,
            pwo: false,
            nol: false,
        }
    }
}

/// What a viewer or publish token binds to: one channel, by identity.
#[derive(Debug, Clone, Copy)]
pub struct ChannelClaim<'a> {
    /// The slug the token is for (the stream name on the node).
    pub slug: &'a str,
    /// The channel's id.
    pub id: &'a str,
    /// The owner's user id (publish tokens).
    pub owner: Option<&'a str>,
    /// Public channels are listed.
    pub listed: bool,
    /// A viewer admitted only because the channel's paywall is open ([`Claims::pwo`]).
    pub paywall_open: bool,
    /// The owner turned the transcoded ladder off for the channel ([`Claims::nol`],
    /// publish tokens).
    pub ladder_off: bool,
}

/// Why a token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Past its expiry.
    #[error("token expired")]
    Expired,
    /// Bad signature, malformed, or of another kind.
    #[error("invalid token")]
    Invalid,
}

/// Checks tokens with public keys alone: one, or several during a rotation's overlap.
/// Cheap to clone; a control plane's verifier follows its keyring as keys rotate.
#[derive(Clone)]
pub struct Verifier {
    ring: Arc<RwLock<Arc<Keyring>>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ring = self.ring();
        let keys: Vec<&str> = ring.public.iter().map(|k| k.public_b64.as_str()).collect();
        f.debug_struct("Verifier")
            .field("public_keys", &keys)
            .finish()
    }
}

/// A public key that verifies tokens, as `GET /api/v1/signing-key` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ActiveKey {
    /// The key id tokens carry in their header (`kid`).
    pub kid: String,
    /// The raw 32-byte Ed25519 public key, base64url without padding.
    pub public_key: String,
    /// When it signs (or signed) from, milliseconds since the epoch.
    pub signs_from: i64,
    /// When it stops verifying, milliseconds since the epoch; none while it is current.
    pub retires_at: Option<i64>,
}

impl Verifier {
    /// From base64url Ed25519 public keys (`GET /api/v1/signing-key`), comma-separated:
    /// give a media node the old and the new key while a rotation overlaps.
    pub fn from_public_key(list: &str) -> Result<Verifier, TokenError> {
        let public = list
            .split(',')
            .filter(|k| !k.trim().is_empty())
            .map(|k| PublicKey::from_b64(k).ok_or(TokenError::Invalid))
            .collect::<Result<Vec<_>, _>>()?;
        if public.is_empty() {
            return Err(TokenError::Invalid);
        }
        Ok(Verifier::with(Keyring {
            public,
            private: Vec::new(),
        }))
    }

    /// Replaces the public keys with `list` (as [`Self::from_public_key`] takes it): a
    /// media node following the control plane's keys as they rotate. Whether they changed.
    pub fn set_public_keys(&self, list: &str) -> Result<bool, TokenError> {
        let next = Verifier::from_public_key(list)?.ring();
        let same = {
            let kids = |r: &Keyring| r.public.iter().map(|k| k.kid.clone()).collect::<Vec<_>>();
            kids(&self.ring()) == kids(&next)
        };
        if !same {
            self.replace((*next).clone());
        }
        Ok(!same)
    }

    /// Whether `token` names (in its header's `kid`) a key this verifier does not hold: a
    /// key newer than the last it was given, or a forgery.
    pub fn names_unknown_key(&self, token: &str) -> bool {
        let Ok(header) = jsonwebtoken::decode_header(token) else {
            return false;
        };
        header
            .kid
            .is_some_and(|kid| !self.ring().public.iter().any(|k| k.kid == kid))
    }

    fn with(ring: Keyring) -> Verifier {
        Verifier {
            ring: Arc::new(RwLock::new(Arc::new(ring))),
        }
    }

    fn ring(&self) -> Arc<Keyring> {
        // A poisoned lock still holds a whole keyring: it is only ever replaced whole.
        self.ring.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn replace(&self, ring: Keyring) {
        *self.ring.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(ring);
    }

    /// The current public key, base64url: the one signing now (or the first given).
    pub fn public_key(&self) -> String {
        let ring = self.ring();
        let now = now_ms();
        ring.signing(now)
            .and_then(|(kid, _)| ring.public.iter().find(|k| k.kid == kid))
            .or(ring.public.first())
            .map(|k| k.public_b64.clone())
            .unwrap_or_default()
    }

    /// Every public key that verifies now.
    pub fn public_keys(&self) -> Vec<ActiveKey> {
        let now = now_ms();
        self.ring()
            .public
            .iter()
            .filter(|k| k.active(now))
            .map(|k| ActiveKey {
                kid: k.kid.clone(),
                public_key: k.public_b64.clone(),
                signs_from: k.signs_from,
                retires_at: k.retires_at,
            })
            .collect()
    }

    /// Checks signature, expiry and kind, with the key the header names (every key for a
    /// token without `kid`, as older versions signed), if that key is not retired.
    pub fn verify(&self, token: &str, kind: TokenKind) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        let mut v = Validation::new(Algorithm::EdDSA);
        v.leeway = 0;
        v.validate_aud = false;
        v.set_required_spec_claims(&["exp"]);
        let ring = self.ring();
        let now = now_ms();
        let mut result = Err(TokenError::Invalid);
        for key in ring
            .public
            .iter()
            .filter(|k| k.active(now) && header.kid.as_deref().is_none_or(|kid| kid == k.kid))
        {
            result = jsonwebtoken::decode::<Claims>(token, &key.decoding, &v).map_err(|e| match e
                .kind()
            {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            });
            if matches!(result, Ok(_) | Err(TokenError::Expired)) {
                break;
            }
        }
        let data = result?.claims;
        if data.typ != kind {
            return Err(TokenError::Invalid);
        }
        Ok(data)
    }
}

/// Issues tokens (and verifies them).
#[derive(Clone)]
pub struct Signer {
    /// Its keyring holds the private halves too.
    verifier: Verifier,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("public_key", &self.verifier.public_key())
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// The database's signing keys, opened with `secret` (see [`crate::keystore`]); a key
    /// is made on first start.
    pub async fn load_or_create(db: &Db, secret: &SecretKey) -> Result<Signer, DbError> {
        let ring = crate::keystore::load_or_create(db, secret).await?;
        Ok(Signer {
            verifier: Verifier::with(ring),
        })
    }

    /// Re-reads the keys (after a rotation by another process).
    pub async fn reload(&self, db: &Db, secret: &SecretKey) -> Result<(), DbError> {
        let ring = crate::keystore::load(db, secret).await?;
        if ring.private.is_empty() {
            // Never swap in a ring that cannot sign; keep the last good one.
            return Err(DbError::SecretKey("no signing key is active".into()));
        }
        self.verifier.replace(ring);
        Ok(())
    }

    /// The matching verifier.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// Signs claims with the current key, naming it in the header (`kid`).
    pub fn sign(&self, claims: &Claims) -> Result<String, crate::Error> {
        let ring = self.verifier.ring();
        let (kid, key) = ring
            .signing(now_ms())
            .ok_or_else(|| crate::Error::Internal("no signing key is active".into()))?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, key)
            .map_err(|e| crate::Error::Internal(format!("signing a token: {e}")))
    }

    /// Signs a token of `kind` for `sub`, valid `ttl_secs` from `now_secs`.
    pub fn issue(
        &self,
        kind: TokenKind,
        sub: &str,
        sv: i64,
        chan: Option<&str>,
        now_secs: i64,
        ttl_secs: i64,
    ) -> Result<String, crate::Error> {
        self.sign(&Claims {
            chan: chan.map(str::to_owned),
            ..Claims::new(kind, sub, sv, now_secs, ttl_secs)
        })
    }

    /// Signs a viewer or publish token bound to one channel's identity.
    pub fn issue_channel(
        &self,
        kind: TokenKind,
        sub: &str,
        sv: i64,
        chan: ChannelClaim<'_>,
        now_secs: i64,
        ttl_secs: i64,
    ) -> Result<String, crate::Error> {
        self.sign(&Claims {
            chan: Some(chan.slug.to_owned()),
            cid: Some(chan.id.to_owned()),
            own: chan.owner.map(str::to_owned),
            lst: chan.listed,
            pwo: chan.paywall_open,
            nol: chan.ladder_off,
            ..Claims::new(kind, sub, sv, now_secs, ttl_secs)
        })
    }
}

/// Seconds since the epoch.
pub fn now_secs() -> i64 {
    now_ms() / 1000
}

/// A fresh random secret: `prefix` then 32 random bytes, base64url.
pub(crate) fn random_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    // The system generator only fails if the OS has no randomness at all.
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("operating system randomness");
    format!("{prefix}{}", B64.encode(bytes))
}

/// A fresh random id (16 bytes, base64url).
pub(crate) fn random_id() -> String {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("operating system randomness");
    B64.encode(bytes)
}

/// SHA-256 of a high-entropy secret, hex: what the database stores instead of it.
pub(crate) fn hash_secret(secret: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
    use jsonwebtoken::EncodingKey;

    fn signer() -> Signer {
        let rng = SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let public = PublicKey::from_b64(&B64.encode(pair.public_key().as_ref())).unwrap();
        Signer {
            verifier: Verifier::with(Keyring {
                private: vec![(
                    public.kid.clone(),
                    0,
                    EncodingKey::from_ed_der(pkcs8.as_ref()),
                )],
                public: vec![public],
            }),
        }
    }

    #[test]
    fn verifies_kind_expiry_and_signature() {
        let s = signer();
        let now = now_secs();
        let t = s
            .issue(TokenKind::View, "u1", 0, Some("live"), now, 60)
            .unwrap();
        let c = s.verifier().verify(&t, TokenKind::View).unwrap();
        assert_eq!(c.chan.as_deref(), Some("live"));
        assert_eq!(
            s.verifier().verify(&t, TokenKind::Publish).unwrap_err(),
            TokenError::Invalid
        );
        let old = s
            .issue(TokenKind::View, "u1", 0, Some("live"), now - 120, 60)
            .unwrap();
        assert_eq!(
            s.verifier().verify(&old, TokenKind::View).unwrap_err(),
            TokenError::Expired
        );
        // Another key's signature is refused.
        let other = signer();
        assert_eq!(
            other.verifier().verify(&t, TokenKind::View).unwrap_err(),
            TokenError::Invalid
        );
        // A tampered payload is refused.
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged = B64.encode(
            serde_json::to_vec(
                &serde_json::json!({"sub":"u1","typ":"view","iat":now,"exp":now+60,"chan":"other"}),
            )
            .unwrap(),
        );
        parts[1] = &forged;
        assert!(s
            .verifier()
            .verify(&parts.join("."), TokenKind::View)
            .is_err());
    }

    #[test]
    fn secrets_are_random_and_hashed() {
        let a = random_secret("csk_");
        assert!(a.starts_with("csk_") && a.len() > 40);
        assert_ne!(a, random_secret("csk_"));
        assert_eq!(hash_secret(&a), hash_secret(&a));
        assert_eq!(hash_secret(&a).len(), 64);
    }
}
