//! Revocations reach the node's live sessions and its token checks.
//!
//! - In one process (`--auth accounts`): the control plane's broadcast of revocations;
//!   a revoked key, channel or user ends its sessions within milliseconds.
//! - On a media-only node (`--auth tokens --control-plane URL`): a long poll of
//!   `GET /api/v1/revocations`. The control plane answers as soon as its list changes
//!   (a change on another replica within a second), so a revocation reaches the node's
//!   token checks and live sessions within about a second plus a round trip. If the
//!   control plane cannot be reached, the node keeps the list it has and retries; tokens
//!   it has not heard about stay usable until they expire (publish tokens 15 minutes,
//!   viewer tokens 5), which is the worst-case window.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use control_plane::revocation::{RevocationFeed, RevocationList};
use control_plane::ControlPlane;
use signaling::AppState;
use tokio::sync::broadcast::error::RecvError;

/// How long the control plane may hold a long poll (it answers by 25 s).
const WAIT_SECS: u64 = 25;
/// Longest pause between attempts while the control plane is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Ends sessions as the control plane in this process revokes what they are bound to.
pub fn in_process(control: ControlPlane, state: AppState) {
    let mut events = control.revocation_events();
    tokio::spawn(async move {
        let mut seen = Seen::default();
        loop {
            match events.recv().await {
                Ok(e) => {
                    seen.mark(e.at, &e.tag);
                    if e.end_live {
                        state.revoke(&e.tag).await;
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    // Read what was missed from the database instead.
                    tracing::warn!(missed, "revocations lagged; reading the list");
                    match control.revocation_feed().await {
                        Ok(feed) => {
                            for e in feed.entries {
                                if seen.missed(e.at, &e.tag) {
                                    seen.mark(e.at, &e.tag);
                                    if e.end_live {
                                        state.revoke(&e.tag).await;
                                    }
                                }
                            }
                        }
                        Err(e) => tracing::error!("reading revocations: {e}"),
                    }
                }
                Err(RecvError::Closed) => return,
            }
        }
    });
}

/// How far before the newest revocation applied one read after a lag may be and still be
/// new: revocations are sent about when they are timed, so one missed is not older.
const LAG_WINDOW_MS: i64 = 10_000;
/// Most revocations remembered.
const SEEN_MAX: usize = 65_536;

/// The revocations applied lately (time and tag). Applying one twice is not harmless: a
/// tag is revoked again and again (`paywall:` at each closing), and the sessions bound to
/// it since (let in while the paywall was open again) must not end for an old revocation
/// read a second time after a lag.
#[derive(Debug, Default)]
struct Seen {
    newest: i64,
    /// In about the order they were timed: the old ones at the front.
    order: std::collections::VecDeque<(i64, String)>,
    applied: std::collections::HashSet<(i64, String)>,
}

impl Seen {
    fn mark(&mut self, at: i64, tag: &str) {
        self.newest = self.newest.max(at);
        if self.applied.insert((at, tag.to_owned())) {
            self.order.push_back((at, tag.to_owned()));
        }
        let oldest = self.newest - LAG_WINDOW_MS;
        while self.order.front().is_some_and(|(t, _)| *t < oldest) || self.order.len() > SEEN_MAX {
            if let Some(gone) = self.order.pop_front() {
                self.applied.remove(&gone);
            }
        }
    }

    /// Whether the revocation of `tag` at `at`, read from the list after a lag, was not
    /// applied.
    fn missed(&self, at: i64, tag: &str) -> bool {
        at >= self.newest - LAG_WINDOW_MS && !self.applied.contains(&(at, tag.to_owned()))
    }
}

/// Follows a remote control plane's revocation list into `list`, ending sessions bound to
/// what it revokes.
pub fn remote(base: String, list: Arc<RwLock<RevocationList>>, state: AppState) {
    // Several replicas, comma-separated: a failed poll moves to the next.
    let urls: Vec<String> = base
        .split(',')
        .map(|b| format!("{}/api/v1/revocations", b.trim().trim_end_matches('/')))
        .collect();
    let mut at = 0usize;
    tokio::spawn(async move {
        let client = match reqwest::Client::builder()
            .timeout(Duration::from_secs(WAIT_SECS + 10))
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("cannot follow revocations: {e}");
                return;
            }
        };
        let mut backoff = Duration::from_millis(250);
        let mut failing = false;
        loop {
            let since = list
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .version()
                .to_owned();
            let wait = if since.is_empty() { 0 } else { WAIT_SECS };
            let url = &urls[at % urls.len()];
            match fetch(&client, url, &since, wait).await {
                Ok(feed) => {
                    if failing {
                        tracing::info!("following revocations from {url} again");
                        failing = false;
                    }
                    backoff = Duration::from_millis(250);
                    let ended = list.write().unwrap_or_else(|p| p.into_inner()).apply(feed);
                    for tag in ended {
                        state.revoke(&tag).await;
                    }
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!("cannot read revocations from {url}: {e}; retrying");
                        failing = true;
                    }
                    at += 1;
                    // Straight to the next replica; a pause once all have failed.
                    if at.is_multiple_of(urls.len()) {
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
        }
    });
}

async fn fetch(
    client: &reqwest::Client,
    url: &str,
    since: &str,
    wait: u64,
) -> Result<RevocationFeed, reqwest::Error> {
    client
        .get(url)
        .query(&[("since", since), ("wait", &wait.to_string())])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await
}

#[cfg(test)]
mod tests {
    use super::Seen;

    #[test]
    fn a_revocation_read_again_after_a_lag_is_not_applied_twice() {
        let mut seen = Seen::default();
        seen.mark(10_000, "paywall:a");
        seen.mark(10_000, "user:b");
        // Read again after a lag: both are in the list, neither is new.
        assert!(!seen.missed(10_000, "paywall:a"));
        assert!(!seen.missed(10_000, "user:b"));
        // What the lag dropped is: the same tag revoked again, another one just before.
        assert!(seen.missed(20_000, "paywall:a"), "the paywall closed again");
        assert!(seen.missed(9_000, "key:c"), "sent out of order");
        // Older than the window: from before the lag, applied then.
        assert!(!seen.missed(-1, "key:d"));
    }
}
