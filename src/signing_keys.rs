//! A media-only node's token keys follow the control plane's (`GET /api/v1/signing-key`)
//! as they rotate, with no restart.
//!
//! A rotation (`cascade rotate-signing-key`) adds a key that starts signing after a delay
//! (by default four of the replicas' 30 s reloads) and retires the old one after an
//! overlap. The node asks every [`REFRESH_EVERY`], well inside that delay, so it holds
//! the new key before any token signed with it arrives, and drops a retired key (a leaked
//! one rotated out with no overlap) within that period. A token naming a key the node does
//! not hold (a rotation with no delay) makes it ask at once, at most every
//! [`ASK_AT_MOST_EVERY`], so a stream of forged key ids costs the control plane nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use control_plane::tokens::Verifier;

/// How often the node re-reads the control plane's keys.
pub const REFRESH_EVERY: Duration = Duration::from_secs(30);
/// The least time between two reads asked for by unknown key ids.
pub const ASK_AT_MOST_EVERY: Duration = Duration::from_secs(5);
/// One read's bound, per replica.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The keys the control plane lists, comma-separated (as `--token-public-key` takes them),
/// from the first of `control`'s replicas (comma-separated base URLs) that answers.
pub async fn fetch(client: &reqwest::Client, control: &str) -> Result<String, String> {
    for base in control.split(',') {
        let url = format!("{}/api/v1/signing-key", base.trim().trim_end_matches('/'));
        let got = async {
            client
                .get(&url)
                .timeout(TIMEOUT)
                .send()
                .await?
                .error_for_status()?
                .json::<serde_json::Value>()
                .await
        }
        .await;
        let keys: Vec<String> = got
            .ok()
            .and_then(|v| {
                v["keys"].as_array().map(|ks| {
                    ks.iter()
                        .filter_map(|k| k["public_key"].as_str().map(str::to_owned))
                        .collect()
                })
            })
            .unwrap_or_default();
        if !keys.is_empty() {
            return Ok(keys.join(","));
        }
    }
    Err(format!(
        "no control plane at {control} answered GET /api/v1/signing-key"
    ))
}

/// Keeps a [`Verifier`] holding the control plane's keys.
pub struct Follower {
    verifier: Verifier,
    control: String,
    client: reqwest::Client,
    /// When the last read started (reads asked for by unknown key ids wait their turn).
    last: tokio::sync::Mutex<Option<Instant>>,
}

impl Follower {
    pub fn new(verifier: Verifier, control: String) -> Arc<Follower> {
        Arc::new(Follower {
            verifier,
            control,
            client: reqwest::Client::new(),
            last: tokio::sync::Mutex::new(None),
        })
    }

    /// Re-reads the keys every [`REFRESH_EVERY`] while the runtime runs.
    pub fn spawn(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(REFRESH_EVERY).await;
                *me.last.lock().await = Some(Instant::now());
                me.read().await;
            }
        });
    }

    /// A token named a key the verifier lacks: read the keys now, unless a read started
    /// less than [`ASK_AT_MOST_EVERY`] ago. Whether the keys changed.
    pub async fn unknown_key(&self) -> bool {
        let mut last = self.last.lock().await;
        if last.is_some_and(|t| t.elapsed() < ASK_AT_MOST_EVERY) {
            return false;
        }
        *last = Some(Instant::now());
        // Held across the read: concurrent askers wait for it, then find it recent.
        self.read().await
    }

    async fn read(&self) -> bool {
        match fetch(&self.client, &self.control).await {
            Ok(keys) => match self.verifier.set_public_keys(&keys) {
                Ok(changed) => {
                    if changed {
                        tracing::info!(keys = %keys, "token keys changed (a rotation)");
                    }
                    changed
                }
                Err(_) => {
                    tracing::warn!("the control plane listed a key that is not Ed25519");
                    false
                }
            },
            Err(e) => {
                tracing::warn!("token keys not refreshed: {e}");
                false
            }
        }
    }
}
