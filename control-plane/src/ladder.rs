//! A channel's transcoded-ladder setting: whether a node started with `--ladder` may turn
//! the channel's single-layer stream into lower layers (docs/PROCESSING.md). On unless the
//! owner (or an admin) turns it off. The node learns it when a publisher goes live, from
//! the gate's [`crate::gate::Grant`] (`ladder`): read from the database in-process, from
//! the publish token's `nol` claim on a media-only node.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::channels::owned;
use crate::db::now_ms;
use crate::error::{ApiResult, Problem};
use crate::extract::{Caller, Json, Path};
use crate::ControlPlane;

/// `GET`/`PUT /channels/{slug}/ladder`.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct LadderSettings {
    /// Nodes that transcode (`--ladder`) may make lower layers of the channel's
    /// single-layer stream for viewers on weak links.
    pub enabled: bool,
}

async fn load(cp: &ControlPlane, channel_id: &str) -> ApiResult<LadderSettings> {
    let off: Option<(String,)> =
        sqlx::query_as("SELECT channel_id FROM channel_ladder_off WHERE channel_id = $1")
            .bind(channel_id)
            .fetch_optional(cp.pool())
            .await?;
    Ok(LadderSettings {
        enabled: off.is_none(),
    })
}

/// A channel's ladder setting (its owner).
#[utoipa::path(get, path = "/api/v1/channels/{slug}/ladder", tag = "ladder", security(("access_token" = [])), params(("slug" = String, Path)),
    responses((status = 200, body = LadderSettings), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn settings(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(slug): Path<String>,
) -> ApiResult<axum::Json<LadderSettings>> {
    let ch = owned(&cp, &caller, &slug).await?;
    Ok(axum::Json(load(&cp, &ch.id).await?))
}

/// Lets nodes ladder the channel's stream (or not). Takes effect at the next go-live.
#[utoipa::path(put, path = "/api/v1/channels/{slug}/ladder", tag = "ladder", security(("access_token" = [])), params(("slug" = String, Path)), request_body = LadderSettings,
    responses((status = 200, body = LadderSettings), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn set_settings(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(slug): Path<String>,
    Json(req): Json<LadderSettings>,
) -> ApiResult<axum::Json<LadderSettings>> {
    let ch = owned(&cp, &caller, &slug).await?;
    if req.enabled {
        sqlx::query("DELETE FROM channel_ladder_off WHERE channel_id = $1")
            .bind(&ch.id)
            .execute(cp.pool())
            .await?;
    } else {
        sqlx::query(
            "INSERT INTO channel_ladder_off (channel_id, updated_at) VALUES ($1, $2) \
             ON CONFLICT (channel_id) DO UPDATE SET updated_at = excluded.updated_at",
        )
        .bind(&ch.id)
        .bind(now_ms())
        .execute(cp.pool())
        .await?;
    }
    Ok(axum::Json(load(&cp, &ch.id).await?))
}
