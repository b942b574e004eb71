//! What changed between two looks at the node: broadcasts that started or ended, viewer
//! sessions that opened, joined or closed, and when a concurrency sample is due. Pure:
//! the caller passes the time and everything the node has now; the changes come back.

use std::collections::{HashMap, HashSet};

/// A viewer session as the node has it now (also what a media node reports of it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct SessionSample {
    /// The node's session id (hex): the WHEP resource's.
    #[schema(max_length = 32)]
    pub id: String,
    /// Its stream (a channel's slug).
    #[schema(max_length = 100)]
    pub stream: String,
    /// Who watches (a user id, as the viewer's token said), when known.
    #[serde(default)]
    #[schema(max_length = 128)]
    pub viewer: Option<String>,
    /// Its join time in ms (first video after the offer), once it has one.
    #[serde(default)]
    pub join_ms: Option<i64>,
}

/// A stream with a publisher on the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSample {
    /// The stream (a channel's slug).
    pub stream: String,
    /// Its publisher is sending.
    pub active: bool,
    /// Viewers on the node.
    pub viewers: u32,
}

/// A change to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A broadcast began.
    Started(String),
    /// A broadcast ended.
    Ended(String),
    /// A viewer session opened.
    Opened(SessionSample),
    /// A session learnt its join time.
    Joined(String, i64),
    /// A session closed.
    Closed(String),
    /// A concurrency sample of a stream (every stream with a publisher, each period).
    Sample(String, u32),
}

/// The node as last seen.
#[derive(Debug, Default)]
pub struct Tracker {
    live: HashSet<String>,
    /// Open sessions: whether their join time was recorded.
    open: HashMap<String, bool>,
    next_sample: i64,
}

impl Tracker {
    /// Takes up what another process was tracking (a control-plane replica taking over):
    /// these broadcasts live, these sessions open (and whether their join time is
    /// recorded). The next look samples concurrency.
    pub fn resume(
        live: impl IntoIterator<Item = String>,
        open: impl IntoIterator<Item = (String, bool)>,
    ) -> Tracker {
        Tracker {
            live: live.into_iter().collect(),
            open: open.into_iter().collect(),
            next_sample: 0,
        }
    }

    /// Compares what the node has at `now` (ms) with the last call; samples concurrency
    /// when `every_ms` has passed since the last sample.
    pub fn observe(
        &mut self,
        now: i64,
        every_ms: i64,
        streams: &[LiveSample],
        sessions: &[SessionSample],
    ) -> Vec<Change> {
        let mut out = Vec::new();
        for s in streams.iter().filter(|s| s.active) {
            if self.live.insert(s.stream.clone()) {
                out.push(Change::Started(s.stream.clone()));
            }
        }
        let ended: Vec<String> = self
            .live
            .iter()
            .filter(|n| !streams.iter().any(|s| s.active && &s.stream == *n))
            .cloned()
            .collect();
        for n in ended {
            self.live.remove(&n);
            out.push(Change::Ended(n));
        }
        let mut seen = HashSet::with_capacity(sessions.len());
        for s in sessions {
            seen.insert(s.id.as_str());
            match self.open.get_mut(&s.id) {
                None => {
                    self.open.insert(s.id.clone(), s.join_ms.is_some());
                    out.push(Change::Opened(s.clone()));
                }
                Some(joined) => {
                    if let (false, Some(ms)) = (*joined, s.join_ms) {
                        *joined = true;
                        out.push(Change::Joined(s.id.clone(), ms));
                    }
                }
            }
        }
        let closed: Vec<String> = self
            .open
            .keys()
            .filter(|id| !seen.contains(id.as_str()))
            .cloned()
            .collect();
        for id in closed {
            self.open.remove(&id);
            out.push(Change::Closed(id));
        }
        if now >= self.next_sample {
            self.next_sample = now + every_ms;
            for s in streams.iter().filter(|s| s.active) {
                out.push(Change::Sample(s.stream.clone(), s.viewers));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(stream: &str, viewers: u32) -> LiveSample {
        LiveSample {
            stream: stream.into(),
            active: true,
            viewers,
        }
    }

    fn session(id: &str, join_ms: Option<i64>) -> SessionSample {
        SessionSample {
            id: id.into(),
            stream: "a".into(),
            viewer: None,
            join_ms,
        }
    }

    #[test]
    fn broadcasts_sessions_and_samples() {
        let mut t = Tracker::default();
        let c = t.observe(0, 10_000, &[live("a", 1)], &[session("s1", None)]);
        assert_eq!(
            c,
            [
                Change::Started("a".into()),
                Change::Opened(session("s1", None)),
                Change::Sample("a".into(), 1)
            ]
        );
        let c = t.observe(1_000, 10_000, &[live("a", 1)], &[session("s1", Some(300))]);
        assert_eq!(
            c,
            [Change::Joined("s1".into(), 300)],
            "no sample before 10 s"
        );
        let c = t.observe(2_000, 10_000, &[live("a", 1)], &[session("s1", Some(300))]);
        assert!(c.is_empty(), "{c:?}");
        let c = t.observe(10_000, 10_000, &[live("a", 0)], &[]);
        assert_eq!(
            c,
            [Change::Closed("s1".into()), Change::Sample("a".into(), 0)]
        );
        let c = t.observe(11_000, 10_000, &[], &[]);
        assert_eq!(c, [Change::Ended("a".into())]);
    }

    #[test]
    fn a_resumed_tracker_goes_on_from_what_was_recorded() {
        let mut t = Tracker::resume(
            ["a".to_owned(), "gone".to_owned()],
            [("s1".to_owned(), false), ("s2".to_owned(), true)],
        );
        let c = t.observe(
            0,
            10_000,
            &[live("a", 2)],
            &[session("s1", Some(300)), session("s3", None)],
        );
        assert_eq!(
            c,
            [
                Change::Ended("gone".into()),
                Change::Joined("s1".into(), 300),
                Change::Opened(session("s3", None)),
                Change::Closed("s2".into()),
                Change::Sample("a".into(), 2)
            ],
            "a is not started again, s1 not opened again"
        );
    }
}
