//! Resumable uploads, the tus 1.0 protocol (core, creation, termination): `POST
//! /channels/{slug}/uploads` makes one (`Upload-Length`, `Upload-Metadata` with `title` or
//! `filename`), `HEAD /uploads/{id}` says how much arrived, `PATCH` appends at
//! `Upload-Offset` (`application/offset+octet-stream`), `DELETE` ends it.
//!
//! The bytes so far are a file in this process's staging directory; its length is the
//! offset (what a dropped connection had delivered stays, and the client resumes there).
//! One PATCH at a time per upload. When the last byte arrives the file is checked
//! ([`super::check`]) on a blocking thread: a good one is stored and listed as a video,
//! a bad one is deleted, its row too, and the uploader reads why (422). Uploads not
//! finished in a day are removed by the sweeper.

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::videos::{insert, title};
use crate::channels::owned;
use crate::db::now_ms;
use crate::error::{ApiResult, Problem};
use crate::extract::{Caller, Path};
use crate::model::Role;
use crate::tokens::random_id;
use crate::{ControlPlane, Error};

/// The protocol version spoken.
pub const VERSION: &str = "1.0.0";
/// An upload not finished in this long is removed, ms.
pub const EXPIRES_MS: i64 = 24 * 3600 * 1000;
/// Uploads in progress per channel.
pub const MAX_OPEN: i64 = 5;

const TUS_RESUMABLE: HeaderName = HeaderName::from_static("tus-resumable");
const UPLOAD_LENGTH: HeaderName = HeaderName::from_static("upload-length");
const UPLOAD_OFFSET: HeaderName = HeaderName::from_static("upload-offset");
const UPLOAD_METADATA: HeaderName = HeaderName::from_static("upload-metadata");
/// The id of the video a finished upload became.
pub const VIDEO_ID: HeaderName = HeaderName::from_static("cascade-video-id");

/// Refuses a request of another protocol version (412, as tus says).
fn version(h: &HeaderMap) -> ApiResult<()> {
    match h.get(&TUS_RESUMABLE) {
        Some(v) if v == VERSION => Ok(()),
        _ => Err(Error::Precondition("Tus-Resumable: 1.0.0 is required")),
    }
}

fn number(h: &HeaderMap, name: &HeaderName) -> ApiResult<Option<i64>> {
    let Some(v) = h.get(name) else {
        return Ok(None);
    };
    v.to_str()
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .filter(|n| *n >= 0)
        .map(Some)
        .ok_or_else(|| Error::BadRequest(format!("{name} must be a non-negative integer")))
}

/// The value of `key` in an `Upload-Metadata` header (`key base64,key base64`).
pub fn metadata(header: &str, key: &str) -> Option<String> {
    header.split(',').find_map(|pair| {
        let mut it = pair.trim().splitn(2, ' ');
        (it.next()? == key).then_some(())?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(it.next().unwrap_or("").trim())
            .ok()?;
        String::from_utf8(bytes).ok()
    })
}

/// The title an upload is listed under: its `title`, else its file name without the
/// extension.
fn title_of(meta: Option<&str>) -> ApiResult<String> {
    let meta = meta.unwrap_or("");
    let t = metadata(meta, "title")
        .or_else(|| {
            metadata(meta, "filename")
                .map(|f| f.rsplit_once('.').map_or(f.clone(), |(s, _)| s.to_owned()))
        })
        .unwrap_or_else(|| "Untitled".into());
    title(&t)
}

fn tus(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(TUS_RESUMABLE, HeaderValue::from_static(VERSION));
    resp
}

/// Start a resumable upload of a WebM video to the channel (its owner): tus creation.
#[utoipa::path(post, path = "/api/v1/channels/{slug}/uploads", tag = "videos", security(("access_token" = [])),
    params(("slug" = String, Path),
        ("Tus-Resumable" = String, Header, description = "1.0.0"),
        ("Upload-Length" = i64, Header, description = "The file's size in bytes"),
        ("Upload-Metadata" = Option<String>, Header, description = "`title` or `filename`, base64")),
    responses((status = 201, description = "Created; `Location` is the upload's URL"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn create(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(slug): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    version(&headers)?;
    let ch = owned(&cp, &caller, &slug).await?;
    let content = cp.content();
    content.storage()?;
    let length = number(&headers, &UPLOAD_LENGTH)?.ok_or(Error::BadRequest(
        "Upload-Length is required (deferred length is not supported)".into(),
    ))?;
    if length == 0 {
        return Err(Error::Invalid("an empty file is not a video".into()));
    }
    let max = content.settings().max_upload_bytes;
    if u64::try_from(length).unwrap_or(u64::MAX) > max {
        return Err(Error::TooLargeUpload(max));
    }
    let meta = headers.get(&UPLOAD_METADATA).and_then(|v| v.to_str().ok());
    let title = title_of(meta)?;
    let now = now_ms();
    let (open,): (i64,) = sqlx::query_as("SELECT count(*) FROM uploads WHERE channel_id = $1")
        .bind(&ch.id)
        .fetch_one(cp.pool())
        .await?;
    if open >= MAX_OPEN {
        return Err(Error::Conflict(
            "a channel has at most 5 uploads in progress: finish or cancel one",
        ));
    }
    let id = random_id();
    let file = content.staged(&id)?;
    tokio::fs::File::create(&file)
        .await
        .map_err(|e| Error::Internal(format!("{}: {e}", file.display())))?;
    sqlx::query(
        "INSERT INTO uploads (id, channel_id, user_id, length, received, title, created_at, \
         expires_at) VALUES ($1, $2, $3, $4, 0, $5, $6, $7)",
    )
    .bind(&id)
    .bind(&ch.id)
    .bind(&caller.0.id)
    .bind(length)
    .bind(&title)
    .bind(now)
    .bind(now + EXPIRES_MS)
    .execute(cp.pool())
    .await?;
    let mut resp = StatusCode::CREATED.into_response();
    if let Ok(loc) = HeaderValue::from_str(&format!("/api/v1/uploads/{id}")) {
        resp.headers_mut().insert(header::LOCATION, loc);
    }
    Ok(tus(resp))
}

/// An upload in progress, as its row says.
struct Upload {
    id: String,
    channel_id: String,
    length: i64,
    title: String,
    file: PathBuf,
}

async fn upload(cp: &ControlPlane, caller: &Caller, id: &str) -> ApiResult<Upload> {
    let row: Option<(String, String, String, i64, String)> =
        sqlx::query_as("SELECT id, channel_id, user_id, length, title FROM uploads WHERE id = $1")
            .bind(id)
            .fetch_optional(cp.pool())
            .await?;
    let (id, channel_id, user_id, length, title) = row.ok_or(Error::Missing("no such upload"))?;
    if user_id != caller.0.id && caller.0.role() != Role::Admin {
        return Err(Error::Missing("no such upload"));
    }
    let file = cp.content().staged(&id)?;
    Ok(Upload {
        id,
        channel_id,
        length,
        title,
        file,
    })
}

/// Bytes received so far: the staged file's length (none: this process does not hold
/// the upload).
async fn received(u: &Upload) -> ApiResult<i64> {
    let meta = tokio::fs::metadata(&u.file).await.map_err(|_| {
        Error::Missing(
            "this upload's bytes are not here (it was made on another server, or expired)",
        )
    })?;
    Ok(i64::try_from(meta.len()).unwrap_or(i64::MAX).min(u.length))
}

/// How much of an upload arrived: tus's HEAD (`Upload-Offset`, `Upload-Length`).
#[utoipa::path(head, path = "/api/v1/uploads/{id}", tag = "videos", security(("access_token" = [])), params(("id" = String, Path)),
    responses((status = 200, description = "`Upload-Offset` and `Upload-Length` say where to resume"),
        (status = "4XX", description = "No such upload")))]
pub(crate) async fn head(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    version(&headers)?;
    let u = upload(&cp, &caller, &id).await?;
    let offset = received(&u).await?;
    let mut resp = StatusCode::OK.into_response();
    let h = resp.headers_mut();
    h.insert(UPLOAD_OFFSET, HeaderValue::from(offset));
    h.insert(UPLOAD_LENGTH, HeaderValue::from(u.length));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(tus(resp))
}

/// Marks an upload busy while a PATCH runs; dropped (even when the client goes away and
/// the request is dropped), it is free again.
struct Busy(
    Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    String,
);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.1);
    }
}

/// Append bytes at `Upload-Offset` (tus's PATCH). The last byte finishes the upload: the
/// file is checked, then listed as a video (`Cascade-Video-Id`), or refused (422) and
/// removed.
#[utoipa::path(patch, path = "/api/v1/uploads/{id}", tag = "videos", security(("access_token" = [])),
    params(("id" = String, Path),
        ("Tus-Resumable" = String, Header, description = "1.0.0"),
        ("Upload-Offset" = i64, Header, description = "Where these bytes go: what HEAD said")),
    request_body(content = Vec<u8>, content_type = "application/offset+octet-stream"),
    responses((status = 204, description = "Appended; `Upload-Offset` is the new offset"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json", description = "The finished file is not an allowed video; the upload is gone"),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn patch(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    version(&headers)?;
    let ct = headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes());
    if ct != Some(b"application/offset+octet-stream") {
        return Err(Error::UnsupportedMediaTypeOf(
            "Content-Type must be application/offset+octet-stream",
        ));
    }
    let offset = number(&headers, &UPLOAD_OFFSET)?
        .ok_or(Error::BadRequest("Upload-Offset is required".into()))?;
    let u = upload(&cp, &caller, &id).await?;
    let _busy = cp.content().claim(&u.id).ok_or(Error::Conflict(
        "another request is writing this upload: retry",
    ))?;
    let have = received(&u).await?;
    if offset != have {
        return Err(Error::Conflict(
            "Upload-Offset is not where the upload is: ask HEAD",
        ));
    }
    let mut f = tokio::fs::OpenOptions::new()
        .append(true)
        .open(&u.file)
        .await
        .map_err(|e| Error::Internal(format!("{}: {e}", u.file.display())))?;
    let mut at = have;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Error::BadRequest(format!("reading the body: {e}")))?;
        let n = i64::try_from(chunk.len()).unwrap_or(i64::MAX);
        if at.saturating_add(n) > u.length {
            // What fits is kept; the rest is refused.
            let fits = usize::try_from(u.length - at).unwrap_or(0);
            f.write_all(&chunk[..fits]).await.map_err(io)?;
            f.flush().await.map_err(io)?;
            return Err(Error::BadRequest(format!(
                "more bytes than Upload-Length ({})",
                u.length
            )));
        }
        f.write_all(&chunk).await.map_err(io)?;
        at += n;
    }
    f.flush().await.map_err(io)?;
    drop(f);
    let mut resp = StatusCode::NO_CONTENT.into_response();
    if at == u.length {
        let video = finish(&cp, &u).await?;
        if let Ok(v) = HeaderValue::from_str(&video) {
            resp.headers_mut().insert(VIDEO_ID, v);
        }
    } else {
        sqlx::query("UPDATE uploads SET received = $1 WHERE id = $2")
            .bind(at)
            .bind(&u.id)
            .execute(cp.pool())
            .await?;
    }
    resp.headers_mut()
        .insert(UPLOAD_OFFSET, HeaderValue::from(at));
    Ok(tus(resp))
}

fn io(e: std::io::Error) -> Error {
    Error::Internal(format!("writing an upload: {e}"))
}

/// Checks the complete file, stores it and lists it; a bad file and its row are removed.
async fn finish(cp: &ControlPlane, u: &Upload) -> ApiResult<String> {
    let max_ms = cp.content().settings().max_duration_ms;
    let probed =
        super::check::probe_file(u.file.clone(), super::check::Rules::upload(max_ms)).await?;
    let probe = match probed {
        Ok(p) => p,
        Err(bad) => {
            discard(cp, &u.id, &u.file).await?;
            return Err(Error::BadMedia(bad));
        }
    };
    let key = format!("videos/{}.webm", random_id());
    let storage = cp.content().storage()?;
    let size = storage.put_file(&key, &u.file).await?;
    let size = i64::try_from(size).unwrap_or(i64::MAX);
    let id = match insert(
        cp,
        &u.channel_id,
        "upload",
        &u.title,
        &key,
        &probe,
        size,
        None,
        super::videos::VideoVisibility::Public,
    )
    .await
    {
        Ok(id) => id,
        Err(e) => {
            let _ = storage.delete(&key).await;
            return Err(e);
        }
    };
    discard(cp, &u.id, &u.file).await?;
    Ok(id)
}

/// Removes an upload's row and staged bytes.
async fn discard(cp: &ControlPlane, id: &str, file: &std::path::Path) -> ApiResult<()> {
    sqlx::query("DELETE FROM uploads WHERE id = $1")
        .bind(id)
        .execute(cp.pool())
        .await?;
    if let Err(e) = tokio::fs::remove_file(file).await {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!("removing {}: {e}", file.display());
        }
    }
    Ok(())
}

/// Cancel an upload (tus termination): its bytes are removed.
#[utoipa::path(delete, path = "/api/v1/uploads/{id}", tag = "videos", security(("access_token" = [])), params(("id" = String, Path), ("Tus-Resumable" = String, Header, description = "1.0.0")),
    responses((status = 204), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn terminate(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    version(&headers)?;
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT user_id, channel_id FROM uploads WHERE id = $1")
            .bind(&id)
            .fetch_optional(cp.pool())
            .await?;
    let (user, _) = row.ok_or(Error::Missing("no such upload"))?;
    if user != caller.0.id && caller.0.role() != Role::Admin {
        return Err(Error::Missing("no such upload"));
    }
    let _busy = cp.content().claim(&id).ok_or(Error::Conflict(
        "another request is writing this upload: retry",
    ))?;
    let file = cp.content().staged(&id)?;
    discard(&cp, &id, &file).await?;
    Ok(tus(StatusCode::NO_CONTENT.into_response()))
}

/// Removes uploads past their expiry (and their bytes, where they are here).
pub async fn sweep_expired(cp: &ControlPlane, now: i64) -> ApiResult<usize> {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT id FROM uploads WHERE expires_at <= $1 LIMIT 100")
            .bind(now)
            .fetch_all(cp.pool())
            .await?;
    for (id,) in &rows {
        let Some(_busy) = cp.content().claim(id) else {
            continue;
        };
        let file = cp.content().staged(id)?;
        discard(cp, id, &file).await?;
    }
    Ok(rows.len())
}

impl super::Content {
    /// Marks `id` busy; None when a request already writes it.
    fn claim(&self, id: &str) -> Option<Busy> {
        let mut set = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        set.insert(id.to_owned())
            .then(|| Busy(self.busy.clone(), id.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_pairs() {
        // "title" = "My clip", "filename" = "clip.webm", a key with no value.
        let h = "filename Y2xpcC53ZWJt,title TXkgY2xpcA==,flag";
        assert_eq!(metadata(h, "title").as_deref(), Some("My clip"));
        assert_eq!(metadata(h, "filename").as_deref(), Some("clip.webm"));
        assert_eq!(metadata(h, "flag").as_deref(), Some(""));
        assert_eq!(metadata(h, "other"), None);
        assert_eq!(title_of(Some("filename Y2xpcC53ZWJt")).unwrap(), "clip");
        assert_eq!(title_of(None).unwrap(), "Untitled");
    }
}
