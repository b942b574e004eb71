//! A video's media over HTTP with range requests (what a `<video>` element seeks with):
//! 206 with `Content-Range` for a range, 200 for the whole, 416 for a range outside it,
//! streamed from the storage's range read. Each read marks the video watched (at most
//! once a minute), which keeps it from the retention sweeper.

use std::ops::RangeInclusive;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;

use super::videos::{access, by_id, media_scope};
use crate::db::now_ms;
use crate::error::{coded_problem, ApiResult, Problem};
use crate::extract::{Caller, MaybeCaller, Path, Query};
use crate::tokens::{TokenError, TokenKind};
use crate::{ControlPlane, Error};

/// How often a video's `last_read_at` is written, ms.
pub const TOUCH_EVERY_MS: i64 = 60_000;

/// What to send of an object of `size` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// All of it (200).
    Whole,
    /// These bytes (206).
    Part(RangeInclusive<u64>),
}

/// The answer to a `Range` header (None: no header) for an object of `size` bytes; `Err`
/// is the 416 answer's detail. Several ranges at once are answered with the whole (a
/// server may ignore `Range`); browsers ask for one.
pub fn plan(range: Option<&str>, size: u64) -> Result<Plan, String> {
    let Some(h) = range else {
        return Ok(Plan::Whole);
    };
    let parsed = http_range_header::parse_range_header(h)
        .map_err(|e| format!("the Range header {h:?} is not valid: {e}"))?;
    let mut ranges = parsed
        .validate(size)
        .map_err(|e| format!("the range {h:?} is outside the video's {size} bytes: {e}"))?;
    if ranges.len() != 1 {
        return Ok(Plan::Whole);
    }
    Ok(Plan::Part(ranges.remove(0)))
}

/// `GET /videos/{id}/media`
#[derive(Debug, Deserialize, IntoParams)]
pub struct MediaQuery {
    /// The token of a private or subscribers' video's link (`media_url`).
    pub token: Option<String>,
}

/// The caller a media link's token names (it opens this video only).
pub(crate) async fn by_token(cp: &ControlPlane, token: &str, video_id: &str) -> ApiResult<Caller> {
    let claims = cp
        .signer()
        .verifier()
        .verify(token, TokenKind::View)
        .map_err(|e| match e {
            TokenError::Expired => Error::Unauthorized("the video's link expired: reload the page"),
            TokenError::Invalid => Error::Unauthorized("invalid token"),
        })?;
    if claims.chan.as_deref() != Some(media_scope(video_id).as_str()) {
        return Err(Error::Unauthorized("this token is for another video"));
    }
    let user = crate::accounts::user_by_id(cp, &claims.sub)
        .await?
        .ok_or(Error::Unauthorized("invalid token"))?;
    if user.session_version != claims.sv {
        return Err(Error::Unauthorized("session was signed out"));
    }
    if user.suspended() {
        return Err(Error::Forbidden("account suspended"));
    }
    Ok(Caller(user, None))
}

/// A video's media, with range requests (who may play it: its link's token, a bearer
/// token, or none for a public or unlisted video).
#[utoipa::path(get, path = "/api/v1/videos/{id}/media", tag = "videos", params(("id" = String, Path), MediaQuery),
    responses((status = 200, description = "The whole file", content_type = "video/webm"),
        (status = 206, description = "The range asked for", content_type = "video/webm"),
        (status = 416, body = Problem, content_type = "application/problem+json"),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn media(
    State(cp): State<ControlPlane>,
    caller: MaybeCaller,
    Path(id): Path<String>,
    Query(q): Query<MediaQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let v = by_id(&cp, &id).await?.ok_or(Error::NotFound)?;
    let caller = match &q.token {
        Some(t) => Some(by_token(&cp, t, &v.id).await?),
        None => caller.0,
    };
    access(&cp, &v, caller.as_ref()).await?;
    let size = u64::try_from(v.size_bytes).unwrap_or(0);
    let range = headers.get(header::RANGE).and_then(|h| h.to_str().ok());
    let plan = match plan(range, size) {
        Ok(p) => p,
        Err(detail) => {
            let mut r = coded_problem(StatusCode::RANGE_NOT_SATISFIABLE, detail, None);
            if let Ok(h) = HeaderValue::from_str(&format!("bytes */{size}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, h);
            }
            return Ok(r);
        }
    };
    let (status, bytes) = match &plan {
        Plan::Whole => (StatusCode::OK, 0..size),
        Plan::Part(r) => (StatusCode::PARTIAL_CONTENT, *r.start()..*r.end() + 1),
    };
    let body = cp
        .content()
        .storage()?
        .stream(&v.storage_key, bytes.clone())
        .await?;
    touch(&cp, &v.id, v.last_read_at, now_ms()).await;
    let mut resp = (status, Body::from_stream(body)).into_response();
    let h = resp.headers_mut();
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(bytes.end - bytes.start),
    );
    if let Ok(ct) = HeaderValue::from_str(&v.content_type) {
        h.insert(header::CONTENT_TYPE, ct);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    if let Plan::Part(r) = plan {
        let cr = format!("bytes {}-{}/{size}", r.start(), r.end());
        if let Ok(cr) = HeaderValue::from_str(&cr) {
            h.insert(header::CONTENT_RANGE, cr);
        }
    }
    Ok(resp)
}

/// Writes the video's newest read when the one stored is older than [`TOUCH_EVERY_MS`].
async fn touch(cp: &ControlPlane, id: &str, last: Option<i64>, now: i64) {
    if last.is_some_and(|t| now - t < TOUCH_EVERY_MS) {
        return;
    }
    if let Err(e) = sqlx::query("UPDATE videos SET last_read_at = $1 WHERE id = $2")
        .bind(now)
        .bind(id)
        .execute(cp.pool())
        .await
    {
        tracing::warn!("marking a video read: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(plan(None, 100), Ok(Plan::Whole));
        assert_eq!(plan(Some("bytes=0-"), 100), Ok(Plan::Part(0..=99)));
        assert_eq!(plan(Some("bytes=10-19"), 100), Ok(Plan::Part(10..=19)));
        assert_eq!(plan(Some("bytes=50-500"), 100), Ok(Plan::Part(50..=99)));
        assert_eq!(plan(Some("bytes=-10"), 100), Ok(Plan::Part(90..=99)));
        assert_eq!(plan(Some("bytes=0-1, 5-6"), 100), Ok(Plan::Whole));
        assert!(plan(Some("bytes=100-"), 100).is_err());
        assert!(plan(Some("bytes=200-300"), 100).is_err());
        assert!(plan(Some("pages=1-2"), 100).is_err());
        assert!(plan(Some("bytes=9-3"), 100).is_err());
    }
}
