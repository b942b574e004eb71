//! What `/readyz` and `/metrics` need from the control plane (`signaling::Ops`), and the
//! same routes and `/healthz` for a `cascade control` replica, which has no media node.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use control_plane::ControlPlane;
use futures_util::future::BoxFuture;

/// The control plane in this process.
pub struct ControlOps(pub ControlPlane);

impl signaling::Ops for ControlOps {
    fn ready(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(self.0.ping())
    }

    fn metrics(&self) -> String {
        self.0.render_metrics()
    }
}

/// `/healthz`, `/metrics` and `/readyz` of a control-plane replica.
pub fn control_routes(cp: ControlPlane) -> axum::Router {
    axum::Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/readyz", get(readyz))
        .with_state(cp)
}

async fn metrics(State(cp): State<ControlPlane>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        cp.render_metrics(),
    )
        .into_response()
}

/// Alive: the process answers (its database may not; that is `/readyz`).
async fn healthz() -> Response {
    axum::Json(serde_json::json!({"status": "ok", "pid": std::process::id()})).into_response()
}

async fn readyz(State(cp): State<ControlPlane>) -> Response {
    match cp.ping().await {
        Ok(()) => (
            StatusCode::OK,
            axum::Json(serde_json::json!({"ready": true, "reasons": []})),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"ready": false, "reasons": [e]})),
        ),
    }
    .into_response()
}
