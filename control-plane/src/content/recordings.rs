//! A finished recording (a WebM file the node's recorder wrote) becomes a video: checked
//! as uploads are, stored, listed on its channel (`register_recording`, which sends
//! `recording.ready`), and its local file removed.

use std::path::Path;

use crate::error::{ApiResult, Error};
use crate::ControlPlane;

use super::{check, register_recording, Recording};

/// Stores and lists the recording of `stream` (a channel's slug) in `file`, begun at
/// `started_ms` (milliseconds since the epoch). Returns the video's id. A file that does
/// not check (nothing recorded, damaged) is removed and refused.
pub async fn store_recording(
    cp: &ControlPlane,
    stream: &str,
    file: &Path,
    started_ms: i64,
) -> ApiResult<String> {
    let channel = crate::channels::by_slug(cp, stream)
        .await?
        .ok_or(Error::Missing("the recorded stream has no channel"))?;
    let max_ms = cp.content().settings().max_duration_ms;
    let probe = match check::probe_file(file.to_owned(), max_ms).await? {
        Ok(p) => p,
        Err(bad) => {
            remove_local(file).await;
            return Err(Error::BadMedia(bad));
        }
    };
    let storage = cp.content().storage()?;
    let key = format!("recordings/{}.webm", crate::tokens::random_id());
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
