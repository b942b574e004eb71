//! Finished recordings on their way to the library, the same in `serve` and on a
//! media-only node (only the [`Library`] differs). Files come from the recorder (each one
//! it finishes, through a bounded queue) and from the recordings directory when the node
//! starts (left by a node killed while recording, or not accepted before: handed in as
//! cut by a crash, checked up to where they end). One at a time, each goes to the library:
//! - listed: the local file is gone;
//! - refused for good (`content::refused_for_good`: it does not check, its channel is
//!   gone; or too large for the control plane): moved to `refused/` beside it, kept for an
//!   operator and not tried again;
//! - failed otherwise (the database, the storage, the control plane unreachable): tried
//!   again after a wait that doubles from 5 s up to 5 min ([`backoff`]), as long as the
//!   process runs; a file still there at the next start is tried then.
//!
//! A recording is never deleted because it could not be handed in.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sfu::record::{KeepInPlace, RecordingMeta, RecordingSink};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::library::{Finished, Library, Stored};

/// Finished files waiting for their turn; a recorder that finds it full leaves its file
/// on disk, handed in at the next start (a few hundred bytes each: far more than a node
/// finishes while one long upload runs).
const QUEUE: usize = 4_096;
/// Files waiting to be tried again, at most (more stay on disk for the next start).
const MAX_RETRYING: usize = 1_000;
/// The first wait after a failure, and the longest.
const FIRST_WAIT: Duration = Duration::from_secs(5);
const LONGEST_WAIT: Duration = Duration::from_secs(300);

/// The wait before the next try of a file that failed `failures` times (at least once).
pub fn backoff(failures: u32) -> Duration {
    let doubled = FIRST_WAIT.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    doubled.min(LONGEST_WAIT)
}

/// The stream and start (Unix ms) of a recording file, from the recorder's names:
/// `<stream>-<start ms>.webm`, or `<stream>-<start ms>-layer<n>.webm` for one layer (`.mp4`
/// for an H.264 stream's).
pub fn parse_name(name: &str) -> Option<(String, i64)> {
    let stem = name
        .strip_suffix(".webm")
        .or_else(|| name.strip_suffix(".mp4"))?;
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

/// The recordings in `dir` (read once, before this node records anything): cut ones.
fn left_behind(dir: &Path) -> Vec<Finished> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .filter_map(|e| {
            let path = e.ok()?.path();
            let (stream, started_ms) = parse_name(path.file_name()?.to_str()?)?;
            Some(Finished {
                path,
                stream,
                started_ms,
                cut: true,
            })
        })
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

/// Starts handing recordings in: what `dir` holds now, then what the returned sink is
/// given. Call it before anything records in `dir`.
pub fn start(library: Library, dir: &Path) -> Arc<dyn RecordingSink> {
    let left = left_behind(dir);
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(run(library, left, rx));
    Arc::new(Queue(tx))
}

/// The recorder's side: each finished file joins the queue.
struct Queue(mpsc::Sender<Finished>);

impl RecordingSink for Queue {
    fn finished(&self, meta: &RecordingMeta, path: &Path) {
        KeepInPlace.finished(meta, path);
        let started_ms = meta
            .started_at
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let f = Finished {
            path: path.to_owned(),
            stream: meta.stream.clone(),
            started_ms,
            cut: false,
        };
        if self.0.try_send(f).is_err() {
            tracing::warn!(
                stream = %meta.stream,
                path = %path.display(),
                "too many recordings waiting: this one stays on disk until the next start"
            );
        }
    }
}

/// One file waiting to be tried again.
struct Retry {
    at: Instant,
    failures: u32,
    file: Finished,
}

async fn run(library: Library, left: Vec<Finished>, mut rx: mpsc::Receiver<Finished>) {
    let mut retrying: Vec<Retry> = Vec::new();
    for f in left {
        hand_in(&library, f, 0, &mut retrying).await;
    }
    loop {
        let due = retrying.iter().map(|r| r.at).min();
        let next = tokio::select! {
            f = rx.recv() => match f {
                Some(f) => Some((f, 0)),
                None => return,
            },
            _ = sleep_until(due) => None,
        };
        match next {
            Some((f, failures)) => hand_in(&library, f, failures, &mut retrying).await,
            None => {
                let now = Instant::now();
                let Some(i) = retrying.iter().position(|r| r.at <= now) else {
                    continue;
                };
                let r = retrying.swap_remove(i);
                hand_in(&library, r.file, r.failures, &mut retrying).await;
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Hands `f` to the library; `failures`: how often it failed before.
async fn hand_in(library: &Library, f: Finished, failures: u32, retrying: &mut Vec<Retry>) {
    let what = if f.cut {
        "a recording left by an earlier run"
    } else {
        "a recording"
    };
    match library.store(&f).await {
        Stored::Listed(video) => {
            tracing::info!(stream = f.stream, video, "{what} listed as a video")
        }
        Stored::Gone => tracing::warn!(
            stream = f.stream,
            path = %f.path.display(),
            "{what} is no longer on disk; nothing to hand in"
        ),
        Stored::Refused(why) => {
            let kept = set_aside(&f.path).await;
            tracing::warn!(
                stream = f.stream,
                path = %kept.display(),
                "{what} is refused, kept in refused/: {why}"
            );
        }
        Stored::Failed(why) if retrying.len() < MAX_RETRYING => {
            let failures = failures.saturating_add(1);
            let wait = backoff(failures);
            tracing::warn!(
                stream = f.stream,
                path = %f.path.display(),
                "{what} is not handed in yet, tried again in {wait:?}: {why}"
            );
            retrying.push(Retry {
                at: Instant::now() + wait,
                failures,
                file: f,
            });
        }
        Stored::Failed(why) => tracing::warn!(
            stream = f.stream,
            path = %f.path.display(),
            "{what} stays on disk until the next start: {why}"
        ),
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

#[cfg(test)]
mod tests {
    use super::*;

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
        // An H.264 stream's.
        assert_eq!(
            parse_name("my-show-1765000000123.mp4"),
            Some(("my-show".into(), 1_765_000_000_123))
        );
        // A stream whose own name ends like a layer's.
        assert_eq!(parse_name("a-layer-5.webm"), Some(("a-layer".into(), 5)));
        for other in [
            "fetched.webm",
            "show-12.mkv",
            "-12.webm",
            "show-.webm",
            "show-1x.webm",
        ] {
            assert_eq!(parse_name(other), None, "{other}");
        }
    }

    #[test]
    fn a_failed_hand_in_waits_longer_each_time_up_to_five_minutes() {
        let secs: Vec<u64> = (1..=9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(backoff(u32::MAX), LONGEST_WAIT);
    }
}
