//! Where the node's audience meets the control plane's webhooks and analytics. Once a
//! second, `audience` takes the node's streams (publisher here or not, active, viewers
//! here) and its viewer sessions (who, as the grant said; join time); in `serve`
//! (`watch_streams`) that goes to `ControlPlane::observe_audience` (merged with what the
//! cluster's nodes report, when the registry is on), which emits `stream.started`,
//! `stream.ended` and `viewers.milestone` and records broadcasts, sessions and
//! concurrency samples; a media-only node's agent sends the same to the control plane
//! (`PUT /api/v1/cluster/nodes/{id}/audience`). A sample, not a hook in the media path:
//! the workers never wait on it, and a publisher or viewer that comes and goes within a
//! second may be missed.

use std::time::Duration;

use control_plane::analytics::SessionSample;
use control_plane::cluster::audience::{MAX_SESSIONS, MAX_STREAMS};
use control_plane::cluster::{Audience, StreamHere};
use control_plane::ControlPlane;
use sfu::directory::Ingest;
use signaling::AppState;

/// How often the node's streams are sampled.
const EVERY: Duration = Duration::from_secs(1);

/// The node's audience now (at most what a report may carry: the streams and sessions
/// first by name and id).
pub fn audience(state: &AppState) -> Audience {
    let node = &state.node;
    // Sorted before the cap, so a node with more than a report holds sends the same
    // ones every second (not a different cut, which would close and reopen sessions).
    let mut carried = node.carried();
    carried.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let live: std::collections::HashSet<String> =
        node.publishing().into_iter().map(|(s, _)| s).collect();
    let streams = carried
        .into_iter()
        .take(MAX_STREAMS)
        .filter_map(|(name, ingest)| {
            let viewers = node.watch(&name)?.borrow().viewers;
            let publisher = ingest != Ingest::Relayed;
            Some(StreamHere {
                // Read apart from `carried`: a publisher that came in between is said
                // active at the next sample, never active without a publisher (refused).
                active: publisher && live.contains(&name),
                name,
                publisher,
                viewers,
            })
        })
        .collect();
    let mut watching = node.viewer_sessions();
    watching.sort_unstable_by_key(|(id, _, _)| id.0);
    let sessions = watching
        .into_iter()
        .take(MAX_SESSIONS)
        .map(|(id, stream, joined)| SessionSample {
            id: id.to_string(),
            stream,
            viewer: state.viewer_of(id),
            join_ms: joined.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        })
        .collect();
    Audience { streams, sessions }
}

/// Starts the sampler of `serve`; it runs as long as the process.
pub fn watch_streams(state: AppState, control: ControlPlane) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            control.observe_audience(Some(audience(&state))).await;
        }
    });
}
