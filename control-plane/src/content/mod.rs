//! Content: videos (recordings and uploads), their storage, VOD playback with range
//! requests, resumable uploads (tus) checked before they are listed, and the retention
//! of recordings. `docs/CONTENT.md` is the user's side.
//!
//! **Invariant:** a `videos` row exists only for media that is complete in the storage
//! and passed [`check::probe`]; uploads in progress are `uploads` rows and staged files,
//! never listed.

pub mod check;
pub mod media;
pub mod mp4;
pub mod recordings;
pub mod retention;
pub mod stills;
pub mod storage;
pub mod tus;
pub mod videos;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use check::Probe;
pub use recordings::{recover_recording, refused_for_good, store_recording};
pub use stills::{StillMaker, Stills};
pub use storage::{S3Settings, Storage, StorageError, StorageSettings};
pub use videos::{register_recording, Recording};

use crate::{ControlPlane, Error};

/// How often the sweeper runs (expired recordings, stale uploads).
pub const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Content settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where videos are stored.
    pub storage: StorageSettings,
    /// Where uploads in progress are staged [default: `uploads/` beside the SQLite
    /// database, else the system's temporary directory].
    pub staging_dir: Option<PathBuf>,
    /// Largest upload, bytes.
    pub max_upload_bytes: u64,
    /// Largest recording a media-only node may hand in, bytes (`POST
    /// /cluster/recordings`; a live has no length limit, but a request has).
    pub max_recording_bytes: u64,
    /// Longest video, ms.
    pub max_duration_ms: i64,
    /// What makes videos' stills (none: videos have no thumbnail).
    pub stills: Option<StillMaker>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            storage: StorageSettings::Default,
            staging_dir: None,
            max_upload_bytes: 2 * 1024 * 1024 * 1024,
            max_recording_bytes: 16 * 1024 * 1024 * 1024,
            max_duration_ms: 4 * 3600 * 1000,
            stills: None,
        }
    }
}

/// The content side of a control plane.
#[derive(Debug)]
pub struct Content {
    settings: Settings,
    storage: Option<Storage>,
    staging: PathBuf,
    /// Uploads a request is writing now.
    busy: Arc<Mutex<HashSet<String>>>,
}

impl Content {
    /// Opens the storage; `data_dir` is the SQLite database's directory, if any.
    pub fn open(settings: &Settings, data_dir: Option<&Path>) -> Result<Content, StorageError> {
        let storage = Storage::open(&settings.storage, data_dir)?;
        let staging = settings
            .staging_dir
            .clone()
            .or_else(|| data_dir.map(|d| d.join("uploads")))
            .unwrap_or_else(|| std::env::temp_dir().join("cascade-uploads"));
        crate::keystore::private_dir(&staging).map_err(|e| StorageError::Other(e.to_string()))?;
        if let Some(s) = &storage {
            tracing::info!("videos are stored in the {s:?}");
        }
        sweep_staged_recordings(&staging);
        Ok(Content {
            settings: settings.clone(),
            storage,
            staging,
            busy: Arc::default(),
        })
    }

    /// The storage, or why there is none.
    pub fn storage(&self) -> Result<&Storage, Error> {
        self.storage.as_ref().ok_or(Error::Missing(
            "no media storage is configured (--media-dir or --s3-bucket)",
        ))
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// A new file for a recording a node hands in (`cluster::recordings`); a request's
    /// end removes it, and [`Content::open`] what a killed process left.
    pub(crate) fn staged_recording(&self) -> PathBuf {
        self.staging
            .join(format!("recording-{}.webm", crate::tokens::random_id()))
    }

    /// The staged file of upload `id` (ids are base64url, checked: no path tricks).
    fn staged(&self, id: &str) -> Result<PathBuf, Error> {
        let ok = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(Error::Missing("no such upload"));
        }
        Ok(self.staging.join(format!("{id}.part")))
    }
}

/// One sweep: expired recordings, then stale uploads.
pub async fn sweep(cp: &ControlPlane, now: i64) {
    match retention::sweep(cp, now).await {
        Ok(gone) if !gone.is_empty() => {
            tracing::info!(count = gone.len(), "expired recordings deleted")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("sweeping expired recordings: {e}"),
    }
    if let Err(e) = tus::sweep_expired(cp, now).await {
        tracing::warn!("sweeping stale uploads: {e}");
    }
}

/// Removes the staged recordings a killed process left (a request removes its own when it
/// ends): those not written to for an hour, so that another process's upload in flight in
/// a shared staging directory is left alone.
fn sweep_staged_recordings(staging: &Path) {
    let Ok(dir) = std::fs::read_dir(staging) else {
        return;
    };
    let stale = |e: &std::fs::DirEntry| {
        e.metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > std::time::Duration::from_secs(3600))
    };
    for e in dir.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("recording-") && name.ends_with(".webm") && stale(&e) {
            match std::fs::remove_file(e.path()) {
                Ok(()) => {
                    tracing::info!(file = %name, "removed a staged recording left by a killed process")
                }
                Err(err) => tracing::warn!(file = %name, "removing a staged recording: {err}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    #[test]
    fn the_staged_recordings_a_killed_process_left_go_and_nothing_else() {
        let dir = std::env::temp_dir().join(format!("cascade-staged-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let two_hours_ago = SystemTime::now() - Duration::from_secs(7200);
        let file = |name: &str, modified: Option<SystemTime>| {
            let f = std::fs::File::create(dir.join(name)).unwrap();
            if let Some(t) = modified {
                f.set_modified(t).unwrap();
            }
        };
        // Left by a killed process; one another process is writing now; an old upload's
        // part (the tus sweeper's, by its own rules).
        file("recording-old.webm", Some(two_hours_ago));
        file("recording-new.webm", None);
        file("abc.part", Some(two_hours_ago));
        super::sweep_staged_recordings(&dir);
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["abc.part", "recording-new.webm"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
