//! One subscription's state machine, on each side of the link.
//!
//! [`ChildLink`] lives on the child: it subscribes with the union of the layers its viewers and
//! children need, lets a layer go only after a grace period, sends keyframe requests upward at
//! most once per layer per throttle window (requests in between are folded into one sent when
//! the window ends, unless a keyframe came first), and NACKs holes in each layer's sequence.
//! [`ParentLink`] lives on the parent: it refuses a subscription whose hop list names the parent
//! (a loop), keeps a small cache of recent packets per layer to answer NACKs hop by hop,
//! throttles keyframe requests again before they reach its router, and sends stream state down.
//!
//! Both follow the house shape: `handle_*(now, …)` in, [`poll_output`](ChildLink::poll_output)
//! out until it returns [`Output::Timeout`]. Remote bytes that do not decode end the
//! subscription with [`Event::ProtocolError`]; they never panic.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::{debug, trace};

use crate::queue::Class;
use crate::wire::{
    rtp_seq, DatagramHeader, Layer, LayerSet, Message, NodeId, RefuseReason, StreamState, SubId,
    TrackInfo, WireError, MAX_FRAME, MAX_HOPS, MAX_NACK,
};

const LAYER_SLOTS: usize = 8;
/// When nothing is scheduled, how far ahead [`Output::Timeout`] points.
const IDLE: Duration = Duration::from_secs(1);

/// Timings and bounds of a link.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// At most one keyframe request per layer per this window.
    pub keyframe_throttle: Duration,
    /// A layer no longer wanted is released after this.
    pub release_grace: Duration,
    /// Interval between NACKs of the same missing packet.
    pub nack_interval: Duration,
    /// NACKs per missing packet before giving up on it.
    pub nack_tries: u8,
    /// Packets cached per layer on the parent (a power of two).
    pub cache_packets: usize,
    /// Missing packets tracked per layer on the child; a larger hole is given up.
    pub max_missing: usize,
    /// Packets the parent resends on NACK per [`Self::REPAIR_WINDOW`]; a child asking for
    /// more (a bad link, or a hostile peer) is answered up to this and the rest counted.
    pub max_repairs: u32,
}

impl LinkConfig {
    /// The window of [`Self::max_repairs`].
    pub const REPAIR_WINDOW: Duration = Duration::from_millis(100);

    /// The same config with every bound inside its sane range, so no value can make a link
    /// divide by zero or hold unbounded state.
    fn bounded(mut self) -> LinkConfig {
        self.cache_packets = self.cache_packets.clamp(16, 4096);
        self.max_missing = self.max_missing.clamp(1, 1024);
        self.nack_tries = self.nack_tries.max(1);
        self.nack_interval = self.nack_interval.max(Duration::from_millis(1));
        self
    }
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            keyframe_throttle: Duration::from_millis(500),
            release_grace: Duration::from_secs(2),
            nack_interval: Duration::from_millis(40),
            nack_tries: 3,
            cache_packets: 512,
            max_missing: 128,
            max_repairs: 200,
        }
    }
}

/// Something to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    /// Bytes for the subscription's control stream (reliable, ordered).
    Control(Vec<u8>),
    /// A media datagram for the connection's `SendQueue`.
    Datagram {
        /// Its priority class.
        class: Class,
        /// Header and RTP packet.
        data: Bytes,
    },
}

/// Something for the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Child: the parent accepted; the stream's tracks.
    Subscribed(Vec<TrackInfo>),
    /// Child: the parent refused. Parent: this side refused.
    Refused(RefuseReason),
    /// Child: the stream's state changed.
    State(StreamState),
    /// Child: a media packet for the router (the link as a source).
    Media {
        /// Its layer.
        layer: Layer,
        /// It starts a keyframe.
        keyframe: bool,
        /// The RTP packet.
        rtp: Bytes,
    },
    /// Parent: a child asks for a stream; answer with `accept` or `refuse`.
    SubscribeRequested {
        /// Stream name.
        stream: String,
        /// Layers wanted.
        layers: LayerSet,
        /// Hop list, the child last.
        hops: Vec<NodeId>,
    },
    /// Parent: the child now wants these layers (the pipe sink's wanted set).
    LayersWanted(LayerSet),
    /// Parent: ask the source for a keyframe on this layer.
    KeyframeWanted(Layer),
    /// The peer sent bytes that are not the protocol; the subscription is over.
    ProtocolError(WireError),
}

/// What `poll_output` returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send this.
    Transmit(Transmit),
    /// Tell the node.
    Event(Event),
    /// Nothing more now; call `handle_timeout` at this instant.
    Timeout(Instant),
}

/// Reassembles control frames from the stream, bounded by one frame.
#[derive(Debug, Default)]
struct ControlRx {
    buf: Vec<u8>,
    failed: bool,
}

impl ControlRx {
    /// Feeds bytes, returns the messages completed, or the first error (after which nothing
    /// more is decoded).
    fn feed(&mut self, mut bytes: &[u8], msgs: &mut Vec<Message>) -> Result<(), WireError> {
        while !bytes.is_empty() && !self.failed {
            // Never hold more than one frame plus a chunk.
            let take = bytes.len().min(MAX_FRAME + 2);
            self.buf.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            loop {
                match Message::decode(&self.buf) {
                    Ok(Some((m, used))) => {
                        self.buf.drain(..used);
                        msgs.push(m);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        self.failed = true;
                        self.buf = Vec::new();
                        return Err(e);
                    }
                }
            }
        }
        Ok(())
    }
}

fn control(msg: &Message) -> Output {
    let mut out = Vec::new();
    msg.encode(&mut out);
    Output::Transmit(Transmit::Control(out))
}

/// Per-layer keyframe throttle: one request per window, the rest folded into one at its end.
#[derive(Debug, Default)]
struct KeyframeThrottle {
    last: [Option<Instant>; LAYER_SLOTS],
    pending: LayerSet,
}

impl KeyframeThrottle {
    /// Whether to send a request for `layer` now; otherwise it is kept pending.
    fn request(&mut self, now: Instant, layer: Layer, window: Duration) -> bool {
        let slot = &mut self.last[layer.index()];
        if slot.is_none_or(|t| now >= t + window) {
            *slot = Some(now);
            self.pending = LayerSet::from_bits(self.pending.bits() & !(1 << layer.index()));
            true
        } else {
            self.pending = self.pending.with(layer);
            false
        }
    }

    /// A keyframe arrived: a pending request is answered.
    fn satisfied(&mut self, layer: Layer) {
        self.pending = LayerSet::from_bits(self.pending.bits() & !(1 << layer.index()));
    }

    /// Pending requests whose window has ended.
    fn due(&mut self, now: Instant, window: Duration) -> Vec<Layer> {
        let due: Vec<Layer> = self
            .pending
            .iter()
            .filter(|l| self.last[l.index()].is_none_or(|t| now >= t + window))
            .collect();
        for l in &due {
            self.request(now, *l, window);
        }
        due
    }

    fn next(&self, window: Duration) -> Option<Instant> {
        self.pending
            .iter()
            .filter_map(|l| self.last[l.index()].map(|t| t + window))
            .min()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChildState {
    Subscribing,
    Active,
    Closed,
}

#[derive(Debug, Clone, Copy)]
struct Missing {
    seq: u16,
    next: Instant,
    tries: u8,
}

/// What the child knows of one layer's sequence: the highest seen and the holes.
#[derive(Debug, Default)]
struct RxLayer {
    highest: Option<u16>,
    missing: VecDeque<Missing>,
}

impl RxLayer {
    fn on_packet(&mut self, now: Instant, seq: u16, max_missing: usize) {
        let Some(high) = self.highest else {
            self.highest = Some(seq);
            return;
        };
        let ahead = seq.wrapping_sub(high) as i16;
        if ahead <= 0 {
            // A repair or a late packet.
            self.missing.retain(|m| m.seq != seq);
            return;
        }
        let gap = (ahead - 1) as usize;
        if gap > max_missing {
            // Too large a hole to repair packet by packet: the viewers need a keyframe.
            self.missing.clear();
        } else {
            for i in 1..=gap as u16 {
                if self.missing.len() == max_missing {
                    self.missing.pop_front();
                }
                self.missing.push_back(Missing {
                    seq: high.wrapping_add(i),
                    next: now,
                    tries: 0,
                });
            }
        }
        self.highest = Some(seq);
    }

    /// Sequence numbers to NACK now.
    fn due(&mut self, now: Instant, interval: Duration, tries: u8) -> Vec<u16> {
        self.missing.retain(|m| m.tries < tries || m.next > now);
        let mut seqs = Vec::new();
        for m in self.missing.iter_mut().filter(|m| m.next <= now) {
            if seqs.len() == MAX_NACK {
                break;
            }
            seqs.push(m.seq);
            m.tries += 1;
            m.next = now + interval;
        }
        seqs
    }

    fn next(&self) -> Option<Instant> {
        self.missing.iter().map(|m| m.next).min()
    }
}

/// The child's side of a subscription.
#[derive(Debug)]
pub struct ChildLink {
    cfg: LinkConfig,
    sub: SubId,
    state: ChildState,
    /// Layers the parent was last asked for.
    requested: LayerSet,
    /// When each requested but no longer wanted layer is released.
    release_at: [Option<Instant>; LAYER_SLOTS],
    keyframes: KeyframeThrottle,
    rx_layers: [RxLayer; LAYER_SLOTS],
    rx: ControlRx,
    out: VecDeque<Output>,
    now: Instant,
}

impl ChildLink {
    /// Subscribes to `stream` for `layers`; `hops` is the path so far with this node last.
    /// A hop list past [`MAX_HOPS`] is itself a loop, refused at once.
    pub fn new(
        cfg: LinkConfig,
        now: Instant,
        sub: SubId,
        stream: &str,
        layers: LayerSet,
        hops: Vec<NodeId>,
    ) -> ChildLink {
        let mut link = ChildLink {
            cfg: cfg.bounded(),
            sub,
            state: ChildState::Subscribing,
            requested: layers,
            release_at: [None; LAYER_SLOTS],
            keyframes: KeyframeThrottle::default(),
            rx_layers: Default::default(),
            rx: ControlRx::default(),
            out: VecDeque::new(),
            now,
        };
        if hops.len() > MAX_HOPS {
            link.state = ChildState::Closed;
            link.out
                .push_back(Output::Event(Event::Refused(RefuseReason::Loop)));
            return link;
        }
        link.out.push_back(control(&Message::Subscribe {
            stream: stream.to_owned(),
            layers,
            hops,
        }));
        link
    }

    /// Layers asked of the parent now.
    pub fn requested(&self) -> LayerSet {
        self.requested
    }

    /// The union of what this node's viewers and children want now. New layers are asked for
    /// at once; layers no longer wanted are released after the grace period.
    pub fn handle_want(&mut self, now: Instant, wanted: LayerSet) {
        self.now = now;
        for l in LayerSet::from_bits(0xff).iter() {
            if wanted.contains(l) {
                self.release_at[l.index()] = None;
            } else if self.requested.contains(l) && self.release_at[l.index()].is_none() {
                self.release_at[l.index()] = Some(now + self.cfg.release_grace);
            }
        }
        let union = self.requested.union(wanted);
        if union != self.requested {
            self.requested = union;
            self.send_update();
        }
    }

    /// A local viewer or child wants a keyframe on `layer`.
    pub fn handle_keyframe_request(&mut self, now: Instant, layer: Layer) {
        self.now = now;
        if self.state == ChildState::Closed || !self.requested.contains(layer) {
            return;
        }
        if self
            .keyframes
            .request(now, layer, self.cfg.keyframe_throttle)
        {
            self.out.push_back(control(&Message::Keyframe { layer }));
        }
    }

    /// Bytes from the subscription's control stream.
    pub fn handle_control(&mut self, now: Instant, bytes: &[u8]) {
        self.now = now;
        let mut msgs = Vec::new();
        let res = self.rx.feed(bytes, &mut msgs);
        for m in msgs {
            self.on_message(m);
        }
        if let Err(e) = res {
            self.fail(e);
        }
    }

    fn on_message(&mut self, m: Message) {
        match (self.state, m) {
            (ChildState::Subscribing, Message::Subscribed { tracks }) => {
                self.state = ChildState::Active;
                self.out.push_back(Output::Event(Event::Subscribed(tracks)));
            }
            (ChildState::Subscribing, Message::Refused { reason }) => {
                self.state = ChildState::Closed;
                self.out.push_back(Output::Event(Event::Refused(reason)));
            }
            (ChildState::Active, Message::State { state }) => {
                if state == StreamState::PublisherRestart {
                    // Numbering restarts: old holes mean nothing.
                    self.rx_layers = Default::default();
                }
                self.out.push_back(Output::Event(Event::State(state)));
            }
            (ChildState::Closed, _) => {}
            (_, m) => {
                debug!(sub = self.sub.0, msg = m.name(), "unexpected on child link");
                self.fail(WireError::Unexpected(m.name()));
            }
        }
    }

    fn fail(&mut self, e: WireError) {
        if self.state != ChildState::Closed {
            self.state = ChildState::Closed;
            self.out.push_back(Output::Event(Event::ProtocolError(e)));
        }
    }

    /// A datagram of this subscription. Bad datagrams are dropped (they are unreliable
    /// anyway); the packet is delivered as [`Event::Media`] and holes before it are NACKed.
    pub fn handle_datagram(&mut self, now: Instant, datagram: Bytes) {
        self.now = now;
        if self.state != ChildState::Active {
            return;
        }
        let (h, seq, rtp_len) = match DatagramHeader::decode(&datagram) {
            Ok((h, seq, rtp)) => (h, seq, rtp.len()),
            Err(e) => {
                trace!(sub = self.sub.0, %e, "dropped datagram");
                return;
            }
        };
        if h.sub != self.sub || !self.requested.contains(h.layer) {
            return;
        }
        if h.keyframe {
            self.keyframes.satisfied(h.layer);
        }
        self.rx_layers[h.layer.index()].on_packet(now, seq, self.cfg.max_missing);
        let rtp = datagram.slice(datagram.len() - rtp_len..);
        self.out.push_back(Output::Event(Event::Media {
            layer: h.layer,
            keyframe: h.keyframe,
            rtp,
        }));
        self.flush(now);
    }

    /// Time passes.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        let mut released = false;
        for (i, at) in self.release_at.iter_mut().enumerate() {
            if at.is_some_and(|t| t <= now) {
                *at = None;
                self.requested = LayerSet::from_bits(self.requested.bits() & !(1 << i));
                self.rx_layers[i] = RxLayer::default();
                // A request still folded for a layer let go has no one left to serve.
                if let Ok(layer) = Layer::from_wire(i as u8) {
                    self.keyframes.satisfied(layer);
                }
                released = true;
            }
        }
        if released {
            self.send_update();
        }
        self.flush(now);
    }

    fn flush(&mut self, now: Instant) {
        if self.state != ChildState::Active {
            return;
        }
        for layer in self.keyframes.due(now, self.cfg.keyframe_throttle) {
            self.out.push_back(control(&Message::Keyframe { layer }));
        }
        for l in self.requested.iter() {
            let seqs =
                self.rx_layers[l.index()].due(now, self.cfg.nack_interval, self.cfg.nack_tries);
            if !seqs.is_empty() {
                self.out
                    .push_back(control(&Message::Nack { layer: l, seqs }));
            }
        }
    }

    fn send_update(&mut self) {
        if self.state != ChildState::Closed {
            self.out.push_back(control(&Message::Update {
                layers: self.requested,
            }));
        }
    }

    /// The next thing to do; drain until [`Output::Timeout`].
    pub fn poll_output(&mut self) -> Output {
        if let Some(o) = self.out.pop_front() {
            return o;
        }
        let mut next = self.now + IDLE;
        let timers = self
            .release_at
            .iter()
            .flatten()
            .copied()
            .chain(self.keyframes.next(self.cfg.keyframe_throttle))
            .chain(self.rx_layers.iter().filter_map(RxLayer::next));
        for t in timers {
            next = next.min(t);
        }
        Output::Timeout(next.max(self.now))
    }
}

/// Recent packets of one layer by sequence number, for NACKs.
#[derive(Debug, Default)]
struct PacketCache {
    slots: Vec<Option<(u16, Bytes)>>,
}

impl PacketCache {
    fn insert(&mut self, size: usize, seq: u16, datagram: Bytes) {
        if self.slots.is_empty() {
            self.slots = vec![None; size];
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
                                class: Class::of(layer),
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

    /// The node has the stream: tell the child its tracks.
    pub fn accept(&mut self, now: Instant, tracks: Vec<TrackInfo>) {
        self.now = now;
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

    /// A packet of the stream from the router (the link as a pipe sink). Sent, and cached,
    /// if the child wants its layer; returns whether it was.
    pub fn handle_media(&mut self, now: Instant, layer: Layer, keyframe: bool, rtp: &[u8]) -> bool {
        self.now = now;
        if self.state != ParentState::Active || !self.wanted.contains(layer) {
            return false;
        }
        let Some(seq) = rtp_seq(rtp) else {
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
        self.cache[layer.index()].insert(self.cfg.cache_packets, seq, data.clone());
        self.out.push_back(Output::Transmit(Transmit::Datagram {
            class: Class::of(layer),
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

#[cfg(test)]
#[path = "link_tests.rs"]
mod tests;
