//! Ad breaks and sponsors' slots (`docs/ADS.md`): what the broadcaster cues, told to
//! every viewer at once as a [`Cue`] on the stream's event stream.
//!
//! The control plane only decides and records; the node in the same process takes each
//! cue from [`crate::ControlPlane::cue_events`] and hands it to its directory, whose
//! per-stream status every viewer's event stream follows (one broadcast for all of them);
//! media-only nodes follow them with a long poll ([`feed`]).

pub mod breaks;
pub mod feed;
pub mod sponsors;

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::Value;

use crate::Error;

/// Cues waiting for the node: a burst beyond this is dropped for a slow receiver (it
/// lags and reads on).
pub const CUE_QUEUE: usize = 64;

/// How far ahead of the cue a break starts: every viewer's player is told before it
/// begins, so all begin together.
pub const LEAD_MS: i64 = 2_000;

/// Longest ad tag, sponsor image or link URL.
pub const MAX_URL: usize = 2_048;

/// Something every viewer of a stream is told at once.
#[derive(Debug, Clone)]
pub struct Cue {
    /// The stream (a channel's slug).
    pub stream: String,
    /// The event's name: `adbreak` or `sponsor`.
    pub event: &'static str,
    /// Its data (a JSON object).
    pub data: Value,
    /// Until when (Unix ms) a viewer who joins later is still told.
    pub until_ms: i64,
    /// Viewers (user ids) told it with `"skip": true`.
    pub exempt: Arc<HashSet<String>>,
}

/// An ad tag with `{stream}` and `{duration}` filled in.
pub fn ad_tag(template: &str, stream: &str, duration_s: i64) -> String {
    template
        .replace("{stream}", stream)
        .replace("{duration}", &duration_s.to_string())
}

/// Checks an http(s) URL of at most [`MAX_URL`] characters, without spaces or control
/// characters.
pub(crate) fn url(field: &str, s: &str) -> Result<String, Error> {
    let s = s.trim();
    let ok = (s.starts_with("https://") || s.starts_with("http://"))
        && s.len() > "http://".len()
        && s.len() <= MAX_URL
        && !s.chars().any(|c| c.is_control() || c.is_whitespace());
    if ok {
        Ok(s.to_owned())
    } else {
        Err(Error::Invalid(format!(
            "{field} must be an http(s) URL of at most {MAX_URL} characters"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ad_tags_are_filled_and_urls_checked() {
        assert_eq!(
            ad_tag(
                "https://ads.example/vast?s={stream}&d={duration}",
                "show",
                30
            ),
            "https://ads.example/vast?s=show&d=30"
        );
        assert!(url("u", "https://x.io/a").is_ok());
        for bad in [
            "",
            "ftp://x",
            "http://",
            "https://a b",
            "javascript:alert(1)",
        ] {
            assert!(url("u", bad).is_err(), "{bad}");
        }
        assert!(url("u", &format!("https://x.io/{}", "a".repeat(MAX_URL))).is_err());
    }
}
