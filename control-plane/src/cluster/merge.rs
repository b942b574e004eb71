//! The cluster's audience as one node's: the reports of the nodes alive folded into the
//! samples `serve` takes of its own node, so webhooks and analytics read them the same
//! way. Pure: the caller passes the reports (already filtered by the registry's
//! liveness rule), the samples come back.
//!
//! - A stream is listed when some node holds its publisher (an origin; two with a backup
//!   ingest); it is active when one of those publishers sends.
//! - Its viewers are the sum over every node (the origin's own and each edge's).
//! - Sessions are the union; an id reported twice counts once (the first report wins).

use std::collections::{BTreeMap, HashSet};

use super::audience::Audience;
use crate::analytics::{LiveSample, SessionSample};
use crate::webhooks::StreamSample;

/// One look at the whole cluster.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Merged {
    /// Streams with a publisher somewhere, by name.
    pub streams: Vec<StreamSample>,
    /// Every viewer session.
    pub sessions: Vec<SessionSample>,
}

impl Merged {
    /// The streams as analytics takes them.
    pub fn live(&self) -> Vec<LiveSample> {
        self.streams
            .iter()
            .map(|s| LiveSample {
                stream: s.stream.clone(),
                active: s.active,
                viewers: s.viewers,
            })
            .collect()
    }
}

#[derive(Default)]
struct Fold {
    publisher: bool,
    active: bool,
    viewers: u32,
}

/// Folds the nodes' reports into one look.
pub fn merge(reports: &[Audience]) -> Merged {
    let mut streams: BTreeMap<&str, Fold> = BTreeMap::new();
    for s in reports.iter().flat_map(|r| &r.streams) {
        let f = streams.entry(&s.name).or_default();
        f.publisher |= s.publisher;
        f.active |= s.publisher && s.active;
        f.viewers = f.viewers.saturating_add(s.viewers);
    }
    let mut seen = HashSet::new();
    let sessions = reports
        .iter()
        .flat_map(|r| &r.sessions)
        .filter(|s| seen.insert(s.id.as_str()))
        .cloned()
        .collect();
    Merged {
        streams: streams
            .into_iter()
            .filter(|(_, f)| f.publisher)
            .map(|(name, f)| StreamSample {
                stream: name.to_owned(),
                active: f.active,
                viewers: f.viewers,
            })
            .collect(),
        sessions,
    }
}

#[cfg(test)]
mod tests {
    use super::super::audience::StreamHere;
    use super::*;

    fn here(name: &str, publisher: bool, active: bool, viewers: u32) -> StreamHere {
        StreamHere {
            name: name.into(),
            publisher,
            active,
            viewers,
        }
    }

    fn session(id: &str, stream: &str) -> SessionSample {
        SessionSample {
            id: id.into(),
            stream: stream.into(),
            viewer: Some(format!("user-{id}")),
            join_ms: None,
        }
    }

    fn sample(stream: &str, active: bool, viewers: u32) -> StreamSample {
        StreamSample {
            stream: stream.into(),
            active,
            viewers,
        }
    }

    #[test]
    fn the_publisher_is_on_the_origin_and_viewers_add_up_over_edges() {
        let origin = Audience {
            streams: vec![here("show", true, true, 1)],
            sessions: vec![session("a1", "show")],
        };
        let edge1 = Audience {
            streams: vec![here("show", false, false, 2)],
            sessions: vec![session("b1", "show"), session("b2", "show")],
        };
        let edge2 = Audience {
            streams: vec![here("show", false, false, 4)],
            sessions: vec![session("c1", "show")],
        };
        let m = merge(&[edge1, origin, edge2]);
        assert_eq!(m.streams, [sample("show", true, 7)]);
        let ids: Vec<&str> = m.sessions.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["b1", "b2", "a1", "c1"]);
        assert_eq!(
            m.live(),
            [LiveSample {
                stream: "show".into(),
                active: true,
                viewers: 7
            }]
        );
    }

    #[test]
    fn a_stream_without_a_publisher_anywhere_is_not_listed() {
        // Its origin is gone (dead nodes' reports are not passed): edges still hold
        // viewers waiting, but the broadcast is over.
        let edge = Audience {
            streams: vec![here("show", false, false, 3)],
            sessions: vec![session("b1", "show")],
        };
        let m = merge(&[edge]);
        assert!(m.streams.is_empty(), "{m:?}");
        assert_eq!(m.sessions.len(), 1, "the sessions are still open");
        assert_eq!(merge(&[]), Merged::default());
    }

    #[test]
    fn any_sending_publisher_makes_it_active() {
        // A backup ingest on a second origin: live while either sends.
        let primary = Audience {
            streams: vec![here("show", true, false, 0), here("other", true, false, 5)],
            sessions: vec![],
        };
        let backup = Audience {
            streams: vec![here("show", true, true, 2)],
            sessions: vec![],
        };
        let m = merge(&[primary, backup]);
        assert_eq!(
            m.streams,
            [sample("other", false, 5), sample("show", true, 2)],
            "sorted by name, inactive ones kept (their end is told)"
        );
        // A node claiming `active` without a publisher does not make a stream live.
        let liar = Audience {
            streams: vec![here("x", false, true, 1)],
            sessions: vec![],
        };
        assert!(merge(&[liar]).streams.is_empty());
    }

    #[test]
    fn a_session_reported_twice_counts_once_and_viewers_saturate() {
        let a = Audience {
            streams: vec![here("show", true, true, u32::MAX)],
            sessions: vec![session("s1", "show")],
        };
        let b = Audience {
            streams: vec![here("show", false, false, 10)],
            sessions: vec![session("s1", "show"), session("s2", "show")],
        };
        let m = merge(&[a, b]);
        assert_eq!(m.streams, [sample("show", true, u32::MAX)]);
        assert_eq!(m.sessions.len(), 2);
    }
}
