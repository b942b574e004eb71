//! TURN servers with time-limited credentials, as coturn's `use-auth-secret` (the "TURN
//! REST API") checks them: the user name is `<expiry unix time>:<label>` and the password
//! base64(HMAC-SHA1(secret, user name)). Each WHIP/WHEP answer (and OPTIONS) gets fresh
//! ones in its `Link` headers (RFC 9725 §4.6), labelled with the stream, so the secret
//! stays on the node and a leaked credential dies with its expiry.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use base64::Engine;

use crate::links::IceServer;

/// TURN URLs sharing one secret.
#[derive(Clone)]
pub struct Turn {
    urls: Vec<String>,
    key: hmac::Key,
    ttl: Duration,
}

impl std::fmt::Debug for Turn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Turn")
            .field("urls", &self.urls)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive() // never the secret
    }
}

impl Turn {
    /// `urls` (`turn:host:port?transport=udp`, `turns:…`) with coturn's `static-auth-secret`;
    /// credentials valid for `ttl`.
    pub fn new(urls: Vec<String>, secret: &[u8], ttl: Duration) -> Turn {
        Turn {
            urls,
            key: hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret),
            ttl,
        }
    }

    /// One server per URL, with a credential for `label` expiring `ttl` after `now`.
    pub fn servers(&self, label: &str, now: SystemTime) -> Vec<IceServer> {
        let expiry = now
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_add(self.ttl)
            .as_secs();
        // The label is the stream name: no ':' (coturn splits on the first) and nothing a
        // quoted header parameter cannot hold.
        let label: String = label
            .chars()
            .filter(|c| c.is_ascii_graphic() && !matches!(c, ':' | '"' | '\\'))
            .take(64)
            .collect();
        let username = format!("{expiry}:{label}");
        let tag = hmac::sign(&self.key, username.as_bytes());
        let credential = base64::engine::general_purpose::STANDARD.encode(tag.as_ref());
        self.urls
            .iter()
            .map(|url| IceServer {
                url: url.clone(),
                username: Some(username.clone()),
                credential: Some(credential.clone()),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_coturns_rest_api_ones() {
        let turn = Turn::new(
            vec!["turn:10.0.0.1:3478?transport=udp".into()],
            b"north",
            Duration::from_secs(3600),
        );
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let s = turn.servers("my:stream\"x", now);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].username.as_deref(), Some("1700003600:mystreamx"));
        // printf %s 1700003600:mystreamx | openssl dgst -sha1 -hmac north -binary | base64
        assert_eq!(
            s[0].credential.as_deref(),
            Some("Kl3GlzH5nmXDhhlhvDEMsfm78o4=")
        );
    }
}
