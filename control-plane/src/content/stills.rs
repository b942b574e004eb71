//! A video's still picture, made on the server when it is listed: the check keeps the
//! first video keyframe of a WebM or an MP4 ([`super::Probe::keyframe`]), a [`Stills`]
//! maker (the binary installs `sfu::process::still`'s: VP8 with libvpx, H.264 with
//! OpenH264) turns it into a PNG on a blocking thread, and it is stored beside the video (`thumbs/ID.png`) and named by the video's
//! `thumbnail_url`. A video without one (another codec, no maker, a frame that did not
//! decode) is listed all the same: a still is never a reason to refuse a video.
//! `GET /videos/{id}/thumbnail` serves it to whoever may see the video listed.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiResult, Error};
use crate::extract::{MaybeCaller, Path};
use crate::ControlPlane;

use super::videos::{access, by_id};
use super::Probe;

/// Makes a still picture (PNG bytes) of a video from its first keyframe.
pub trait Stills: Send + Sync + std::fmt::Debug {
    /// The still of `keyframe`, a frame of `codec` (`vp8`, `vp9`, `av1`, `h264`: an access
    /// unit whose NAL units each follow a 4-byte length, its SPS and PPS first), or `None`
    /// when this maker cannot (then the video has none).
    fn still(&self, codec: &str, keyframe: &[u8]) -> Option<Vec<u8>>;
}

/// The maker the content settings hold.
pub type StillMaker = Arc<dyn Stills>;

/// Largest keyframe the check keeps for a still (a 4K VP9 keyframe is well under).
pub const MAX_KEYFRAME_BYTES: usize = 2 * 1024 * 1024;

/// Stills made at once.
static MAKING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// Where video `id`'s still is stored.
pub(crate) fn key(id: &str) -> String {
    format!("thumbs/{id}.png")
}

/// Makes and stores the still of video `id` from its probe; its `thumbnail_url`, or
/// `None` when there is no still (the reason is logged, nothing fails).
pub(crate) async fn store(cp: &ControlPlane, id: &str, probe: &Probe) -> Option<String> {
    let maker = cp.content().settings().stills.clone()?;
    let frame = probe.keyframe.clone()?;
    let codec = probe.video_codec.clone();
    // One at a time: a burst of uploads does not take every core.
    let _turn = MAKING.acquire().await.ok()?;
    let png = match tokio::task::spawn_blocking(move || maker.still(&codec, &frame)).await {
        Ok(Some(png)) => png,
        Ok(None) => {
            tracing::debug!(video = id, "no still: its keyframe did not decode");
            return None;
        }
        Err(e) => {
            tracing::warn!(video = id, "making a still failed: {e}");
            return None;
        }
    };
    let storage = cp.content().storage().ok()?;
    if let Err(e) = storage.put(&key(id), png.into()).await {
        tracing::warn!(video = id, "storing its still: {e}");
        return None;
    }
    Some(format!("/api/v1/videos/{id}/thumbnail"))
}

/// A video's still picture (PNG), for whoever may see it listed: a subscribers' video's
/// too (it is listed for all), not a private one's. A private video's `thumbnail_url`
/// carries its media link's token, as its `media_url` does (to its owner and admins).
#[utoipa::path(get, path = "/api/v1/videos/{id}/thumbnail", tag = "videos", params(("id" = String, Path), super::media::MediaQuery),
    responses((status = 200, content_type = "image/png", body = Vec<u8>), (status = "4XX", body = crate::error::Problem, content_type = "application/problem+json")))]
pub(crate) async fn get(
    State(cp): State<ControlPlane>,
    caller: MaybeCaller,
    Path(id): Path<String>,
    Query(q): Query<super::media::MediaQuery>,
) -> ApiResult<Response> {
    let v = by_id(&cp, &id).await?.ok_or(Error::NotFound)?;
    // A token that no longer holds (expired, signed out) falls back to the caller: the
    // still may be theirs to see all the same.
    let caller = match &q.token {
        Some(t) => super::media::by_token(&cp, t, &v.id)
            .await
            .ok()
            .or(caller.0),
        None => caller.0,
    };
    match access(&cp, &v, caller.as_ref()).await {
        Ok(()) | Err(Error::SubscriptionRequired) => {}
        Err(e) => return Err(e),
    }
    if v.thumbnail_url.is_none() {
        return Err(Error::NotFound);
    }
    let png = cp.content().storage()?.get(&key(&v.id)).await?;
    // Private to the browser: the channel may be private, or the video made private later.
    let cache = "private, max-age=300";
    Ok((
        [
            (header::CONTENT_TYPE, "image/png"),
            (header::CACHE_CONTROL, cache),
        ],
        png,
    )
        .into_response())
}
