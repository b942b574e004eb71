//! Recording in `serve`: when a publisher goes live on this node, the control plane in the
//! process says whether its channel records (`ControlPlane::recording_of`, asked once per
//! go-live, never on the media path); if so the node records the stream
//! (`sfu::Node::record`) until it has been without a publisher for the grace period
//! (`--recording-grace-ms`): a publisher back within it continues the same file. The
//! decisions are [`Lifecycle`]'s, a pure function of the samples and the time; the task
//! around it samples twice a second.
//!
//! Finished files are written in `DATA_DIR/recordings/` and go to [`finished_sink`], which
//! hands them to the content library. Files found there when the node starts were left by
//! a node that was killed while recording (or refused before): [`recover`] hands them to
//! the library as recordings cut by a crash.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use control_plane::recording::RecordLayers;
use control_plane::ControlPlane;
use sfu::directory::Ingest;
use sfu::record::{KeepInPlace, LayerMode, RecordConfig, Recording, RecordingMeta, RecordingSink};

/// How often the node's streams are sampled.
const EVERY: Duration = Duration::from_millis(500);

/// What [`Lifecycle::observe`] asks of its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The stream went live: ask whether its channel records, then call
    /// [`Lifecycle::checked`].
    Check(String),
    /// The stream's recording ends.
    Stop(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Checking,
    Off,
    Recording { absent_since: Option<Instant> },
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
                    self.streams.insert(s.clone(), State::Checking);
                    steps.push(Step::Check(s.clone()));
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
                State::Checking => true,
                // Asked again at the next go-live.
                State::Off => false,
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
}

/// Where finished recordings go: the content library (`store_recording`: checked, stored,
/// listed as a video of the channel, `recording.ready` sent, the local file removed). The
/// recorder's thread calls it; the work runs on the runtime. A recording that cannot be
/// stored (no storage configured, a file that does not check) stays where it is, logged.
pub fn finished_sink(control: &ControlPlane) -> Arc<dyn RecordingSink> {
    Arc::new(ToLibrary {
        control: control.clone(),
        runtime: tokio::runtime::Handle::current(),
    })
}

struct ToLibrary {
    control: ControlPlane,
    runtime: tokio::runtime::Handle,
}

impl RecordingSink for ToLibrary {
    fn finished(&self, meta: &RecordingMeta, path: &Path) {
        KeepInPlace.finished(meta, path);
        let (control, stream, path) = (self.control.clone(), meta.stream.clone(), path.to_owned());
        let started_ms = meta
            .started_at
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        self.runtime.spawn(async move {
            match control_plane::content::store_recording(&control, &stream, &path, started_ms)
                .await
            {
                Ok(id) => tracing::info!(stream, video = id, "recording listed as a video"),
                Err(e) => {
                    tracing::warn!(stream, path = %path.display(), "recording not stored: {e}")
                }
            }
        });
    }
}

/// The stream and start (Unix ms) of a recording file, from the recorder's names:
/// `<stream>-<start ms>.webm`, or `<stream>-<start ms>-layer<n>.webm` for one layer.
pub fn parse_name(name: &str) -> Option<(String, i64)> {
    let stem = name.strip_suffix(".webm")?;
    let stem = match stem.rsplit_once("-layer") {
        Some((rest, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => rest,
        _ => stem,
    };
    let (stream, ms) = stem.rsplit_once('-')?;
    if stream.is_empty() || ms.is_empty() || !ms.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((stream.to_owned(), ms.parse().ok()?))
}

/// The recordings in `dir` (read once, before this node records anything).
fn left_behind(dir: &Path) -> Vec<(PathBuf, String, i64)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .filter_map(|e| {
            let path = e.ok()?.path();
            let (stream, started) = parse_name(path.file_name()?.to_str()?)?;
            Some((path, stream, started))
        })
        .collect();
    files.sort();
    files
}

/// Lists recordings a killed node left (`content::recover_recording`: checked up to the
/// cut, stored, listed, the file removed). A file refused for good (it does not check,
/// or its channel is gone) moves to `refused/` beside it, kept for an operator and not
/// checked again at every start; one that failed otherwise (the database or the storage
/// down) stays to be tried at the next start.
pub async fn recover(control: &ControlPlane, files: Vec<(PathBuf, String, i64)>) {
    for (path, stream, started_ms) in files {
        match control_plane::content::recover_recording(control, &stream, &path, started_ms).await {
            Ok(id) => tracing::info!(
                stream,
                video = id,
                "a recording left by an earlier run listed as a video"
            ),
            Err(e) if control_plane::content::refused_for_good(&e) => {
                let kept = set_aside(&path).await;
                tracing::warn!(
                    stream,
                    path = %kept.display(),
                    "a recording left by an earlier run is refused, kept in refused/: {e}"
                );
            }
            Err(e) => tracing::warn!(
                stream,
                path = %path.display(),
                "a recording left by an earlier run stays on disk, to be tried again: {e}"
            ),
        }
    }
}

/// Moves a refused recording to `refused/` in its directory; where it is now.
async fn set_aside(path: &Path) -> PathBuf {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return path.to_owned();
    };
    let to = dir.join("refused").join(name);
    let moved = async {
        tokio::fs::create_dir_all(dir.join("refused")).await?;
        tokio::fs::rename(path, &to).await
    };
    match moved.await {
        Ok(()) => to,
        Err(e) => {
            tracing::warn!(path = %path.display(), "cannot move a refused recording: {e}");
            path.to_owned()
        }
    }
}

/// Starts the task; it runs as long as the process.
pub fn in_process(node: sfu::Node, control: ControlPlane, dir: PathBuf, grace: Duration) {
    let left = left_behind(&dir);
    if !left.is_empty() {
        let control = control.clone();
        tokio::spawn(async move { recover(&control, left).await });
    }
    tokio::spawn(async move {
        let sink = finished_sink(&control);
        let mut lifecycle = Lifecycle::new(grace);
        let mut running: HashMap<String, Recording> = HashMap::new();
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let live: Vec<String> = node
                .carried()
                .into_iter()
                .filter(|(_, ingest)| *ingest == Ingest::Primary)
                .map(|(stream, _)| stream)
                .filter(|s| node.watch(s).is_some_and(|w| w.borrow().active))
                .collect();
            for step in lifecycle.observe(Instant::now(), &live) {
                match step {
                    Step::Check(stream) => {
                        let layers = match control.recording_of(&stream).await {
                            Ok(l) => l,
                            Err(e) => {
                                tracing::warn!(stream, error = %e, "recording setting unread");
                                None
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
                                .map_err(
                                    |e| tracing::warn!(stream, error = %e, "recording not started"),
                                )
                                .ok()
                        });
                        lifecycle.checked(&stream, started.is_some());
                        if let Some(rec) = started {
                            tracing::info!(stream, "recording");
                            running.insert(stream, rec);
                        }
                    }
                    Step::Stop(stream) => {
                        if let Some(rec) = running.remove(&stream) {
                            // The file's end is written on the recorder's thread.
                            tokio::task::spawn_blocking(move || rec.stop());
                        }
                    }
                }
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
    fn recording_files_name_their_stream_and_start() {
        assert_eq!(
            parse_name("my-show-1765000000123.webm"),
            Some(("my-show".into(), 1_765_000_000_123))
        );
        assert_eq!(
            parse_name("my-show-1765000000123-layer2.webm"),
            Some(("my-show".into(), 1_765_000_000_123))
        );
        // A stream whose own name ends like a layer's.
        assert_eq!(parse_name("a-layer-5.webm"), Some(("a-layer".into(), 5)));
        for other in [
            "fetched.webm",
            "show-12.mp4",
            "-12.webm",
            "show-.webm",
            "show-1x.webm",
        ] {
            assert_eq!(parse_name(other), None, "{other}");
        }
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
}
