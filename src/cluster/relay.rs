//! Where the node meets its relay links: each subscription a child makes here becomes a
//! pipe sink on a worker, and each stream this node has viewers or children for, without a
//! local publisher, is pulled from a parent as a relay source.
//!
//! Parent side ([`serve_children`]): a request for a stream this node can serve is accepted
//! and attached as a [`sfu::relay::Pipe`]; the child's layer wants and keyframe requests go
//! to it; the stream's state goes down every [`HEARTBEAT`] (what tells the child its parent
//! is alive when no media flows).
//!
//! Child side ([`pull_streams`]): the set of streams wanted from upstream
//! (`Node::wanted_remotely`) is reconciled on every change; each has one task that holds
//! the stream's [`sfu::relay::RelaySource`] for as long as it is wanted and moves between
//! parents: the next one as soon as the current is lost (nothing heard for
//! [`PARENT_SILENCE`], not even QUIC's keep-alives: a parent busy past a heartbeat still
//! answers those; [`SUBSCRIBE_TIMEOUT`] before its first answer) or, with another to go
//! to, stops sending media for [`MEDIA_SILENCE`]
//! (the primary ingest gone: the backup takes over; when the primary returns, the stream
//! stays on the backup until that fails in turn: no flapping). The source outlives the
//! moves, so viewers' sessions stay up; each move restarts its generation, so viewers
//! splice at the next keyframe (asked for at once) with their numbering continuous.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use edge_relay::net::{
    ChildEvent, EndReason, ParentEvent, PublishHandle, RelayEndpoint, SubscribeRequest,
};
use edge_relay::wire::{LayerInfo, RefuseReason, StreamState, TrackInfo, TrackKind};
use edge_relay::{Layer, LayerSet, NodeId};
use futures_util::FutureExt;
use sfu::ids::{LinkId, StreamId};
use sfu::relay::{PipeOut, RelayPacket, RelayRequest, AUDIO_LAYER};
use tokio::sync::mpsc;

/// How often a parent tells a child the stream's state.
pub const HEARTBEAT: Duration = Duration::from_millis(100);
/// Nothing from the parent this long: it is lost.
pub const PARENT_SILENCE: Duration = Duration::from_millis(400);
/// No media from a live parent this long: move to the next parent, if there is one.
pub const MEDIA_SILENCE: Duration = Duration::from_millis(1500);
/// How long a parent may take to answer a subscription (a loaded parent decides slowly;
/// silence is judged by [`PARENT_SILENCE`] once it has answered).
pub const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(2);
/// A parent whose handshake failed is skipped for this long (tried again after, or when
/// every parent is).
pub const UNREACHABLE_FOR: Duration = Duration::from_secs(10);
/// A stream no longer wanted is let go after this.
pub const RELEASE_GRACE: Duration = Duration::from_secs(3);
/// Packets handed to a worker in one command.
const BATCH: usize = 64;

/// A node another node can pull from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentAddr {
    /// Its node name (its certificate's).
    pub name: String,
    /// Its relay (QUIC) address.
    pub addr: SocketAddr,
}

/// Where a node's parents come from.
#[derive(Clone)]
pub enum Parents {
    /// A fixed list, primary first (`--parent`).
    Static(Vec<ParentAddr>),
    /// Asked of the control plane per stream (primary and backup).
    Control(super::agent::Agent),
}

impl Parents {
    /// The parents of `stream`, primary first; `None` when the control plane cannot say.
    async fn for_stream(&self, stream: &str) -> Option<Vec<ParentAddr>> {
        match self {
            Parents::Static(v) => Some(v.clone()),
            Parents::Control(agent) => agent.parents(stream).await,
        }
    }

    fn report(&self, stream: &str, parent: Option<&str>) {
        if let Parents::Control(agent) = self {
            agent.set_parent(stream, parent);
        }
    }

    fn is_empty(&self) -> bool {
        matches!(self, Parents::Static(v) if v.is_empty())
    }
}

/// The relay side of a node.
#[derive(Clone)]
pub struct Relay {
    pub node: sfu::Node,
    pub endpoint: RelayEndpoint,
    pub me: NodeId,
    pub parents: Parents,
    /// Per stream, the nodes its children's subscriptions came through: this node's own
    /// subscription upstream names them too, so a parent that is one of them refuses (a
    /// loop), however long the cycle.
    pub downstream: Downstream,
    pub metrics: super::metrics::RelayMetrics,
    /// Per stream, the video layers each worker's sinks want (wire layers, a bit each).
    pub demand: Demands,
}

/// What the sinks of each stream want, per worker.
pub type Demands = Arc<Mutex<HashMap<StreamId, HashMap<usize, u8>>>>;

/// The union over the workers of what `stream`'s sinks want.
fn wanted(demand: &Demands, stream: StreamId) -> u8 {
    demand
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&stream)
        .map_or(0, |w| w.values().fold(0, |m, l| m | l))
}

/// The paths of each stream's live child subscriptions (their hop lists), each held while
/// its child is fed: a child that leaves takes its path with it, so the list never grows
/// past the children there are, and a former child may become this node's parent.
#[derive(Clone, Default)]
pub struct Downstream(Arc<Mutex<DownstreamPaths>>);

#[derive(Default)]
struct DownstreamPaths {
    next: u64,
    by_stream: HashMap<String, Vec<(u64, Vec<NodeId>)>>,
}

/// One child's path, given back when dropped.
struct DownstreamPath(Downstream, String, u64);

impl Drop for DownstreamPath {
    fn drop(&mut self) {
        let mut d = self.0.lock();
        if let Some(paths) = d.by_stream.get_mut(&self.1) {
            paths.retain(|(k, _)| *k != self.2);
            if paths.is_empty() {
                d.by_stream.remove(&self.1);
            }
        }
    }
}

impl Downstream {
    fn lock(&self) -> std::sync::MutexGuard<'_, DownstreamPaths> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A child subscribed to `stream` through `hops`; its path counts while the guard lives.
    fn note(&self, stream: &str, hops: &[NodeId]) -> DownstreamPath {
        let mut d = self.lock();
        let key = d.next;
        d.next += 1;
        let hops = hops[..hops.len().min(edge_relay::wire::MAX_HOPS)].to_vec();
        d.by_stream
            .entry(stream.to_owned())
            .or_default()
            .push((key, hops));
        drop(d);
        DownstreamPath(self.clone(), stream.to_owned(), key)
    }

    /// The hop list of `me`'s subscription to `stream`: its live children's paths (each
    /// node once, as many as the wire takes), then itself.
    fn hops(&self, stream: &str, me: NodeId) -> Vec<NodeId> {
        let mut hops: Vec<NodeId> = Vec::new();
        if let Some(paths) = self.lock().by_stream.get(stream) {
            for h in paths.iter().flat_map(|(_, p)| p) {
                if *h != me && !hops.contains(h) && hops.len() < edge_relay::wire::MAX_HOPS - 1 {
                    hops.push(*h);
                }
            }
        }
        hops.push(me);
        hops
    }
}

impl Relay {
    /// The hop list of this node's subscription to `stream`: its children's paths, then
    /// itself.
    fn hops(&self, stream: &str) -> Vec<NodeId> {
        self.downstream.hops(stream, self.me)
    }
}

impl Relay {
    /// Serves children and pulls streams from parents until the runtime stops.
    pub fn spawn(self, requests: mpsc::Receiver<SubscribeRequest>) {
        let keyframes: KeyframeRoutes = Arc::default();
        tokio::spawn(serve_children(self.clone(), requests));
        if let Some(rx) = self.node.take_relay_requests() {
            tokio::spawn(route_requests(rx, keyframes.clone(), self.demand.clone()));
        }
        if !self.parents.is_empty() {
            tokio::spawn(pull_streams(self, keyframes));
        }
    }
}

/// Keyframe requests of each relay source's task, by link.
type KeyframeRoutes = Arc<Mutex<HashMap<LinkId, mpsc::Sender<u8>>>>;

async fn route_requests(
    mut rx: mpsc::Receiver<RelayRequest>,
    routes: KeyframeRoutes,
    demand: Demands,
) {
    while let Some(req) = rx.recv().await {
        match req {
            RelayRequest::Keyframe { link, layer } => {
                let tx = routes
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&link)
                    .cloned();
                if let Some(tx) = tx {
                    let _ = tx.try_send(layer);
                }
            }
            RelayRequest::Demand {
                stream,
                worker,
                layers,
            } => {
                // Bounded: one entry per stream with sinks, one per worker in it.
                let mut d = demand.lock().unwrap_or_else(|p| p.into_inner());
                let per = d.entry(stream).or_default();
                if layers == 0 {
                    per.remove(&worker);
                } else {
                    per.insert(worker, layers);
                }
                if per.is_empty() {
                    d.remove(&stream);
                }
            }
        }
    }
}

/// A pipe's packets into the link to the child.
struct LinkOut(PublishHandle);

impl PipeOut for LinkOut {
    fn send(&self, packets: Vec<RelayPacket>) -> bool {
        let batch = packets
            .into_iter()
            .filter_map(|p| {
                let layer = if p.layer == AUDIO_LAYER {
                    Some(Layer::AUDIO)
                } else {
                    Layer::video(p.layer)
                };
                Some((layer?, p.keyframe, p.rtp))
            })
            .collect();
        self.0.send_batch(batch)
    }
}

/// A stream's video layers as the wire lists them (the encoding is the wire layer).
fn layer_infos(layers: &[sfu::forward::layers::EncodingInfo]) -> Vec<LayerInfo> {
    layers
        .iter()
        .filter_map(|e| {
            Some(LayerInfo {
                layer: Layer::video(e.encoding)?,
                ssrc: 0,
                bitrate_bps: u32::try_from(e.bitrate_bps).unwrap_or(u32::MAX),
            })
        })
        .collect()
}

/// What the child's source takes of a layer list: (wire layer, bitrate).
fn known_layers(layers: &[LayerInfo]) -> Vec<(u8, u64)> {
    layers
        .iter()
        .filter(|l| l.layer != Layer::AUDIO)
        .map(|l| (l.layer.index() as u8, u64::from(l.bitrate_bps)))
        .collect()
}

/// The tracks of a stream as this node has them (layers and their measured bitrates).
fn tracks(node: &sfu::Node, stream: &str) -> Vec<TrackInfo> {
    let layers = node
        .watch(stream)
        .map(|w| w.borrow().layers.clone())
        .unwrap_or_default();
    let video = TrackInfo {
        kind: TrackKind::Video,
        codec: 0,
        payload_type: 0,
        clock_rate: 90_000,
        layers: layer_infos(&layers),
    };
    vec![video]
}

async fn serve_children(relay: Relay, mut requests: mpsc::Receiver<SubscribeRequest>) {
    let can_pull = !relay.parents.is_empty();
    while let Some(req) = requests.recv().await {
        let stream = req.stream.clone();
        // A drained node's children go to other parents, but a stream published here is
        // nowhere else: its children stay until its publisher leaves.
        if *relay.node.watch_draining().borrow() && !relay.node.has_publisher(&stream) {
            tracing::info!(stream, peer = req.peer, "refused: this node is draining");
            req.refuse(RefuseReason::Full);
            continue;
        }
        if !relay.node.has_publisher(&stream) && !can_pull {
            tracing::debug!(stream, peer = req.peer, "refused: no such stream here");
            req.refuse(RefuseReason::UnknownStream);
            continue;
        }
        let wanted = req.layers.bits() & 0x0f;
        let path = relay.downstream.note(&stream, &req.hops);
        tracing::info!(stream, child = req.peer, "child subscribed");
        let mut handle = req.accept(tracks(&relay.node, &stream));
        let events = std::mem::replace(&mut handle.events, mpsc::channel(1).1);
        let out = Arc::new(LinkOut(handle));
        match relay.node.attach_pipe(&stream, wanted, out.clone()) {
            Ok(pipe) => {
                let children = relay.metrics.children.clone();
                children.inc();
                let node = relay.node.clone();
                tokio::spawn(async move {
                    feed_child(node, stream, pipe, out, events).await;
                    children.dec();
                    drop(path);
                });
            }
            Err(e) => tracing::warn!(stream, "cannot attach a pipe: {e}"),
        }
    }
}

/// One child's subscription: its wants to the pipe, the stream's state to it.
async fn feed_child(
    node: sfu::Node,
    stream: String,
    pipe: sfu::relay::Pipe,
    out: Arc<LinkOut>,
    mut events: mpsc::Receiver<ParentEvent>,
) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    let mut draining = node.watch_draining();
    // A child fed since before the drain goes to another parent (it hears the subscription
    // end, and asks): the standby ingest's origin if there is one, else back here for a
    // stream published here, which is then fed for as long as it lasts.
    let fed_before_drain = !*draining.borrow();
    let mut sent_layers = None;
    loop {
        tokio::select! {
            Ok(()) = draining.wait_for(|d| *d).map(|r| r.map(|_| ())), if fed_before_drain => break,
            ev = events.recv() => match ev {
                Some(ParentEvent::LayersWanted(set)) => pipe.set_wanted(set.bits() & 0x0f),
                Some(ParentEvent::KeyframeWanted(l)) if l != Layer::AUDIO => {
                    pipe.keyframe(l.index() as u8)
                }
                Some(ParentEvent::KeyframeWanted(_)) => {}
                Some(ParentEvent::Closed) | None => break,
            },
            _ = tick.tick() => {
                let status = node.watch(&stream).map(|w| w.borrow().clone()).unwrap_or_default();
                let active = status.active;
                out.0.state(if active { StreamState::Active } else { StreamState::Inactive });
                let layers = layer_infos(&status.layers);
                if sent_layers.as_ref() != Some(&layers) {
                    out.0.layers(layers.clone());
                    sent_layers = Some(layers);
                }
            }
        }
    }
    tracing::info!(stream, "child let go");
}

/// Keeps one pulling task per stream wanted from upstream.
async fn pull_streams(relay: Relay, keyframes: KeyframeRoutes) {
    let mut changed = relay.node.watch_remote();
    let mut tasks: HashMap<String, (tokio::task::JoinHandle<()>, Option<Instant>)> = HashMap::new();
    loop {
        let wanted = relay.node.wanted_remotely();
        let now = Instant::now();
        for s in &wanted {
            let fresh = tasks.get(s).is_none_or(|(t, _)| t.is_finished());
            if fresh {
                let task = tokio::spawn(pull(relay.clone(), s.clone(), keyframes.clone()));
                tasks.insert(s.clone(), (task, None));
            } else if let Some((_, since)) = tasks.get_mut(s) {
                *since = None;
            }
        }
        tasks.retain(|s, (task, since)| {
            if wanted.contains(s) {
                return true;
            }
            let since = *since.get_or_insert(now);
            if now.duration_since(since) >= RELEASE_GRACE || task.is_finished() {
                task.abort();
                return false;
            }
            true
        });
        tokio::select! {
            r = changed.changed() => if r.is_err() { return },
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

/// The parent to try of `n`, counting on from `at` (wrapping): the first not
/// `unreachable` (its last handshake failed recently), so that a move does not wait for
/// a dead backup's handshake to time out; the one at `at` when every parent is.
fn next_parent(n: usize, at: usize, unreachable: impl Fn(usize) -> bool) -> usize {
    (0..n)
        .map(|k| (at + k) % n)
        .find(|&i| !unreachable(i))
        .unwrap_or(at % n)
}

/// The parent of `parents` to try next, from `at` on ([`next_parent`]): neither one whose
/// last handshake failed recently (`unreachable_since`) nor the one just `left` (lost,
/// silent or closed), while another can be tried. The control plane may name a killed
/// parent for its liveness window (3 s), and a kill leaves no failed handshake to skip it by.
fn pick_parent(
    parents: &[ParentAddr],
    at: usize,
    left: Option<(SocketAddr, Instant)>,
    now: Instant,
    unreachable_since: impl Fn(SocketAddr) -> Option<Instant>,
) -> usize {
    let recent = |t: Instant| now.saturating_duration_since(t) < UNREACHABLE_FOR;
    next_parent(parents.len(), at, |i| {
        let addr = parents[i].addr;
        left.is_some_and(|(a, t)| a == addr && recent(t))
            || unreachable_since(addr).is_some_and(recent)
    })
}

/// Why a subscription to one parent ended.
enum Moved {
    /// Lost or silent: try the next parent now.
    Next(&'static str),
    /// Refused or failed: try the next, and wait before going round again.
    Failed,
}

/// Pulls `stream` for as long as it is wanted, moving between parents.
async fn pull(relay: Relay, stream: String, keyframes: KeyframeRoutes) {
    let source = match relay.node.attach_relay_source(&stream) {
        Ok(s) => s,
        // A local publisher (or another link) has it.
        Err(_) => return,
    };
    let link = source.link();
    let (kf_tx, mut kf_rx) = mpsc::channel(64);
    keyframes
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(link, kf_tx);
    let _route = RouteGuard(keyframes.clone(), link);
    let _report = ReportGuard(relay.parents.clone(), stream.clone());
    relay.metrics.pulled.inc();
    let _pulled = PulledGuard(relay.metrics.pulled.clone());
    let mut at = 0usize;
    let mut failures = 0usize;
    // The parents last named, and the one just left (lost, silent or closed) and when.
    let mut last: Vec<ParentAddr> = Vec::new();
    let mut left: Option<(SocketAddr, Instant)> = None;
    let mut ask = true;
    loop {
        // A move goes to the backup last named, pre-connected, asking nothing (a control
        // plane slow to answer would hold it up); the control plane is asked at the next
        // turn, and a control plane that cannot answer (away, restarting) leaves the
        // parents it named last.
        let use_last = !std::mem::replace(&mut ask, true) && last.len() > 1;
        let named = if use_last {
            None
        } else {
            relay.parents.for_stream(&stream).await
        };
        let parents = named.unwrap_or_else(|| last.clone());
        if parents.is_empty() {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        last.clone_from(&parents);
        // Pre-connect the others, so a move costs a subscription, not a handshake.
        for p in parents.iter().skip(1) {
            let (ep, p) = (relay.endpoint.clone(), p.clone());
            tokio::spawn(async move { ep.connect(p.addr, &p.name).await });
        }
        let pick = pick_parent(&parents, at, left, Instant::now(), |a| {
            relay.endpoint.unreachable_since(a)
        });
        let parent = &parents[pick];
        let moved =
            subscribe_once(&relay, &stream, parent, &source, &mut kf_rx, parents.len()).await;
        at = pick + 1;
        match moved {
            Moved::Next(reason) => {
                relay.metrics.moves.with_label_values(&[reason]).inc();
                failures = 0;
                left = Some((parent.addr, Instant::now()));
                ask = false;
            }
            Moved::Failed => {
                relay.metrics.moves.with_label_values(&["failed"]).inc();
                failures += 1;
                if failures >= parents.len() {
                    failures = 0;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

struct PulledGuard(prometheus::IntGauge);

impl Drop for PulledGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Tells the registry the stream is no longer pulled, when its task ends.
struct ReportGuard(Parents, String);

impl Drop for ReportGuard {
    fn drop(&mut self) {
        self.0.report(&self.1, None);
    }
}

struct RouteGuard(KeyframeRoutes, LinkId);

impl Drop for RouteGuard {
    fn drop(&mut self) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.1);
    }
}

async fn subscribe_once(
    relay: &Relay,
    stream: &str,
    parent: &ParentAddr,
    source: &sfu::relay::RelaySource,
    kf_rx: &mut mpsc::Receiver<u8>,
    parents: usize,
) -> Moved {
    let conn = match relay.endpoint.connect(parent.addr, &parent.name).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(stream, parent = parent.name, "cannot reach the parent: {e}");
            return Moved::Failed;
        }
    };
    let all = LayerSet::from_bits(0x0f).with(Layer::AUDIO);
    let mut sub = match conn.subscribe(stream, all, relay.hops(stream)).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(stream, parent = parent.name, "cannot subscribe: {e}");
            return Moved::Failed;
        }
    };
    // Packets lost in a move cannot be repaired: viewers start again at a keyframe.
    source.restart();
    let start = Instant::now();
    let (mut heard, mut media) = (start, None::<Instant>);
    let mut subscribed = false;
    let mut datagrams = conn.datagrams_heard();
    let mut active = false;
    let mut batch = Vec::with_capacity(BATCH);
    let mut check = tokio::time::interval(Duration::from_millis(100));
    let mut pulling = 0x0fu8;
    loop {
        tokio::select! {
            ev = sub.events.recv() => {
                let now = Instant::now();
                heard = now;
                match ev {
                    Some(ChildEvent::Subscribed(tracks)) => {
                        subscribed = true;
                        tracing::info!(stream, parent = parent.name, "subscribed");
                        relay.parents.report(stream, Some(&parent.name));
                        let video = tracks.iter().find(|t| t.kind == TrackKind::Video);
                        if let Some(t) = video.filter(|t| !t.layers.is_empty()) {
                            source.set_layers(known_layers(&t.layers));
                        }
                    }
                    // Empty: the parent's publisher left or restarted, and the next one
                    // may number its layers in another order (forgotten here too).
                    Some(ChildEvent::Layers(layers)) => source.set_layers(known_layers(&layers)),
                    Some(ChildEvent::State(s)) => {
                        let live = s == StreamState::Active;
                        if live != active && !live {
                            active = false;
                            source.set_active(false);
                        }
                    }
                    Some(ChildEvent::Media { layer, keyframe, rtp }) => {
                        media = Some(now);
                        batch.push(RelayPacket { layer: layer.index() as u8, keyframe, rtp });
                        while batch.len() < BATCH {
                            match sub.events.try_recv() {
                                Ok(ChildEvent::Media { layer, keyframe, rtp }) => {
                                    batch.push(RelayPacket { layer: layer.index() as u8, keyframe, rtp });
                                }
                                Ok(ChildEvent::Ended(r)) => return ended(stream, parent, r),
                                Ok(_) => {}
                                Err(_) => break,
                            }
                        }
                        source.push(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)));
                        if !active {
                            active = true;
                            source.set_active(true);
                        }
                    }
                    Some(ChildEvent::Ended(r)) => return ended(stream, parent, r),
                    None => return Moved::Next("lost"),
                }
            }
            l = kf_rx.recv() => {
                let layer = l.and_then(|l| if l == AUDIO_LAYER { None } else { Layer::video(l) });
                if let Some(layer) = layer {
                    sub.keyframe(layer);
                }
            }
            _ = check.tick() => {
                // Pull the union of what the sinks here want (never nothing while they
                // exist: a sink that has not chosen yet keeps everything coming).
                let union = wanted(&relay.demand, source.stream()) & 0x0f;
                if union != 0 && union != pulling {
                    pulling = union;
                    sub.want(LayerSet::from_bits(union).with(Layer::AUDIO));
                }
                let now = Instant::now();
                // Anything from the parent's QUIC stack (keep-alives answer every 250 ms)
                // says it lives: a dead parent sends nothing, a busy one still acknowledges.
                let heard_now = conn.datagrams_heard();
                if heard_now != datagrams {
                    datagrams = heard_now;
                    heard = heard.max(now);
                }
                let silence = if subscribed { PARENT_SILENCE } else { SUBSCRIBE_TIMEOUT };
                if now.duration_since(heard) >= silence {
                    tracing::warn!(stream, parent = parent.name, "parent silent: moving");
                    return Moved::Next("lost");
                }
                // Media flowed and stopped while the parent lives: its source is gone.
                let quiet = media.is_some_and(|t| now.duration_since(t) >= MEDIA_SILENCE);
                if parents > 1 && quiet {
                    tracing::warn!(stream, parent = parent.name, "no media from the parent: moving");
                    return Moved::Next("silent");
                }
            }
        }
    }
}

fn ended(stream: &str, parent: &ParentAddr, r: EndReason) -> Moved {
    tracing::warn!(stream, parent = parent.name, "subscription ended: {r:?}");
    match r {
        EndReason::ParentLost => Moved::Next("lost"),
        EndReason::Closed => Moved::Next("closed"),
        EndReason::Refused(_) | EndReason::ProtocolError(_) => Moved::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscriptions_hops_are_its_live_childrens_paths_and_itself() {
        let n = |i: u64| NodeId(i);
        let d = Downstream::default();
        let me = n(9);
        assert_eq!(d.hops("s", me), [me]);
        let a = d.note("s", &[n(1), n(2)]);
        let b = d.note("s", &[n(3), n(2), me]);
        let _other = d.note("t", &[n(4)]);
        assert_eq!(d.hops("s", me), [n(1), n(2), n(3), me]);
        // A child that left takes its path: a node only it went through may be a parent.
        drop(a);
        assert_eq!(d.hops("s", me), [n(3), n(2), me]);
        drop(b);
        assert_eq!(d.hops("s", me), [me]);
        assert_eq!(
            d.lock().by_stream.len(),
            1,
            "nothing kept for a stream without children"
        );
        // However many children, the wire's bound.
        let many: Vec<_> = (0..40).map(|i| d.note("s", &[n(100 + i)])).collect();
        assert_eq!(d.hops("s", me).len(), edge_relay::wire::MAX_HOPS);
        drop(many);
    }

    #[test]
    fn a_move_does_not_go_back_to_the_parent_just_left_while_another_can_be_tried() {
        let p = |name: &str, port: u16| ParentAddr {
            name: name.into(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let t0 = Instant::now();
        let never = |_| None;
        // relay1 was killed; the control plane, not knowing yet, names it as the backup.
        let named = [p("relay2", 2), p("relay1", 1)];
        let lost = Some((named[1].addr, t0));
        assert_eq!(pick_parent(&named, 1, lost, t0, never), 0);
        assert_eq!(
            pick_parent(&named, 1, None, t0, never),
            1,
            "in turn otherwise"
        );
        // Long after, or when it is the only one, it is tried again.
        let later = t0 + UNREACHABLE_FOR;
        assert_eq!(pick_parent(&named, 1, lost, later, never), 1);
        assert_eq!(pick_parent(&named[1..], 0, lost, t0, never), 0);
        // A failed handshake keeps a parent off the same way.
        let failed = |a: SocketAddr| (a == named[0].addr).then_some(t0);
        assert_eq!(pick_parent(&named, 0, None, t0, failed), 1);
    }

    #[test]
    fn a_move_skips_parents_that_were_unreachable_and_keeps_the_order_otherwise() {
        // In order from `at`, wrapping.
        assert_eq!(next_parent(3, 0, |_| false), 0);
        assert_eq!(next_parent(3, 4, |_| false), 1);
        // The dead backup after the lost primary is skipped.
        assert_eq!(next_parent(3, 1, |i| i == 1), 2);
        assert_eq!(next_parent(3, 2, |i| i == 2), 0);
        // All unreachable: try the one in turn anyway.
        assert_eq!(next_parent(3, 1, |_| true), 1);
        assert_eq!(next_parent(1, 7, |_| true), 0);
    }
}
