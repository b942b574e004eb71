//! The API's one error type, mapped once to an RFC 9457 `application/problem+json` body.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::money::gateway::GatewayError;

/// Everything an `/api/v1` request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The body, path or query is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// A field is well-formed JSON but not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// The body is not `application/json`.
    #[error("expected Content-Type application/json")]
    UnsupportedMediaType,
    /// The body is not of the one type this endpoint takes.
    #[error("{0}")]
    UnsupportedMediaTypeOf(&'static str),
    /// The body is larger than the limit.
    #[error("request body too large")]
    TooLarge,
    /// An upload is larger than the largest allowed (bytes).
    #[error("the file is larger than the {0} bytes allowed")]
    TooLargeUpload(u64),
    /// A precondition of the protocol is not met (tus's `Tus-Resumable`).
    #[error("{0}")]
    Precondition(&'static str),
    /// An uploaded file is not an allowed video (422, code `invalid_media`).
    #[error(transparent)]
    BadMedia(#[from] crate::content::check::Bad),
    /// The media storage failed.
    #[error("media storage: {0}")]
    Storage(#[from] crate::content::StorageError),
    /// No usable credentials (missing, expired, revoked).
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Authenticated, but not allowed.
    #[error("{0}")]
    Forbidden(&'static str),
    /// An API key may not make this request (403 with a `code`).
    #[error("{0}")]
    KeyScope(crate::apikeys::KeyRefusal),
    /// No such resource (or not visible to the caller).
    #[error("not found")]
    NotFound,
    /// No such resource, with the reason.
    #[error("{0}")]
    Missing(&'static str),
    /// A unique name is taken.
    #[error("{0}")]
    Conflict(&'static str),
    /// Too many attempts; retry after this many seconds.
    #[error("too many requests")]
    RateLimited(u64),
    /// No capacity now (a full cluster); retry after this many seconds.
    #[error("{0}")]
    Busy(&'static str, u64),
    /// A chat or interaction rule refused it; the status follows the refusal's code.
    #[error(transparent)]
    Refused(#[from] crate::chat::Refusal),
    /// The stream is for a channel's subscribers and the viewer has no active
    /// subscription (403, code `subscription_required`).
    #[error("this stream is for subscribers: subscribe to one of the channel's tiers to watch")]
    SubscriptionRequired,
    /// The payment gateway refused (402: a declined card) or is unavailable (503).
    #[error(transparent)]
    Gateway(#[from] crate::money::gateway::GatewayError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// Something else failed inside (hashing, signing).
    #[error("{0}")]
    Internal(String),
}

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem (`about:blank` for plain HTTP statuses).
    #[serde(rename = "type")]
    pub kind: String,
    /// The status's reason phrase.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request.
    pub detail: String,
    /// A stable, machine-readable reason where clients act on it (`subscription_required`,
    /// chat refusals' codes, `payment_refused`, API keys' `insufficient_scope`…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// The content type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

impl Error {
    fn status(&self) -> StatusCode {
        match self {
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::UnsupportedMediaType | Error::UnsupportedMediaTypeOf(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            Error::TooLarge | Error::TooLargeUpload(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Precondition(_) => StatusCode::PRECONDITION_FAILED,
            Error::BadMedia(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) | Error::KeyScope(_) => StatusCode::FORBIDDEN,
            Error::NotFound | Error::Missing(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::Busy(..) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Refused(r) => {
                StatusCode::from_u16(r.code.status()).unwrap_or(StatusCode::BAD_REQUEST)
            }
            Error::SubscriptionRequired => StatusCode::FORBIDDEN,
            Error::Gateway(GatewayError::Refused(_)) => StatusCode::PAYMENT_REQUIRED,
            Error::Gateway(GatewayError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Db(_) | Error::Internal(_) | Error::Gateway(_) | Error::Storage(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// The problem's `code`, where clients act on it.
    fn code(&self) -> Option<String> {
        match self {
            Error::SubscriptionRequired => Some("subscription_required".into()),
            Error::BadMedia(_) => Some("invalid_media".into()),
            Error::KeyScope(r) => Some(r.code().into()),
            Error::Gateway(GatewayError::Refused(_)) => Some("payment_refused".into()),
            Error::Gateway(GatewayError::Unavailable(_)) => Some("gateway_unavailable".into()),
            Error::Refused(r) => serde_json::to_value(r.code)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned)),
            _ => None,
        }
    }
}

/// A problem response for a status with a detail (also used by the fallback routes).
pub fn problem(status: StatusCode, detail: String) -> Response {
    coded_problem(status, detail, None)
}

/// A problem response with a machine-readable `code`.
pub fn coded_problem(status: StatusCode, detail: String, code: Option<String>) -> Response {
    let body = Problem {
        kind: "about:blank".into(),
        title: status.canonical_reason().unwrap_or("Error").into(),
        status: status.as_u16(),
        detail,
        code,
    };
    let mut resp = (status, axum::Json(body)).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    resp
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        let detail = if let Error::Gateway(GatewayError::Unavailable(e)) = &self {
            tracing::warn!("payment gateway: {e}");
            "the payment gateway is unavailable, retry shortly".to_string()
        } else if status == StatusCode::INTERNAL_SERVER_ERROR {
            // The cause is logged for the operator and never returned.
            tracing::error!("api request failed: {self}");
            "internal error".to_string()
        } else {
            self.to_string()
        };
        let mut resp = coded_problem(status, detail, self.code());
        let h = resp.headers_mut();
        match self {
            Error::RateLimited(secs) | Error::Busy(_, secs) => {
                h.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
            }
            Error::Refused(crate::chat::Refusal {
                retry_after: Some(secs),
                ..
            }) => {
                h.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
            }
            Error::Gateway(GatewayError::Unavailable(_)) => {
                h.insert(header::RETRY_AFTER, HeaderValue::from(5));
            }
            Error::Unauthorized(_) => {
                h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Error::Precondition(_) => {
                // tus: the versions this server speaks.
                h.insert("tus-version", HeaderValue::from_static("1.0.0"));
            }
            Error::KeyScope(crate::apikeys::KeyRefusal::MissingScope(scope)) => {
                // RFC 6750's answer to a token without the scope a resource needs.
                let v = format!(
                    "Bearer error=\"insufficient_scope\", scope=\"{}\"",
                    scope.as_str()
                );
                if let Ok(v) = HeaderValue::from_str(&v) {
                    h.insert(header::WWW_AUTHENTICATE, v);
                }
            }
            _ => {}
        }
        resp
    }
}

impl From<JsonRejection> for Error {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::MissingJsonContentType(_) => Error::UnsupportedMediaType,
            JsonRejection::JsonDataError(e) => Error::Invalid(e.body_text()),
            JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Error::TooLarge
            }
            other => Error::BadRequest(other.body_text()),
        }
    }
}

impl From<PathRejection> for Error {
    fn from(r: PathRejection) -> Self {
        Error::BadRequest(r.body_text())
    }
}

impl From<QueryRejection> for Error {
    fn from(r: QueryRejection) -> Self {
        Error::BadRequest(r.body_text())
    }
}

/// `Result` of a handler.
pub type ApiResult<T> = Result<T, Error>;
