//! Live thumbnails made on media-only nodes (`cascade node`). Every
//! `--live-thumbnail-secs` the node that carries a live stream's publisher decodes a
//! keyframe into a JPEG and puts it here: `PUT /cluster/thumbnails/{stream}` with the
//! cluster token, the JPEG as the body (`Content-Type: image/jpeg`, at most
//! [`thumbs::MAX_BYTES`], a whole JPEG). It goes the way `serve`'s own stills go in
//! process ([`thumbs::put_server_still`]): a thumbnail the studio posted recently stays,
//! and a private or paywalled channel's lists show none.
//!
//! The answer says what became of it (`written`, `studio_newer`, `withheld`); a stream
//! without a channel is a 404, which the node takes as "nothing to do" rather than a
//! failure.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::NodeAuth;
use crate::discovery::thumbs::{self, put_server_still, ServerStill};
use crate::error::{ApiResult, Problem};
use crate::extract::Path;
use crate::{ControlPlane, Error};

/// The 404's detail for a stream without a channel (a node tells it from an endpoint
/// missing, or the cluster API off).
pub const NO_CHANNEL: &str = "no channel streams under this name";

/// What became of a node's still.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StillPut {
    /// Written, or kept out (the studio's newer frame stays; a private or paywalled
    /// channel shows none).
    pub still: ServerStill,
}

/// A live stream's still, decoded on the node that carries its publisher, as its
/// channel's thumbnail (unless the studio posted a newer one).
#[utoipa::path(put, path = "/api/v1/cluster/thumbnails/{stream}", tag = "cluster", security(("cluster_token" = [])),
    params(("stream" = String, Path, description = "The live stream (its channel's slug)")),
    request_body(content = Vec<u8>, content_type = "image/jpeg"),
    responses((status = 200, body = StillPut),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No channel streams under this name"),
        (status = 413, body = Problem, content_type = "application/problem+json", description = "Larger than a thumbnail may be"),
        (status = 422, body = Problem, content_type = "application/problem+json", description = "Not a JPEG"),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn put(
    State(cp): State<ControlPlane>,
    _: NodeAuth,
    Path(stream): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<axum::Json<StillPut>> {
    let stream = super::registry::checked("stream", &stream, 100)?;
    let jpeg = thumbs::jpeg_body(&headers, body)?;
    match put_server_still(&cp, &stream, &jpeg).await? {
        ServerStill::NoChannel => Err(Error::Missing(NO_CHANNEL)),
        still => Ok(axum::Json(StillPut { still })),
    }
}
