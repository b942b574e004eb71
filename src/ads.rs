//! Where the control plane's ad breaks and sponsors' slots reach the node's viewers: each
//! cue goes into the stream's status in the node's directory, which every viewer's event
//! stream follows, so all the node's viewers are told by one broadcast.
//!
//! - In one process (`cascade serve`): the control plane's broadcast of cues.
//! - On a media-only node (`cascade node`, with `--cluster-token`): a long poll of
//!   `GET /api/v1/cluster/cues`, as `follow.rs` does for revocations; the control plane
//!   answers as soon as a cue is sent (another replica's within 250 ms), well inside the
//!   2 s between a break's cue and its start.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use control_plane::ads::feed::{CueFeed, CueRow, MAX_WAIT_SECS};
use control_plane::ads::Cue;
use control_plane::ControlPlane;
use tokio::sync::broadcast::error::RecvError;

/// Longest pause between attempts while the control plane is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long a cue's id is remembered (the feed reaches 2 s back).
const REMEMBER_MS: i64 = 60_000;

/// Hands every cue of the control plane in this process to `node`.
pub fn in_process(control: ControlPlane, node: sfu::Node) {
    let mut cues = control.cue_events();
    tokio::spawn(async move {
        loop {
            match cues.recv().await {
                Ok(cue) => deliver(&node, cue),
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "ad cues lagged");
                }
                Err(RecvError::Closed) => return,
            }
        }
    });
}

/// Follows a remote control plane's cues (`base`: one or more replicas, comma-separated)
/// into `node`.
pub fn remote(base: String, token: String, node: sfu::Node) {
    let urls: Vec<String> = base
        .split(',')
        .map(|b| format!("{}/api/v1/cluster/cues", b.trim().trim_end_matches('/')))
        .collect();
    tokio::spawn(async move {
        let client = match reqwest::Client::builder()
            .timeout(Duration::from_secs(MAX_WAIT_SECS + 10))
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("cannot follow ad cues: {e}");
                return;
            }
        };
        let mut at = 0usize;
        let mut since: Option<i64> = None;
        // Cues told, by id, with their time: the feed's overlap repeats some.
        let mut told: HashMap<String, i64> = HashMap::new();
        let mut backoff = Duration::from_millis(250);
        loop {
            let url = &urls[at % urls.len()];
            let wait = if since.is_some() { MAX_WAIT_SECS } else { 0 };
            let asked = client
                .get(url)
                .bearer_auth(&token)
                .query(&[("since", since.unwrap_or(0)), ("wait", wait as i64)])
                .send()
                .await
                .and_then(|r| r.error_for_status());
            let feed: Result<CueFeed, _> = match asked {
                Ok(r) => r.json().await,
                Err(e) => Err(e),
            };
            match feed {
                Ok(feed) => {
                    backoff = Duration::from_millis(250);
                    for row in feed.cues {
                        since = Some(since.unwrap_or(0).max(row.created_at));
                        // Only what still matters: a break to come or under way, a slot
                        // showing (the first answer reaches an hour back).
                        if row.until_ms > feed.now && !told.contains_key(&row.id) {
                            told.insert(row.id.clone(), row.created_at);
                            deliver_row(&node, row);
                        }
                    }
                    since.get_or_insert(feed.now);
                    told.retain(|_, at| *at > feed.now - REMEMBER_MS);
                }
                Err(e) => {
                    tracing::warn!("cannot read ad cues from {url}: {e}; retrying");
                    at += 1;
                    if at.is_multiple_of(urls.len()) {
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
        }
    });
}

fn deliver_row(node: &sfu::Node, row: CueRow) {
    let exempt = Arc::new(row.exempt_set());
    node.cue(
        &row.stream,
        sfu::directory::Cue {
            seq: 0,
            event: row.event,
            data: row.data,
            until_ms: u64::try_from(row.until_ms).unwrap_or(0),
            exempt,
        },
    );
}

fn deliver(node: &sfu::Node, cue: Cue) {
    let told = node.cue(
        &cue.stream,
        sfu::directory::Cue {
            seq: 0,
            event: cue.event.to_owned(),
            data: cue.data.to_string(),
            until_ms: u64::try_from(cue.until_ms).unwrap_or(0),
            exempt: cue.exempt,
        },
    );
    if !told {
        tracing::debug!(stream = %cue.stream, event = cue.event, "a cue for a stream not here");
    }
}
