//! Where the node's streams meet the control plane's webhooks and analytics: once a
//! second, every stream with a publisher on this node (listed or not) and its state go to
//! `Webhooks::observe_streams`, which emits `stream.started`, `stream.ended` and
//! `viewers.milestone`, and with the node's viewer sessions (who, join time) to
//! `ControlPlane::observe_viewers` (broadcasts, sessions, concurrency samples). A sample,
//! not a hook in the media path: the workers never wait on it, and a publisher or viewer
//! that comes and goes within a second may be missed.

use std::time::Duration;

use control_plane::analytics::{LiveSample, SessionSample};
use control_plane::webhooks::StreamSample;
use control_plane::ControlPlane;
use sfu::directory::Ingest;
use signaling::AppState;

/// How often the node's streams are sampled.
const EVERY: Duration = Duration::from_secs(1);

/// Starts the sampler; it runs as long as the process.
pub fn watch_streams(state: AppState, control: ControlPlane) {
    tokio::spawn(async move {
        let node = &state.node;
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let samples: Vec<StreamSample> = node
                .carried()
                .into_iter()
                .filter(|(_, ingest)| *ingest != Ingest::Relayed)
                .filter_map(|(stream, _)| {
                    let status = node.watch(&stream)?.borrow().clone();
                    Some(StreamSample {
                        stream,
                        active: status.active,
                        viewers: status.viewers,
                    })
                })
                .collect();
            control.observe_streams(&samples).await;
            let live: Vec<LiveSample> = samples
                .into_iter()
                .map(|s| LiveSample {
                    stream: s.stream,
                    active: s.active,
                    viewers: s.viewers,
                })
                .collect();
            let sessions: Vec<SessionSample> = node
                .viewer_sessions()
                .into_iter()
                .map(|(id, stream, joined)| SessionSample {
                    id: id.to_string(),
                    stream,
                    viewer: state.viewer_of(id),
                    join_ms: joined.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
                })
                .collect();
            control.observe_viewers(&live, &sessions).await;
        }
    });
}
