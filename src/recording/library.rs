//! Where a node's recordings and live stills meet the control plane: the one in this
//! process (`serve`), or one reached over the cluster API with the cluster token (a
//! media-only `cascade node`: `GET /api/v1/cluster/recording`, `POST
//! /api/v1/cluster/recordings`, `control_plane::cluster::recordings`; `PUT
//! /api/v1/cluster/thumbnails/{stream}`, `control_plane::cluster::thumbnails`). Both ask
//! the same question (`ControlPlane::recording_of`) and end in the same library paths
//! (`content::store_recording`, `recover_recording`; `discovery::thumbs::put_server_still`
//! for stills); this file only carries them.

use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use control_plane::cluster::recordings::{
    Listed, RecordingOf, CUT, KEY, MP4, STARTED_MS, STREAM, WEBM,
};
use control_plane::cluster::thumbnails::{StillPut, NO_CHANNEL};
use control_plane::discovery::thumbs::ServerStill;
use control_plane::recording::RecordLayers;
use control_plane::ControlPlane;

/// An upload may take this long, plus a second per MiB (a slow link to the control plane
/// is not a stuck one).
const UPLOAD_BASE: Duration = Duration::from_secs(60);
/// A still (a few tens of KiB) not taken this fast waits for the next round.
const STILL_TIMEOUT: Duration = Duration::from_secs(10);

/// Where recordings and live stills go.
#[derive(Clone)]
pub enum Library {
    /// The control plane in this process.
    InProcess(ControlPlane),
    /// A control plane's cluster API.
    Remote(Remote),
}

/// A recording found in the recordings directory, to hand to the library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub path: std::path::PathBuf,
    /// The stream (a channel's slug).
    pub stream: String,
    /// When it began, ms since the epoch.
    pub started_ms: i64,
    /// A crash cut it (found when the node started): checked up to where it ends.
    pub cut: bool,
}

/// What became of a recording handed to the library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// Listed as this video; the local file is gone.
    Listed(String),
    /// Refused for good (not a recording, its channel gone, too large): why.
    Refused(String),
    /// Not now (the database, the storage, the control plane unreachable): why.
    Failed(String),
    /// The file is no longer on disk (taken away): nothing to hand in.
    Gone,
}

impl Library {
    /// Whether the channel of `stream`, which just went live here, records it.
    pub async fn recording_of(&self, stream: &str) -> Result<Option<RecordLayers>, String> {
        match self {
            Library::InProcess(cp) => cp.recording_of(stream).await.map_err(|e| e.to_string()),
            Library::Remote(r) => r.recording_of(stream).await,
        }
    }

    /// Hands `f` to the library; on [`Stored::Listed`] the local file has been removed.
    pub async fn store(&self, f: &Finished) -> Stored {
        if tokio::fs::metadata(&f.path)
            .await
            .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
        {
            return Stored::Gone;
        }
        match self {
            Library::InProcess(cp) => {
                use control_plane::content::{
                    recover_recording, refused_for_good, store_recording,
                };
                let stored = if f.cut {
                    recover_recording(cp, &f.stream, &f.path, f.started_ms).await
                } else {
                    store_recording(cp, &f.stream, &f.path, f.started_ms).await
                };
                match stored {
                    Ok(id) => Stored::Listed(id),
                    Err(e) if refused_for_good(&e) => Stored::Refused(e.to_string()),
                    Err(e) => Stored::Failed(e.to_string()),
                }
            }
            Library::Remote(r) => r.store(f).await,
        }
    }

    /// `jpeg`, a still of live `stream` decoded here, as its channel's thumbnail unless
    /// the studio posted a newer one (`discovery::thumbs::put_server_still`).
    pub async fn still(&self, stream: &str, jpeg: Vec<u8>) -> Result<ServerStill, String> {
        match self {
            Library::InProcess(cp) => {
                control_plane::discovery::thumbs::put_server_still(cp, stream, &jpeg)
                    .await
                    .map_err(|e| e.to_string())
            }
            Library::Remote(r) => r.still(stream, jpeg).await,
        }
    }
}

/// The cluster API of one or several control-plane replicas (a failed call moves the
/// next one to the next replica).
#[derive(Clone)]
pub struct Remote {
    http: reqwest::Client,
    urls: Arc<[String]>,
    token: String,
    at: Arc<AtomicUsize>,
    /// The largest recording the control plane takes, as it last said (0: not said yet).
    max_bytes: Arc<AtomicU64>,
}

impl Remote {
    /// `urls`: `--control-plane`'s comma-separated list; `token`: the cluster token.
    pub fn new(urls: &str, token: String) -> Remote {
        Remote {
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            urls: urls
                .split(',')
                .map(|u| u.trim().trim_end_matches('/').to_owned())
                .collect(),
            token,
            at: Arc::default(),
            max_bytes: Arc::default(),
        }
    }

    fn base(&self) -> &str {
        let i = self.at.load(Ordering::Relaxed) % self.urls.len().max(1);
        self.urls.get(i).map_or("", String::as_str)
    }

    fn next(&self) {
        self.at.fetch_add(1, Ordering::Relaxed);
    }

    async fn recording_of(&self, stream: &str) -> Result<Option<RecordLayers>, String> {
        let asked = self
            .http
            .get(format!("{}/api/v1/cluster/recording", self.base()))
            .query(&[("stream", stream)])
            .bearer_auth(&self.token)
            .timeout(super::ASK_TIMEOUT)
            .send()
            .await
            .and_then(|r| r.error_for_status());
        let answer = match asked {
            Ok(r) => r.json::<RecordingOf>().await,
            Err(e) => Err(e),
        };
        answer
            .map(|a| {
                if let Some(max) = a.max_bytes {
                    self.max_bytes.store(max, Ordering::Relaxed);
                }
                a.layers
            })
            .map_err(|e| {
                self.next();
                e.to_string()
            })
    }

    async fn store(&self, f: &Finished) -> Stored {
        let file = match tokio::fs::File::open(&f.path).await {
            Ok(file) => file,
            // Taken away (by an operator): nothing left to hand in.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Stored::Gone,
            Err(e) => return Stored::Failed(format!("{}: {e}", f.path.display())),
        };
        let size = file.metadata().await.map_or(0, |m| m.len());
        let max = self.max_bytes.load(Ordering::Relaxed);
        if max > 0 && size > max {
            // Refused for good, and not sent: past the limit the control plane would cut
            // the upload off mid-body, which reads as a failure to try again.
            return Stored::Refused(format!(
                "{size} bytes, over the {max} the control plane takes"
            ));
        }
        let sent = self
            .http
            .post(format!("{}/api/v1/cluster/recordings", self.base()))
            .bearer_auth(&self.token)
            .header(
                reqwest::header::CONTENT_TYPE,
                if f.path.extension().is_some_and(|e| e == "mp4") {
                    MP4
                } else {
                    WEBM
                },
            )
            .header(reqwest::header::CONTENT_LENGTH, size)
            .header(STREAM.as_str(), &f.stream)
            .header(STARTED_MS.as_str(), f.started_ms)
            .header(CUT.as_str(), if f.cut { "true" } else { "false" })
            // Sent again after an answer that never came, it is not listed twice.
            .header(
                KEY.as_str(),
                f.path.file_name().map_or_else(
                    || f.started_ms.to_string(),
                    |n| n.to_string_lossy().into_owned(),
                ),
            )
            .timeout(UPLOAD_BASE + Duration::from_secs(size >> 20))
            .body(reqwest::Body::from(file))
            .send()
            .await;
        let r = match sent {
            Ok(r) => r,
            Err(e) => {
                self.next();
                return Stored::Failed(e.to_string());
            }
        };
        let status = r.status().as_u16();
        match status {
            201 => {
                let video = r
                    .json::<Listed>()
                    .await
                    .map_or_else(|_| String::new(), |l| l.video);
                remove(&f.path).await;
                Stored::Listed(video)
            }
            // Refused for good only by the control plane itself (a problem document): a
            // proxy in front of it that limits bodies answers 413 too, and the file waits.
            413 | 422 if is_problem(&r) => Stored::Refused(detail(r).await),
            _ => {
                if status >= 500 {
                    self.next();
                }
                Stored::Failed(format!("{status}: {}", detail(r).await))
            }
        }
    }

    async fn still(&self, stream: &str, jpeg: Vec<u8>) -> Result<ServerStill, String> {
        // The stream is one path segment, escaped.
        let mut url = reqwest::Url::parse(&format!("{}/api/v1/cluster/thumbnails", self.base()))
            .map_err(|e| e.to_string())?;
        url.path_segments_mut()
            .map_err(|()| "the control plane's URL has no path".to_owned())?
            .push(stream);
        let sent = self
            .http
            .put(url)
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_TYPE, "image/jpeg")
            .timeout(STILL_TIMEOUT)
            .body(jpeg)
            .send()
            .await;
        let r = sent.map_err(|e| {
            self.next();
            e.to_string()
        })?;
        match r.status().as_u16() {
            200 => r
                .json::<StillPut>()
                .await
                .map(|p| p.still)
                .map_err(|e| e.to_string()),
            status => {
                if status >= 500 {
                    self.next();
                }
                let detail = detail(r).await;
                if status == 404 && detail == NO_CHANNEL {
                    return Ok(ServerStill::NoChannel);
                }
                Err(format!("{status}: {detail}"))
            }
        }
    }
}

/// Whether the answer is a problem document (the control plane's own errors).
fn is_problem(r: &reqwest::Response) -> bool {
    r.headers()
        .get(reqwest::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"))
}

/// A problem document's `detail`, or the body as it is.
async fn detail(r: reqwest::Response) -> String {
    let body = r.text().await.unwrap_or_default();
    serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["detail"].as_str().map(str::to_owned))
        .unwrap_or(body)
}

async fn remove(path: &Path) {
    if let Err(e) = tokio::fs::remove_file(path).await {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), "removing a recording handed in: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_file_over_the_control_planes_limit_is_set_aside_unsent() {
        let dir = std::env::temp_dir().join(format!("cascade-lib-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = |name: &str, len: usize| {
            let path = dir.join(name);
            std::fs::write(&path, vec![0u8; len]).unwrap();
            Finished {
                path,
                stream: "show".into(),
                started_ms: 1,
                cut: false,
            }
        };
        // Nothing listens on port 9 of this machine: a send fails to connect.
        let remote = Remote::new("http://127.0.0.1:9", "t".into());
        remote.max_bytes.store(100, Ordering::Relaxed);
        let big = file("big.webm", 101);
        assert!(matches!(remote.store(&big).await, Stored::Refused(_)));
        assert!(big.path.exists(), "kept, to be set aside");
        // Within the limit it is sent (and here fails to connect, for a later try).
        let small = file("small.webm", 100);
        assert!(matches!(remote.store(&small).await, Stored::Failed(_)));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
