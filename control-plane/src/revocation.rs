//! Revocations: what stops a signed token, or a live session, before it expires.
//!
//! Every token and every live WHIP/WHEP session is bound to a few **tags**: the stream key
//! it was minted from (`key:<id>`), the channel (`channel:<id>`), the user (`user:<id>`,
//! with that user's session version), for a signed-in viewer the permission to watch
//! (`watch:<channel id>:<user id>`) and, for a viewer admitted only because the channel's
//! paywall is open, that paywall (`paywall:<channel id>`). Revoking a key, deleting a
//! channel, suspending, deleting or signing out a user, removing a private viewer or
//! closing a paywall records the tag here:
//!
//! - in the database (`revocations`), kept until every token it could refuse has expired,
//!   and served as `GET /api/v1/revocations` (a long poll) to media nodes that check tokens
//!   offline; they keep a [`RevocationList`] and refuse what it names;
//! - on a broadcast channel ([`ControlPlane::revocation_events`]) for the node in this
//!   process, which ends the live sessions bound to the tag at once.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use utoipa::{IntoParams, ToSchema};

use crate::db::now_ms;
use crate::error::{ApiResult, Problem};
use crate::tokens::{Claims, TokenKind};
use crate::ControlPlane;

/// Events queued for the in-process node before a slow reader lags (it then re-reads).
pub(crate) const EVENT_QUEUE: usize = 1024;
/// The longest a long poll of the list waits for a change.
const MAX_WAIT_SECS: u64 = 25;
/// How often a waiting long poll re-reads the database (another replica may have written).
const RECHECK: Duration = Duration::from_secs(1);
/// Kept past the longest token lifetime, for clocks that disagree a little.
const MARGIN_MS: i64 = 60_000;

/// The key tag of a stream key.
pub fn key_tag(id: &str) -> String {
    format!("key:{id}")
}

/// The tag of a channel.
pub fn channel_tag(id: &str) -> String {
    format!("channel:{id}")
}

/// The tag of a user.
pub fn user_tag(id: &str) -> String {
    format!("user:{id}")
}

/// The tag of a user's permission to watch a private channel.
pub fn watch_tag(channel_id: &str, user_id: &str) -> String {
    format!("watch:{channel_id}:{user_id}")
}

/// The tag of the viewers a channel admits only while its paywall is open (neither its
/// owner, an admin nor a subscriber): closing the paywall revokes it.
pub fn paywall_tag(channel_id: &str) -> String {
    format!("paywall:{channel_id}")
}

/// The user id anonymous viewer tokens carry.
pub const ANONYMOUS: &str = "anonymous";

/// The tags a token (and a session opened with it) is bound to.
pub fn token_tags(c: &Claims) -> Vec<String> {
    let mut tags = Vec::with_capacity(3);
    if let Some(cid) = &c.cid {
        tags.push(channel_tag(cid));
    }
    match c.typ {
        TokenKind::Publish => {
            tags.push(key_tag(&c.sub));
            if let Some(owner) = &c.own {
                tags.push(user_tag(owner));
            }
        }
        TokenKind::View if c.sub != ANONYMOUS => {
            tags.push(user_tag(&c.sub));
            if let Some(cid) = &c.cid {
                tags.push(watch_tag(cid, &c.sub));
            }
        }
        TokenKind::View | TokenKind::Access => {}
    }
    if let (TokenKind::View, true, Some(cid)) = (c.typ, c.pwo, &c.cid) {
        tags.push(paywall_tag(cid));
    }
    tags
}

/// One revocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Revoked {
    /// What is revoked (`key:…`, `channel:…`, `user:…`, `watch:…`, `paywall:…`).
    pub tag: String,
    /// For a `user:` tag: tokens with an older session version are refused.
    pub min_sv: i64,
    /// Whether live sessions bound to the tag must end (suspension, deletion, key
    /// revocation), not only new tokens be refused (sign-out).
    pub end_live: bool,
    /// When, Unix milliseconds.
    pub at: i64,
    /// When the entry can be forgotten (every token it refuses has expired), Unix ms.
    pub expires_at: i64,
}

impl Revoked {
    /// Whether this entry refuses a token with these claims, bound to `tag`.
    fn refuses(&self, c: &Claims) -> bool {
        if self.tag.starts_with("user:") {
            c.sv < self.min_sv
        } else if self.tag.starts_with("watch:") || self.tag.starts_with("paywall:") {
            // A viewer may be allowed again later (the paywall may open again): only
            // tokens from before count.
            c.iat.saturating_mul(1000) <= self.at
        } else {
            true
        }
    }
}

/// The list as served to media nodes.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RevocationFeed {
    /// Changes whenever the list does: pass it back as `since` to wait for a change.
    pub version: String,
    /// Every revocation that can still refuse a token.
    pub entries: Vec<Revoked>,
}

/// A media node's copy of the list.
#[derive(Debug, Default, Clone)]
pub struct RevocationList {
    by_tag: HashMap<String, Revoked>,
    version: String,
}

impl RevocationList {
    /// The version last applied (empty before the first).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Replaces the list with a fresh copy. Returns the tags whose live sessions must end
    /// that the old copy did not already say so (new, or revoked again since).
    pub fn apply(&mut self, feed: RevocationFeed) -> Vec<String> {
        let mut ended = Vec::new();
        let mut fresh = HashMap::with_capacity(feed.entries.len());
        for e in feed.entries {
            let seen = self
                .by_tag
                .get(&e.tag)
                .is_some_and(|old| old.end_live && old.at == e.at);
            if e.end_live && !seen {
                ended.push(e.tag.clone());
            }
            fresh.insert(e.tag.clone(), e);
        }
        self.by_tag = fresh;
        self.version = feed.version;
        ended
    }

    /// Whether the list refuses a token with these claims.
    pub fn refuses(&self, c: &Claims) -> bool {
        token_tags(c)
            .iter()
            .any(|t| self.by_tag.get(t).is_some_and(|e| e.refuses(c)))
    }

    /// How many entries it holds.
    pub fn len(&self) -> usize {
        self.by_tag.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.by_tag.is_empty()
    }
}

impl ControlPlane {
    /// Revocations as they happen, for the node in this process.
    pub fn revocation_events(&self) -> broadcast::Receiver<Revoked> {
        self.events().subscribe()
    }

    /// Records a revocation and tells the node in this process.
    pub(crate) async fn revoke(&self, tag: String, min_sv: i64, end_live: bool) -> ApiResult<()> {
        let cfg = self.config();
        let longest = cfg
            .access_ttl_secs
            .max(cfg.publish_ttl_secs)
            .max(cfg.view_ttl_secs);
        let at = now_ms();
        let entry = Revoked {
            tag,
            min_sv,
            end_live,
            at,
            expires_at: at + longest * 1000 + MARGIN_MS,
        };
        // The latest event decides whether live sessions end; the session-version floor
        // only rises.
        sqlx::query(
            "INSERT INTO revocations (tag, min_sv, end_live, at, expires_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tag) DO UPDATE SET \
             min_sv = CASE WHEN excluded.min_sv > revocations.min_sv \
                      THEN excluded.min_sv ELSE revocations.min_sv END, \
             end_live = excluded.end_live, at = excluded.at, expires_at = excluded.expires_at",
        )
        .bind(&entry.tag)
        .bind(entry.min_sv)
        .bind(i64::from(entry.end_live))
        .bind(entry.at)
        .bind(entry.expires_at)
        .execute(self.pool())
        .await?;
        // Nobody listening (no node in this process) is fine.
        let _ = self.events().send(entry);
        Ok(())
    }

    /// The list as it stands (forgetting expired entries first).
    pub async fn revocation_feed(&self) -> ApiResult<RevocationFeed> {
        let now = now_ms();
        sqlx::query("DELETE FROM revocations WHERE expires_at < $1")
            .bind(now)
            .execute(self.pool())
            .await?;
        let rows: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT tag, min_sv, end_live, at, expires_at FROM revocations ORDER BY at, tag",
        )
        .fetch_all(self.pool())
        .await?;
        let newest = rows.iter().map(|r| r.3).max().unwrap_or(0);
        Ok(RevocationFeed {
            version: format!("{}-{newest}", rows.len()),
            entries: rows
                .into_iter()
                .map(|(tag, min_sv, end_live, at, expires_at)| Revoked {
                    tag,
                    min_sv,
                    end_live: end_live != 0,
                    at,
                    expires_at,
                })
                .collect(),
        })
    }
}

/// `GET /api/v1/revocations` query.
#[derive(Debug, Deserialize, IntoParams)]
pub(crate) struct FeedQuery {
    /// The version the caller has: the answer waits until the list differs from it.
    since: Option<String>,
    /// Seconds to wait for a change (at most 25; 0 answers at once).
    wait: Option<u64>,
}

/// Revocations that media nodes checking tokens offline must honour: refuse tokens they
/// name, end live sessions bound to `end_live` tags. A long poll: with `since` and `wait`,
/// the answer comes when the list changes or the wait is over.
#[utoipa::path(get, path = "/api/v1/revocations", tag = "tokens", params(FeedQuery),
    responses((status = 200, body = RevocationFeed), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn feed(
    State(cp): State<ControlPlane>,
    Query(q): Query<FeedQuery>,
) -> ApiResult<axum::Json<RevocationFeed>> {
    let wait = Duration::from_secs(q.wait.unwrap_or(0).min(MAX_WAIT_SECS));
    let deadline = tokio::time::Instant::now() + wait;
    // Subscribed before reading, so a revocation between the read and the wait is seen.
    let mut events = cp.revocation_events();
    loop {
        let feed = cp.revocation_feed().await?;
        let now = tokio::time::Instant::now();
        if q.since.as_deref() != Some(feed.version.as_str()) || now >= deadline {
            return Ok(axum::Json(feed));
        }
        let _ = tokio::time::timeout(RECHECK.min(deadline - now), events.recv()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(kind: TokenKind, sub: &str, sv: i64, iat: i64) -> Claims {
        Claims {
            sub: sub.into(),
            typ: kind,
            iat,
            exp: iat + 600,
            sv,
            chan: Some("live".into()),
            cid: Some("c1".into()),
            own: (kind == TokenKind::Publish).then(|| "owner".into()),
            lst: true,
            pwo: false,
            nol: false,
        }
    }

    fn entry(tag: &str, min_sv: i64, end_live: bool, at: i64) -> Revoked {
        Revoked {
            tag: tag.into(),
            min_sv,
            end_live,
            at,
            expires_at: at + 1_000_000,
        }
    }

    fn feed(version: &str, entries: Vec<Revoked>) -> RevocationFeed {
        RevocationFeed {
            version: version.into(),
            entries,
        }
    }

    #[test]
    fn tags_name_key_channel_owner_and_viewer() {
        let p = claims(TokenKind::Publish, "k1", 3, 100);
        assert_eq!(token_tags(&p), ["channel:c1", "key:k1", "user:owner"]);
        let v = claims(TokenKind::View, "u9", 0, 100);
        assert_eq!(token_tags(&v), ["channel:c1", "user:u9", "watch:c1:u9"]);
        let anon = claims(TokenKind::View, ANONYMOUS, 0, 100);
        assert_eq!(token_tags(&anon), ["channel:c1"]);
    }

    #[test]
    fn list_refuses_what_it_names_and_reports_new_endings_once() {
        let mut list = RevocationList::default();
        let p = claims(TokenKind::Publish, "k1", 3, 100);
        assert!(!list.refuses(&p));
        // A sign-out raised the owner's session version: older tokens are refused, live
        // sessions go on.
        let ended = list.apply(feed("1", vec![entry("user:owner", 4, false, 200_000)]));
        assert!(ended.is_empty());
        assert!(list.refuses(&p));
        assert!(!list.refuses(&claims(TokenKind::Publish, "k1", 4, 300)));
        // A revoked key ends its sessions, once.
        let k = entry("key:k1", 0, true, 300_000);
        let ended = list.apply(feed("2", vec![k.clone()]));
        assert_eq!(ended, ["key:k1"]);
        assert_eq!(list.apply(feed("2", vec![k])), Vec::<String>::new());
        assert!(list.refuses(&claims(TokenKind::Publish, "k1", 9, 400)));
        assert_eq!(list.version(), "2");
    }

    #[test]
    fn a_removed_viewer_allowed_again_gets_new_tokens() {
        let mut list = RevocationList::default();
        list.apply(feed("1", vec![entry("watch:c1:u9", 0, true, 500_000)]));
        assert!(list.refuses(&claims(TokenKind::View, "u9", 0, 400)));
        assert!(list.refuses(&claims(TokenKind::View, "u9", 0, 500)));
        assert!(!list.refuses(&claims(TokenKind::View, "u9", 0, 501)));
        assert!(!list.refuses(&claims(TokenKind::View, "u8", 0, 400)));
    }

    #[test]
    fn closing_a_paywall_refuses_the_tokens_of_those_it_let_through_before() {
        let free = |sub: &str, iat| Claims {
            pwo: true,
            ..claims(TokenKind::View, sub, 0, iat)
        };
        assert_eq!(
            token_tags(&free(ANONYMOUS, 100)),
            ["channel:c1", "paywall:c1"]
        );
        let mut list = RevocationList::default();
        let ended = list.apply(feed("1", vec![entry("paywall:c1", 0, true, 500_000)]));
        assert_eq!(ended, ["paywall:c1"]);
        assert!(list.refuses(&free(ANONYMOUS, 500)));
        assert!(list.refuses(&free("u9", 400)));
        // A subscriber's token carries no such claim; later tokens (the paywall opened
        // again) are not refused.
        assert!(!list.refuses(&claims(TokenKind::View, "u9", 0, 400)));
        assert!(!list.refuses(&free(ANONYMOUS, 501)));
    }
}
