//! API keys for server-to-server use: `Authorization: Bearer cak_<id>_<secret>` wherever
//! an access token is accepted, limited by scopes (`scope.rs`: which routes each opens)
//! and optionally to one channel. The key is shown once; the database keeps the SHA-256
//! of it, found by the id and compared in constant time. Not `csk_`: that prefix is a
//! stream key's, which the WHIP gate recognizes by it.

pub mod http;
pub mod scope;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};

use crate::db::now_ms;
use crate::tokens::{hash_secret, random_secret};
use crate::{ControlPlane, Error};
pub use scope::Scope;

/// The prefix of every API key.
pub const PREFIX: &str = "cak_";

/// `last_used_at` is written at most this often per key, milliseconds.
pub const TOUCH_EVERY_MS: i64 = 60_000;

/// What a verified API key allows.
#[derive(Debug, Clone)]
pub(crate) struct KeyGrant {
    pub scopes: Vec<Scope>,
    /// The channel (id, slug) it is bound to; `None`: every channel its user may act on.
    pub channel: Option<(String, String)>,
}

#[derive(Debug, sqlx::FromRow)]
struct KeyRow {
    id: String,
    user_id: String,
    channel_id: Option<String>,
    slug: Option<String>,
    scopes: String,
    key_hash: String,
    last_used_at: Option<i64>,
    revoked_at: Option<i64>,
}

/// A new key for `id`: `cak_<id>_<secret>`.
pub(crate) fn new_key() -> (String, String) {
    let mut bytes = [0u8; 8];
    // The system generator only fails if the OS has no randomness at all.
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("operating system randomness");
    let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let key = random_secret(&format!("{PREFIX}{id}_"));
    (id, key)
}

/// The id part of a key (hex, so the first `_` after it ends it).
fn key_id(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    (id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()) && !secret.is_empty())
        .then_some(id)
}

/// Whether a bearer credential is meant as an API key.
pub(crate) fn is_api_key(bearer: &str) -> bool {
    bearer.starts_with(PREFIX)
}

/// Verifies `key`; returns its user's id and grant. Unknown, wrong and revoked keys are
/// all 401.
pub(crate) async fn verify(cp: &ControlPlane, key: &str) -> Result<(String, KeyGrant), Error> {
    const BAD: Error = Error::Unauthorized("invalid or revoked API key");
    let id = key_id(key).ok_or(BAD)?;
    let row: Option<KeyRow> = sqlx::query_as(
        "SELECT k.id, k.user_id, k.channel_id, c.slug, k.scopes, k.key_hash, k.last_used_at, \
         k.revoked_at FROM api_keys k LEFT JOIN channels c ON c.id = k.channel_id WHERE k.id = $1",
    )
    .bind(id)
    .fetch_optional(cp.pool())
    .await?;
    let row = row.ok_or(BAD)?;
    let presented = hash_secret(key);
    let same = aws_lc_rs::constant_time::verify_slices_are_equal(
        presented.as_bytes(),
        row.key_hash.as_bytes(),
    )
    .is_ok();
    if !same || row.revoked_at.is_some() {
        return Err(BAD);
    }
    let now = now_ms();
    if row.last_used_at.is_none_or(|t| now - t >= TOUCH_EVERY_MS) {
        touch(cp, &row.id, now).await;
    }
    let channel = match (row.channel_id, row.slug) {
        (Some(id), Some(slug)) => Some((id, slug)),
        (None, _) => None,
        // Bound to a channel that no longer exists (the row goes with it, but a
        // concurrent delete may be under way).
        (Some(_), None) => return Err(BAD),
    };
    Ok((
        row.user_id,
        KeyGrant {
            scopes: parse_scopes(&row.scopes),
            channel,
        },
    ))
}

/// Notes a use (best effort; only when the last note is a minute old, and the WHERE
/// keeps concurrent requests from writing twice).
async fn touch(cp: &ControlPlane, id: &str, now: i64) {
    let r = sqlx::query(
        "UPDATE api_keys SET last_used_at = $2 WHERE id = $1 \
         AND (last_used_at IS NULL OR last_used_at <= $3)",
    )
    .bind(id)
    .bind(now)
    .bind(now - TOUCH_EVERY_MS)
    .execute(cp.pool())
    .await;
    if let Err(e) = r {
        tracing::warn!("could not note an API key's use: {e}");
    }
}

pub(crate) fn parse_scopes(s: &str) -> Vec<Scope> {
    s.split_whitespace().filter_map(Scope::parse).collect()
}

/// The hash stored for a key.
pub(crate) fn stored_hash(key: &str) -> String {
    hash_secret(key)
}

/// Why an API key may not make this request (403, with a `code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRefusal {
    /// The route takes no API key (accounts, admin, API keys themselves).
    NotForKeys,
    /// The key lacks every scope that opens the route (the first is named).
    MissingScope(Scope),
    /// The key is bound to another channel.
    OtherChannel,
}

impl KeyRefusal {
    /// The problem document's `code`.
    pub fn code(self) -> &'static str {
        match self {
            KeyRefusal::NotForKeys => "api_key_not_allowed",
            KeyRefusal::MissingScope(_) => "insufficient_scope",
            KeyRefusal::OtherChannel => "api_key_wrong_channel",
        }
    }
}

impl std::fmt::Display for KeyRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyRefusal::NotForKeys => f.write_str("this endpoint does not accept API keys"),
            KeyRefusal::MissingScope(s) => {
                write!(
                    f,
                    "this API key lacks the scope {} for this endpoint",
                    s.as_str()
                )
            }
            KeyRefusal::OtherChannel => f.write_str("this API key is bound to another channel"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_their_id() {
        let (id, key) = new_key();
        assert!(key.starts_with("cak_"));
        assert_eq!(key_id(&key), Some(id.as_str()));
        assert_eq!(key_id("cak_zz_secret"), None);
        assert_eq!(key_id("csk_0123456789abcdef_x"), None);
        assert_eq!(key_id("cak_0123456789abcdef_"), None);
    }
}
