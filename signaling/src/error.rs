//! The HTTP edge's one error type, mapped to a status exactly once.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sfu::SfuError;

/// Everything a WHIP/WHEP request can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The engine refused (bad SDP, busy stream, capacity...).
    #[error(transparent)]
    Sfu(#[from] SfuError),
    /// Wrong `Content-Type`.
    #[error("expected Content-Type {0}")]
    UnsupportedMediaType(&'static str),
    /// Malformed request other than SDP (stream name, JSON...).
    #[error("{0}")]
    BadRequest(String),
    /// Missing or wrong credentials.
    #[error("unauthorized")]
    Unauthorized,
    /// Authenticated but not allowed.
    #[error("forbidden")]
    Forbidden,
    /// `If-Match` did not match the session's current ETag.
    #[error("precondition failed: ETag does not match")]
    PreconditionFailed,
    /// Unknown resource.
    #[error("not found")]
    NotFound,
    /// A subscribers-only stream and a viewer without an active subscription.
    #[error("this stream is for subscribers: subscribe to one of the channel's tiers to watch")]
    SubscriptionRequired,
    /// A service this request needs (the accounts database) did not answer.
    #[error("authorization is unavailable, retry shortly")]
    Unavailable,
}

/// Seconds a client should wait before retrying when the node is full.
pub const RETRY_AFTER_SECS: u32 = 5;

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::Sfu(e) => match e {
                SfuError::BadSdp(_) | SfuError::BadFragment(_) => StatusCode::BAD_REQUEST,
                SfuError::StreamBusy => StatusCode::CONFLICT,
                SfuError::NoSuchSession => StatusCode::NOT_FOUND,
                SfuError::AtCapacity | SfuError::Overloaded(_) | SfuError::WorkerUnavailable => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                SfuError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
                SfuError::EtagMismatch => StatusCode::PRECONDITION_FAILED,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden | ApiError::SubscriptionRequired => StatusCode::FORBIDDEN,
            ApiError::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ApiError::SubscriptionRequired = self {
            // A typed refusal a player acts on (offer the channel's tiers): a problem
            // document with a code, as the control plane's API answers.
            return problem(status, &self.to_string(), Some("subscription_required"));
        }
        let body = if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
            // Internal detail is logged, never returned.
            tracing::error!("request failed: {self}");
            "internal error".to_string()
        } else {
            self.to_string()
        };
        let mut resp = (status, body).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS {
            h.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        if status == StatusCode::UNAUTHORIZED {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// An RFC 9457 problem document (`application/problem+json`), as the control plane's API
/// answers: for refusals a client acts on, and the server's own early 413.
pub fn problem(status: StatusCode, detail: &str, code: Option<&str>) -> Response {
    let mut body = serde_json::json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
    });
    if let Some(code) = code {
        body["code"] = code.into();
    }
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    resp
}
