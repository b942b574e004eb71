//! Recording, in `serve` and on a media-only node alike: when a publisher goes live on
//! this node, the library (`library.rs`: the control plane in this process, or over the
//! cluster API) says whether its channel records (`ControlPlane::recording_of`, asked once
//! per go-live, never on the media path); if so the node records the stream
//! (`sfu::Node::record`) until it has been without a publisher for the grace period
//! (`--recording-grace-ms`): a publisher back within it continues the same file. The
//! decisions are [`Lifecycle`]'s, a pure function of the samples and the time; the task
//! around it samples twice a second, and asks each stream's question in a task of its
//! own (`asks.rs`: bounded, each ask timed out), so that no stream's go-live waits on
//! another's answer.
//!
//! Finished files are written in `DATA_DIR/recordings/` and handed to the library by
//! `deliver.rs`, which also hands in the files found there when the node starts (left by
//! a node that was killed while recording, or not accepted before).

mod asks;
pub mod deliver;
pub mod library;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use control_plane::recording::RecordLayers;
use sfu::record::{LayerMode, RecordConfig, Recording};

use asks::Asks;
pub use library::{Library, Remote};

/// How often the node's streams are sampled.
const EVERY: Duration = Duration::from_millis(500);

/// An ask of the setting not answered this fast is given up (asked again later: the
/// stream records from then).
pub(crate) const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest wait between asks of an unanswered setting (the first waits 1 s, each next
/// twice as long): a control plane restarting for a minute, the live records from when it
/// answers (a late start beats none).
const MAX_ASK_WAIT: Duration = Duration::from_secs(30);

/// What [`Lifecycle::observe`] asks of its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The stream went live: ask whether its channel records, then call
    /// [`Lifecycle::checked`] (or [`Lifecycle::unanswered`]).
    Check(String),
    /// The stream's recording ends.
    Stop(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Asked; `tries` earlier asks went unanswered.
    Checking {
        tries: u8,
    },
    /// The last ask went unanswered: asked again at `at`, while live.
    Retry {
        tries: u8,
        at: Instant,
    },
    Off,
    Recording {
        absent_since: Option<Instant>,
    },
}

/// Which streams record, from go-live to the end of the grace after their publisher left.
#[derive(Debug)]
pub struct Lifecycle {
    grace: Duration,
    streams: HashMap<String, State>,
}

impl Lifecycle {
    /// Recordings end `grace` after their publisher left.
    pub fn new(grace: Duration) -> Self {
        Lifecycle {
            grace,
            streams: HashMap::new(),
        }
    }

    /// `live` are the streams with a publisher sending here now.
    pub fn observe(&mut self, now: Instant, live: &[String]) -> Vec<Step> {
        let mut steps = Vec::new();
        for s in live {
            match self.streams.get_mut(s) {
                None => {
                    self.streams.insert(s.clone(), State::Checking { tries: 0 });
                    steps.push(Step::Check(s.clone()));
                }
                Some(state @ State::Retry { .. }) => {
                    if let State::Retry { tries, at } = *state {
                        if at <= now {
                            *state = State::Checking { tries };
                            steps.push(Step::Check(s.clone()));
                        }
                    }
                }
                Some(State::Recording { absent_since }) => *absent_since = None,
                Some(_) => {}
            }
        }
        let grace = self.grace;
        self.streams.retain(|name, state| {
            if live.contains(name) {
                return true;
            }
            match state {
                State::Checking { .. } => true,
                // Asked again at the next go-live.
                State::Off | State::Retry { .. } => false,
                State::Recording { absent_since } => match absent_since {
                    None => {
                        *absent_since = Some(now);
                        true
                    }
                    Some(t) if now.saturating_duration_since(*t) >= grace => {
                        steps.push(Step::Stop(name.clone()));
                        false
                    }
                    Some(_) => true,
                },
            }
        });
        steps
    }

    /// The answer to a [`Step::Check`]: whether the stream now records.
    pub fn checked(&mut self, stream: &str, recording: bool) {
        if let Some(state) = self.streams.get_mut(stream) {
            *state = if recording {
                State::Recording { absent_since: None }
            } else {
                State::Off
            };
        }
    }

    /// A [`Step::Check`] went unanswered at `now`: asked again while the stream is live,
    /// after 1 s, then twice as long each time, at most [`MAX_ASK_WAIT`].
    pub fn unanswered(&mut self, stream: &str, now: Instant) {
        if let Some(state) = self.streams.get_mut(stream) {
            if let State::Checking { tries } = *state {
                let wait =
                    (Duration::from_secs(1) * 2u32.pow(u32::from(tries.min(5)))).min(MAX_ASK_WAIT);
                *state = State::Retry {
                    tries: tries.saturating_add(1),
                    at: now + wait,
                };
            }
        }
    }
}

/// Starts recording the channels that say so, into `dir`, and handing the files to
/// `library`; it runs as long as the process.
pub fn start(node: sfu::Node, library: Library, dir: PathBuf, grace: Duration) {
    // Before anything records: what `dir` holds now was left by an earlier run.
    let sink = deliver::start(library.clone(), &dir);
    tokio::spawn(async move {
        let mut lifecycle = Lifecycle::new(grace);
        let mut running: HashMap<String, Recording> = HashMap::new();
        // Each stream's ask apart: one the control plane is slow to answer delays none
        // of the others' recordings.
        let mut asks = Asks::new(ASK_TIMEOUT);
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let (stream, answer) = tokio::select! {
                _ = tick.tick() => {
                    // The primary ingest, or a standby once its primary is gone: a
                    // standby's publisher sends the same live, which the primary's
                    // recording has while there is one.
                    let live = node.ingesting();
                    for step in lifecycle.observe(Instant::now(), &live) {
                        match step {
                            Step::Check(stream) => {
                                let (library, s) = (library.clone(), stream.clone());
                                asks.ask(stream, async move { library.recording_of(&s).await });
                            }
                            Step::Stop(stream) => {
                                if let Some(rec) = running.remove(&stream) {
                                    // The file's end is written on the recorder's thread.
                                    tokio::task::spawn_blocking(move || rec.stop());
                                }
                            }
                        }
                    }
                    continue;
                }
                answered = asks.next() => answered,
            };
            let layers = match answer {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(stream, error = %e, "recording setting unread; asked again");
                    lifecycle.unanswered(&stream, Instant::now());
                    continue;
                }
            };
            let started = layers.and_then(|layers| {
                let cfg = RecordConfig {
                    dir: dir.clone(),
                    layers: match layers {
                        RecordLayers::Top => LayerMode::Top,
                        RecordLayers::All => LayerMode::All,
                    },
                };
                node.record(&stream, cfg, sink.clone())
                    .map_err(|e| tracing::warn!(stream, error = %e, "recording not started"))
                    .ok()
            });
            lifecycle.checked(&stream, started.is_some());
            if let Some(rec) = started {
                tracing::info!(stream, "recording");
                running.insert(stream, rec);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_recording_spans_a_restart_within_the_grace_and_ends_after_it() {
        let t0 = Instant::now();
        let s = |secs: u64| t0 + Duration::from_secs(secs);
        let mut l = Lifecycle::new(Duration::from_secs(10));
        assert_eq!(
            l.observe(s(0), &names(&["a"])),
            vec![Step::Check("a".into())]
        );
        // Not asked again while the answer is awaited.
        assert!(l.observe(s(1), &names(&["a"])).is_empty());
        l.checked("a", true);
        // The publisher leaves for 8 s and comes back: the same recording.
        assert!(l.observe(s(2), &[]).is_empty());
        assert!(l.observe(s(9), &[]).is_empty());
        assert!(l.observe(s(10), &names(&["a"])).is_empty());
        // It leaves for good: the recording ends once the grace has passed.
        assert!(l.observe(s(11), &[]).is_empty());
        assert!(l.observe(s(20), &[]).is_empty());
        assert_eq!(l.observe(s(21), &[]), vec![Step::Stop("a".into())]);
        // The next go-live asks again.
        assert_eq!(
            l.observe(s(30), &names(&["a"])),
            vec![Step::Check("a".into())]
        );
    }

    #[test]
    fn a_channel_that_does_not_record_is_asked_again_at_its_next_go_live() {
        let t0 = Instant::now();
        let mut l = Lifecycle::new(Duration::from_secs(10));
        assert_eq!(l.observe(t0, &names(&["b"])), vec![Step::Check("b".into())]);
        l.checked("b", false);
        assert!(l
            .observe(t0 + Duration::from_secs(1), &names(&["b"]))
            .is_empty());
        assert!(l.observe(t0 + Duration::from_secs(2), &[]).is_empty());
        assert_eq!(
            l.observe(t0 + Duration::from_secs(3), &names(&["b"])),
            vec![Step::Check("b".into())]
        );
    }

    #[test]
    fn a_setting_that_went_unanswered_is_asked_again_while_live() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut l = Lifecycle::new(Duration::from_secs(10));
        let check = vec![Step::Check("c".into())];
        assert_eq!(l.observe(at(0), &names(&["c"])), check);
        // A replica restarting: asked again 1 s later, and answered then.
        l.unanswered("c", at(0));
        assert!(l.observe(at(500), &names(&["c"])).is_empty());
        assert_eq!(l.observe(at(1000), &names(&["c"])), check);
        l.checked("c", true);
        assert!(l.observe(at(1500), &names(&["c"])).is_empty());
        // Never answered: asked after 1, 2, 4, 8, 16 s, then every 30 s, while live.
        let mut now = 0;
        assert_eq!(
            l.observe(at(now), &names(&["d"])),
            vec![Step::Check("d".into())]
        );
        for wait in [1, 2, 4, 8, 16, 30, 30] {
            l.unanswered("d", at(now));
            now += wait * 1000;
            // (Beside "c"'s end, its grace over while "d" waits.)
            let d = Step::Check("d".into());
            let early = l.observe(at(now - 500), &names(&["d"]));
            assert!(!early.contains(&d), "not before {wait} s");
            assert!(
                l.observe(at(now), &names(&["d"])).contains(&d),
                "after {wait} s"
            );
        }
        // Gone while it waited to ask again: forgotten, asked at its next go-live.
        assert_eq!(
            l.observe(at(0), &names(&["e"])),
            vec![Step::Check("e".into())]
        );
        l.unanswered("e", at(0));
        assert!(l.observe(at(500), &[]).is_empty());
        assert_eq!(
            l.observe(at(1000), &names(&["e"])),
            vec![Step::Check("e".into())]
        );
    }
}
