//! The HTTP server: `axum::serve` without its blind spots. It has no timeouts, so a
//! client that connects and sends nothing, sends its headers a byte a second, or
//! announces a body it never sends holds a connection (and a file descriptor) forever.
//!
//! Here every connection is HTTP/1.1 on hyper with:
//! - a header timeout: the request line and headers must arrive within it. hyper starts
//!   it whenever the connection waits for a request, so it is also the idle timeout of a
//!   kept-alive connection and the limit for a connection that never sends a byte;
//! - a body timeout: each piece of a request body must arrive within it;
//! - a request timeout: the handler must have answered within it (408 otherwise). It
//!   bounds the time to the response's head, not the response body, so a long-lived
//!   response (the server-sent events of `GET /whep/…/events`) is not cut; a media-only
//!   node's recording handed to the control plane is exempt (it is answered once the
//!   whole file is stored; its body timeout still holds);
//! - an early 413 for a `Content-Length` over the largest body any route takes (a tus
//!   chunk and a node's recording bound their own);
//! - a lingering close after an answer that left its request's body unread (a 413 past
//!   a route's limit): the rest is read and dropped after the answer, within bounds
//!   ([`crate::linger`]), so that a client still writing sees the answer, not a reset;
//! - a cap on open connections: past it the listener stops accepting (the kernel
//!   queues new connections) until one closes.
//!
//! Around all of it, [`crate::requests::edge`]: request ids, the request's span and its
//! log line, on every response.
//!
//! A connection may be upgraded (the chat's WebSocket, `/api/v1/channels/{slug}/chat/ws`):
//! after its 101 the socket belongs to the handler, and no timeout above applies.
//!
//! Shutdown stops accepting, asks each connection to close after its current request,
//! and gives them [`Limits::grace`] before dropping what is left (event streams never
//! end by themselves). hyper-util's `GracefulShutdown` does not take an upgradeable
//! connection, so each connection task watches a shutdown signal itself, and the grace
//! period waits for every connection's permit to come back.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;
use tower_http::timeout::RequestBodyTimeoutLayer;

use crate::linger::Lingering;
use crate::tls::Tls;

/// A route whose body may be larger than [`Limits::max_body`]: its method, its path as
/// the router writes it (`/api/v1/channels/{slug}/thumbnail`: a `{…}` segment matches any
/// one segment), and its largest body. The early refusal of an announced length
/// ([`announced_length`]) takes that as the bound for it; the route's own limit applies
/// as the body is read.
pub type LargerBody = (&'static str, &'static str, u64);

/// How long and how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Time to receive a request's headers; also how long a connection may sit idle.
    pub header_timeout: Duration,
    /// Time to receive each piece of a request body.
    pub body_timeout: Duration,
    /// Time for the handler to answer (to the response's head).
    pub request_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// Largest request body announced by `Content-Length` (413 above).
    pub max_body: u64,
    /// The routes that take a larger body ([`LargerBody`]).
    pub larger: &'static [LargerBody],
    /// After a shutdown signal, how long open connections get to finish.
    pub grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 4096,
            max_body: crate::MAX_BODY as u64,
            larger: &[],
            grace: Duration::from_secs(2),
        }
    }
}

/// A media-only node's finished recording (`video/webm` to `/api/v1/cluster/recordings`,
/// and nowhere else): its route streams the body to disk, bounds it by the control
/// plane's `max_recording_bytes`, and answers once it is read, checked and stored, which
/// takes as long as the file is large: exempt from the announced length and from the
/// time to answer (each piece of its body still has [`Limits::body_timeout`]).
fn node_recording(req: &Request) -> bool {
    req.uri().path() == "/api/v1/cluster/recordings"
        && req
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes() == b"video/webm")
}

/// The largest body `req` may announce: `max`, or its route's in `larger`.
fn announced_max(req: &Request, max: u64, larger: &[LargerBody]) -> u64 {
    larger
        .iter()
        .filter(|(method, pattern, _)| {
            req.method().as_str() == *method && matches_route(pattern, req.uri().path())
        })
        .map(|l| l.2)
        .fold(max, u64::max)
}

/// Whether `path` is one of route `pattern`'s: segment by segment, a `{…}` segment
/// matching any non-empty one.
fn matches_route(pattern: &str, path: &str) -> bool {
    let (mut want, mut got) = (pattern.split('/'), path.split('/'));
    loop {
        match (want.next(), got.next()) {
            (None, None) => return true,
            (Some(w), Some(g)) if w.starts_with('{') && w.ends_with('}') && !g.is_empty() => {}
            (Some(w), Some(g)) if w == g => {}
            _ => return false,
        }
    }
}

/// Answers 408 to a request not answered within the limit ([`node_recording`] excepted).
async fn answer_within(
    axum::extract::State(limit): axum::extract::State<Duration>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    if node_recording(&req) {
        return next.run(req).await;
    }
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => StatusCode::REQUEST_TIMEOUT.into_response(),
    }
}

/// Refuses a body announced larger than any route takes before a byte of it is handled:
/// axum's own limit only fires once that much has arrived. A tus upload's chunk
/// (`application/offset+octet-stream` to `/api/v1/uploads/…`, and nowhere else) is exempt:
/// its route streams it to disk and bounds it by the upload's declared length; so is a
/// [`node_recording`].
async fn announced_length(
    axum::extract::State((max, larger)): axum::extract::State<(u64, &'static [LargerBody])>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let max = announced_max(&req, max, larger);
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let chunk = req.uri().path().starts_with("/api/v1/uploads/")
        && req
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes() == b"application/offset+octet-stream");
    if announced.is_some_and(|n| n > max) && !chunk && !node_recording(&req) {
        // The body stays unread: the connection closes after the answer, gently
        // (crate::linger).
        // A problem document, as the API's own 413s (a client reads one form).
        let detail = format!("request body too large: this route takes at most {max} bytes");
        return crate::error::problem(StatusCode::PAYLOAD_TOO_LARGE, &detail, None);
    }
    next.run(req).await
}

/// Serves `app` on `listener` within `limits` until `shutdown` completes, then lets
/// open connections finish for up to `limits.grace`. Handlers see the client's address
/// as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    serve_with(listener, app, limits, None, shutdown).await
}

/// As [`serve`], over TLS when `tls` is given: a connection whose first byte does not
/// start a TLS record gets only a redirect to the `https://` URL of what it asked for.
pub async fn serve_with(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    tls: Option<Tls>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let app = app
        .layer(axum::middleware::from_fn_with_state(
            (limits.max_body, limits.larger),
            announced_length,
        ))
        // Inside the body timeout: a body that timed out is not lingered on.
        .layer(axum::middleware::from_fn(crate::linger::linger))
        .layer(RequestBodyTimeoutLayer::new(limits.body_timeout))
        .layer(axum::middleware::from_fn_with_state(
            limits.request_timeout,
            answer_within,
        ));
    // Outermost: the server's own 408 and 413 get an id and a log line too.
    let app = crate::requests::edge(app);
    let redirect = crate::requests::edge(Router::new().fallback(to_https));
    if let Some(tls) = &tls {
        tls.start();
    }
    let max_connections = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let permits = Arc::new(Semaphore::new(max_connections));
    let (stop, _) = tokio::sync::watch::channel(false);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    tokio::pin!(shutdown);
    loop {
        // At the cap, wait for a connection to close before accepting another.
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let (app, redirect, http, tls) = (app.clone(), redirect.clone(), http.clone(), tls.clone());
        let stopping = stop.subscribe();
        let handshake = limits.header_timeout;
        tokio::spawn(async move {
            let mark = crate::linger::Mark::default();
            let stream = Lingering::new(stream, mark.clone());
            let on = Conn {
                remote,
                mark,
                stopping,
            };
            match tls {
                None => drive(http, TokioIo::new(stream), app, on).await,
                Some(tls) => {
                    // The first byte, within the time a request's headers get.
                    let mut first = [0u8; 1];
                    let peeked =
                        tokio::time::timeout(handshake, stream.get_ref().peek(&mut first)).await;
                    match peeked {
                        Ok(Ok(1)) if crate::tls::is_tls_record(first[0]) => {
                            let accepted =
                                tokio::time::timeout(handshake, tls.acceptor.accept(stream)).await;
                            match accepted {
                                // An ACME validation: the handshake was the answer.
                                Ok(Ok(s))
                                    if crate::acme::is_challenge(s.get_ref().1.alpn_protocol()) =>
                                {
                                    tracing::debug!("ACME validation from {remote} answered");
                                }
                                Ok(Ok(s)) => drive(http, TokioIo::new(s), app, on).await,
                                Ok(Err(e)) => tracing::debug!("TLS from {remote}: {e}"),
                                Err(_) => tracing::debug!("TLS from {remote}: handshake timed out"),
                            }
                        }
                        Ok(Ok(1)) => drive(http, TokioIo::new(stream), redirect, on).await,
                        _ => {}
                    }
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop.send(true);
    // Every connection's permit back: all closed.
    let all = permits.acquire_many(u32::try_from(max_connections).unwrap_or(u32::MAX));
    if tokio::time::timeout(limits.grace, all).await.is_err() {
        tracing::info!("closing connections still open after the grace period");
    }
    Ok(())
}

/// What a connection's requests are served with.
struct Conn {
    remote: SocketAddr,
    /// Set when a request left its body unread: the socket then closes gently.
    mark: crate::linger::Mark,
    stopping: tokio::sync::watch::Receiver<bool>,
}

/// Serves one connection until it ends, or closes it after its current request once
/// the server is stopping.
async fn drive<I>(http: hyper::server::conn::http1::Builder, io: I, app: Router, on: Conn)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let Conn {
        remote,
        mark,
        mut stopping,
    } = on;
    let service = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
        let ext = req.extensions_mut();
        ext.insert(ConnectInfo::<SocketAddr>(remote));
        ext.insert(mark.clone());
        app.clone().oneshot(req.map(axum::body::Body::new))
    });
    let conn = http.serve_connection(io, service).with_upgrades();
    tokio::pin!(conn);
    let ended = tokio::select! {
        r = conn.as_mut() => r,
        _ = stopping.changed() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!("connection from {remote} ended: {e}");
    }
}

/// A plain-HTTP request to a TLS port: 308 to the same URL over HTTPS.
async fn to_https(req: Request) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", axum::http::uri::PathAndQuery::as_str);
    match crate::tls::https_location(host, path) {
        Some(to) => (
            StatusCode::PERMANENT_REDIRECT,
            [(header::LOCATION, to)],
            "this node speaks HTTPS\n",
        )
            .into_response(),
        None => (StatusCode::BAD_REQUEST, "this node speaks HTTPS\n").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::matches_route;

    #[test]
    fn a_route_pattern_matches_its_paths_only() {
        let p = "/api/v1/channels/{slug}/thumbnail";
        assert!(matches_route(p, "/api/v1/channels/amy/thumbnail"));
        assert!(!matches_route(p, "/api/v1/channels//thumbnail"));
        assert!(!matches_route(p, "/api/v1/channels/amy/thumbnailx"));
        assert!(!matches_route(p, "/api/v1/channels/amy/thumbnail/x"));
        assert!(!matches_route(p, "/api/v1/channels/a/b/thumbnail"));
        assert!(matches_route(
            "/api/v1/payments/stripe/webhook",
            "/api/v1/payments/stripe/webhook"
        ));
    }
}
