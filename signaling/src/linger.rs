//! Reading the rest of a request body its handler did not: a lingering read, as nginx's
//! `lingering_close`.
//!
//! A route may answer before its body is all in: a 413 once its limit is passed, a 401 to
//! an upload without a token, an early refusal of an announced length. hyper then closes the
//! connection with the rest of the body unread, the kernel answers the sender's next bytes
//! with a reset, and a sender still writing sees that reset, not the answer: it cannot
//! tell a file that is too large from a network that failed, and tries again.
//!
//! [`linger`] keeps the body's far end: once the handler has answered and let go of the
//! body, what the client still sends is read and dropped before the answer goes out, for
//! up to [`BYTES`] and [`TIME`], each piece within [`STALL`]. A body read to its end
//! leaves the connection fit for the next request; one cut short is answered with
//! `Connection: close`. A body announced larger than [`BYTES`] is not waited for.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use http_body::{Frame, SizeHint};
use tokio::time::Instant;

/// The most read past the handler's answer.
pub const BYTES: u64 = 8 * 1024 * 1024;
/// The longest the answer waits for the rest of the body.
pub const TIME: Duration = Duration::from_secs(5);
/// The longest wait for each piece of it: a client that stopped sending is not waited for.
pub const STALL: Duration = Duration::from_millis(500);

/// The request body, shared between the handler and [`linger`], and whether the handler
/// asked for any of it.
#[derive(Default)]
struct Slot {
    body: Option<Body>,
    polled: bool,
}

/// The handler's side of a [`Slot`].
struct Shared(Arc<Mutex<Slot>>);

impl Shared {
    fn with<T>(&self, f: impl FnOnce(&mut Slot) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl HttpBody for Shared {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        self.with(|s| {
            s.polled = true;
            match &mut s.body {
                Some(b) => Pin::new(b).poll_frame(cx),
                None => Poll::Ready(None),
            }
        })
    }

    fn is_end_stream(&self) -> bool {
        self.with(|s| s.body.as_ref().is_none_or(HttpBody::is_end_stream))
    }

    fn size_hint(&self) -> SizeHint {
        self.with(|s| {
            s.body
                .as_ref()
                .map_or_else(|| SizeHint::with_exact(0), HttpBody::size_hint)
        })
    }
}

/// The middleware: see the module's documentation.
pub async fn linger(req: Request, next: axum::middleware::Next) -> Response {
    let (parts, body) = req.into_parts();
    if body.is_end_stream() {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let announced = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    let expects_continue = parts
        .headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let slot = Arc::new(Mutex::new(Slot {
        body: Some(body),
        polled: false,
    }));
    let req = Request::from_parts(parts, Body::new(Shared(slot.clone())));
    let mut resp = next.run(req).await;
    // The handler may still hold the body (a task it started reads it): leave it be.
    let Some(Slot {
        body: Some(rest),
        polled,
    }) = Arc::into_inner(slot).map(|m| m.into_inner().unwrap_or_else(PoisonError::into_inner))
    else {
        return resp;
    };
    if rest.is_end_stream() {
        return resp;
    }
    // Not waited for: a client too slow to be answered in time (408); a body larger than
    // is read; and one a client holds back until told to send it (`Expect: 100-continue`,
    // which reading would now invite).
    let wait = resp.status() != StatusCode::REQUEST_TIMEOUT
        && announced.is_none_or(|n| n <= BYTES)
        && (polled || !expects_continue);
    if !wait || !drain(rest).await {
        // Unread bytes left: the connection cannot carry another request.
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// Reads and drops `body` to its end within the bounds; whether it ended.
async fn drain(mut body: Body) -> bool {
    let until = Instant::now() + TIME;
    let mut read: u64 = 0;
    loop {
        let piece = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx));
        let stall = until.min(Instant::now() + STALL);
        match tokio::time::timeout_at(stall, piece).await {
            Ok(None) => return true,
            Ok(Some(Ok(frame))) => {
                read = read.saturating_add(frame.data_ref().map_or(0, |d| d.len() as u64));
                if read > BYTES {
                    return false;
                }
            }
            Ok(Some(Err(_))) | Err(_) => return false,
        }
    }
}
