//! Signed tokens and random secrets.
//!
//! Access, viewer and publish tokens are EdDSA (Ed25519) JWTs. The control plane holds
//! the private key (in the database, so replicas share it); a media node needs only the
//! public key to check a token offline, with [`Verifier`].

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::db::{now_ms, Db};

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

/// Checks tokens with the public key alone.
#[derive(Clone)]
pub struct Verifier {
    key: DecodingKey,
    public_b64: String,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("public_key", &self.public_b64)
            .finish()
    }
}

impl Verifier {
    /// From the base64url Ed25519 public key that `GET /api/v1/signing-key` returns.
    pub fn from_public_key(b64: &str) -> Result<Verifier, TokenError> {
        let raw = B64.decode(b64.trim()).map_err(|_| TokenError::Invalid)?;
        if raw.len() != 32 {
            return Err(TokenError::Invalid);
        }
        Ok(Verifier {
            key: DecodingKey::from_ed_der(&raw),
            public_b64: B64.encode(raw),
        })
    }

    /// The public key, base64url.
    pub fn public_key(&self) -> &str {
        &self.public_b64
    }

    /// Checks signature, expiry and kind.
    pub fn verify(&self, token: &str, kind: TokenKind) -> Result<Claims, TokenError> {
        let mut v = Validation::new(Algorithm::EdDSA);
        v.leeway = 0;
        v.validate_aud = false;
        v.set_required_spec_claims(&["exp"]);
        let data =
            jsonwebtoken::decode::<Claims>(token, &self.key, &v).map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })?;
        if data.claims.typ != kind {
            return Err(TokenError::Invalid);
        }
        Ok(data.claims)
    }
}

/// Issues tokens (and verifies them).
#[derive(Clone)]
pub struct Signer {
    key: EncodingKey,
    verifier: Verifier,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("public_key", &self.verifier.public_b64)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// The database's signing key, made on first start. Two replicas starting at once
    /// agree on one key: the insert of the fixed id is done at most once.
    pub async fn load_or_create(db: &Db) -> Result<Signer, sqlx::Error> {
        let rng = SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| sqlx::Error::Protocol("could not generate a signing key".into()))?;
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
            .map_err(|_| sqlx::Error::Protocol("could not parse the signing key".into()))?;
        sqlx::query(
            "INSERT INTO signing_keys (id, private_pkcs8, public_key, created_at) \
             VALUES ('primary', $1, $2, $3) ON CONFLICT (id) DO NOTHING",
        )
        .bind(B64.encode(pkcs8.as_ref()))
        .bind(B64.encode(pair.public_key().as_ref()))
        .bind(now_ms())
        .execute(db.pool())
        .await?;
        let (private, public): (String, String) = sqlx::query_as(
            "SELECT private_pkcs8, public_key FROM signing_keys WHERE id = 'primary'",
        )
        .fetch_one(db.pool())
        .await?;
        let der = B64
            .decode(private)
            .map_err(|_| sqlx::Error::Protocol("stored signing key is not base64".into()))?;
        let verifier = Verifier::from_public_key(&public)
            .map_err(|_| sqlx::Error::Protocol("stored public key is invalid".into()))?;
        Ok(Signer {
            key: EncodingKey::from_ed_der(&der),
            verifier,
        })
    }

    /// The matching verifier.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// Signs claims.
    pub fn sign(&self, claims: &Claims) -> Result<String, crate::Error> {
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), claims, &self.key)
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
            sub: sub.to_owned(),
            typ: kind,
            iat: now_secs,
            exp: now_secs + ttl_secs,
            sv,
            chan: chan.map(str::to_owned),
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

    fn signer() -> Signer {
        let rng = SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        Signer {
            key: EncodingKey::from_ed_der(pkcs8.as_ref()),
            verifier: Verifier::from_public_key(&B64.encode(pair.public_key().as_ref())).unwrap(),
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
