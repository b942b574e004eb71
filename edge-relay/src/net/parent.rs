//! The parent's side of a subscription: a task running a [`ParentLink`] over one stream the
//! child opened.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use super::conn::Shared;
use super::{CODE_DONE, CODE_PROTOCOL};
use crate::link::{Event, Output, ParentLink, Transmit};
use crate::wire::{
    Layer, LayerInfo, LayerSet, NodeId, RefuseReason, StreamState, SubId, TrackInfo,
};

/// State changes a [`PublishHandle`] may have queued before its task takes them.
const STATE_QUEUE: usize = 16;
/// Events a [`PublishHandle`]'s owner may leave unread before newer ones are dropped.
const EVENT_QUEUE: usize = 64;

/// A media packet for the child: its layer, whether it starts a keyframe, the RTP packet.
pub type MediaOut = (Layer, bool, Bytes);

/// What the node sends down a subscription besides media.
#[derive(Debug)]
enum Down {
    State(StreamState),
    Layers(Vec<LayerInfo>),
}

/// What a subscription served by this node tells the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParentEvent {
    /// The child now wants these layers.
    LayersWanted(LayerSet),
    /// The child asks for a keyframe on this layer (already throttled).
    KeyframeWanted(Layer),
    /// The subscription is over (the child let go, broke the protocol, or is gone).
    Closed,
}

#[derive(Debug)]
enum Decision {
    Accept {
        tracks: Vec<TrackInfo>,
        media: mpsc::Receiver<Vec<MediaOut>>,
        state: mpsc::Receiver<Down>,
        events: mpsc::Sender<ParentEvent>,
    },
    Refuse(RefuseReason),
}

/// A child asks this node for a stream: answer with [`accept`](Self::accept) or
/// [`refuse`](Self::refuse). Dropping it unanswered refuses it as `Full`.
#[derive(Debug)]
pub struct SubscribeRequest {
    /// Stream name.
    pub stream: String,
    /// Layers wanted at first.
    pub layers: LayerSet,
    /// The path so far, the child last.
    pub hops: Vec<NodeId>,
    /// The child's node name, from its certificate.
    pub peer: String,
    reply: oneshot::Sender<Decision>,
    media_buffer: usize,
}

impl SubscribeRequest {
    /// Serves the stream: the child learns its tracks; media goes through the handle.
    pub fn accept(self, tracks: Vec<TrackInfo>) -> PublishHandle {
        let (media_tx, media) = mpsc::channel(self.media_buffer.max(1));
        let (state_tx, state) = mpsc::channel(STATE_QUEUE);
        let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
        // If the subscription died meanwhile the handle's sends return false and its events
        // end at once.
        let _ = self.reply.send(Decision::Accept {
            tracks,
            media,
            state,
            events: events_tx,
        });
        PublishHandle {
            media: media_tx,
            state: state_tx,
            drops: Arc::new(AtomicU64::new(0)),
            events,
        }
    }

    /// Refuses the stream; the child gets REFUSED with `reason`.
    pub fn refuse(self, reason: RefuseReason) {
        let _ = self.reply.send(Decision::Refuse(reason));
    }
}

/// The node's end of a served subscription. Dropping it ends the subscription.
#[derive(Debug)]
pub struct PublishHandle {
    media: mpsc::Sender<Vec<MediaOut>>,
    state: mpsc::Sender<Down>,
    drops: Arc<AtomicU64>,
    /// What the child asks for, then [`ParentEvent::Closed`].
    pub events: mpsc::Receiver<ParentEvent>,
}

impl PublishHandle {
    /// Sends a media packet toward the child (if it wants the layer). Never blocks; callable
    /// from any thread. False, and counted, when the subscription's queue is full or closed.
    pub fn send(&self, layer: Layer, keyframe: bool, rtp: Bytes) -> bool {
        self.send_batch(vec![(layer, keyframe, rtp)])
    }

    /// Sends packets in order, in one hand-over to the subscription's task (a sender with
    /// several packets at once wakes it once). Never blocks; callable from any thread.
    /// False, and counted, when the subscription's queue (of batches) is full or closed.
    pub fn send_batch(&self, packets: Vec<MediaOut>) -> bool {
        let n = packets.len() as u64;
        let ok = self.media.try_send(packets).is_ok();
        if !ok {
            self.drops.fetch_add(n, Relaxed);
        }
        ok
    }

    /// The stream's state changed. Never blocks.
    pub fn state(&self, state: StreamState) {
        if let Err(mpsc::error::TrySendError::Full(s)) = self.state.try_send(Down::State(state)) {
            warn!(state = ?s, "state change dropped: the subscription's task is behind");
        }
    }

    /// The stream's video layers changed (which this node has, and their bitrates): what
    /// the child's viewers choose among. Never blocks.
    pub fn layers(&self, layers: Vec<LayerInfo>) {
        if self.state.try_send(Down::Layers(layers)).is_err() {
            warn!("layer change dropped: the subscription's task is behind");
        }
    }

    /// Media packets [`Self::send`] could not queue.
    pub fn drops(&self) -> u64 {
        self.drops.load(Relaxed)
    }

    /// Whether the subscription has ended.
    pub fn is_closed(&self) -> bool {
        self.media.is_closed()
    }
}

/// Serves one subscription the child opened on `shared`.
pub(crate) fn spawn(
    shared: Arc<Shared>,
    node: NodeId,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    requests: mpsc::Sender<SubscribeRequest>,
) {
    let sub = SubId(send.id().index() as u32);
    let link = ParentLink::new(shared.cfg.link.clone(), Instant::now(), node, sub);
    let task = Task {
        shared,
        sub,
        link,
        send,
        recv,
        requests,
        pending: None,
        asked: LayerSet::EMPTY,
        media: None,
        state: None,
        events: None,
        from_media: false,
        sent: 0,
    };
    tokio::spawn(task.run());
}

struct Task {
    shared: Arc<Shared>,
    sub: SubId,
    link: ParentLink,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    requests: mpsc::Sender<SubscribeRequest>,
    /// The node's answer, while it decides.
    pending: Option<oneshot::Receiver<Decision>>,
    /// The layers in the request the node saw.
    asked: LayerSet,
    media: Option<mpsc::Receiver<Vec<MediaOut>>>,
    state: Option<mpsc::Receiver<Down>>,
    events: Option<mpsc::Sender<ParentEvent>>,
    /// The outputs being drained come from media (not from a NACK): the test hook
    /// [`super::NetConfig::drop_one_in`] drops only those, so repairs always go out.
    from_media: bool,
    /// Media datagrams produced, for the test hook.
    sent: u32,
}

/// How a subscription ended, as the stream is told.
enum End {
    /// Finish the stream (refused, released, the node let go).
    Finish,
    /// Reset it: the child broke the protocol.
    Protocol,
    /// Nothing to tell: the child or the connection is gone.
    Gone,
}

async fn recv_opt<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

impl Task {
    async fn run(mut self) {
        let end = self.drive().await;
        match end {
            End::Finish => {
                let _ = self.send.finish();
                let _ = self.recv.stop(CODE_DONE.into());
            }
            End::Protocol => {
                let _ = self.send.reset(CODE_PROTOCOL.into());
                let _ = self.recv.stop(CODE_PROTOCOL.into());
            }
            End::Gone => {}
        }
        if let Some(ev) = &self.events {
            let _ = ev.try_send(ParentEvent::Closed);
        }
    }

    async fn drive(&mut self) -> End {
        let mut buf = vec![0u8; 4096];
        loop {
            let deadline = match self.drain().await {
                Ok(t) => t,
                Err(end) => return end,
            };
            self.from_media = false;
            tokio::select! {
                _ = tokio::time::sleep_until(deadline.into()) => {
                    self.link.handle_timeout(Instant::now());
                }
                r = self.recv.read(&mut buf) => match r {
                    Ok(Some(n)) => self.link.handle_control(Instant::now(), &buf[..n]),
                    // The child let go.
                    Ok(None) => return End::Finish,
                    Err(e) => {
                        debug!(sub = self.sub.0, peer = %self.shared.peer, %e, "subscription gone");
                        return End::Gone;
                    }
                },
                d = async { self.pending.as_mut().expect("guarded by the branch condition").await },
                    if self.pending.is_some() =>
                {
                    self.pending = None;
                    let now = Instant::now();
                    match d {
                        Ok(Decision::Accept { tracks, media, state, events }) => {
                            self.link.accept(now, tracks);
                            if self.link.wanted() != self.asked {
                                let _ = events.try_send(ParentEvent::LayersWanted(self.link.wanted()));
                            }
                            self.media = Some(media);
                            self.state = Some(state);
                            self.events = Some(events);
                        }
                        Ok(Decision::Refuse(r)) => self.link.refuse(now, r),
                        Err(_) => self.link.refuse(now, RefuseReason::Full),
                    }
                }
                m = recv_opt(&mut self.media) => {
                    let Some(batch) = m else { return End::Finish };
                    self.from_media = true;
                    let now = Instant::now();
                    for (layer, kf, rtp) in batch {
                        self.link.handle_media(now, layer, kf, &rtp);
                    }
                    // Take what else is there before draining once.
                    for _ in 0..64 {
                        let Some(Ok(batch)) = self.media.as_mut().map(|m| m.try_recv()) else {
                            break;
                        };
                        for (layer, kf, rtp) in batch {
                            self.link.handle_media(now, layer, kf, &rtp);
                        }
                    }
                }
                s = recv_opt(&mut self.state) => match s {
                    Some(Down::State(s)) => self.link.handle_state(Instant::now(), s),
                    Some(Down::Layers(l)) => self.link.handle_layers(Instant::now(), l),
                    None => {}
                },
                _ = self.shared.quinn.closed() => return End::Gone,
            }
        }
    }

    /// Drains the link's outputs until its timeout.
    async fn drain(&mut self) -> Result<Instant, End> {
        loop {
            match self.link.poll_output() {
                Output::Timeout(t) => return Ok(t),
                Output::Transmit(Transmit::Control(bytes)) => {
                    if self.send.write_all(&bytes).await.is_err() {
                        return Err(End::Gone);
                    }
                }
                Output::Transmit(Transmit::Datagram { class, data }) => {
                    if self.from_media {
                        self.sent = self.sent.wrapping_add(1);
                        let n = self.shared.cfg.drop_one_in;
                        if n > 0 && self.sent.is_multiple_of(n) {
                            continue;
                        }
                    }
                    self.shared.push_datagram(class, data);
                }
                Output::Event(e) => match e {
                    Event::SubscribeRequested {
                        stream,
                        layers,
                        hops,
                    } => self.request(stream, layers, hops),
                    Event::LayersWanted(l) => self.event(ParentEvent::LayersWanted(l)),
                    Event::KeyframeWanted(l) => self.event(ParentEvent::KeyframeWanted(l)),
                    Event::Refused(r) => {
                        debug!(sub = self.sub.0, peer = %self.shared.peer, reason = ?r, "refused");
                        // The REFUSED frame came before this event; flush and end.
                        return Err(End::Finish);
                    }
                    Event::ProtocolError(e) => {
                        warn!(sub = self.sub.0, peer = %self.shared.peer, %e,
                            "child broke the relay protocol; ending its subscription");
                        return Err(End::Protocol);
                    }
                    Event::Subscribed(_)
                    | Event::State(_)
                    | Event::Layers(_)
                    | Event::Media { .. } => {}
                },
            }
        }
    }

    /// Hands the request to the node; a node with no room refuses it.
    fn request(&mut self, stream: String, layers: LayerSet, hops: Vec<NodeId>) {
        let (reply, rx) = oneshot::channel();
        let req = SubscribeRequest {
            stream,
            layers,
            hops,
            peer: self.shared.peer.clone(),
            reply,
            media_buffer: self.shared.cfg.media_buffer,
        };
        self.asked = layers;
        match self.requests.try_send(req) {
            Ok(()) => self.pending = Some(rx),
            Err(e) => {
                let req = e.into_inner();
                warn!(stream = req.stream, peer = %req.peer, "subscription refused: the node has too many pending");
                self.link.refuse(Instant::now(), RefuseReason::Full);
            }
        }
    }

    /// An event for the node; dropped (and logged) if it does not read them.
    fn event(&self, ev: ParentEvent) {
        if let Some(tx) = &self.events {
            if let Err(mpsc::error::TrySendError::Full(ev)) = tx.try_send(ev) {
                debug!(
                    sub = self.sub.0,
                    ?ev,
                    "event dropped: the node is not reading them"
                );
            }
        }
    }
}
