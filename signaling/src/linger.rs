//! Lingering close, as nginx's `lingering_close`: a connection closed with a request body
//! still coming reads and drops the rest before it goes.
//!
//! A route may answer before its body is all in: a 413 once its limit is passed, a 401 to
//! an upload without a token, the early refusal of an announced length. hyper then closes
//! the connection with the rest of the body unread, the kernel answers the sender's next
//! bytes with a reset, and a sender still writing sees that reset, not the answer: it
//! cannot tell a file that is too large from a network that failed, and tries again.
//!
//! Two parts. [`linger`], a middleware, notes a request whose handler answered and let go
//! of a body not read to its end: the answer goes out at once with `Connection: close`,
//! and the connection is marked ([`Mark`]). [`Lingering`], around each connection's
//! socket, then closes a marked connection gently: its write half first (the answer and a
//! FIN reach the client), then it reads and drops what still comes until the client
//! closes its side, for up to [`TIME`], each piece within [`STALL`]. Nothing is held in
//! memory and nothing waits on it but the connection's own task (and its place under the
//! connection cap). Not lingered on: a client too slow (its body timed out, or the server's
//! 408), and a body announced larger than [`MAX_ANNOUNCED`]. The answer goes out at once,
//! but the connection's end (FIN) only after the rest is read: an HTTP client (hyper's)
//! that meets the end mid-body fails its request, answer in hand.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use futures_util::FutureExt;
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The longest a marked connection reads after its answer.
pub const TIME: Duration = Duration::from_secs(30);
/// The longest wait for each piece: a client that stopped sending is not waited for.
pub const STALL: Duration = Duration::from_secs(5);
/// A body announced larger is not lingered on (its sender would still be writing when
/// [`TIME`] is up).
pub const MAX_ANNOUNCED: u64 = 64 * 1024 * 1024;

/// A connection's mark: a request left part of its body unread (a request extension, set
/// by [`linger`], read by the connection's [`Lingering`]).
#[derive(Debug, Clone, Default)]
pub struct Mark(Arc<AtomicBool>);

/// The request body as the handler left it, and whether reading it failed (its client
/// too slow: the body timeout).
#[derive(Default)]
struct Slot {
    body: Option<Body>,
    failed: bool,
}

/// The handler's view of the request body, shared with [`linger`], which takes back what
/// the handler left.
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
            let Some(b) = s.body.as_mut() else {
                return Poll::Ready(None);
            };
            let polled = Pin::new(b).poll_frame(cx);
            s.failed |= matches!(polled, Poll::Ready(Some(Err(_))));
            polled
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

/// The middleware: see the module's documentation. It runs inside the body timeout, so
/// that a body its client sent too slowly is seen failed; a handler cut off by the time to
/// answer (the server's 408) never returns here, and its connection is not marked.
pub async fn linger(req: Request, next: axum::middleware::Next) -> Response {
    let (parts, body) = req.into_parts();
    let mark = parts.extensions.get::<Mark>().cloned();
    let announced = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    // (By its head: the body timeout's wrapper does not tell an empty body's end.)
    let has_body =
        announced.is_some_and(|n| n > 0) || parts.headers.contains_key(header::TRANSFER_ENCODING);
    let Some(mark) = mark.filter(|_| has_body) else {
        return next.run(Request::from_parts(parts, body)).await;
    };
    let slot = Arc::new(Mutex::new(Slot {
        body: Some(body),
        failed: false,
    }));
    let req = Request::from_parts(parts, Body::new(Shared(slot.clone())));
    let mut resp = next.run(req).await;
    // The handler may still hold the body (a task it started reads it): leave it be.
    let Some(Slot {
        body: Some(mut rest),
        failed,
    }) = Arc::into_inner(slot).map(|m| m.into_inner().unwrap_or_else(PoisonError::into_inner))
    else {
        return resp;
    };
    // Read to its end already? One look, without waiting.
    let next_piece = std::future::poll_fn(|cx| Pin::new(&mut rest).poll_frame(cx));
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS
        || matches!(next_piece.now_or_never(), Some(None))
    {
        return resp;
    }
    // The connection cannot carry another request: say so.
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    // Lingered on unless its client was too slow, or announced more than is worth reading.
    if !failed && announced.is_none_or(|n| n <= MAX_ANNOUNCED) {
        mark.0.store(true, Ordering::Relaxed);
    }
    resp
}

/// A connection's socket that closes gently when its connection is marked.
#[derive(Debug)]
pub struct Lingering<S> {
    io: S,
    mark: Mark,
    /// While lingering: the end of the current wait and of the whole.
    until: Option<(Pin<Box<Sleep>>, Instant)>,
}

impl<S> Lingering<S> {
    /// `io` for a connection whose requests carry `mark`.
    pub fn new(io: S, mark: Mark) -> Self {
        Lingering {
            io,
            mark,
            until: None,
        }
    }

    /// The socket.
    pub fn get_ref(&self) -> &S {
        &self.io
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Lingering<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Lingering<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.mark.0.load(Ordering::Relaxed) {
            return Pin::new(&mut this.io).poll_shutdown(cx);
        }
        // Read what still comes first: a client sees our end of the stream only once it
        // has sent all it meant to (an HTTP client that meets it mid-body fails the request
        // even with the answer in hand).
        match Pin::new(&mut *this).poll_linger(cx) {
            Poll::Ready(()) => {
                this.mark.0.store(false, Ordering::Relaxed);
                Pin::new(&mut this.io).poll_shutdown(cx)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> Lingering<S> {
    /// Reads and drops until the client closes, falls silent or the time is up.
    fn poll_linger(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let (stall, end) = this.until.get_or_insert_with(|| {
            let now = Instant::now();
            (Box::pin(tokio::time::sleep_until(now + STALL)), now + TIME)
        });
        let mut scratch = [0u8; 8192];
        for _ in 0..64 {
            if Instant::now() >= *end {
                return Poll::Ready(());
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.io).poll_read(cx, &mut buf) {
                // The client closed its side (or the socket failed): done.
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(()),
                Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Ready(Ok(())) => {
                    let next = (Instant::now() + STALL).min(*end);
                    stall.as_mut().reset(next);
                }
                Poll::Pending => {
                    ready!(stall.as_mut().poll(cx));
                    return Poll::Ready(());
                }
            }
        }
        // A fast sender: let the connection's neighbours run, then read on.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
