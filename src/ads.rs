//! Where the control plane's ad breaks and sponsors' slots reach the node's viewers: each
//! cue goes into the stream's status in the node's directory, which every viewer's event
//! stream follows, so all the node's viewers are told by one broadcast.
//!
//! Only in one process (`cascade serve`): a media-only node of a cluster is not told yet
//! (docs/ADS.md says what would carry it).

use control_plane::ads::Cue;
use control_plane::ControlPlane;
use tokio::sync::broadcast::error::RecvError;

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
