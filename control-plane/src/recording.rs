//! A channel's recording setting: record every live stream (the largest picture, or every
//! layer), set by its owner (or an admin). The node reads it when a publisher goes live
//! ([`ControlPlane::recording_of`]); the recording itself is the node's (`sfu::record`).

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::channels::owned;
use crate::db::now_ms;
use crate::error::{ApiResult, Problem};
use crate::extract::{Caller, Json, Path};
use crate::ControlPlane;

/// Which layers a recording keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RecordLayers {
    /// The largest picture the broadcaster sends: one file.
    #[default]
    Top,
    /// Every simulcast layer: one file each.
    All,
}

impl RecordLayers {
    fn as_str(self) -> &'static str {
        match self {
            RecordLayers::Top => "top",
            RecordLayers::All => "all",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "top" => Some(RecordLayers::Top),
            "all" => Some(RecordLayers::All),
            _ => None,
        }
    }
}

/// `GET`/`PUT /channels/{slug}/recording`.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct RecordingSettings {
    /// Record every live stream of the channel, from going live to the end.
    pub enabled: bool,
    /// Which layers (`top` when absent).
    #[serde(default)]
    pub layers: RecordLayers,
}

async fn load(cp: &ControlPlane, channel_id: &str) -> ApiResult<RecordingSettings> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT layers FROM channel_recording WHERE channel_id = $1")
            .bind(channel_id)
            .fetch_optional(cp.pool())
            .await?;
    Ok(match row.and_then(|(l,)| RecordLayers::parse(&l)) {
        Some(layers) => RecordingSettings {
            enabled: true,
            layers,
        },
        None => RecordingSettings {
            enabled: false,
            layers: RecordLayers::Top,
        },
    })
}

/// A channel's recording setting (its owner).
#[utoipa::path(get, path = "/api/v1/channels/{slug}/recording", tag = "recording", security(("access_token" = [])), params(("slug" = String, Path)),
    responses((status = 200, body = RecordingSettings), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn settings(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(slug): Path<String>,
) -> ApiResult<axum::Json<RecordingSettings>> {
    let ch = owned(&cp, &caller, &slug).await?;
    Ok(axum::Json(load(&cp, &ch.id).await?))
}

/// Record every live stream of the channel (or stop doing so). Takes effect at the next
/// go-live.
#[utoipa::path(put, path = "/api/v1/channels/{slug}/recording", tag = "recording", security(("access_token" = [])), params(("slug" = String, Path)), request_body = RecordingSettings,
    responses((status = 200, body = RecordingSettings), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn set_settings(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(slug): Path<String>,
    Json(req): Json<RecordingSettings>,
) -> ApiResult<axum::Json<RecordingSettings>> {
    let ch = owned(&cp, &caller, &slug).await?;
    if req.enabled {
        sqlx::query(
            "INSERT INTO channel_recording (channel_id, layers, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (channel_id) DO UPDATE SET layers = excluded.layers, \
             updated_at = excluded.updated_at",
        )
        .bind(&ch.id)
        .bind(req.layers.as_str())
        .bind(now_ms())
        .execute(cp.pool())
        .await?;
    } else {
        sqlx::query("DELETE FROM channel_recording WHERE channel_id = $1")
            .bind(&ch.id)
            .execute(cp.pool())
            .await?;
    }
    Ok(axum::Json(load(&cp, &ch.id).await?))
}

impl ControlPlane {
    /// Whether the channel whose stream is `stream` records its live streams, and which
    /// layers: what a node asks when a publisher goes live.
    pub async fn recording_of(&self, stream: &str) -> ApiResult<Option<RecordLayers>> {
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT r.layers FROM channel_recording r JOIN channels c ON c.id = r.channel_id \
             WHERE c.slug = $1",
        )
        .bind(stream)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.and_then(|(l,)| RecordLayers::parse(&l)))
    }
}
