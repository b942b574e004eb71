//! The child's side: subscribe, pull and release layers, fold keyframe requests, NACK holes.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::{debug, trace};

use super::{control, ControlRx, Event, KeyframeThrottle, LinkConfig, Output, IDLE, LAYER_SLOTS};
use crate::wire::{
    rtp_ssrc, DatagramHeader, Layer, LayerSet, Message, NodeId, RefuseReason, StreamState, SubId,
    WireError, MAX_HOPS, MAX_NACK,
};

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

/// What the child knows of one layer's sequence: whose numbering (the SSRC), the highest
/// seen and the holes.
#[derive(Debug, Default)]
struct RxLayer {
    ssrc: Option<u32>,
    /// The SSRC before, whose late packets change nothing.
    previous: Option<u32>,
    highest: Option<u16>,
    missing: VecDeque<Missing>,
}

impl RxLayer {
    fn on_packet(&mut self, now: Instant, ssrc: u32, seq: u16, max_missing: usize) {
        if self.ssrc != Some(ssrc) {
            if self.previous == Some(ssrc) {
                return;
            }
            // A new numbering (a restarted publisher, or a move upstream of the parent,
            // which the parent need not have noticed): old holes and the old highest mean
            // nothing, or a new sequence "behind" the old one would never be repaired.
            *self = RxLayer {
                ssrc: Some(ssrc),
                previous: self.ssrc,
                ..RxLayer::default()
            };
        }
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
            (ChildState::Active, Message::Layers { layers }) => {
                self.out.push_back(Output::Event(Event::Layers(layers)));
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
        let (h, seq, ssrc, rtp_len) = match DatagramHeader::decode(&datagram) {
            Ok((h, seq, rtp)) => (h, seq, rtp_ssrc(rtp).unwrap_or(0), rtp.len()),
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
        self.rx_layers[h.layer.index()].on_packet(now, ssrc, seq, self.cfg.max_missing);
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
