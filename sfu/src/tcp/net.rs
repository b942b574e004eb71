//! The ICE-TCP driver: a worker's listener and one reader and one writer task per
//! connection, all on the worker's own runtime. They only move bytes: frames read go to
//! the worker as [`TcpIn`] values; frames to write come from the worker through a
//! bounded queue per connection ([`Writer`]). Which session a connection belongs to, and
//! whether what it says makes sense, is the worker's to decide.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus::IntCounterVec;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use super::framing::{Deframer, FrameError};

/// A connection's number on its worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ConnId(pub u64);

/// What the driver tells the worker.
pub(crate) enum TcpIn {
    /// A connection was accepted; frames to it go through `out`.
    Opened {
        conn: ConnId,
        from: SocketAddr,
        out: Writer,
    },
    /// A whole packet read from it.
    Frame { conn: ConnId, data: Vec<u8> },
    /// It ended from its side (closed, idle, broken framing).
    Closed { conn: ConnId, reason: &'static str },
}

/// The worker's end of a connection: its write queue. Dropping it closes the connection.
pub(crate) struct Writer {
    frames: mpsc::Sender<Vec<u8>>,
    /// Dropped with the writer: tells the reader to stop.
    _close: oneshot::Sender<()>,
}

/// What [`Writer::send`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Queued {
    Yes,
    /// The write queue is full (a slow reader): this packet is lost, as on UDP.
    Full,
    /// The writer has stopped (the peer stopped reading for too long, or went away).
    Gone,
}

impl Writer {
    /// Queues a framed packet without waiting.
    pub(crate) fn send(&self, framed: Vec<u8>) -> Queued {
        match self.frames.try_send(framed) {
            Ok(()) => Queued::Yes,
            Err(mpsc::error::TrySendError::Full(_)) => Queued::Full,
            Err(mpsc::error::TrySendError::Closed(_)) => Queued::Gone,
        }
    }
}

/// The bounds of a worker's ICE-TCP connections.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Connections open at once; more are closed as soon as accepted.
    pub max_connections: usize,
    /// Packets waiting to be written per connection.
    pub write_queue: usize,
    /// A connection that sends nothing for this long is closed (ICE consent checks
    /// arrive every few seconds on a live one).
    pub idle: Duration,
    /// A connection that takes no bytes for this long is closed (a reader that stopped).
    pub write_stall: Duration,
}

/// Bytes coalesced into one write.
const WRITE_CHUNK: usize = 64 * 1024;

/// Accepts connections on `listener` until the worker is gone. Runs on the worker's
/// runtime; `closed` counts refusals.
pub(crate) async fn accept(
    listener: TcpListener,
    limits: Limits,
    events: mpsc::Sender<TcpIn>,
    closed: IntCounterVec,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut next = 0u64;
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors, most likely: let some close before retrying.
                tracing::debug!("tcp accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            closed.with_label_values(&["limit"]).inc();
            continue; // dropped: closed at once
        };
        let _ = stream.set_nodelay(true);
        next += 1;
        let conn = ConnId(next);
        let (rd, wr) = stream.into_split();
        let (frames_tx, frames_rx) = mpsc::channel(limits.write_queue);
        let (close_tx, close_rx) = oneshot::channel();
        let out = Writer {
            frames: frames_tx,
            _close: close_tx,
        };
        // Opened goes before the reader exists, so before any of its frames.
        if events
            .send(TcpIn::Opened { conn, from, out })
            .await
            .is_err()
        {
            return;
        }
        tokio::spawn(read(
            conn,
            rd,
            close_rx,
            events.clone(),
            limits.idle,
            permit,
        ));
        tokio::spawn(write(wr, frames_rx, limits.write_stall));
    }
}

/// Reads and deframes until the peer closes, idles, breaks the framing, or the worker
/// drops the connection. Holds the connection's permit.
async fn read(
    conn: ConnId,
    rd: OwnedReadHalf,
    mut close: oneshot::Receiver<()>,
    events: mpsc::Sender<TcpIn>,
    idle: Duration,
    _permit: OwnedSemaphorePermit,
) {
    let mut deframer = Deframer::default();
    let mut buf = vec![0u8; 4096];
    let reason = 'conn: loop {
        let ready = tokio::select! {
            _ = &mut close => return, // the worker let it go
            r = tokio::time::timeout(idle, rd.readable()) => r,
        };
        match ready {
            Err(_) => break "idle",
            Ok(Err(_)) => break "error",
            Ok(Ok(())) => {}
        }
        match rd.try_read(&mut buf) {
            Ok(0) => break "eof",
            Ok(n) => deframer.push(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
            Err(_) => break "error",
        }
        loop {
            match deframer.next_frame() {
                Ok(Some(data)) => {
                    if events.send(TcpIn::Frame { conn, data }).await.is_err() {
                        return; // the worker is gone
                    }
                }
                Ok(None) => break,
                Err(FrameError::Empty | FrameError::Oversized(_)) => break 'conn "bad_frame",
            }
        }
    };
    let _ = events.send(TcpIn::Closed { conn, reason }).await;
}

/// Writes queued frames, several per call, until the worker drops the connection or the
/// peer takes nothing for `stall`.
async fn write(wr: OwnedWriteHalf, mut frames: mpsc::Receiver<Vec<u8>>, stall: Duration) {
    let mut out = Vec::with_capacity(WRITE_CHUNK);
    while let Some(first) = frames.recv().await {
        out.clear();
        out.extend_from_slice(&first);
        while out.len() < WRITE_CHUNK {
            match frames.try_recv() {
                Ok(f) => out.extend_from_slice(&f),
                Err(_) => break,
            }
        }
        match tokio::time::timeout(stall, write_all(&wr, &out)).await {
            Ok(Ok(())) => {}
            _ => break, // the worker sees the queue closed and forgets the connection
        }
    }
}

async fn write_all(wr: &OwnedWriteHalf, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        wr.writable().await?;
        match wr.try_write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A writer whose queue the test reads.
#[cfg(test)]
pub(crate) fn test_writer(queue: usize) -> (Writer, mpsc::Receiver<Vec<u8>>) {
    let (frames, rx) = mpsc::channel(queue);
    let (close, _) = oneshot::channel();
    (
        Writer {
            frames,
            _close: close,
        },
        rx,
    )
}
