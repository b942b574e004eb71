//! The Router: one per worker, the sans-I/O hub between a stream's one source and its many
//! sinks.
//!
//! It holds, per stream, the source (a local endpoint and its publisher generation), the
//! sinks on this worker ([`Sink`]: viewers and pipes) and the other workers that have sinks
//! of it (their interest). It routes keyframe wants to the source (or, with none here, to
//! the other workers), keeps the layer preferences of viewers not yet connected, and knows
//! the layers a stream's sinks ask for. It does nothing itself: every call fills
//! [`Outputs`] (forwards for sinks, requests upstream, drops), which the worker applies.
//!
//! Endpoints have kinds ([`Endpoint`]): a WebRTC session, a relay link (a kind nothing
//! creates yet), another worker. Time is an argument; the fan-out allocates nothing per
//! packet once the output buffers have grown.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::forward::timeline::Anchor;
use crate::forward::{
    Allocated, Consumer, DropReason, Forward, GopCache, GopSnapshot, LayerPref, MediaPacket,
    PipeConsumer, Sink, SourceKey,
};
use crate::ids::{LinkId, SessionId, StreamId, WorkerId};

#[cfg(test)]
mod tests;

/// Something media comes from or goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// A WebRTC session (one `Rtc`): a publisher or a viewer.
    Session(SessionId),
    /// A link to another node: a source on the child, a pipe on the parent.
    Relay(LinkId),
    /// Another worker of this node.
    Worker(WorkerId),
}

/// Counts of packets not forwarded, by reason.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Drops {
    /// Waiting for a keyframe after a join or switch.
    pub awaiting_keyframe: u64,
    /// Other simulcast layer.
    pub other_layer: u64,
    /// Late packet of a replaced source.
    pub stale: u64,
    /// Codec the viewer cannot take.
    pub codec_unsupported: u64,
    /// Video of a viewer whose path carries no layer now.
    pub paused: u64,
    /// A temporal layer above what a viewer's path carries.
    pub temporal: u64,
}

impl Drops {
    fn count(&mut self, reason: DropReason) {
        match reason {
            DropReason::AwaitingKeyframe => self.awaiting_keyframe += 1,
            DropReason::OtherLayer => self.other_layer += 1,
            DropReason::Stale => self.stale += 1,
            DropReason::CodecUnsupported => self.codec_unsupported += 1,
            DropReason::Paused => self.paused += 1,
            DropReason::Temporal => self.temporal += 1,
        }
    }
}

/// A request the router makes of what is upstream of its sinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    /// Ask the stream's local source for a keyframe of `encoding`; its Producer throttles.
    Keyframe {
        /// The source endpoint.
        to: Endpoint,
        /// Which of its encodings.
        encoding: u8,
    },
    /// The source is not on this worker: tell the others `source` needs a keyframe.
    KeyframeWant {
        /// The stream.
        stream: StreamId,
        /// The encoding wanted, of which publisher.
        source: SourceKey,
    },
    /// The encodings the sinks of `stream` on this worker ask for changed: what a relay
    /// link pulls from its parent (a WebRTC publisher sends what it sends).
    LayerDemand {
        /// The stream.
        stream: StreamId,
        /// Its source, if on this worker.
        to: Option<Endpoint>,
        /// The encodings asked for, a bit each.
        layers: u8,
    },
    /// This worker now has (`on`) or no longer has sinks of `stream`: tell the others.
    Interest {
        /// The stream.
        stream: StreamId,
        /// Whether packets of it are wanted here.
        on: bool,
    },
}

/// What the router asks its worker to do. Reused across calls: the worker drains it.
#[derive(Debug, Default)]
pub struct Outputs {
    /// Packets ready for a sink.
    pub forwards: Vec<(Endpoint, Forward)>,
    /// Requests upstream.
    pub upstream: Vec<Upstream>,
    /// Viewers' video timelines that moved (see [`crate::forward::timeline`]).
    pub timelines: Vec<(Endpoint, Anchor)>,
    /// Packets not forwarded, by reason, since the worker last took them.
    pub drops: Drops,
}

/// A stream's source on this worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    /// Where it comes in.
    pub endpoint: Endpoint,
    /// Its publisher generation: wants for older ones are not passed on.
    pub generation: u32,
}

#[derive(Debug)]
struct SinkEntry {
    id: Endpoint,
    sink: Sink,
}

#[derive(Debug, Default)]
struct StreamState {
    source: Option<Source>,
    sinks: Vec<SinkEntry>,
    /// Other workers with sinks of this stream, a bit each.
    workers: u64,
    /// The layer demand last reported.
    demand: u8,
    /// Each video layer's packets since its last keyframe, for viewers who join.
    gops: GopCache,
    /// Viewer sessions of this stream still handshaking here.
    pending: usize,
    /// Other workers whose viewers want the stream's transcoded ladder, a bit each.
    ladder_workers: u64,
    /// Whether this worker last told the others that its viewers want the ladder.
    ladder_told: bool,
}

impl StreamState {
    fn is_empty(&self) -> bool {
        self.source.is_none() && !self.wanted() && self.workers == 0 && self.ladder_workers == 0
    }

    /// Whether this worker wants the stream's packets: it has sinks, or viewers about to be.
    fn wanted(&self) -> bool {
        !self.sinks.is_empty() || self.pending > 0
    }

    /// Whether a viewer here wants a layer below a single-layer source's (see
    /// [`Router::ladder_wanted`]), or a relay child one of its rungs: any encoding but the
    /// source's (the child asks for one before the ladder runs, [`RUNG_WANT`]), unless it
    /// asks for every layer, as a child does until its viewers chose: that starts no
    /// ladder, which would transcode for nobody through its grace.
    fn wants_ladder(&self) -> bool {
        self.sinks.iter().any(|e| match &e.sink {
            Sink::Viewer(c) => {
                let low = matches!(c.pref(), LayerPref::Rank(r)
                    if usize::from(*r) < crate::process::ladder::MAX_RUNGS);
                low || c.paused() || c.target_video().is_some_and(|k| k.encoding != 0)
            }
            Sink::Pipe(p) => {
                let w = p.wanted();
                w & !1 != 0 && w & EVERY_RELAYED_LAYER != EVERY_RELAYED_LAYER
            }
        })
    }

    /// Whether the stream has one active layer, as far as this worker has seen (over a
    /// relay link, layers are named by their number, so a simulcast publisher's with one
    /// layer left active looks the same: asking for a rung there costs nothing, as no
    /// ladder runs for it).
    fn single_layer(&self) -> bool {
        self.gops.table().is_some_and(|t| t.active.len() == 1)
    }
}

/// What a worker whose viewers want a lower layer of a single-layer stream that comes over
/// a relay link adds to its demand upstream: the encoding the ladder's first rung takes
/// where the stream is published. Wanted there by a relay child, it starts the ladder
/// (a rung's encoding is what nothing else asks of a single-layer stream); the rungs then
/// come down the tree as layers, and the viewers here choose among them.
pub const RUNG_WANT: u8 = 1 << 1;

/// What a relay child asks for before its viewers chose (the relay link carries video
/// encodings 0 to 3).
const EVERY_RELAYED_LAYER: u8 = 0x0f;

/// A viewer who joins on a cached group of pictures older than this also asks for a
/// keyframe, so that the next one to join has less to catch up on.
const GOP_REFRESH_AFTER: Duration = Duration::from_millis(500);
/// Most payload bytes a joining viewer is replayed from the cache, sent at once (about a
/// 720p keyframe and a few frames; Chromium reads WebRTC media from a socket with a 64 KiB
/// receive buffer, and headers and audio come on top): a larger group of pictures of the
/// layer it starts on is replaced by a lower layer's, and the keyframe that moves it up is
/// asked for at once ([`GopCache::join_replay`]; with no lower layer that fits, the whole).
pub const JOIN_BURST: usize = 48 * 1024;
/// A want sent to other workers is not repeated sooner than this.
const REMOTE_WANT_EVERY: Duration = Duration::from_millis(100);
/// Bound on remembered wants sent to other workers.
const MAX_REMOTE_WANTS: usize = 1024;

/// The hub of one worker.
#[derive(Debug, Default)]
pub struct Router {
    streams: HashMap<StreamId, StreamState>,
    /// Which stream each sink takes.
    sink_streams: HashMap<Endpoint, StreamId>,
    /// Layer preferences of viewers not yet connected.
    parked: HashMap<SessionId, LayerPref>,
    /// The stream of each viewer session still handshaking (see [`Router::expect_viewer`]).
    pending: HashMap<SessionId, StreamId>,
    remote_wants: HashMap<(StreamId, SourceKey), Instant>,
    /// Keyframe wants of one fan-out, deduplicated (kept for its capacity).
    scratch: Vec<SourceKey>,
    /// Streams pruned since the last [`Router::poll_demand`] with a demand reported that
    /// was not nothing, and that demand: what the poll takes back (a relay link pulls the
    /// union of what the workers last reported).
    pruned_demand: Vec<(StreamId, u8)>,
}

impl Router {
    /// Keeps the layer preference of a viewer session until it connects.
    pub fn park(&mut self, id: SessionId, pref: LayerPref) {
        self.parked.insert(id, pref);
    }

    /// A viewer session of `stream` is handshaking here: the stream's packets are wanted
    /// from now on (an `Interest` for the other workers, whose source answers with its
    /// cache, see [`Router::gop_snapshot`]), so that the viewer can start from a cache when
    /// its media starts, even as the first viewer on this worker; and when the layer it
    /// will start on has no recent group of pictures, a keyframe is asked for now, so that
    /// the encoder works while ICE and DTLS do (what arrives first is cached).
    pub fn expect_viewer(
        &mut self,
        id: SessionId,
        stream: StreamId,
        now: Instant,
        out: &mut Outputs,
    ) {
        if self.pending.insert(id, stream).is_some() {
            return;
        }
        let s = self.streams.entry(stream).or_default();
        if !s.wanted() {
            out.upstream.push(Upstream::Interest { stream, on: true });
        }
        s.pending += 1;
        self.ask_early(stream, now, out);
    }

    /// Asks for a keyframe of each layer a handshaking viewer of `stream` will start on
    /// that has no group of pictures younger than [`GOP_REFRESH_AFTER`].
    fn ask_early(&mut self, stream: StreamId, now: Instant, out: &mut Outputs) {
        let Some(s) = self.streams.get(&stream) else {
            return;
        };
        let Some(table) = s.gops.table() else {
            return;
        };
        let mut wants = std::mem::take(&mut self.scratch);
        let auto = LayerPref::default();
        for (id, _) in self.pending.iter().filter(|(_, st)| **st == stream) {
            let pref = self.parked.get(id).unwrap_or(&auto);
            let Some(key) = table.resolve(pref) else {
                continue;
            };
            let fresh = s
                .gops
                .replayable(key, now)
                .is_some_and(|(_, age)| age <= GOP_REFRESH_AFTER);
            if !fresh && !wants.contains(&key) {
                wants.push(key);
            }
        }
        for key in wants.drain(..) {
            self.want_keyframe(stream, key, now, true, out);
        }
        self.scratch = wants;
    }

    /// Forgets a handshaking viewer (connected, or gone); returns its stream.
    fn unexpect(&mut self, id: SessionId) -> Option<StreamId> {
        let stream = self.pending.remove(&id)?;
        if let Some(s) = self.streams.get_mut(&stream) {
            s.pending = s.pending.saturating_sub(1);
        }
        Some(stream)
    }

    /// The cache of `stream`, when its source is on this worker: what another worker
    /// that just took an interest in it starts its own cache from.
    pub fn gop_snapshot(&self, stream: StreamId) -> Option<GopSnapshot> {
        let s = self.streams.get(&stream)?;
        s.source?;
        let snapshot = s.gops.snapshot();
        snapshot.table.is_some().then_some(snapshot)
    }

    /// Starts this worker's cache of `stream` from another worker's snapshot, and asks for
    /// the keyframes its handshaking viewers lack.
    pub fn seed_gops(
        &mut self,
        stream: StreamId,
        snapshot: &GopSnapshot,
        now: Instant,
        out: &mut Outputs,
    ) {
        if let Some(s) = self.streams.get_mut(&stream) {
            s.gops.seed(snapshot);
            self.ask_early(stream, now, out);
        }
    }

    /// Changes a viewer's wanted layer, parked or connected. Returns false for a session
    /// the router does not know.
    pub fn set_pref(&mut self, id: SessionId, pref: LayerPref) -> bool {
        let ep = Endpoint::Session(id);
        if let Some(entry) = self.sink_mut(ep) {
            return entry.sink.set_pref(pref);
        }
        match self.parked.get_mut(&id) {
            Some(p) => {
                *p = pref;
                true
            }
            None => false,
        }
    }

    /// Starts forwarding `stream` to the viewer `id`, with its parked preference and the
    /// given (random) origins of its outgoing streams. Its video starts at once when the
    /// layer it starts on has a cached group of pictures (replayed into `out.forwards`);
    /// otherwise a keyframe is asked for now rather than at the stream's next packet.
    pub fn add_viewer(
        &mut self,
        id: SessionId,
        stream: StreamId,
        seq_origin: [u16; 2],
        ts_origin: [u32; 2],
        now: Instant,
        out: &mut Outputs,
    ) {
        let pref = self.parked.remove(&id).unwrap_or_default();
        let mut consumer = Consumer::new(pref, seq_origin, ts_origin);
        let ep = Endpoint::Session(id);
        let mut want = None;
        if let Some(s) = self.streams.get(&stream) {
            if let Some((table, start)) = s.gops.table().and_then(|t| Some((t, consumer.start(t)?)))
            {
                want = Some(start);
                if let Some((from, gop, age)) = s.gops.join_replay(table, start, now, JOIN_BURST) {
                    let sent = consumer.replay(gop, now, |f| out.forwards.push((ep, f)));
                    // Started below `start`: its keyframe is what moves the viewer up.
                    if sent > 0 && from == start && age <= GOP_REFRESH_AFTER {
                        want = None;
                    }
                }
            }
        }
        self.add_sink(ep, stream, Sink::Viewer(consumer), out);
        // After the sink is in: the stream stays wanted throughout.
        self.unexpect(id);
        if let Some(src) = want {
            self.want_keyframe(stream, src, now, true, out);
        }
    }

    /// Starts a pipe to `id` carrying the encodings in `wanted` (a bit each).
    pub fn add_pipe(&mut self, id: Endpoint, stream: StreamId, wanted: u8, out: &mut Outputs) {
        self.add_sink(id, stream, Sink::Pipe(PipeConsumer::new(wanted)), out);
    }

    /// Starts forwarding `stream` to `sink` at `id`.
    pub fn add_sink(&mut self, id: Endpoint, stream: StreamId, sink: Sink, out: &mut Outputs) {
        if self.sink_streams.contains_key(&id) {
            self.remove_sink(id, out);
        }
        let s = self.streams.entry(stream).or_default();
        if !s.wanted() {
            out.upstream.push(Upstream::Interest { stream, on: true });
        }
        s.sinks.push(SinkEntry { id, sink });
        self.sink_streams.insert(id, stream);
    }

    /// Stops forwarding to `id` (and forgets its parked preference, or that it was
    /// expected). Returns the stream it took.
    pub fn remove_sink(&mut self, id: Endpoint, out: &mut Outputs) -> Option<StreamId> {
        let mut expected = None;
        if let Endpoint::Session(sid) = id {
            self.parked.remove(&sid);
            expected = self.unexpect(sid);
        }
        let stream = match self.sink_streams.remove(&id) {
            Some(stream) => stream,
            None => {
                // A viewer gone before its media started.
                let stream = expected?;
                self.lose_interest(stream, out);
                return None;
            }
        };
        if let Some(s) = self.streams.get_mut(&stream) {
            s.sinks.retain(|e| e.id != id);
        }
        self.lose_interest(stream, out);
        Some(stream)
    }

    /// Tells the other workers when `stream` is no longer wanted here, and prunes it.
    fn lose_interest(&mut self, stream: StreamId, out: &mut Outputs) {
        if self.streams.get(&stream).is_some_and(|s| !s.wanted()) {
            out.upstream.push(Upstream::Interest { stream, on: false });
        }
        self.prune(stream);
    }

    /// `endpoint` is now the source of `stream`, as publisher `generation`.
    pub fn set_source(&mut self, stream: StreamId, endpoint: Endpoint, generation: u32) {
        let s = self.streams.entry(stream).or_default();
        if s.source.is_some_and(|src| src.generation != generation) {
            s.gops.clear();
        }
        s.source = Some(Source {
            endpoint,
            generation,
        });
    }

    /// `endpoint` no longer feeds `stream`. Returns whether it was its source.
    pub fn remove_source(&mut self, stream: StreamId, endpoint: Endpoint) -> bool {
        let Some(s) = self.streams.get_mut(&stream) else {
            return false;
        };
        if s.source.map(|src| src.endpoint) != Some(endpoint) {
            return false;
        }
        s.source = None;
        // A viewer who joins now waits for the next publisher, not the last one's picture.
        s.gops.clear();
        self.prune(stream);
        true
    }

    /// The source of `stream` on this worker.
    pub fn source(&self, stream: StreamId) -> Option<Source> {
        self.streams.get(&stream)?.source
    }

    /// Another worker has (`on`) or no longer has sinks of `stream`.
    pub fn set_interest(&mut self, stream: StreamId, worker: WorkerId, on: bool) {
        let Some(bit) = 1u64.checked_shl(worker.0 as u32) else {
            return;
        };
        if on {
            self.streams.entry(stream).or_default().workers |= bit;
        } else if let Some(s) = self.streams.get_mut(&stream) {
            s.workers &= !bit;
            // A worker with no viewer of the stream left wants no ladder either (its
            // `LadderWant` off went with its entry).
            s.ladder_workers &= !bit;
            self.prune(stream);
        }
    }

    /// Gives back what the maps grew to at their peak (a worker left with no session).
    pub fn shrink_to_fit(&mut self) {
        self.streams.shrink_to_fit();
        self.sink_streams.shrink_to_fit();
        self.parked.shrink_to_fit();
        self.pending.shrink_to_fit();
        self.remote_wants.shrink_to_fit();
        self.pruned_demand.shrink_to_fit();
    }

    /// Sinks of `stream` on this worker.
    pub fn sink_count(&self, stream: StreamId) -> usize {
        self.streams.get(&stream).map_or(0, |s| s.sinks.len())
    }

    /// Runs the allocator of the viewer `id` (see [`Consumer::allocate`]).
    pub fn allocate(
        &mut self,
        id: SessionId,
        now: Instant,
        path: crate::forward::allocator::PathReport,
        pressure: crate::budget::Pressure,
    ) -> Option<Allocated> {
        match &mut self.sink_mut(Endpoint::Session(id))?.sink {
            Sink::Viewer(c) => c.allocate(now, path, pressure),
            Sink::Pipe(_) => None,
        }
    }

    /// The video source a viewer now receives.
    pub fn current_video(&self, id: SessionId) -> Option<SourceKey> {
        self.sink(Endpoint::Session(id))?.sink.current_video()
    }

    /// The encodings the sinks of `stream` on this worker ask for, a bit each: what a
    /// relay child pulls from its parent.
    pub fn demand(&self, stream: StreamId) -> u8 {
        self.streams
            .get(&stream)
            .map_or(0, |s| s.sinks.iter().fold(0, |m, e| m | e.sink.demand()))
    }

    /// Whether a viewer of `stream` on this worker wants a layer below a single-layer
    /// source's, which its transcoded ladder (`crate::process`) makes: one asks for the low
    /// or middle layer (rank 0 or 1: with the ladder, its two rungs), or its allocator
    /// paused its video (the one layer does not fit its path), or it already takes a rung
    /// (an encoding other than the publisher's first).
    /// Viewers on other workers count through [`Router::set_ladder_want`].
    pub fn ladder_wanted(&self, stream: StreamId) -> bool {
        self.streams
            .get(&stream)
            .is_some_and(|s| s.ladder_workers != 0 || s.wants_ladder())
    }

    /// Whether `worker`'s viewers of `stream` want its ladder (what it polled and told).
    pub fn set_ladder_want(&mut self, stream: StreamId, worker: WorkerId, on: bool) {
        let Some(bit) = 1u64.checked_shl(worker.0 as u32) else {
            return;
        };
        if on {
            self.streams.entry(stream).or_default().ladder_workers |= bit;
        } else if let Some(s) = self.streams.get_mut(&stream) {
            s.ladder_workers &= !bit;
            self.prune(stream);
        }
    }

    /// The streams whose source is on another worker and whose viewers here changed their
    /// mind about the ladder since the last call: (stream, wanted), to tell the others.
    pub fn poll_ladder_wants(&mut self) -> Vec<(StreamId, bool)> {
        let mut out = Vec::new();
        for (stream, s) in &mut self.streams {
            if s.source.is_some() {
                continue;
            }
            let on = s.wants_ladder();
            if on != s.ladder_told {
                s.ladder_told = on;
                out.push((*stream, on));
            }
        }
        out
    }

    /// Reports each stream whose layer demand changed since the last call. Called on the
    /// worker's housekeeping tick, not per packet: a viewer's target moves with the tables
    /// its packets carry, and the demand follows within a tick. A stream whose entry went
    /// (its last sink here left) is reported as wanting nothing, so that a relay link
    /// stops pulling for this worker what it last asked for.
    pub fn poll_demand(&mut self, out: &mut Outputs) {
        for (stream, last) in self.pruned_demand.drain(..) {
            match self.streams.get_mut(&stream) {
                // Back since (its demand not yet reported): compared below with the last.
                Some(s) => s.demand = last,
                None => out.upstream.push(Upstream::LayerDemand {
                    stream,
                    to: None,
                    layers: 0,
                }),
            }
        }
        for (stream, s) in &mut self.streams {
            let mut layers = s.sinks.iter().fold(0, |m, e| m | e.sink.demand());
            if s.single_layer() && s.wants_ladder() {
                layers |= RUNG_WANT;
            }
            if layers != s.demand {
                s.demand = layers;
                out.upstream.push(Upstream::LayerDemand {
                    stream: *stream,
                    to: s.source.map(|src| src.endpoint),
                    layers,
                });
            }
        }
    }

    /// Fans `pkt` of `stream`, which came from `from`, out to the stream's sinks: results
    /// to `out.forwards`, keyframe wants (deduplicated) to `out.upstream`, drops counted.
    /// Returns the other workers (a bit each) to hand the packet to: those with sinks of
    /// the stream, when the packet came from a source on this worker.
    pub fn route(
        &mut self,
        stream: StreamId,
        pkt: &Arc<MediaPacket>,
        from: Endpoint,
        now: Instant,
        out: &mut Outputs,
    ) -> u64 {
        let Some(s) = self.streams.get_mut(&stream) else {
            return 0;
        };
        s.gops.on_packet(pkt);
        let wants = &mut self.scratch;
        for e in &mut s.sinks {
            match e.sink.forward(pkt, now) {
                Ok(fwd) => {
                    out.forwards.push((e.id, fwd));
                    if let Some(a) = e.sink.take_timeline() {
                        out.timelines.push((e.id, a));
                    }
                }
                Err(reason) => out.drops.count(reason),
            }
            if let Some(src) = e.sink.waiting_for_keyframe() {
                // Not for an encoding the source does not send (a relay child's
                // [`RUNG_WANT`] before, or without, a ladder): nothing would answer it.
                let sent = s
                    .gops
                    .table()
                    .is_none_or(|t| t.active.iter().any(|i| i.encoding == src.encoding));
                if sent && !wants.contains(&src) {
                    wants.push(src);
                }
            }
        }
        let workers = match from {
            Endpoint::Worker(_) => 0,
            _ => s.workers,
        };
        if !self.scratch.is_empty() {
            let mut wants = std::mem::take(&mut self.scratch);
            for src in wants.drain(..) {
                self.want_keyframe(stream, src, now, true, out);
            }
            self.scratch = wants;
        }
        workers
    }

    /// A sink asked for a keyframe of what it receives (a viewer's PLI or FIR).
    pub fn sink_keyframe(&mut self, id: Endpoint, now: Instant, out: &mut Outputs) {
        let Some(stream) = self.sink_streams.get(&id).copied() else {
            return;
        };
        if let Some(src) = self.sink(id).and_then(|e| e.sink.current_video()) {
            self.want_keyframe(stream, src, now, true, out);
        }
    }

    /// A pipe's far side asks for a keyframe of `encoding` of what the pipe carries.
    pub fn sink_keyframe_of(
        &mut self,
        id: Endpoint,
        encoding: u8,
        now: Instant,
        out: &mut Outputs,
    ) {
        let Some(stream) = self.sink_streams.get(&id).copied() else {
            return;
        };
        if let Some(generation) = self.sink(id).and_then(|e| e.sink.generation()) {
            let src = SourceKey {
                generation,
                encoding,
            };
            self.want_keyframe(stream, src, now, true, out);
        }
    }

    /// Changes the encodings a pipe carries, a bit each. Returns false for an unknown pipe.
    pub fn set_pipe_wanted(&mut self, id: Endpoint, wanted: u8) -> bool {
        match self.sink_mut(id).map(|e| &mut e.sink) {
            Some(Sink::Pipe(p)) => {
                p.set_wanted(wanted);
                true
            }
            _ => false,
        }
    }

    /// Another worker's sinks need a keyframe of `src`: asked of the source if it is here.
    pub fn remote_keyframe_want(
        &mut self,
        stream: StreamId,
        src: SourceKey,
        now: Instant,
        out: &mut Outputs,
    ) {
        self.want_keyframe(stream, src, now, false, out);
    }

    /// A sink needs a keyframe of `src`: ask the source here, or (for a local sink) tell
    /// the other workers, at most every [`REMOTE_WANT_EVERY`].
    fn want_keyframe(
        &mut self,
        stream: StreamId,
        src: SourceKey,
        now: Instant,
        from_local_sink: bool,
        out: &mut Outputs,
    ) {
        if let Some(source) = self.source(stream) {
            if source.generation == src.generation {
                out.upstream.push(Upstream::Keyframe {
                    to: source.endpoint,
                    encoding: src.encoding,
                });
            }
            return;
        }
        if !from_local_sink {
            return;
        }
        let key = (stream, src);
        if self
            .remote_wants
            .get(&key)
            .is_some_and(|t| now.saturating_duration_since(*t) < REMOTE_WANT_EVERY)
        {
            return;
        }
        if self.remote_wants.len() >= MAX_REMOTE_WANTS {
            self.remote_wants.clear();
        }
        self.remote_wants.insert(key, now);
        out.upstream.push(Upstream::KeyframeWant {
            stream,
            source: src,
        });
    }

    fn sink(&self, id: Endpoint) -> Option<&SinkEntry> {
        let stream = self.sink_streams.get(&id)?;
        self.streams.get(stream)?.sinks.iter().find(|e| e.id == id)
    }

    fn sink_mut(&mut self, id: Endpoint) -> Option<&mut SinkEntry> {
        let stream = self.sink_streams.get(&id)?;
        self.streams
            .get_mut(stream)?
            .sinks
            .iter_mut()
            .find(|e| e.id == id)
    }

    fn prune(&mut self, stream: StreamId) {
        if !self.streams.get(&stream).is_some_and(StreamState::is_empty) {
            return;
        }
        if let Some(s) = self.streams.remove(&stream) {
            if s.demand != 0 {
                self.pruned_demand.push((stream, s.demand));
            }
        }
    }
}
