//! The driver: one thread per core, each with its own UDP socket, its sessions and its
//! Router. The only I/O in the engine lives here.
//!
//! Loop: wait for a command, a datagram or the earliest session timeout; feed it to the
//! one session it concerns; then act on the [`Effect`]s that produced by asking the
//! [`Router`] and applying its [`Outputs`] (write forwards into viewers' sessions, queue
//! media for the other workers it names, send keyframe requests and interest); finally
//! flush the per-worker media batches. Media crosses workers as `Arc<MediaPacket>`, one
//! channel message per batch. What to route where is the Router's; this is only I/O.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::net::{Protocol, Receive};
use str0m::Input;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::chat::{ChatHook, ChatOutbox, ChatWrite};
use crate::codec::Codec;
use crate::directory::{Directory, Role, ViewerStatus};
use crate::egress;
use crate::error::SfuError;
use crate::forward::allocator::PathReport;
use crate::forward::timeline::Timeline;
use crate::forward::{Allocation, GopSnapshot, LayerPref, MediaPacket, SourceKey};
use crate::ids::{LinkId, SessionId, StreamId, WorkerId};
use crate::level::thread::Job;
use crate::metrics::Metrics;
use crate::relay::source::RelayInput;
use crate::relay::{PipeOut, RelayPacket, RelayRequest};
use crate::router::{Endpoint, Outputs, Router, Upstream};
use crate::session::{Effect, KeyframeAsk, OpenParams, Session};
use crate::tcp::{Outgoing, TcpIn};
use crate::trickle::{self, Fragment};

mod ice_tcp;
pub(crate) mod ladder;
pub(crate) use ice_tcp::TcpSide;

/// Commands a worker takes (from the node or from other workers).
pub(crate) enum Command {
    Open {
        id: SessionId,
        stream: StreamId,
        role: Role,
        offer: String,
        pref: LayerPref,
        /// A publisher whose channel lets its stream be laddered (`--ladder`).
        ladder: bool,
        /// Takes the session's `chat` data channel when the peer opens it.
        chat: Option<ChatHook>,
        reply: oneshot::Sender<Result<String, SfuError>>,
    },
    Close {
        id: SessionId,
        reply: oneshot::Sender<bool>,
    },
    Patch {
        id: SessionId,
        frag: String,
        reply: oneshot::Sender<Result<Option<String>, SfuError>>,
    },
    SetPref {
        id: SessionId,
        pref: LayerPref,
    },
    Media(WorkerId, Vec<(StreamId, Arc<MediaPacket>)>),
    KeyframeWant {
        stream: StreamId,
        source: SourceKey,
    },
    Interest {
        stream: StreamId,
        worker: WorkerId,
        on: bool,
    },
    /// The source worker's cached groups of pictures of `stream`, answering an interest.
    Gops {
        stream: StreamId,
        snapshot: GopSnapshot,
    },
    /// A relay link from a parent now feeds `stream` here.
    AddRelaySource {
        link: LinkId,
        stream: StreamId,
        generation: u32,
    },
    /// Packets from that link.
    RelayMedia {
        link: LinkId,
        batch: Vec<RelayPacket>,
    },
    RestartRelaySource {
        link: LinkId,
    },
    /// The layers that link's parent has.
    RelayLayers {
        link: LinkId,
        layers: Vec<(u8, u64)>,
    },
    RemoveRelaySource {
        link: LinkId,
    },
    /// A relay link to a child takes `stream` from here.
    AddPipe {
        link: LinkId,
        stream: StreamId,
        wanted: u8,
        out: Arc<dyn PipeOut>,
    },
    SetPipeWanted {
        link: LinkId,
        wanted: u8,
    },
    PipeKeyframe {
        link: LinkId,
        encoding: u8,
    },
    RemovePipe {
        link: LinkId,
    },
    /// A local publisher's audio back from the leveller (`level/`): routed as its own.
    Levelled(Vec<(StreamId, SessionId, Arc<MediaPacket>)>),
    /// Lines wait in this worker's chat queue (`chat.rs`): write them.
    ChatFlush,
    /// What publisher `id`'s transcoded ladder made (`process/`).
    LadderMedia {
        id: SessionId,
        out: crate::process::thread::LadderOut,
    },
    /// Whether `worker`'s viewers of `stream` want the ladder of its source here.
    LadderWant {
        stream: StreamId,
        worker: WorkerId,
        on: bool,
    },
    Shutdown(oneshot::Sender<()>),
}

/// What workers share: the directory, metrics and each other's command queues.
pub(crate) struct Shared {
    pub directory: Arc<Directory>,
    pub metrics: Metrics,
    pub peers: Vec<mpsc::Sender<Command>>,
    pub loads: Vec<Arc<AtomicUsize>>,
    pub handshake_timeout: Duration,
    pub rtx_cache_packets: usize,
    pub keyframe_throttle: Duration,
    /// Viewers' bandwidth estimation: its starting rate, or off.
    pub viewer_bwe: Option<u64>,
    /// Transcode single-layer VP8 publishes into lower layers on demand.
    pub ladder: bool,
    /// How many ladders run at once, node-wide.
    pub ladder_slots: ladder::LadderSlots,
    /// Blended into the ladder's rungs.
    pub ladder_watermark: Option<Arc<crate::process::Watermark>>,
    /// Keyframe requests for relay links' parents.
    pub relay_requests: mpsc::Sender<RelayRequest>,
    /// The next relay link id.
    pub next_link: std::sync::atomic::AtomicU32,
    /// Publishers' audio goes through it first, when the node levels audio.
    pub leveller: Option<crate::level::thread::Leveller>,
}

/// A relay link feeding a stream on this worker.
struct RelaySourceState {
    stream: StreamId,
    input: RelayInput,
}

/// Whether `data` looks like a STUN message: top two bits zero, magic cookie at 4..8.
fn is_stun(data: &[u8]) -> bool {
    data.len() >= 20 && data[0] & 0xc0 == 0 && data[4..8] == [0x21, 0x12, 0xa4, 0x42]
}

/// Most datagrams read per wake-up before effects are processed.
const RECV_BATCH: usize = 64;
/// Housekeeping period: reaping, layer ranking.
const HOUSEKEEPING: Duration = Duration::from_millis(100);

pub(crate) struct Worker {
    id: WorkerId,
    socket: UdpSocket,
    local: SocketAddr,
    sessions: HashMap<SessionId, Session>,
    by_addr: HashMap<SocketAddr, SessionId>,
    /// Each session's current local ICE ufrag: one entry per session, replaced on an
    /// ICE restart, removed on close.
    by_ufrag: HashMap<String, SessionId>,
    router: Router,
    /// Relay links from parents feeding streams here.
    relay_sources: HashMap<LinkId, RelaySourceState>,
    /// Relay links to children taking streams from here.
    pipes: egress::PipeLinks,
    /// The router's outputs, applied and drained after each call.
    out: Outputs,
    /// The sessions this turn wrote packets to, flushed once each before its sends.
    unflushed: egress::Unflushed,
    outbox: Vec<Vec<(StreamId, Arc<MediaPacket>)>>,
    shared: Arc<Shared>,
    effects: Vec<Effect>,
    /// What this turn sends, over UDP and over ICE-TCP connections.
    batch: Outgoing,
    /// The ICE-TCP listener's connections, when the node offers TCP.
    tcp: Option<TcpSide>,
    /// Lines for sessions' `chat` channels, queued by their pumps (`chat.rs`).
    chat: Arc<ChatOutbox>,
    chat_rx: crossbeam_channel::Receiver<(SessionId, ChatWrite)>,
    /// Publishers' transcoded ladders (`--ladder`).
    ladders: ladder::Ladders,
    last_housekeeping: Instant,
    /// Viewers' video timelines as their event streams follow them (the directory's
    /// senders, cloned at a viewer's first video).
    timelines: HashMap<SessionId, tokio::sync::watch::Sender<Option<Timeline>>>,
}

enum Wake {
    Command(Option<Command>),
    Datagram(std::io::Result<(usize, SocketAddr)>),
    Tcp(TcpIn),
    Timer(Instant),
}

impl Worker {
    pub(crate) fn new(
        id: WorkerId,
        socket: UdpSocket,
        local: SocketAddr,
        shared: Arc<Shared>,
    ) -> Self {
        let n = shared.peers.len();
        let (chat, chat_rx) = ChatOutbox::new(
            shared.peers[id.0].clone(),
            shared
                .metrics
                .chat_dropped
                .with_label_values(&["out", "worker_queue_full"]),
        );
        Worker {
            id,
            socket,
            local,
            sessions: HashMap::new(),
            by_addr: HashMap::new(),
            by_ufrag: HashMap::new(),
            router: Router::default(),
            relay_sources: HashMap::new(),
            pipes: egress::PipeLinks::default(),
            out: Outputs::default(),
            unflushed: egress::Unflushed::default(),
            outbox: vec![Vec::new(); n],
            shared,
            effects: Vec::new(),
            batch: Outgoing::default(),
            tcp: None,
            chat,
            chat_rx,
            ladders: HashMap::new(),
            last_housekeeping: Instant::now(),
            timelines: HashMap::new(),
        }
    }

    /// The worker also takes ICE-TCP connections, announced at `local`, from the driver
    /// feeding `rx`.
    pub(crate) fn with_tcp(mut self, local: SocketAddr, rx: mpsc::Receiver<TcpIn>) -> Self {
        self.tcp = Some(TcpSide::new(local, rx));
        self
    }

    pub(crate) async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut buf = vec![0u8; 2048];
        loop {
            let deadline = self.next_deadline();
            let wake = tokio::select! {
                biased;
                c = rx.recv() => Wake::Command(c),
                r = self.socket.recv_from(&mut buf) => Wake::Datagram(r),
                t = ice_tcp::recv(&mut self.tcp) => Wake::Tcp(t),
                _ = tokio::time::sleep_until(deadline.into()) => Wake::Timer(deadline),
            };
            match wake {
                Wake::Command(None) => break,
                Wake::Command(Some(Command::Shutdown(done))) => {
                    self.shutdown();
                    // The goodbyes must leave before the worker does.
                    self.flush_sends();
                    let _ = done.send(());
                    break;
                }
                Wake::Command(Some(c)) => self.on_command(c),
                Wake::Datagram(Ok((n, from))) => {
                    self.on_datagram(&buf[..n], from);
                    for _ in 1..RECV_BATCH {
                        match self.socket.try_recv_from(&mut buf) {
                            Ok((n, from)) => self.on_datagram(&buf[..n], from),
                            Err(_) => break,
                        }
                    }
                }
                Wake::Datagram(Err(e)) => tracing::debug!("recv error: {e}"),
                Wake::Tcp(t) => self.on_tcp(t),
                Wake::Timer(deadline) => {
                    let now = Instant::now();
                    let lag = now.saturating_duration_since(deadline);
                    self.shared.metrics.loop_lag.observe(lag.as_secs_f64());
                    self.on_timeout(now);
                }
            }
            self.process_effects();
            self.flush_outbox();
            self.flush_pipes();
            self.flush_sends();
        }
    }

    /// Hands each relay link this turn's packets, and counts them.
    fn flush_pipes(&mut self) {
        let p = self.pipes.flush();
        let m = &self.shared.metrics;
        if p.sent > 0 {
            m.relay_packets_out.inc_by(p.sent);
        }
        if p.dropped > 0 {
            m.forward_drops
                .with_label_values(&["relay_queue_full"])
                .inc_by(p.dropped);
        }
    }

    fn next_deadline(&self) -> Instant {
        let house = self.last_housekeeping + HOUSEKEEPING;
        self.sessions
            .values()
            .map(|s| s.next_timeout)
            .fold(house, Instant::min)
    }

    /// Sends what this turn produced, in `sendmmsg` batches, and counts it.
    fn flush_sends(&mut self) {
        self.flush_tcp();
        if self.batch.udp.is_empty() {
            return;
        }
        let sent = self.batch.udp.flush(self.socket.as_raw_fd());
        let m = &self.shared.metrics.datagrams_out;
        if sent.ok > 0 {
            m.with_label_values(&["ok"]).inc_by(sent.ok);
        }
        if sent.failed > 0 {
            m.with_label_values(&["failed"]).inc_by(sent.failed);
        }
    }

    fn on_datagram(&mut self, data: &[u8], from: SocketAddr) {
        let now = Instant::now();
        let Ok(recv) = Receive::new(Protocol::Udp, from, self.local, data) else {
            self.shared
                .metrics
                .datagrams_dropped
                .with_label_values(&["garbage"])
                .inc();
            return;
        };
        let input = Input::Receive(now, recv);
        let id = match self.by_addr.get(&from) {
            Some(id) => Some(*id),
            None => {
                let found = self.session_for_stun(data, &input);
                if let Some(id) = found {
                    self.by_addr.insert(from, id);
                }
                found
            }
        };
        let Some(session) = id.and_then(|id| self.sessions.get_mut(&id)) else {
            self.shared
                .metrics
                .datagrams_dropped
                .with_label_values(&["unknown_source"])
                .inc();
            return;
        };
        session.handle_input(input, &mut self.batch, &mut self.effects);
    }

    /// The session a packet from an unknown source is for. Only a STUN request (RFC 8489
    /// magic cookie) can introduce a new address or connection: anything else is refused
    /// without scanning sessions. Its USERNAME names the session's ufrag; that session's
    /// str0m agent checks the rest.
    fn session_for_stun(&self, data: &[u8], input: &Input) -> Option<SessionId> {
        if !is_stun(data) {
            return None;
        }
        crate::stun::local_ufrag(data)
            .and_then(|u| self.by_ufrag.get(u))
            .and_then(|id| self.sessions.get(id))
            .filter(|s| s.accepts(input))
            .map(|s| s.id)
    }

    fn on_timeout(&mut self, now: Instant) {
        for s in self.sessions.values_mut() {
            if s.next_timeout <= now {
                s.handle_input(Input::Timeout(now), &mut self.batch, &mut self.effects);
            }
        }
        if now.saturating_duration_since(self.last_housekeeping) >= HOUSEKEEPING {
            self.last_housekeeping = now;
            self.housekeeping(now);
        }
    }

    fn housekeeping(&mut self, now: Instant) {
        let timeout = self.shared.handshake_timeout;
        for s in self.sessions.values_mut() {
            if !s.is_connected() && now.saturating_duration_since(s.created()) > timeout {
                self.effects.push(Effect::Gone(s.id, "handshake_timeout"));
            } else if !s.is_alive() {
                self.effects.push(Effect::Gone(s.id, "closed"));
            }
            if let Some(layers) = s.poll_layers(now) {
                self.shared.directory.set_layers(s.stream, layers);
            }
        }
        for r in self.relay_sources.values_mut() {
            if let Some(layers) = r.input.producer().poll_layers(now) {
                self.shared.directory.set_layers(r.stream, layers);
            }
        }
        self.expire_tcp(now);
        // A pump that found the command queue full left its lines for this.
        self.flush_chat();
        self.allocate(now);
        self.ladder_demand(now);
        self.router.poll_demand(&mut self.out);
        self.apply_upstream(now);
    }

    /// Runs every connected viewer's allocator on its latest estimate and pacer queue, and
    /// applies what it decides: the rate its estimator probes towards, a reset while
    /// paused, and a change of layer or pause told to its player.
    fn allocate(&mut self, now: Instant) {
        let pressure = self.shared.directory.pressure();
        for (id, s) in self.sessions.iter_mut() {
            if s.role != Role::Viewer || !s.is_connected() {
                continue;
            }
            let queue = s.queue_delay();
            let path = PathReport {
                estimate: s.estimate(),
                sent_bps: s.sent_bps(),
                queue_delay: queue,
                loss: s.loss(),
                unpadded: s.unpadded(),
            };
            let Some(a) = self.router.allocate(*id, now, path, pressure) else {
                continue;
            };
            tracing::trace!(target: "qos", session = %id, target = ?a.target,
                estimate = ?s.estimate(), sent_bps = s.sent_bps(),
                queue_ms = queue.as_millis() as u64, loss = s.loss(), desired = a.desired_bps,
                minimum = a.minimum_bps, "tick");
            s.set_bwe_rates(
                a.minimum_bps,
                a.desired_bps,
                &mut self.batch,
                &mut self.effects,
            );
            if let Some(bps) = a.reset_bps {
                tracing::debug!(target: "qos", session = %id, target = ?a.target,
                    estimate = ?s.estimate(), bps, "estimator reset");
                s.reset_bwe(bps, &mut self.batch, &mut self.effects);
            }
            if a.stepped_down {
                s.forget_retransmissions(&mut self.batch, &mut self.effects);
            }
            if a.changed {
                tracing::debug!(target: "qos", session = %id, target = ?a.target,
                    temporal = ?a.temporal, estimate = ?s.estimate(), queue_ms = queue.as_millis() as u64, "allocation");
                let status = match a.target {
                    Allocation::Paused => ViewerStatus {
                        paused: true,
                        rank: None,
                        temporal: None,
                    },
                    Allocation::Layer(r) => ViewerStatus {
                        paused: false,
                        rank: u8::try_from(r).ok(),
                        temporal: a.temporal,
                    },
                };
                self.shared.directory.set_viewer_status(*id, status);
                if !a.initial {
                    let label = if status.paused { "paused" } else { "layer" };
                    self.shared
                        .metrics
                        .allocation_changes
                        .with_label_values(&[label])
                        .inc();
                }
            }
        }
    }

    fn on_command(&mut self, c: Command) {
        match c {
            Command::Open {
                id,
                stream,
                role,
                offer,
                pref,
                ladder,
                chat,
                reply,
            } => {
                let params = OpenParams {
                    local: self.local,
                    tcp: self.tcp.as_ref().map(|t| t.local),
                    rtx_cache_packets: self.shared.rtx_cache_packets,
                    keyframe_throttle: self.shared.keyframe_throttle,
                    viewer_bwe: self.shared.viewer_bwe,
                };
                let r = Session::open(id, stream, role, &offer, params, Instant::now());
                let r = r.map(|(mut session, answer)| {
                    if let Some(hook) = chat {
                        let dc = answer.contains("m=application");
                        session.set_chat(dc, hook, self.chat.clone());
                    }
                    self.by_ufrag.insert(session.local_ufrag().to_owned(), id);
                    self.sessions.insert(id, session);
                    self.router.park(id, pref);
                    if role == Role::Publisher {
                        self.ladder_open(id, stream, ladder);
                    }
                    if role == Role::Viewer {
                        let now = Instant::now();
                        self.router.expect_viewer(id, stream, now, &mut self.out);
                    }
                    self.shared.loads[self.id.0].fetch_add(1, Ordering::Relaxed);
                    self.shared
                        .metrics
                        .sessions
                        .with_label_values(&[role.label()])
                        .inc();
                    answer
                });
                if let Err(Ok(_)) = reply.send(r) {
                    // The HTTP caller went away: the session it asked for is not wanted.
                    self.close_session(id, "abandoned");
                }
                self.apply_upstream(Instant::now());
            }
            Command::Close { id, reply } => {
                let existed = self.sessions.contains_key(&id);
                self.close_session(id, "deleted");
                let _ = reply.send(existed);
            }
            Command::Patch { id, frag, reply } => {
                let _ = reply.send(self.patch(id, &frag));
            }
            Command::SetPref { id, pref } => {
                self.router.set_pref(id, pref);
            }
            Command::Media(from, batch) => {
                for (stream, pkt) in batch {
                    self.route(stream, &pkt, Endpoint::Worker(from));
                }
            }
            Command::KeyframeWant { stream, source } => {
                let now = Instant::now();
                self.router
                    .remote_keyframe_want(stream, source, now, &mut self.out);
                self.apply_upstream(now);
            }
            Command::Interest { stream, worker, on } => {
                self.router.set_interest(stream, worker, on);
                // A worker that takes an interest may have a viewer about to start: it
                // starts from this worker's cache. Sent before any packet it will be handed.
                if let Some(snapshot) = on.then(|| self.router.gop_snapshot(stream)).flatten() {
                    if let Some(peer) = self.shared.peers.get(worker.0) {
                        let _ = peer.try_send(Command::Gops { stream, snapshot });
                    }
                }
            }
            Command::Gops { stream, snapshot } => {
                let now = Instant::now();
                self.router.seed_gops(stream, &snapshot, now, &mut self.out);
                self.apply_upstream(now);
            }
            Command::AddRelaySource {
                link,
                stream,
                generation,
            } => {
                let input = RelayInput::new(generation, self.shared.keyframe_throttle);
                self.router
                    .set_source(stream, Endpoint::Relay(link), input.generation());
                self.relay_sources
                    .insert(link, RelaySourceState { stream, input });
            }
            Command::RelayMedia { link, batch } => self.relay_media(link, batch),
            Command::RestartRelaySource { link } => {
                if let Some(r) = self.relay_sources.get_mut(&link) {
                    r.input.restart();
                    self.router
                        .set_source(r.stream, Endpoint::Relay(link), r.input.generation());
                }
            }
            Command::RelayLayers { link, layers } => {
                if let Some(r) = self.relay_sources.get_mut(&link) {
                    r.input.set_layers(Instant::now(), &layers);
                }
            }
            Command::RemoveRelaySource { link } => {
                if let Some(r) = self.relay_sources.remove(&link) {
                    self.router.remove_source(r.stream, Endpoint::Relay(link));
                }
            }
            Command::AddPipe {
                link,
                stream,
                wanted,
                out,
            } => {
                self.pipes.insert(link, out);
                self.router
                    .add_pipe(Endpoint::Relay(link), stream, wanted, &mut self.out);
                self.apply_upstream(Instant::now());
            }
            Command::SetPipeWanted { link, wanted } => {
                self.router.set_pipe_wanted(Endpoint::Relay(link), wanted);
            }
            Command::PipeKeyframe { link, encoding } => {
                let now = Instant::now();
                self.router
                    .sink_keyframe_of(Endpoint::Relay(link), encoding, now, &mut self.out);
                self.apply_upstream(now);
            }
            Command::RemovePipe { link } => {
                self.pipes.remove(link);
                self.router
                    .remove_sink(Endpoint::Relay(link), &mut self.out);
                self.apply_upstream(Instant::now());
            }
            Command::Levelled(batch) => {
                for (stream, id, pkt) in batch {
                    self.route_from_source(stream, pkt, Endpoint::Session(id));
                }
            }
            Command::ChatFlush => self.flush_chat(),
            Command::LadderMedia { id, out } => self.ladder_media(id, out),
            Command::LadderWant { stream, worker, on } => {
                self.router.set_ladder_want(stream, worker, on)
            }
            Command::Shutdown(_) => unreachable!("handled in run"),
        }
    }

    /// Trickle (same ufrag: add candidates) or ICE restart (new ufrag: new credentials,
    /// answered with ours).
    fn patch(&mut self, id: SessionId, frag: &str) -> Result<Option<String>, SfuError> {
        let session = self.sessions.get_mut(&id).ok_or(SfuError::NoSuchSession)?;
        let Fragment {
            restart,
            candidates,
        } = trickle::parse(frag, session.remote_ufrag())?;
        for c in candidates {
            session.add_remote_candidate(c, &mut self.batch);
        }
        let tcp = self.tcp.as_ref().map(|t| t.local);
        let out = restart.map(|remote| {
            self.by_ufrag.remove(session.local_ufrag());
            let local = session.restart_ice(remote, &mut self.batch);
            self.by_ufrag.insert(local.ufrag.clone(), id);
            let mut frag = format!(
                "a=ice-lite\r\na=ice-ufrag:{}\r\na=ice-pwd:{}\r\na=candidate:1 1 udp 2130706431 {} {} typ host\r\n",
                local.ufrag,
                local.pass,
                self.local.ip(),
                self.local.port()
            );
            if let Some(t) = tcp {
                // Type preference 90 for a TCP host candidate (str0m's, after libwebrtc).
                frag.push_str(&format!(
                    "a=candidate:2 1 tcp 1526726655 {} {} typ host tcptype passive\r\n",
                    t.ip(),
                    t.port()
                ));
            }
            frag.push_str("a=end-of-candidates\r\n");
            frag
        });
        Ok(out)
    }

    /// Acts on the turn's effects, and flushes the sessions the turn wrote to once all of
    /// its packets are written (whatever wrote them: a local publisher's packets, another
    /// worker's, a relay link's, a ladder's); what a flush brings about is acted on too.
    fn process_effects(&mut self) {
        loop {
            while !self.effects.is_empty() {
                let batch = std::mem::take(&mut self.effects);
                for e in batch {
                    self.on_effect(e);
                }
            }
            if self.unflushed.is_empty() {
                break;
            }
            egress::flush_written(
                &mut self.unflushed,
                &mut self.sessions,
                Instant::now(),
                &mut self.batch,
                &mut self.effects,
            );
        }
        self.flush_drops();
    }

    fn on_effect(&mut self, e: Effect) {
        let m = &self.shared.metrics;
        match e {
            Effect::Connected(id) => self.on_connected(id),
            Effect::Gone(id, reason) => self.close_session(id, reason),
            Effect::Media(id, stream, pkt) => {
                m.packets_in.inc();
                m.bytes_in.inc_by(pkt.payload.len() as u64);
                self.ladder_in(id, &pkt);
                let mut pkt = pkt;
                if let (Some(l), Codec::Opus) = (&self.shared.leveller, pkt.codec) {
                    // Routed when it comes back (`Command::Levelled`); as it came when the
                    // leveller cannot take it.
                    let job = Job {
                        worker: self.id,
                        stream,
                        session: id,
                        pkt,
                    };
                    match l.offer(job) {
                        Ok(()) => return,
                        Err(job) => pkt = job.pkt,
                    }
                }
                self.route_from_source(stream, pkt, Endpoint::Session(id));
            }
            Effect::ViewerKeyframe(id) => {
                let now = Instant::now();
                self.router
                    .sink_keyframe(Endpoint::Session(id), now, &mut self.out);
                self.apply_upstream(now);
            }
            Effect::Nacks(from_viewer, n) => {
                let dir = if from_viewer {
                    "from_viewer"
                } else {
                    "to_publisher"
                };
                m.nacks.with_label_values(&[dir]).inc_by(n);
            }
            Effect::Retransmissions(n) => m.retransmissions.inc_by(n),
            Effect::ChatDropped(reason) => {
                m.chat_dropped.with_label_values(&["in", reason]).inc();
            }
            Effect::FirstVideo(id, after) => {
                m.viewer_join.observe(after.as_secs_f64());
                self.shared.directory.set_joined(id, after);
            }
            Effect::ReceiverReport(r) => {
                m.viewer_loss.observe(f64::from(r.loss));
                m.viewer_lost.inc_by(r.lost);
                if let Some(j) = r.jitter {
                    m.viewer_jitter.observe(j.as_secs_f64());
                }
                if let Some(rtt) = r.rtt {
                    m.viewer_rtt.observe(rtt.as_secs_f64());
                }
            }
            Effect::KeyframeInterval(stream, d) => {
                m.keyframe_interval.observe(d.as_secs_f64());
                self.shared.directory.set_keyframe_interval(stream, d);
            }
        }
    }

    /// Writes the lines queued for sessions' `chat` channels (and closes those their
    /// takers let go of): what was queued when this started (more wake it again), each
    /// followed by its session's drain.
    fn flush_chat(&mut self) {
        self.chat.draining();
        for _ in 0..self.chat_rx.len() {
            let Ok((id, write)) = self.chat_rx.try_recv() else {
                break;
            };
            let session = self.sessions.get_mut(&id);
            let r = match (write, session) {
                (ChatWrite::Line(line), Some(s)) => {
                    s.write_chat(&line, &mut self.batch, &mut self.effects)
                }
                (ChatWrite::Line(_), None) => Err("closed"),
                (ChatWrite::Close, Some(s)) => {
                    s.close_chat(&mut self.batch, &mut self.effects);
                    Ok(())
                }
                (ChatWrite::Close, None) => Ok(()),
            };
            if let Err(reason) = r {
                self.shared
                    .metrics
                    .chat_dropped
                    .with_label_values(&["out", reason])
                    .inc();
            }
        }
    }

    fn on_connected(&mut self, id: SessionId) {
        let Some(s) = self.sessions.get(&id) else {
            return;
        };
        let (stream, role) = (s.stream, s.role);
        // Its handshake is done: it leaves the pending budgets at once.
        self.shared.directory.connected(id);
        match role {
            Role::Publisher => {
                let generation = s.generation().unwrap_or_default();
                self.router
                    .set_source(stream, Endpoint::Session(id), generation);
                self.shared.directory.set_active(stream, true);
                self.shared.metrics.streams_active.inc();
            }
            Role::Viewer => {
                let seq: [u16; 2] = [rand::random(), rand::random()];
                let ts: [u32; 2] = [rand::random(), rand::random()];
                let now = Instant::now();
                self.router
                    .add_viewer(id, stream, seq, ts, now, &mut self.out);
                // A replayed group of pictures leaves now: it is the viewer's live edge.
                let from = if self.out.forwards.is_empty() {
                    "keyframe"
                } else {
                    "cache"
                };
                self.shared
                    .metrics
                    .video_starts
                    .with_label_values(&[from])
                    .inc();
                self.write_out(now, now);
                self.apply_upstream(now);
            }
        }
    }

    /// Routes a packet from a source on this worker here and queues it for the other
    /// workers with sinks of its stream.
    fn route_from_source(&mut self, stream: StreamId, pkt: Arc<MediaPacket>, from: Endpoint) {
        let workers = self.route(stream, &pkt, from);
        if workers != 0 {
            for (w, batch) in self.outbox.iter_mut().enumerate() {
                if w != self.id.0 && workers & (1 << w) != 0 {
                    batch.push((stream, pkt.clone()));
                }
            }
        }
    }

    /// Packets from a relay link's parent: parsed by its input, routed as a source's.
    fn relay_media(&mut self, link: LinkId, batch: Vec<RelayPacket>) {
        let now = Instant::now();
        for p in batch {
            let Some(r) = self.relay_sources.get_mut(&link) else {
                return;
            };
            let stream = r.stream;
            let Some((pkt, restarted)) = r.input.parse(&p, now) else {
                self.shared
                    .metrics
                    .datagrams_dropped
                    .with_label_values(&["bad_relay_packet"])
                    .inc();
                continue;
            };
            if restarted {
                self.router
                    .set_source(stream, Endpoint::Relay(link), pkt.source.generation);
            }
            let m = &self.shared.metrics;
            m.packets_in.inc();
            m.bytes_in.inc_by(pkt.payload.len() as u64);
            self.route_from_source(stream, Arc::new(pkt), Endpoint::Relay(link));
        }
    }

    /// Routes `pkt` of `stream` (from `from`) through the router and applies what it says:
    /// forwards written into sessions, requests sent upstream. Returns the other workers to
    /// hand the packet to.
    fn route(&mut self, stream: StreamId, pkt: &Arc<MediaPacket>, from: Endpoint) -> u64 {
        let now = Instant::now();
        let workers = self.router.route(stream, pkt, from, now, &mut self.out);
        self.write_out(pkt.arrival, now);
        workers
    }

    /// Writes the router's forwards into sessions and relay links (`wallclock`: when their
    /// packets arrived), counts them, and sends its requests upstream.
    fn write_out(&mut self, wallclock: Instant, now: Instant) {
        let w = egress::write_forwards(
            &mut self.out.forwards,
            &mut self.sessions,
            &mut self.pipes,
            wallclock,
            now,
            &mut self.unflushed,
            &mut self.effects,
        );
        // Summed there and added once: the counters are shared with the other workers.
        self.out.drops.codec_unsupported += w.unsupported;
        if !self.out.timelines.is_empty() {
            self.tell_timelines(now);
        }
        let m = &self.shared.metrics;
        m.packets_out.inc_by(w.packets);
        m.bytes_out.inc_by(w.bytes);
        m.layer_switches.inc_by(w.switches);
        if !self.out.upstream.is_empty() {
            self.apply_upstream(now);
        }
    }

    /// Tells viewers' event streams where their video timelines moved: on the wall clock
    /// now, which the ad breaks they are told are on. Rare (a splice, a path that got
    /// faster or slower by more than `timeline::TOLERANCE`), so the clock is read here.
    fn tell_timelines(&mut self, now: Instant) {
        let wall_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        for (endpoint, anchor) in self.out.timelines.drain(..) {
            let Endpoint::Session(id) = endpoint else {
                continue;
            };
            let tx = match self.timelines.get(&id) {
                Some(tx) => tx,
                None => match self.shared.directory.timeline(id) {
                    Some(tx) => self.timelines.entry(id).or_insert(tx),
                    None => continue,
                },
            };
            tx.send_replace(Some(Timeline::on_wall_clock(anchor, 90_000, now, wall_us)));
        }
    }

    /// Sends the router's requests upstream: keyframe requests to a local source (its
    /// Producer throttles them), wants and interest to the other workers.
    fn apply_upstream(&mut self, now: Instant) {
        let mut upstream = std::mem::take(&mut self.out.upstream);
        for u in upstream.drain(..) {
            match u {
                Upstream::Keyframe {
                    to: Endpoint::Session(pid),
                    encoding,
                } => {
                    if let Some(p) = self.sessions.get_mut(&pid) {
                        let asked =
                            p.request_keyframe(encoding, now, &mut self.batch, &mut self.effects);
                        if let KeyframeAsk::Rung(rung) = asked {
                            self.ladder_keyframe(pid, rung);
                        }
                        let sent = asked != KeyframeAsk::Throttled;
                        self.shared
                            .metrics
                            .keyframe_requests
                            .with_label_values(&[if sent { "sent" } else { "throttled" }])
                            .inc();
                    }
                }
                Upstream::Keyframe {
                    to: Endpoint::Relay(link),
                    encoding,
                } => {
                    let Some(r) = self.relay_sources.get_mut(&link) else {
                        continue;
                    };
                    let layer = r.input.producer().request_keyframe(encoding, now);
                    let sent = layer.is_some_and(|layer| {
                        self.shared
                            .relay_requests
                            .try_send(RelayRequest::Keyframe { link, layer })
                            .is_ok()
                    });
                    self.shared
                        .metrics
                        .keyframe_requests
                        .with_label_values(&[if sent { "sent" } else { "throttled" }])
                        .inc();
                }
                // What a relay link pulls (a WebRTC publisher sends what it sends).
                Upstream::LayerDemand { stream, layers, .. } => {
                    let worker = self.id.0;
                    let _ = self.shared.relay_requests.try_send(RelayRequest::Demand {
                        stream,
                        worker,
                        layers,
                    });
                }
                // Other workers are not local sources.
                Upstream::Keyframe { .. } => {}
                Upstream::KeyframeWant { stream, source } => {
                    self.tell_peers(|| Command::KeyframeWant { stream, source })
                }
                Upstream::Interest { stream, on } => {
                    let worker = self.id;
                    self.tell_peers(|| Command::Interest { stream, worker, on })
                }
            }
        }
        self.out.upstream = upstream;
    }

    /// Sends a command to every other worker; a full queue drops it.
    fn tell_peers(&self, command: impl Fn() -> Command) {
        for (w, peer) in self.shared.peers.iter().enumerate() {
            if w != self.id.0 {
                let _ = peer.try_send(command());
            }
        }
    }

    fn flush_outbox(&mut self) {
        for (w, batch) in self.outbox.iter_mut().enumerate() {
            if batch.is_empty() {
                continue;
            }
            let b = std::mem::take(batch);
            let n = b.len() as u64;
            if self.shared.peers[w]
                .try_send(Command::Media(self.id, b))
                .is_err()
            {
                self.shared
                    .metrics
                    .forward_drops
                    .with_label_values(&["worker_queue_full"])
                    .inc_by(n);
            }
        }
    }

    fn flush_drops(&mut self) {
        let d = std::mem::take(&mut self.out.drops);
        let m = &self.shared.metrics.forward_drops;
        for (label, n) in [
            ("awaiting_keyframe", d.awaiting_keyframe),
            ("other_layer", d.other_layer),
            ("stale", d.stale),
            ("codec_unsupported", d.codec_unsupported),
            ("paused", d.paused),
            ("temporal", d.temporal),
        ] {
            if n > 0 {
                m.with_label_values(&[label]).inc_by(n);
            }
        }
    }

    fn close_session(&mut self, id: SessionId, reason: &'static str) {
        let Some(mut s) = self.sessions.remove(&id) else {
            return;
        };
        self.ladders.remove(&id);
        self.timelines.remove(&id);
        s.close(&mut self.batch);
        self.by_addr.retain(|_, v| *v != id);
        // Its goodbyes (RTCP BYE, DTLS close_notify) go out before its connections close.
        self.flush_tcp();
        self.close_tcp_of(id);
        if self.by_ufrag.get(s.local_ufrag()) == Some(&id) {
            self.by_ufrag.remove(s.local_ufrag());
        }
        self.shared.loads[self.id.0].fetch_sub(1, Ordering::Relaxed);
        let m = &self.shared.metrics;
        m.sessions.with_label_values(&[s.role.label()]).dec();
        m.sessions_closed
            .with_label_values(&[s.role.label(), reason])
            .inc();
        // A viewer's sink, or a parked preference of a session never connected.
        self.router
            .remove_sink(Endpoint::Session(id), &mut self.out);
        if s.role == Role::Publisher
            && self.router.remove_source(s.stream, Endpoint::Session(id))
            && s.is_connected()
        {
            m.streams_active.dec();
        }
        self.apply_upstream(Instant::now());
        self.shared.directory.release(id);
        // A worker left with no session gives back what its maps and send buffer grew to
        // at the peak: a map keeps its capacity, and a Session is held inline (about
        // 10 KB a slot: 5.5 MB live at idle after 300 viewers, by heaptrack).
        if self.sessions.is_empty() {
            self.sessions.shrink_to_fit();
            self.by_addr.shrink_to_fit();
            self.by_ufrag.shrink_to_fit();
            self.router.shrink_to_fit();
            self.timelines.shrink_to_fit();
            self.batch.udp.shrink_to_fit();
            if let Some(t) = self.tcp.as_mut() {
                t.conns.shrink_to_fit();
            }
        }
    }

    fn shutdown(&mut self) {
        self.relay_sources.clear();
        self.pipes.clear();
        let ids: Vec<_> = self.sessions.keys().copied().collect();
        for id in ids {
            self.close_session(id, "shutdown");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::sdp_attr;
    use str0m::change::SdpAnswer;
    use str0m::media::{Direction, MediaKind};
    use str0m::{Candidate, IceCreds, Output, Rtc, RtcConfig};

    /// A worker on a real socket with `n` viewer sessions, each answered to a str0m client.
    fn worker_with_clients(n: usize) -> (Worker, Vec<(SessionId, Rtc)>) {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_nonblocking(true).unwrap();
        let local = socket.local_addr().unwrap();
        let socket = UdpSocket::from_std(socket).unwrap();
        let (tx, _rx) = mpsc::channel(8);
        let shared = Arc::new(Shared {
            directory: Arc::new(Directory::default()),
            metrics: Metrics::new(),
            peers: vec![tx],
            loads: vec![Arc::new(AtomicUsize::new(0))],
            handshake_timeout: Duration::from_secs(10),
            rtx_cache_packets: 16,
            keyframe_throttle: Duration::from_millis(100),
            viewer_bwe: None,
            ladder: false,
            ladder_slots: ladder::LadderSlots::new(1),
            ladder_watermark: None,
            relay_requests: mpsc::channel(8).0,
            next_link: Default::default(),
            leveller: None,
        });
        let mut w = Worker::new(WorkerId(0), socket, local, shared);
        let mut clients = Vec::new();
        for i in 0..n {
            let mut client = RtcConfig::new().set_rtp_mode(true).build(Instant::now());
            let addr = SocketAddr::from(([127, 0, 0, 3], 2000 + i as u16));
            client.add_local_candidate(Candidate::host(addr, Protocol::Udp).unwrap());
            let mut api = client.sdp_api();
            api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
            let (offer, pending) = api.apply().unwrap();
            let id = SessionId(i as u64 + 1);
            let (reply, mut answer) = oneshot::channel();
            w.on_command(Command::Open {
                id,
                stream: StreamId(1),
                role: Role::Viewer,
                offer: offer.to_sdp_string(),
                pref: LayerPref::Auto,
                ladder: false,
                chat: None,
                reply,
            });
            let answer = answer.try_recv().unwrap().unwrap();
            client
                .sdp_api()
                .accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap())
                .unwrap();
            clients.push((id, client));
        }
        (w, clients)
    }

    /// The client's next STUN binding request.
    fn binding(client: &mut Rtc) -> Vec<u8> {
        let mut now = Instant::now();
        for _ in 0..1000 {
            now += Duration::from_millis(50);
            client.handle_input(Input::Timeout(now)).unwrap();
            loop {
                match client.poll_output().unwrap() {
                    Output::Transmit(t) if is_stun(&t.contents) => return t.contents.to_vec(),
                    Output::Timeout(_) => break,
                    _ => {}
                }
            }
        }
        panic!("no binding request")
    }

    #[tokio::test]
    async fn stun_from_a_new_address_reaches_its_session_among_many() {
        let (mut w, mut clients) = worker_with_clients(50);
        assert_eq!(w.by_ufrag.len(), 50, "one index entry per session");
        for (k, from) in [(37usize, 40_037u16), (3, 40_003), (37, 41_037)] {
            let data = binding(&mut clients[k].1);
            // A new address, as after a NAT rebinding.
            let addr = SocketAddr::from(([127, 0, 0, 4], from));
            w.on_datagram(&data, addr);
            assert_eq!(w.by_addr.get(&addr), Some(&clients[k].0), "client {k}");
        }
        // A binding naming an unknown ufrag is dropped without reaching any session.
        let mut data = binding(&mut clients[5].1);
        let at =
            crate::stun::local_ufrag(&data).map(|u| u.as_ptr() as usize - data.as_ptr() as usize);
        data[at.expect("a USERNAME")] ^= 0x01; // another ufrag: no session has it
        let stranger = SocketAddr::from(([127, 0, 0, 5], 1));
        w.on_datagram(&data, stranger);
        assert!(!w.by_addr.contains_key(&stranger));
        // Closing a session removes its entry.
        w.close_session(clients[3].0, "test");
        assert_eq!(w.by_ufrag.len(), 49);
        assert!(!w.by_ufrag.values().any(|id| *id == clients[3].0));
    }

    #[tokio::test]
    async fn a_worker_left_without_sessions_gives_back_its_maps() {
        let (mut w, clients) = worker_with_clients(50);
        assert!(w.sessions.capacity() >= 50);
        for (id, _) in &clients {
            w.close_session(*id, "test");
        }
        assert_eq!(
            w.sessions.capacity(),
            0,
            "no slot kept for 50 ended sessions"
        );
        assert_eq!(w.by_ufrag.capacity(), 0);
    }

    #[tokio::test]
    async fn an_ice_restart_moves_the_index_to_the_new_ufrag() {
        let (mut w, mut clients) = worker_with_clients(5);
        let id = clients[2].0;
        let old = w.sessions[&id].local_ufrag().to_owned();
        let frag = "a=ice-ufrag:newfrag1\r\na=ice-pwd:newpasswordnewpassword12\r\n";
        let answer = w.patch(id, frag).unwrap().expect("a restart answer");
        let new = sdp_attr(&answer, "ice-ufrag").unwrap().to_owned();
        let pwd = sdp_attr(&answer, "ice-pwd").unwrap().to_owned();
        assert_ne!(old, new);
        assert_eq!(w.by_ufrag.get(&new), Some(&id));
        assert!(!w.by_ufrag.contains_key(&old));
        assert_eq!(w.by_ufrag.len(), 5);
        // The client restarts too: its binding names the new ufrag and reaches the session.
        {
            let mut api = clients[2].1.direct_api();
            api.set_local_ice_credentials(IceCreds {
                ufrag: "newfrag1".into(),
                pass: "newpasswordnewpassword12".into(),
            });
            api.set_remote_ice_credentials(IceCreds {
                ufrag: new,
                pass: pwd,
            });
        }
        let data = binding(&mut clients[2].1);
        let addr = SocketAddr::from(([127, 0, 0, 4], 50_000));
        w.on_datagram(&data, addr);
        assert_eq!(w.by_addr.get(&addr), Some(&id));
    }

    #[test]
    fn only_stun_can_introduce_an_address() {
        let mut binding = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
        binding.extend([0u8; 12]);
        assert!(is_stun(&binding));
        let mut rtp = binding.clone();
        rtp[0] = 0x80;
        assert!(!is_stun(&rtp));
        assert!(!is_stun(&binding[..19]));
        assert!(!is_stun(&[22u8; 40]), "DTLS");
    }
}
