//! A recording (a WebM or MP4 file the node's recorder wrote) becomes a video: checked as uploads
//! are but with no length limit (it lasts as long as the live), stored, listed on its
//! channel (`register_recording`, which sends `recording.ready`), and its local file
//! removed. A file that does not check stays where it is: a recording is never deleted
//! because this check, or its reader, failed.
//!
//! [`store_recording`] takes a recording the node finished; [`recover_recording`] one a
//! node's crash cut (found in the recordings directory when the node starts again), which
//! is listed with the frames written before the crash.

use std::path::Path;

use crate::error::{ApiResult, Error};
use crate::ControlPlane;

use super::{check, register_recording, Recording};

/// Stores and lists the finished recording of `stream` (a channel's slug) in `file`,
/// begun at `started_ms` (milliseconds since the epoch). Returns the video's id. A file
/// that does not check (nothing recorded, damaged) is refused and left in place.
pub async fn store_recording(
    cp: &ControlPlane,
    stream: &str,
    file: &Path,
    started_ms: i64,
) -> ApiResult<String> {
    store(
        cp,
        stream,
        file,
        started_ms,
        check::Rules::FINISHED_RECORDING,
    )
    .await
}

/// [`store_recording`] for a file a node's crash left: it ends where the node stopped
/// writing, and what was written before plays.
pub async fn recover_recording(
    cp: &ControlPlane,
    stream: &str,
    file: &Path,
    started_ms: i64,
) -> ApiResult<String> {
    store(cp, stream, file, started_ms, check::Rules::CUT_RECORDING).await
}

/// Why a recording's channel refuses it: there is none.
const NO_CHANNEL: &str = "the recorded stream has no channel";
/// Why a recording's channel refuses it: it is another channel of the same name.
const RENAMED: &str = "the recorded channel was deleted; its name is another channel's now";

/// Whether a recording was refused for good (the file does not check, its channel is
/// gone), not for a failure that may pass (the database, the storage).
pub fn refused_for_good(e: &Error) -> bool {
    matches!(e, Error::BadMedia(_))
        || matches!(e, Error::Missing(m) if *m == NO_CHANNEL || *m == RENAMED)
}

async fn store(
    cp: &ControlPlane,
    stream: &str,
    file: &Path,
    started_ms: i64,
    rules: check::Rules,
) -> ApiResult<String> {
    let channel = crate::channels::by_slug(cp, stream)
        .await?
        .ok_or(Error::Missing(NO_CHANNEL))?;
    if channel.created_at > started_ms {
        // The recorded channel was deleted and its name taken again since: the file is not
        // the new owner's.
        return Err(Error::Missing(RENAMED));
    }
    let probe = check::probe_file(file.to_owned(), rules)
        .await?
        .map_err(Error::BadMedia)?;
    let storage = cp.content().storage()?;
    // The container is the one the check found (the recorder writes MP4 for H.264).
    let ext = if probe.content_type == "video/mp4" {
        "mp4"
    } else {
        "webm"
    };
    let key = format!("recordings/{}.{ext}", crate::tokens::random_id());
    let size = storage.put_file(&key, file).await?;
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(started_ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let date = format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    );
    let recording = Recording {
        channel_id: channel.id,
        stream: stream.to_owned(),
        title: format!("{} ({date})", channel.title)
            .chars()
            .take(200)
            .collect(),
        storage_key: key.clone(),
        probe,
        size_bytes: i64::try_from(size).unwrap_or(i64::MAX),
        started_ms,
    };
    match register_recording(cp, recording).await {
        Ok(id) => {
            remove_local(file).await;
            Ok(id)
        }
        Err(e) => {
            let _ = storage.delete(&key).await;
            Err(e)
        }
    }
}

async fn remove_local(file: &Path) {
    if let Err(e) = tokio::fs::remove_file(file).await {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!("removing {}: {e}", file.display());
        }
    }
}
