//! Recordings made on media-only nodes (`cascade node`). A node asks, when a publisher
//! goes live there, whether the stream's channel records (`GET /cluster/recording`, the
//! same read `serve` makes in process: [`ControlPlane::recording_of`]); it records
//! locally, and hands each finished file (or one a crash cut, found when it starts) to
//! `POST /cluster/recordings`: the WebM file is the body, streamed to this process's
//! staging directory up to `max_recording_bytes`, then given to the same content-library
//! path `serve` uses (`content::store_recording`, or `recover_recording` for a cut one):
//! checked, stored, listed as a video of the channel with its visibility rules,
//! `recording.ready` sent.
//!
//! The answer tells the node what to do with its copy: 201, listed (delete it); 413 or
//! 422, refused for good (a file too large, not a recording, or of a channel that is gone:
//! set it aside); anything else, try again later: among them 409, the same file (by its
//! `Cascade-Recording-Key`) being stored from an earlier send, whose video the next try
//! gets ([`receipts`]). The staged file never outlives its request: nothing half-made is
//! listed or left.

use std::path::PathBuf;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, StatusCode};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use utoipa::{IntoParams, ToSchema};

use super::auth::NodeAuth;
use super::receipts::{self, Claim};
use crate::content::{recover_recording, refused_for_good, store_recording};
use crate::error::{ApiResult, Problem};
use crate::extract::Query;
use crate::recording::RecordLayers;
use crate::{ControlPlane, Error};

/// The recorded stream (a channel's slug).
pub const STREAM: HeaderName = HeaderName::from_static("cascade-stream");
/// When the recording began, milliseconds since the epoch.
pub const STARTED_MS: HeaderName = HeaderName::from_static("cascade-started-ms");
/// `true` for a file a node's crash cut (checked up to where it ends).
pub const CUT: HeaderName = HeaderName::from_static("cascade-cut");
/// The node's key for the file (its name there): the same key sent again is answered
/// with the video listed the first time (the node did not see the answer), not a second;
/// while the first send is still being stored, with 409.
pub const KEY: HeaderName = HeaderName::from_static("cascade-recording-key");
/// Why a send is answered 409: the same key's file is being stored now.
const BEING_STORED: &str =
    "a recording with this key is being stored; send it again later for its video";
/// The body's type: a WebM recording (VP8)...
pub const WEBM: &str = "video/webm";
/// ... or an MP4 one (H.264). The check reads the container from the body either way.
pub const MP4: &str = "video/mp4";

/// `GET /cluster/recording?stream=`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct StreamQuery {
    /// The stream that went live.
    pub stream: String,
}

/// Whether a stream records, and which layers.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RecordingOf {
    /// Which layers to record; `null`: the channel does not record (or there is none).
    pub layers: Option<RecordLayers>,
    /// The largest recording the control plane takes, in bytes: a node sets a larger file
    /// aside without sending it (a send of it would be cut off mid-body).
    #[serde(default)]
    pub max_bytes: Option<u64>,
}

/// A recording listed as a video.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Listed {
    /// The video's id.
    pub video: String,
}

/// Whether the channel of a stream that went live on the calling node records it.
#[utoipa::path(get, path = "/api/v1/cluster/recording", tag = "cluster", security(("cluster_token" = [])), params(StreamQuery),
    responses((status = 200, body = RecordingOf), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn setting(
    State(cp): State<ControlPlane>,
    _: NodeAuth,
    Query(q): Query<StreamQuery>,
) -> ApiResult<axum::Json<RecordingOf>> {
    let stream = super::registry::checked("stream", &q.stream, 100)?;
    Ok(axum::Json(RecordingOf {
        layers: cp.recording_of(&stream).await?,
        max_bytes: Some(cp.content().settings().max_recording_bytes),
    }))
}

/// A node's finished recording (the WebM file as the body; `Cascade-Stream`,
/// `Cascade-Started-Ms` and `Cascade-Cut` say what it is), listed as a video of the
/// stream's channel.
#[utoipa::path(post, path = "/api/v1/cluster/recordings", tag = "cluster", security(("cluster_token" = [])),
    params(("Cascade-Stream" = String, Header, description = "The recorded stream (its channel's slug)"),
        ("Cascade-Started-Ms" = i64, Header, description = "When the recording began, ms since the epoch"),
        ("Cascade-Cut" = Option<bool>, Header, description = "A file a node's crash cut"),
        ("Cascade-Recording-Key" = Option<String>, Header, description = "The node's key for the file: sent again, it is answered with the video listed the first time")),
    request_body(content = Vec<u8>, content_type = "video/webm", description = "The recording: video/webm, or video/mp4 for an H.264 stream's"),
    responses((status = 201, body = Listed),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "The same key's file is being stored from an earlier send: send it again later"),
        (status = 413, body = Problem, content_type = "application/problem+json", description = "Larger than the control plane takes: refused for good"),
        (status = 422, body = Problem, content_type = "application/problem+json", description = "Not a recording, or its channel is gone: refused for good"),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn upload(
    State(cp): State<ControlPlane>,
    _: NodeAuth,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, axum::Json<Listed>)> {
    let ct = headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes());
    if ct != Some(WEBM.as_bytes()) && ct != Some(MP4.as_bytes()) {
        return Err(Error::UnsupportedMediaTypeOf(
            "Content-Type must be video/webm or video/mp4",
        ));
    }
    let text = |name: &HeaderName| {
        headers
            .get(name)
            .map(|v| {
                v.to_str()
                    .map_err(|_| Error::Invalid(format!("{name} is not text")))
            })
            .transpose()
    };
    let stream = text(&STREAM)?.ok_or(Error::Invalid(format!("{STREAM} is required")))?;
    let stream = super::registry::checked("stream", stream, 100)?;
    let started_ms: i64 = text(&STARTED_MS)?
        .and_then(|v| v.parse().ok())
        .filter(|ms| *ms >= 0)
        .ok_or(Error::Invalid(format!(
            "{STARTED_MS} must be milliseconds since the epoch"
        )))?;
    let cut = match text(&CUT)? {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(Error::Invalid(format!("{CUT} is true or false"))),
    };
    let content = cp.content();
    let max = content.settings().max_recording_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(Error::TooLargeUpload(max));
    }
    // Scoped to the stream: two streams' files of the same name are two recordings.
    let key = text(&KEY)?
        .map(|k| super::registry::checked("recording key", k, 200))
        .transpose()?
        .map(|k| format!("{stream}/{k}"));
    content.storage()?;
    let staged = Staged(content.staged_recording());
    // Read whole before any answer: a node cut off mid-body sees a reset, not the answer.
    receive(body, &staged.0, max).await?;
    // Claimed, stored and remembered in a task of its own: a node that stops waiting (its
    // timeout) does not cut it short between the listing and the receipt.
    let job = tokio::spawn(list(cp, stream, staged, started_ms, cut, key));
    let video = job
        .await
        .map_err(|e| Error::Internal(format!("storing a node's recording: {e}")))??;
    Ok((StatusCode::CREATED, axum::Json(Listed { video })))
}

/// Lists the recording staged in `staged` as a video of `stream`'s channel, once per
/// `key` ([`receipts`]).
async fn list(
    cp: ControlPlane,
    stream: String,
    staged: Staged,
    started_ms: i64,
    cut: bool,
    key: Option<String>,
) -> ApiResult<String> {
    if let Some(k) = &key {
        match receipts::claim(&cp, k).await? {
            Claim::Ours => {}
            Claim::Listed(video) => {
                tracing::info!(
                    stream,
                    video,
                    "a node's recording sent again; listed already"
                );
                return Ok(video);
            }
            Claim::Pending => return Err(Error::Conflict(BEING_STORED)),
        }
    }
    let stored = if cut {
        recover_recording(&cp, &stream, &staged.0, started_ms).await
    } else {
        store_recording(&cp, &stream, &staged.0, started_ms).await
    };
    match (&key, &stored) {
        (Some(k), Ok(video)) => receipts::listed(&cp, k, video).await,
        (Some(k), Err(_)) => receipts::release(&cp, k).await,
        (None, _) => {}
    }
    match stored {
        Ok(video) => {
            tracing::info!(stream, video, "a node's recording listed as a video");
            Ok(video)
        }
        // A channel that is gone is a 404 elsewhere; here every refusal for good is a
        // 422, so the node tells it from an endpoint it cannot reach.
        Err(e) if refused_for_good(&e) && !matches!(e, Error::BadMedia(_)) => {
            Err(Error::Invalid(e.to_string()))
        }
        Err(e) => Err(e),
    }
}

/// Writes the body to `to`, at most `max` bytes (413 past them).
async fn receive(body: Body, to: &std::path::Path, max: u64) -> ApiResult<()> {
    let io = |e: std::io::Error| Error::Internal(format!("staging a recording: {e}"));
    let mut f = tokio::fs::File::create(to).await.map_err(io)?;
    let mut at: u64 = 0;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Error::BadRequest(format!("reading the body: {e}")))?;
        at = at.saturating_add(chunk.len() as u64);
        if at > max {
            // The HTTP server reads the rest before the 413 goes out (signaling::linger),
            // so that a node still writing sees it and sets the file aside.
            return Err(Error::TooLargeUpload(max));
        }
        f.write_all(&chunk).await.map_err(io)?;
    }
    f.flush().await.map_err(io)?;
    if at == 0 {
        return Err(Error::Invalid("an empty file is not a recording".into()));
    }
    Ok(())
}

/// A staged recording, removed when its request ends (the library moved it already when
/// it was listed; a refused or interrupted one goes).
struct Staged(PathBuf);

impl Drop for Staged {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.0) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("removing {}: {e}", self.0.display());
            }
        }
    }
}
