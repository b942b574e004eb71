//! Live thumbnails: the studio posts a frame of the broadcaster's own preview (a JPEG from
//! a canvas) every 30–60 s while live; lists show it. The server checks the type and size
//! only. For a publisher without the studio (OBS, GStreamer), the node that carries the
//! stream takes a keyframe every 45 s, decodes it and writes it here
//! ([`put_server_still`]: in process in `serve`, through `cluster::thumbnails` from a
//! media-only node) unless the studio posted one in the last [`STUDIO_FRESH_MS`].

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::now_ms;
use crate::error::{ApiResult, Problem};
use crate::extract::{Caller, Path};
use crate::model::Visibility;
use crate::{channels, ControlPlane, Error};

/// Largest thumbnail accepted (a 640×360 JPEG at ordinary quality is 20–60 KiB).
pub const MAX_BYTES: usize = 256 * 1024;

/// Whether `b` looks like a whole JPEG: the start-of-image marker and a frame's, and the
/// end-of-image marker.
pub fn is_jpeg(b: &[u8]) -> bool {
    b.len() > 4 && b.starts_with(&[0xFF, 0xD8, 0xFF]) && b.ends_with(&[0xFF, 0xD9])
}

/// Post the live stream's current frame (the channel's owner): a JPEG of at most 256 KiB.
#[utoipa::path(put, path = "/api/v1/channels/{slug}/thumbnail", tag = "discovery", security(("access_token" = [])),
    params(("slug" = String, Path)), request_body(content = Vec<u8>, content_type = "image/jpeg"),
    responses((status = 204), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn put(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(slug): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<StatusCode> {
    let ch = channels::owned(&cp, &caller, &slug).await?;
    let body = jpeg_body(&headers, body)?;
    write(&cp, &ch.id, &body, now_ms(), None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A thumbnail's request body, checked: `Content-Type: image/jpeg` (422 otherwise), at
/// most [`MAX_BYTES`] (413; the route's body limit is the same), a whole JPEG (422).
pub(crate) fn jpeg_body(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Bytes> {
    let kind = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if kind != "image/jpeg" {
        return Err(Error::Invalid(
            "a thumbnail is sent as Content-Type image/jpeg".into(),
        ));
    }
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => Error::TooLarge,
        _ => Error::BadRequest(e.body_text()),
    })?;
    if body.len() > MAX_BYTES {
        return Err(Error::TooLarge);
    }
    if !is_jpeg(&body) {
        return Err(Error::Invalid(
            "the thumbnail is not a whole JPEG image".into(),
        ));
    }
    Ok(body)
}

/// How recent a thumbnail (the studio's, posted every 30–60 s) a server still does not
/// replace, ms. The server's own, 45 s apart, are older than this at the next.
pub const STUDIO_FRESH_MS: i64 = 90_000;

/// Writes `jpeg` as the channel's thumbnail, dated `at`; with `unless_newer_than`, only
/// when the one there is older (or none is). Returns whether it was written.
async fn write(
    cp: &ControlPlane,
    channel_id: &str,
    jpeg: &[u8],
    at: i64,
    unless_newer_than: Option<i64>,
) -> ApiResult<bool> {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, jpeg);
    let etag = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest.as_ref()[..12]);
    let data = base64::engine::general_purpose::STANDARD.encode(jpeg);
    let done = sqlx::query(
        "INSERT INTO thumbnails (channel_id, jpeg, etag, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (channel_id) DO UPDATE SET jpeg = excluded.jpeg, etag = excluded.etag, \
         updated_at = excluded.updated_at WHERE thumbnails.updated_at < $5",
    )
    .bind(channel_id)
    .bind(data)
    .bind(etag)
    .bind(at)
    .bind(unless_newer_than.unwrap_or(i64::MAX))
    .execute(cp.pool())
    .await?;
    Ok(done.rows_affected() > 0)
}

/// What became of a server still ([`put_server_still`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ServerStill {
    /// Written as the channel's thumbnail.
    Written,
    /// The studio posted one in the last [`STUDIO_FRESH_MS`]: the broadcaster's frame
    /// stays.
    StudioNewer,
    /// Not shown for this channel: it is private, or its paywall is closed.
    Withheld,
    /// No channel streams under this name.
    NoChannel,
}

/// The node's still of live `stream` (a JPEG it decoded from a keyframe) as its channel's
/// thumbnail, unless the studio posted one in the last [`STUDIO_FRESH_MS`]. Skipped: a
/// stream without a channel, a private channel's (never served), and a paywalled one's
/// (its frames are for subscribers: the broadcaster's studio may post one). `serve` calls
/// it in process; a media-only node through `PUT /cluster/thumbnails/{stream}`
/// (`cluster::thumbnails`).
pub async fn put_server_still(
    cp: &ControlPlane,
    stream: &str,
    jpeg: &[u8],
) -> ApiResult<ServerStill> {
    if !is_jpeg(jpeg) || jpeg.len() > MAX_BYTES {
        return Err(Error::Invalid(
            "a server still is not a JPEG within the limit".into(),
        ));
    }
    let Some(ch) = channels::by_slug(cp, stream).await? else {
        return Ok(ServerStill::NoChannel);
    };
    if Visibility::parse(&ch.visibility) == Visibility::Private
        || crate::money::access::paywall(cp, &ch.id)
            .await?
            .closed(now_ms())
    {
        return Ok(ServerStill::Withheld);
    }
    // Written only over a thumbnail older than the studio's freshness. The server's own
    // are dated that much back, so the next round replaces them and only a studio's holds.
    let now = now_ms();
    let old = now - STUDIO_FRESH_MS;
    Ok(if write(cp, &ch.id, jpeg, old, Some(old)).await? {
        ServerStill::Written
    } else {
        ServerStill::StudioNewer
    })
}

/// A channel's newest thumbnail (not of a private channel), cached a minute: lists link
/// it with `?v=` its ETag, so a new frame is a new URL.
#[utoipa::path(get, path = "/api/v1/channels/{slug}/thumbnail", tag = "discovery",
    params(("slug" = String, Path)),
    responses((status = 200, content_type = "image/jpeg", description = "The JPEG"), (status = 304),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn get(
    State(cp): State<ControlPlane>,
    Path(slug): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let ch = channels::by_slug(&cp, &slug)
        .await?
        .ok_or(Error::NotFound)?;
    if Visibility::parse(&ch.visibility) == Visibility::Private {
        return Err(Error::NotFound);
    }
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT jpeg, etag FROM thumbnails WHERE channel_id = $1")
            .bind(&ch.id)
            .fetch_optional(cp.pool())
            .await?;
    let (data, etag) = row.ok_or(Error::Missing("no thumbnail yet"))?;
    let etag = format!("\"{etag}\"");
    let cache = [
        (header::CACHE_CONTROL, "public, max-age=60".to_owned()),
        (header::ETAG, etag.clone()),
    ];
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag))
    {
        return Ok((StatusCode::NOT_MODIFIED, cache).into_response());
    }
    let jpeg = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|e| Error::Internal(format!("a stored thumbnail: {e}")))?;
    Ok((
        cache,
        [(header::CONTENT_TYPE, "image/jpeg".to_owned())],
        jpeg,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_jpeg_has_its_markers() {
        assert!(super::is_jpeg(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0xFF, 0xD9]));
        assert!(!super::is_jpeg(b"\x89PNG\r\n\x1a\n...."));
        // Truncated: no end-of-image marker.
        assert!(!super::is_jpeg(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 1, 2]));
    }
}
