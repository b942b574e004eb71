//! The HTTP edge of everything this process serves (a node's WHIP/WHEP, pages and API, a
//! `cascade control` replica's API): request ids, the request's span and its one log line,
//! and request metrics. Written once here; the control plane's routes go through it too.
//!
//! - **Request ids.** Every response carries `x-request-id`: the client's own when it sent
//!   one that is sane (one value, 1 to [`MAX_REQUEST_ID`] visible ASCII characters), else a
//!   fresh UUID v4. The request carries it too (the header, and tower-http's `RequestId`
//!   extension). A JSON error body (`application/problem+json`, `application/json`) gets it
//!   as `request_id`, so a user can quote it; WHIP/WHEP's plain-text errors have the header
//!   (their typed refusals and the server's early 413 are problem documents too).
//! - **The span.** What is logged while a request is handled is inside the span
//!   `request{request_id, method, route}`. The route is the matched template
//!   (`/whep/{stream}`), never the path asked for: a path may name a private stream, a
//!   query may hold a token, and a log's fields stay bounded; `other` when nothing matched.
//! - **One line per request**, when its response's head leaves (`answered`, with `status`
//!   and `latency_ms`): at `debug`, since a node answers a WHEP POST per viewer and at
//!   `info` a large event would drown everything else; a 5xx at `warn` (a full node's
//!   503, a database that does not answer: what an operator looks for).
//! - **Metrics.** [`time`] observes a histogram by `{route, method, status}` (method
//!   outside the standard ones: `other`). Each router passes its own histogram: the
//!   node's `cascade_http_request_duration_seconds` ([`crate::app`]) and the control
//!   plane's `cascade_api_request_duration_seconds` (`src/main.rs`), so a process that
//!   mounts both counts each request once.
//!
//! [`edge`] is applied by [`crate::server::serve_with`] around the whole application, so
//! it covers every response, the server's own 408 and 413 included, exactly once.

use std::time::Instant;

use axum::body::{Body, HttpBody};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderName, Method};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use prometheus::{HistogramOpts, HistogramVec};
use tower::ServiceBuilder;
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tracing::Instrument;

/// The header that carries a request's id, both ways.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request id taken from a client.
pub const MAX_REQUEST_ID: usize = 64;

/// The route label of a request that matched no route.
pub const OTHER: &str = "other";

/// The largest JSON error body that gets the request id (error bodies are a few hundred
/// bytes; a larger one is passed on as it is).
const MAX_JSON_ERROR: usize = 64 * 1024;

/// Buckets of the request histograms, in seconds (the control plane's are the same).
const BUCKETS: [f64; 11] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Wraps `app` in the edge: ids, the span, the log line, ids in JSON error bodies.
pub fn edge(app: Router) -> Router {
    app.layer(
        ServiceBuilder::new()
            .layer(middleware::from_fn(drop_insane_id))
            .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
            .layer(PropagateRequestIdLayer::new(REQUEST_ID))
            .layer(middleware::from_fn(trace)),
    )
}

/// Times every request of `router` (its fallback too, as `other`) in `histogram`.
pub fn timed<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    histogram: HistogramVec,
) -> Router<S> {
    router.layer(middleware::from_fn_with_state(histogram, time))
}

/// A request histogram by `{route, method, status}` named `name` (under the registry's
/// prefix), for [`timed`].
pub fn histogram(name: &str, help: &str) -> HistogramVec {
    HistogramVec::new(
        HistogramOpts::new(name, help).buckets(BUCKETS.to_vec()),
        &["route", "method", "status"],
    )
    .expect("a constant, valid metric definition")
}

/// Whether a client's request id can be taken as it is: visible ASCII (no spaces or
/// control characters, so it cannot break a log line), and not too long.
pub fn sane_request_id(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID).contains(&id.len()) && id.iter().all(u8::is_ascii_graphic)
}

/// Removes a client's request id that is not sane (or not alone), so that one is made.
async fn drop_insane_id(mut req: Request, next: Next) -> Response {
    let mut ids = req.headers().get_all(&REQUEST_ID).iter();
    let keep = match (ids.next(), ids.next()) {
        (None, _) => true,
        (Some(id), None) => sane_request_id(id.as_bytes()),
        // Several: no single id the client could quote.
        (Some(_), Some(_)) => false,
    };
    if !keep {
        req.headers_mut().remove(&REQUEST_ID);
    }
    next.run(req).await
}

fn route(req: &Request) -> String {
    req.extensions()
        .get::<MatchedPath>()
        .map_or_else(|| OTHER.to_owned(), |p| p.as_str().to_owned())
}

/// The method as a bounded label: hyper accepts any token as a method.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::HEAD => "HEAD",
        _ => OTHER,
    }
}

/// The request's span around its handling, its log line, its id in a JSON error body.
async fn trace(req: Request, next: Next) -> Response {
    // `SetRequestIdLayer` put it there, from a visible-ASCII header or a UUID.
    let id = req
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or_default()
        .to_owned();
    // At `error`, the highest level, so the span is on whenever any line inside it is
    // logged (under `RUST_LOG=warn` an `info` span would be off, and a 5xx's line would
    // lose its id). Its level filters nothing else.
    let span = tracing::error_span!(
        "request",
        request_id = %id,
        method = %method_label(req.method()),
        route = %route(&req),
    );
    let started = Instant::now();
    let resp = next.run(req).instrument(span.clone()).await;
    let status = resp.status().as_u16();
    // Tenths of a millisecond.
    let latency_ms = (started.elapsed().as_secs_f64() * 1e4).round() / 10.0;
    span.in_scope(|| {
        if resp.status().is_server_error() {
            tracing::warn!(status, latency_ms, "answered");
        } else {
            tracing::debug!(status, latency_ms, "answered");
        }
    });
    stamp_json_error(resp, &id).await
}

fn is_json(resp: &Response) -> bool {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim)
        .is_some_and(|ct| {
            ct.eq_ignore_ascii_case("application/json")
                || ct.eq_ignore_ascii_case("application/problem+json")
        })
}

/// Adds `"request_id": id` to a JSON object error body.
async fn stamp_json_error(resp: Response, id: &str) -> Response {
    let status = resp.status();
    if id.is_empty() || !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let small = resp
        .body()
        .size_hint()
        .upper()
        .is_some_and(|n| n <= MAX_JSON_ERROR as u64);
    if !small || !is_json(&resp) {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    // Within the limit by the size hint; only a failing body stream can fail here.
    let bytes = axum::body::to_bytes(body, MAX_JSON_ERROR)
        .await
        .unwrap_or_default();
    let body = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Object(mut fields)) => {
            fields.insert("request_id".into(), id.into());
            serde_json::to_vec(&fields).map_or(bytes, Into::into)
        }
        _ => bytes,
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

/// Observes a request's time to its response's head in the histogram.
pub async fn time(State(histogram): State<HistogramVec>, req: Request, next: Next) -> Response {
    let route = route(&req);
    let method = method_label(req.method());
    let started = Instant::now();
    let resp = next.run(req).await;
    histogram
        .with_label_values(&[route.as_str(), method, resp.status().as_str()])
        .observe(started.elapsed().as_secs_f64());
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sane_ids_are_short_visible_ascii() {
        assert!(sane_request_id(b"abc-123_X.y:z"));
        assert!(sane_request_id(&[b'a'; MAX_REQUEST_ID]));
        assert!(!sane_request_id(&[b'a'; MAX_REQUEST_ID + 1]));
        assert!(!sane_request_id(b""));
        assert!(!sane_request_id(b"has space"));
        assert!(!sane_request_id(b"tab\there"));
        assert!(!sane_request_id("caf\u{e9}".as_bytes()));
    }
}
