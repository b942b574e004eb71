//! One link connection: the handle, its datagram demultiplexer (child side) and its send
//! queue's pump (parent side).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, Notify, Semaphore};
use tracing::{debug, trace};

use super::{NetConfig, RelayError, Subscription, MAX_OVERSIZED, MAX_OVERSIZED_IN_FLIGHT};
use crate::queue::{Class, SendQueue};
use crate::wire::{LayerSet, NodeId, SubId};

/// Counters of a connection, for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnStats {
    /// Smoothed round-trip time.
    pub rtt: Duration,
    /// Media datagrams handed to quinn (parent side).
    pub datagrams_sent: u64,
    /// Media packets sent on a stream because they exceeded the datagram limit.
    pub oversized_sent: u64,
    /// Media datagrams received (child side).
    pub datagrams_received: u64,
    /// Media packets received on a stream.
    pub oversized_received: u64,
    /// QUIC packets declared lost (datagrams in them are gone; control data is resent).
    pub packets_lost: u64,
    /// QUIC packets sent.
    pub packets_sent: u64,
    /// Send queue drops of audio packets.
    pub queue_drops_audio: u64,
    /// Send queue drops of base-layer packets.
    pub queue_drops_base: u64,
    /// Send queue drops of higher-layer packets.
    pub queue_drops_higher: u64,
    /// Bytes in the send queue now.
    pub queued_bytes: u64,
    /// Received packets dropped because their subscription's task was behind, or for a
    /// subscription no longer open.
    pub demux_drops: u64,
    /// Oversized packets dropped (too many streams in flight, or larger than allowed).
    pub oversized_drops: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) datagrams_sent: AtomicU64,
    pub(crate) oversized_sent: AtomicU64,
    pub(crate) datagrams_received: AtomicU64,
    pub(crate) oversized_received: AtomicU64,
    pub(crate) demux_drops: AtomicU64,
    pub(crate) oversized_drops: AtomicU64,
}

/// State shared by a connection's tasks and handles.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) quinn: quinn::Connection,
    /// The peer's node name (from its certificate).
    pub(crate) peer: String,
    pub(crate) cfg: Arc<NetConfig>,
    /// Child side: the subscriptions' datagram channels.
    demux: Mutex<HashMap<SubId, mpsc::Sender<Bytes>>>,
    /// Parent side: the datagrams to send.
    queue: Mutex<SendQueue>,
    wake: Notify,
    /// The sender task holds a datagram quinn has no room for yet: new ones queue behind
    /// it rather than go straight to quinn.
    backlog: AtomicBool,
    pub(crate) counters: Counters,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves plain data behind; keep going.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub(crate) fn new(quinn: quinn::Connection, peer: String, cfg: Arc<NetConfig>) -> Arc<Shared> {
        let queue = SendQueue::new(cfg.rate_bps);
        Arc::new(Shared {
            quinn,
            peer,
            cfg,
            demux: Mutex::default(),
            queue: Mutex::new(queue),
            wake: Notify::new(),
            backlog: AtomicBool::new(false),
            counters: Counters::default(),
        })
    }

    /// Queues a media datagram for sending (parent side), and hands what the queue holds
    /// to quinn at once, from the caller's task, while quinn's buffer has room for it and
    /// the sender task has nothing waiting: the common case then costs no wake-up of
    /// another task. The sender task takes the rest (a full buffer, an oversized packet).
    pub(crate) fn push_datagram(&self, class: Class, data: Bytes) {
        let mut queue = lock(&self.queue);
        queue.push(class, data);
        if !self.backlog.load(Relaxed) {
            let max = self.quinn.max_datagram_size().unwrap_or(0);
            while let Some(len) = queue.peek_len() {
                if len > max || self.quinn.datagram_send_buffer_space() < len {
                    break;
                }
                let Some(d) = queue.pop() else { break };
                if self.quinn.send_datagram(d).is_err() {
                    // The connection is gone or the path shrank: the sender task finds out.
                    break;
                }
                self.counters.datagrams_sent.fetch_add(1, Relaxed);
            }
        }
        let rest = !queue.is_empty();
        drop(queue);
        if rest {
            self.wake.notify_one();
        }
    }

    pub(crate) fn register(&self, sub: SubId, tx: mpsc::Sender<Bytes>) {
        lock(&self.demux).insert(sub, tx);
    }

    pub(crate) fn unregister(&self, sub: SubId) {
        lock(&self.demux).remove(&sub);
    }

    /// Hands a received media packet to its subscription (child side).
    fn dispatch(&self, d: Bytes) {
        let Some(head) = d.get(..4) else {
            self.counters.demux_drops.fetch_add(1, Relaxed);
            return;
        };
        let sub = SubId(u32::from_be_bytes([head[0], head[1], head[2], head[3]]));
        let sent = lock(&self.demux)
            .get(&sub)
            .is_some_and(|tx| tx.try_send(d).is_ok());
        if !sent {
            self.counters.demux_drops.fetch_add(1, Relaxed);
        }
    }

    pub(crate) fn stats(&self) -> ConnStats {
        let c = &self.counters;
        let q = lock(&self.queue);
        let qs = self.quinn.stats();
        ConnStats {
            rtt: self.quinn.rtt(),
            datagrams_sent: c.datagrams_sent.load(Relaxed),
            oversized_sent: c.oversized_sent.load(Relaxed),
            datagrams_received: c.datagrams_received.load(Relaxed),
            oversized_received: c.oversized_received.load(Relaxed),
            packets_lost: qs.path.lost_packets,
            packets_sent: qs.path.sent_packets,
            queue_drops_audio: q.drops(Class::Audio),
            queue_drops_base: q.drops(Class::Base),
            queue_drops_higher: q.drops(Class::Higher),
            queued_bytes: q.bytes() as u64,
            demux_drops: c.demux_drops.load(Relaxed),
            oversized_drops: c.oversized_drops.load(Relaxed),
        }
    }
}

/// Child side: reads datagrams and oversized-packet streams until the connection ends.
pub(crate) fn spawn_receiver(shared: Arc<Shared>) {
    let s = shared.clone();
    tokio::spawn(async move {
        while let Ok(d) = s.quinn.read_datagram().await {
            s.counters.datagrams_received.fetch_add(1, Relaxed);
            s.dispatch(d);
        }
    });
    tokio::spawn(async move {
        while let Ok(mut recv) = shared.quinn.accept_uni().await {
            let s = shared.clone();
            // Bounded by the peer's uni stream credit (MAX_OVERSIZED_IN_FLIGHT).
            tokio::spawn(async move {
                match recv.read_to_end(MAX_OVERSIZED).await {
                    Ok(d) => {
                        s.counters.oversized_received.fetch_add(1, Relaxed);
                        s.dispatch(Bytes::from(d));
                    }
                    Err(e) => {
                        trace!(%e, "oversized packet stream failed");
                        s.counters.oversized_drops.fetch_add(1, Relaxed);
                    }
                }
            });
        }
    });
}

/// Parent side: sends the queue's datagrams as fast as quinn takes them, until the
/// connection ends.
pub(crate) fn spawn_sender(shared: Arc<Shared>) {
    tokio::spawn(async move {
        let streams = Arc::new(Semaphore::new(MAX_OVERSIZED_IN_FLIGHT));
        loop {
            let next = lock(&shared.queue).pop();
            let Some(d) = next else {
                tokio::select! {
                    _ = shared.wake.notified() => continue,
                    _ = shared.quinn.closed() => return,
                }
            };
            let fits = shared
                .quinn
                .max_datagram_size()
                .is_some_and(|m| d.len() <= m);
            if fits {
                shared.backlog.store(true, Relaxed);
                let sent = shared.quinn.send_datagram_wait(d.clone()).await;
                shared.backlog.store(false, Relaxed);
                match sent {
                    Ok(()) => {
                        shared.counters.datagrams_sent.fetch_add(1, Relaxed);
                        continue;
                    }
                    // The path's MTU shrank under us: go by stream.
                    Err(quinn::SendDatagramError::TooLarge) => {}
                    Err(e) => {
                        debug!(%e, "datagram send failed");
                        return;
                    }
                }
            }
            send_oversized(&shared, &streams, d);
        }
    });
}

fn send_oversized(shared: &Arc<Shared>, streams: &Arc<Semaphore>, d: Bytes) {
    let Ok(permit) = streams.clone().try_acquire_owned() else {
        shared.counters.oversized_drops.fetch_add(1, Relaxed);
        return;
    };
    let s = shared.clone();
    tokio::spawn(async move {
        let _permit = permit;
        let res = async {
            let mut send = s.quinn.open_uni().await.ok()?;
            send.write_all(&d).await.ok()?;
            send.finish().ok()
        };
        if res.await.is_some() {
            s.counters.oversized_sent.fetch_add(1, Relaxed);
        } else {
            s.counters.oversized_drops.fetch_add(1, Relaxed);
        }
    });
}

/// A link to a parent: a cheap handle, cloned freely; the connection closes when the
/// endpoint closes or the parent goes.
#[derive(Debug, Clone)]
pub struct Connection {
    pub(crate) shared: Arc<Shared>,
}

impl Connection {
    /// The parent's node name, from its certificate.
    pub fn peer(&self) -> &str {
        &self.shared.peer
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.shared.quinn.close_reason().is_some()
    }

    /// Resolves when the connection ends, with why.
    pub async fn closed(&self) -> RelayError {
        RelayError::Connection(self.shared.quinn.closed().await)
    }

    /// Smoothed round-trip time.
    pub fn rtt(&self) -> std::time::Duration {
        self.shared.quinn.rtt()
    }

    /// The largest datagram the path takes now (header included); larger media packets go
    /// on a stream.
    pub fn max_datagram_size(&self) -> Option<usize> {
        self.shared.quinn.max_datagram_size()
    }

    /// Counters, for metrics.
    pub fn stats(&self) -> ConnStats {
        self.shared.stats()
    }

    /// UDP datagrams received from the parent so far, of any kind (media, control, QUIC's
    /// own ACKs and keep-alives): while it grows the parent's QUIC stack is alive, even when
    /// a busy parent is late with a subscription's own messages.
    pub fn datagrams_heard(&self) -> u64 {
        self.shared.quinn.stats().udp_rx.datagrams
    }

    /// Subscribes to `stream` for `layers`, `hops` being the path so far with this node last.
    /// Events, media included, arrive on the returned [`Subscription`]; dropping it ends the
    /// subscription.
    ///
    /// Waits while this connection has [`NetConfig::max_subscriptions`] open (the parent's
    /// stream limit); fails if the connection has ended.
    pub async fn subscribe(
        &self,
        stream: &str,
        layers: LayerSet,
        hops: Vec<NodeId>,
    ) -> Result<Subscription, RelayError> {
        super::child::open(self.shared.clone(), stream, layers, hops).await
    }
}
