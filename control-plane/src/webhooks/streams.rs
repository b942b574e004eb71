//! Stream events from what a node samples: `stream.started` when a publisher becomes
//! active, `stream.ended` when it is gone or inactive, `viewers.milestone` the first time
//! a broadcast reaches 10, 100, 1000, … concurrent viewers. Pure: the caller passes the
//! time and every stream's state (all of them, each time); the events come back.

use std::collections::HashMap;

use super::event::Event;

/// Viewer counts that make a `viewers.milestone`, each once per broadcast.
pub const MILESTONES: [u32; 6] = [10, 100, 1_000, 10_000, 100_000, 1_000_000];

/// One stream as a node sees it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSample {
    /// The stream's name (a channel's slug).
    pub stream: String,
    /// A publisher is connected and sending.
    pub active: bool,
    /// Viewers now.
    pub viewers: u32,
}

#[derive(Debug)]
struct Live {
    since: i64,
    peak: u32,
    /// Milestones already announced (a prefix of [`MILESTONES`]).
    reached: usize,
}

/// The broadcasts live at the last sample.
#[derive(Debug, Default)]
pub struct StreamWatch {
    live: HashMap<String, Live>,
}

impl StreamWatch {
    /// Takes up a broadcast another process was watching (a control-plane replica taking
    /// over): live since `since`, `peak` viewers so far, so neither its start nor the
    /// milestones up to its peak are told again.
    pub fn resume(&mut self, stream: &str, since: i64, peak: u32) {
        let reached = MILESTONES.iter().take_while(|&&m| m <= peak).count();
        self.live.insert(
            stream.to_owned(),
            Live {
                since,
                peak,
                reached,
            },
        );
    }

    /// Compares `samples` (every stream the node has now) with the last call.
    pub fn observe(&mut self, now: i64, samples: &[StreamSample]) -> Vec<Event> {
        let mut out = Vec::new();
        for s in samples.iter().filter(|s| s.active) {
            let live = self.live.entry(s.stream.clone()).or_insert_with(|| {
                out.push(Event::StreamStarted {
                    stream: s.stream.clone(),
                });
                Live {
                    since: now,
                    peak: 0,
                    reached: 0,
                }
            });
            live.peak = live.peak.max(s.viewers);
            while let Some(&m) = MILESTONES.get(live.reached) {
                if s.viewers < m {
                    break;
                }
                live.reached += 1;
                out.push(Event::ViewersMilestone {
                    stream: s.stream.clone(),
                    milestone: m,
                    viewers: s.viewers,
                });
            }
        }
        let ended: Vec<String> = self
            .live
            .keys()
            .filter(|name| !samples.iter().any(|s| s.active && &s.stream == *name))
            .cloned()
            .collect();
        for stream in ended {
            if let Some(live) = self.live.remove(&stream) {
                out.push(Event::StreamEnded {
                    stream,
                    duration_secs: u64::try_from((now - live.since) / 1000).unwrap_or(0),
                    peak_viewers: live.peak,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(stream: &str, active: bool, viewers: u32) -> StreamSample {
        StreamSample {
            stream: stream.into(),
            active,
            viewers,
        }
    }

    #[test]
    fn a_broadcast_starts_crosses_milestones_once_and_ends() {
        let mut w = StreamWatch::default();
        assert!(w.observe(0, &[s("a", false, 3)]).is_empty(), "not live yet");
        assert_eq!(
            w.observe(1_000, &[s("a", true, 3)]),
            [Event::StreamStarted { stream: "a".into() }]
        );
        assert!(w.observe(2_000, &[s("a", true, 9)]).is_empty());
        let ev = w.observe(3_000, &[s("a", true, 150)]);
        assert_eq!(ev.len(), 2, "10 and 100 at once: {ev:?}");
        assert!(w.observe(4_000, &[s("a", true, 5)]).is_empty());
        assert!(
            w.observe(5_000, &[s("a", true, 120)]).is_empty(),
            "once per broadcast"
        );
        assert_eq!(
            w.observe(61_000, &[]),
            [Event::StreamEnded {
                stream: "a".into(),
                duration_secs: 60,
                peak_viewers: 150
            }]
        );
        // A new broadcast starts over.
        let ev = w.observe(70_000, &[s("a", true, 10)]);
        assert_eq!(ev.len(), 2, "{ev:?}");
    }

    #[test]
    fn a_resumed_broadcast_is_not_started_again_and_ends_with_its_start() {
        let mut w = StreamWatch::default();
        w.resume("a", 10_000, 150);
        let ev = w.observe(20_000, &[s("a", true, 120), s("b", true, 0)]);
        assert_eq!(
            ev,
            [Event::StreamStarted { stream: "b".into() }],
            "a is live already, its milestones told"
        );
        let ev = w.observe(30_000, &[s("a", true, 1000)]);
        assert!(
            matches!(
                &ev[..],
                [
                    Event::ViewersMilestone {
                        milestone: 1000,
                        ..
                    },
                    Event::StreamEnded { .. }
                ]
            ),
            "{ev:?}"
        );
        assert_eq!(
            w.observe(70_000, &[]),
            [Event::StreamEnded {
                stream: "a".into(),
                duration_secs: 60,
                peak_viewers: 1000
            }]
        );
    }

    #[test]
    fn inactive_is_ended_and_streams_are_independent() {
        let mut w = StreamWatch::default();
        w.observe(0, &[s("a", true, 0), s("b", true, 0)]);
        let ev = w.observe(1_000, &[s("a", false, 4), s("b", true, 0)]);
        assert!(matches!(&ev[..], [Event::StreamEnded { stream, .. }] if stream == "a"));
        assert!(w.observe(2_000, &[s("b", true, 1)]).is_empty());
    }
}
