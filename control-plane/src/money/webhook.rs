//! `POST /api/v1/payments/stripe/webhook`: the gateway's events. The raw body's
//! signature is checked before anything parses it; a bad or stale signature is 400 and
//! changes nothing; a verified event is applied once (a repeat is answered 200 and
//! changes nothing).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Serialize;
use utoipa::ToSchema;

use super::apply::{apply, Applied};
use crate::error::{ApiResult, Problem};
use crate::tokens::now_secs;
use crate::{ControlPlane, Error};

/// Largest event body read (Stripe's events are a few KiB; an invoice with many lines
/// more).
pub const MAX_EVENT: usize = 256 * 1024;

/// The answer to the gateway.
#[derive(Debug, Serialize, ToSchema)]
pub struct Received {
    /// The event's id.
    pub id: String,
    /// False when it had been received before (nothing changed).
    pub applied: bool,
}

/// Stripe's events, signed with the endpoint's secret (`Stripe-Signature`).
#[utoipa::path(post, path = "/api/v1/payments/stripe/webhook", tag = "money",
    params(("Stripe-Signature" = String, Header, description = "t=…,v1=…")),
    request_body(content = String, content_type = "application/json", description = "A Stripe event, as sent"),
    responses((status = 200, body = Received), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn stripe(
    State(cp): State<ControlPlane>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<axum::Json<Received>> {
    let gateway = cp.gateway()?.clone();
    if gateway.name() != "stripe" {
        return Err(Error::NotFound);
    }
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    let event = gateway
        .event(signature, &body, now_secs())
        .map_err(|e| Error::BadRequest(e.to_string()))?;
    let applied = apply(&cp, gateway.name(), &event).await?;
    Ok(axum::Json(Received {
        id: event.id,
        applied: applied == Applied::Done,
    }))
}
