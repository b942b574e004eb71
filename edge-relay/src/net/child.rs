//! The child's side of a subscription: a task running a [`ChildLink`] over one stream.

use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::{mpsc, Notify};
use tracing::debug;

use super::conn::Shared;
use super::{RelayError, CODE_DONE};
use crate::link::{ChildLink, Event, Output, Transmit};
use crate::wire::{
    Layer, LayerInfo, LayerSet, NodeId, RefuseReason, StreamState, SubId, TrackInfo,
};

/// Why a subscription ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// The parent refused it (or this side did: a hop list too long is a loop).
    Refused(RefuseReason),
    /// The connection to the parent ended (closed, or silent past the idle timeout).
    ParentLost,
    /// The parent broke the protocol, or said this side did.
    ProtocolError(String),
    /// The parent ended the subscription (its publisher handle went away).
    Closed,
}

/// What a subscription tells the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildEvent {
    /// The parent accepted; the stream's tracks.
    Subscribed(Vec<TrackInfo>),
    /// The stream's state changed.
    State(StreamState),
    /// The video layers the parent has (flowing here or not) and their bitrates.
    Layers(Vec<LayerInfo>),
    /// A media packet.
    Media {
        /// Its layer.
        layer: Layer,
        /// It starts a keyframe.
        keyframe: bool,
        /// The RTP packet, unchanged.
        rtp: Bytes,
    },
    /// The subscription is over; nothing follows.
    Ended(EndReason),
}

/// Commands from the node, folded so that they need no queue: the latest wanted set and the
/// layers a keyframe is wanted on.
#[derive(Debug, Default)]
struct Commands {
    /// Bit 8 set: a new wanted set in the low bits.
    want: AtomicU16,
    keyframes: AtomicU8,
    dropped: AtomicBool,
    notify: Notify,
}

const WANT_NEW: u16 = 0x100;

/// A subscription to a stream on a parent. Dropping it ends the subscription (its stream is
/// finished and the parent releases it).
#[derive(Debug)]
pub struct Subscription {
    /// Events in order; media dropped when this is full (counted in [`Self::media_drops`]).
    pub events: mpsc::Receiver<ChildEvent>,
    cmds: Arc<Commands>,
    media_drops: Arc<AtomicU64>,
}

impl Subscription {
    /// The layers this node's viewers and children want now. Does not block; callable from
    /// any thread.
    pub fn want(&self, layers: LayerSet) {
        self.cmds
            .want
            .store(WANT_NEW | layers.bits() as u16, Relaxed);
        self.cmds.notify.notify_one();
    }

    /// Asks the parent for a keyframe on `layer` (throttled). Does not block; callable from
    /// any thread.
    pub fn keyframe(&self, layer: Layer) {
        self.cmds
            .keyframes
            .fetch_or(LayerSet::EMPTY.with(layer).bits(), Relaxed);
        self.cmds.notify.notify_one();
    }

    /// Media packets dropped because [`Self::events`] was full.
    pub fn media_drops(&self) -> u64 {
        self.media_drops.load(Relaxed)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.cmds.dropped.store(true, Relaxed);
        self.cmds.notify.notify_one();
    }
}

/// Opens the subscription's stream and starts its task.
pub(crate) async fn open(
    shared: Arc<Shared>,
    stream: &str,
    layers: LayerSet,
    hops: Vec<NodeId>,
) -> Result<Subscription, RelayError> {
    let (send, recv) = shared.quinn.open_bi().await?;
    // Both sides name the subscription by its stream's index; past u32 the ids wrap, which
    // would take four billion subscriptions on one connection.
    let sub = SubId(send.id().index() as u32);
    let (dgram_tx, dgram_rx) = mpsc::channel(shared.cfg.media_buffer.max(1));
    shared.register(sub, dgram_tx);
    let (events_tx, events) = mpsc::channel(shared.cfg.media_buffer.max(1));
    let link = ChildLink::new(
        shared.cfg.link.clone(),
        Instant::now(),
        sub,
        stream,
        layers,
        hops,
    );
    let cmds = Arc::new(Commands::default());
    let media_drops = Arc::new(AtomicU64::new(0));
    let task = Task {
        shared,
        sub,
        link,
        send,
        recv,
        dgrams: dgram_rx,
        events: events_tx,
        cmds: cmds.clone(),
        media_drops: media_drops.clone(),
    };
    tokio::spawn(task.run());
    Ok(Subscription {
        events,
        cmds,
        media_drops,
    })
}

struct Task {
    shared: Arc<Shared>,
    sub: SubId,
    link: ChildLink,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    dgrams: mpsc::Receiver<Bytes>,
    events: mpsc::Sender<ChildEvent>,
    cmds: Arc<Commands>,
    media_drops: Arc<AtomicU64>,
}

/// How the task's loop goes on.
enum Step {
    Sleep(Instant),
    End(Option<EndReason>),
}

impl Task {
    async fn run(mut self) {
        let reason = self.drive().await;
        self.shared.unregister(self.sub);
        match reason {
            Some(r) => {
                debug!(sub = self.sub.0, peer = %self.shared.peer, reason = ?r, "subscription ended");
                let _ = self.events.send(ChildEvent::Ended(r)).await;
            }
            None => {
                // The node dropped the subscription: tell the parent.
                let _ = self.send.finish();
                let _ = self.recv.stop(CODE_DONE.into());
            }
        }
    }

    /// Runs the link until the subscription ends: `Some(reason)` to report, `None` when the
    /// node let it go.
    async fn drive(&mut self) -> Option<EndReason> {
        let mut buf = vec![0u8; 4096];
        loop {
            let deadline = match self.drain().await {
                Step::Sleep(t) => t,
                Step::End(r) => return r,
            };
            tokio::select! {
                _ = tokio::time::sleep_until(deadline.into()) => {
                    self.link.handle_timeout(Instant::now());
                }
                r = self.recv.read(&mut buf) => match r {
                    Ok(Some(n)) => self.link.handle_control(Instant::now(), &buf[..n]),
                    Ok(None) => return Some(EndReason::Closed),
                    Err(e) => return Some(self.read_error(e)),
                },
                Some(d) = self.dgrams.recv() => {
                    let now = Instant::now();
                    self.link.handle_datagram(now, d);
                    // Take what else is there before draining once.
                    for _ in 0..64 {
                        match self.dgrams.try_recv() {
                            Ok(d) => self.link.handle_datagram(now, d),
                            Err(_) => break,
                        }
                    }
                }
                _ = self.cmds.notify.notified() => {
                    if self.cmds.dropped.load(Relaxed) {
                        return None;
                    }
                    let now = Instant::now();
                    let want = self.cmds.want.swap(0, Relaxed);
                    if want & WANT_NEW != 0 {
                        self.link.handle_want(now, LayerSet::from_bits(want as u8));
                    }
                    let kf = LayerSet::from_bits(self.cmds.keyframes.swap(0, Relaxed));
                    for l in kf.iter() {
                        self.link.handle_keyframe_request(now, l);
                    }
                }
                e = self.shared.quinn.closed() => {
                    debug!(%e, "parent connection ended");
                    return Some(EndReason::ParentLost);
                }
            }
        }
    }

    fn read_error(&self, e: quinn::ReadError) -> EndReason {
        match e {
            quinn::ReadError::Reset(code) if code.into_inner() == u64::from(CODE_DONE) => {
                EndReason::Closed
            }
            quinn::ReadError::Reset(code) => EndReason::ProtocolError(format!(
                "parent reset the subscription (code {code}): it did not understand us"
            )),
            quinn::ReadError::ConnectionLost(_) | quinn::ReadError::ClosedStream => {
                EndReason::ParentLost
            }
            e => EndReason::ProtocolError(e.to_string()),
        }
    }

    /// Drains the link's outputs until its timeout.
    async fn drain(&mut self) -> Step {
        loop {
            match self.link.poll_output() {
                Output::Timeout(t) => return Step::Sleep(t),
                Output::Transmit(Transmit::Control(bytes)) => {
                    if self.send.write_all(&bytes).await.is_err() {
                        return Step::End(Some(EndReason::ParentLost));
                    }
                }
                // A child sends no media.
                Output::Transmit(Transmit::Datagram { .. }) => {}
                Output::Event(e) => {
                    let ev = match e {
                        Event::Subscribed(t) => ChildEvent::Subscribed(t),
                        Event::State(s) => ChildEvent::State(s),
                        Event::Layers(l) => ChildEvent::Layers(l),
                        Event::Media {
                            layer,
                            keyframe,
                            rtp,
                        } => {
                            let media = ChildEvent::Media {
                                layer,
                                keyframe,
                                rtp,
                            };
                            match self.events.try_send(media) {
                                Err(mpsc::error::TrySendError::Full(_)) => {
                                    self.media_drops.fetch_add(1, Relaxed);
                                }
                                Err(mpsc::error::TrySendError::Closed(_)) => {
                                    return Step::End(None)
                                }
                                Ok(()) => {}
                            }
                            continue;
                        }
                        Event::Refused(r) => return Step::End(Some(EndReason::Refused(r))),
                        Event::ProtocolError(e) => {
                            let _ = self.send.reset(super::CODE_PROTOCOL.into());
                            let _ = self.recv.stop(super::CODE_PROTOCOL.into());
                            return Step::End(Some(EndReason::ProtocolError(e.to_string())));
                        }
                        // Parent-side events; a child link emits none.
                        Event::SubscribeRequested { .. }
                        | Event::LayersWanted(_)
                        | Event::KeyframeWanted(_) => continue,
                    };
                    if self.events.send(ev).await.is_err() {
                        return Step::End(None);
                    }
                }
            }
        }
    }
}
