//! The parent's side: refuse loops, serve the wanted layers, answer NACKs from a cache.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;
use tracing::debug;

use super::{
    control, ControlRx, Event, KeyframeThrottle, LinkConfig, Output, Transmit, IDLE, LAYER_SLOTS,
};
use crate::queue::Class;
use crate::wire::{
    rtp_seq, rtp_ssrc, DatagramHeader, Layer, LayerInfo, LayerSet, Message, NodeId, RefuseReason,
    StreamState, SubId, TrackInfo, WireError,
};

/// Recent packets of one layer by sequence number, for NACKs: of one numbering (SSRC).
#[derive(Debug, Default)]
struct PacketCache {
    ssrc: Option<u32>,
    slots: Vec<Option<(u16, Bytes)>>,
}

impl PacketCache {
    fn insert(&mut self, size: usize, ssrc: u32, seq: u16, datagram: Bytes) {
        if self.slots.is_empty() {
            self.slots = vec![None; size];
        }
        if self.ssrc != Some(ssrc) {
            // A new publisher numbers afresh: a NACK of one of its packets is not answered
            // with the packet of the same number of the one before.
            self.ssrc = Some(ssrc);
            self.slots.fill(None);
        }
        let i = seq as usize % self.slots.len();
        self.slots[i] = Some((seq, datagram));
    }

    fn get(&self, seq: u16) -> Option<&Bytes> {
        if self.slots.is_empty() {
            return None;
        }
        match &self.slots[seq as usize % self.slots.len()] {
            Some((s, d)) if *s == seq => Some(d),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ParentState {
    AwaitSubscribe,
    Deciding,
    Active,
    Closed,
}

/// The parent's side of a subscription.
#[derive(Debug)]
pub struct ParentLink {
    cfg: LinkConfig,
    node: NodeId,
    sub: SubId,
    state: ParentState,
    wanted: LayerSet,
    /// The stream's lowest-ranked video layer, the first of the last layer list sent down:
    /// its packets are the queue's [`Class::Base`]. Wire layer 0 until a list names one.
    base: Layer,
    keyframes: KeyframeThrottle,
    cache: [PacketCache; LAYER_SLOTS],
    rx: ControlRx,
    out: VecDeque<Output>,
    now: Instant,
    repaired: u64,
    unrepairable: u64,
    /// Start of the current repair window and repairs sent in it.
    repair_window: (Instant, u32),
}

impl ParentLink {
    /// A subscription opened by a child on this node `node`; waits for its SUBSCRIBE.
    pub fn new(cfg: LinkConfig, now: Instant, node: NodeId, sub: SubId) -> ParentLink {
        ParentLink {
            cfg: cfg.bounded(),
            node,
            sub,
            state: ParentState::AwaitSubscribe,
            wanted: LayerSet::EMPTY,
            base: Layer::BASE,
            keyframes: KeyframeThrottle::default(),
            cache: Default::default(),
            rx: ControlRx::default(),
            out: VecDeque::new(),
            now,
            repaired: 0,
            unrepairable: 0,
            repair_window: (now, 0),
        }
    }

    /// Layers the child wants now.
    pub fn wanted(&self) -> LayerSet {
        self.wanted
    }

    /// Packets resent on NACK, and NACKed packets not resent (no longer cached, or past the
    /// repair budget).
    pub fn repairs(&self) -> (u64, u64) {
        (self.repaired, self.unrepairable)
    }

    /// Bytes from the subscription's control stream.
    pub fn handle_control(&mut self, now: Instant, bytes: &[u8]) {
        self.now = now;
        let mut msgs = Vec::new();
        let res = self.rx.feed(bytes, &mut msgs);
        for m in msgs {
            self.on_message(now, m);
        }
        if let Err(e) = res {
            self.fail(e);
        }
    }

    fn on_message(&mut self, now: Instant, m: Message) {
        match (self.state, m) {
            (
                ParentState::AwaitSubscribe,
                Message::Subscribe {
                    stream,
                    layers,
                    hops,
                },
            ) => {
                if hops.contains(&self.node) {
                    debug!(sub = self.sub.0, stream, "subscription loops through us");
                    self.refuse(now, RefuseReason::Loop);
                    return;
                }
                self.state = ParentState::Deciding;
                self.wanted = layers;
                self.out.push_back(Output::Event(Event::SubscribeRequested {
                    stream,
                    layers,
                    hops,
                }));
            }
            (ParentState::Deciding | ParentState::Active, Message::Update { layers }) => {
                if layers != self.wanted {
                    self.wanted = layers;
                    self.out
                        .push_back(Output::Event(Event::LayersWanted(layers)));
                }
            }
            (ParentState::Active, Message::Keyframe { layer }) => {
                if self.wanted.contains(layer)
                    && self
                        .keyframes
                        .request(now, layer, self.cfg.keyframe_throttle)
                {
                    self.out
                        .push_back(Output::Event(Event::KeyframeWanted(layer)));
                }
            }
            (ParentState::Active, Message::Nack { layer, seqs }) => {
                if now >= self.repair_window.0 + LinkConfig::REPAIR_WINDOW {
                    self.repair_window = (now, 0);
                }
                for seq in seqs {
                    if self.repair_window.1 >= self.cfg.max_repairs {
                        self.unrepairable += 1;
                        continue;
                    }
                    match self.cache[layer.index()].get(seq) {
                        Some(d) => {
                            self.repair_window.1 += 1;
                            self.repaired += 1;
                            self.out.push_back(Output::Transmit(Transmit::Datagram {
                                class: Class::of(layer, self.base),
                                data: d.clone(),
                            }));
                        }
                        None => self.unrepairable += 1,
                    }
                }
            }
            // A KEYFRAME or NACK racing the answer is harmless.
            (ParentState::Deciding, Message::Keyframe { .. } | Message::Nack { .. }) => {}
            (ParentState::Closed, _) => {}
            (_, m) => {
                debug!(
                    sub = self.sub.0,
                    msg = m.name(),
                    "unexpected on parent link"
                );
                self.fail(WireError::Unexpected(m.name()));
            }
        }
    }

    fn fail(&mut self, e: WireError) {
        if self.state != ParentState::Closed {
            self.state = ParentState::Closed;
            self.out.push_back(Output::Event(Event::ProtocolError(e)));
        }
    }

    /// The node has the stream: tell the child its tracks (each track's layers lowest
    /// first).
    pub fn accept(&mut self, now: Instant, tracks: Vec<TrackInfo>) {
        self.now = now;
        for t in &tracks {
            self.learn_base(&t.layers);
        }
        if self.state == ParentState::Deciding {
            self.state = ParentState::Active;
            self.out.push_back(control(&Message::Subscribed { tracks }));
        }
    }

    /// The node will not serve it.
    pub fn refuse(&mut self, now: Instant, reason: RefuseReason) {
        self.now = now;
        if matches!(
            self.state,
            ParentState::AwaitSubscribe | ParentState::Deciding
        ) {
            self.state = ParentState::Closed;
            self.out.push_back(control(&Message::Refused { reason }));
            self.out.push_back(Output::Event(Event::Refused(reason)));
        }
    }

    /// The stream's state changed.
    pub fn handle_state(&mut self, now: Instant, state: StreamState) {
        self.now = now;
        if self.state != ParentState::Active {
            return;
        }
        if state == StreamState::PublisherRestart {
            self.cache = Default::default();
        }
        self.out.push_back(control(&Message::State { state }));
    }

    /// The stream's video layers changed (which the parent has, and their bitrates), in
    /// rank order, lowest first.
    pub fn handle_layers(&mut self, now: Instant, layers: Vec<LayerInfo>) {
        self.now = now;
        self.learn_base(&layers);
        if self.state == ParentState::Active {
            self.out.push_back(control(&Message::Layers { layers }));
        }
    }

    /// A layer list, lowest first: its first video layer is the base from now on. An empty
    /// list (no video now) leaves the last one.
    fn learn_base(&mut self, layers: &[LayerInfo]) {
        if let Some(first) = layers.iter().find(|l| l.layer != Layer::AUDIO) {
            self.base = first.layer;
        }
    }

    /// A packet of the stream from the router (the link as a pipe sink). Sent, and cached,
    /// if the child wants its layer; returns whether it was.
    pub fn handle_media(&mut self, now: Instant, layer: Layer, keyframe: bool, rtp: &[u8]) -> bool {
        self.now = now;
        if self.state != ParentState::Active || !self.wanted.contains(layer) {
            return false;
        }
        let (Some(seq), Some(ssrc)) = (rtp_seq(rtp), rtp_ssrc(rtp)) else {
            return false;
        };
        if keyframe {
            self.keyframes.satisfied(layer);
        }
        let mut buf = Vec::with_capacity(crate::wire::DATAGRAM_HEADER + rtp.len());
        DatagramHeader {
            sub: self.sub,
            layer,
            keyframe,
        }
        .encode(rtp, &mut buf);
        let data = Bytes::from(buf);
        self.cache[layer.index()].insert(self.cfg.cache_packets, ssrc, seq, data.clone());
        self.out.push_back(Output::Transmit(Transmit::Datagram {
            class: Class::of(layer, self.base),
            data,
        }));
        true
    }

    /// Time passes: folded keyframe requests whose window ended go to the router.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        if self.state != ParentState::Active {
            return;
        }
        for layer in self.keyframes.due(now, self.cfg.keyframe_throttle) {
            self.out
                .push_back(Output::Event(Event::KeyframeWanted(layer)));
        }
    }

    /// The next thing to do; drain until [`Output::Timeout`].
    pub fn poll_output(&mut self) -> Output {
        if let Some(o) = self.out.pop_front() {
            return o;
        }
        let next = self
            .keyframes
            .next(self.cfg.keyframe_throttle)
            .unwrap_or(self.now + IDLE);
        Output::Timeout(next.max(self.now))
    }
}
