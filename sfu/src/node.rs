//! The node: starts the workers and is the handle the HTTP front talks to. It admits
//! sessions through the [`Directory`], places each on the least loaded worker, and waits
//! for that worker's answer.

use std::net::{SocketAddr, TcpListener as StdTcpListener, UdpSocket as StdUdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use prometheus::Encoder;
use tokio::sync::{mpsc, oneshot, watch};

use crate::chat::ChatHook;
use crate::config::NodeConfig;
use crate::directory::{Client, Directory, Role, StreamStatus};
use crate::error::SfuError;
use crate::forward::LayerPref;
use crate::ids::{LinkId, SessionId, WorkerId};
use crate::metrics::Metrics;
use crate::record::{RecordConfig, RecorderQueue, Recording, RecordingSink};
use crate::relay::{Pipe, PipeOut, RelayRequest, RelaySource};
use crate::worker::{Command, Shared, Worker};

/// Commands queued per worker before senders see back-pressure.
const COMMAND_QUEUE: usize = 8192;
/// ICE-TCP events (accepted connections, packets read) queued per worker; a reader waits
/// while it is full, which slows its peer through TCP itself.
const TCP_EVENTS: usize = 1024;

/// A session the node opened.
#[derive(Debug, Clone)]
pub struct Opened {
    /// Its id (part of the resource URL).
    pub id: SessionId,
    /// The SDP answer.
    pub answer: String,
}

/// What a session is opened as, beside its stream and offer.
struct Open {
    role: Role,
    pref: LayerPref,
    client: Option<Client>,
    /// A publisher whose stream may be laddered.
    ladder: bool,
}

/// A running media node.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    addrs: Vec<SocketAddr>,
    tcp_addrs: Vec<SocketAddr>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    relay_requests: Mutex<Option<mpsc::Receiver<RelayRequest>>>,
}

/// Keyframe requests for relay links queued before the link's driver takes them.
const RELAY_REQUESTS: usize = 1024;

impl Node {
    /// Binds one UDP socket per worker and starts the worker threads.
    pub fn start(config: NodeConfig, metrics: Metrics) -> Result<Node, SfuError> {
        config.validate().map_err(SfuError::BadSdp)?;
        let n = config.worker_count();
        let mut sockets = Vec::with_capacity(n);
        let mut addrs = Vec::with_capacity(n);
        for i in 0..n {
            let port = match config.udp_port {
                0 => 0,
                p => p + i as u16,
            };
            let s = StdUdpSocket::bind(SocketAddr::new(config.bind_ip, port))?;
            s.set_nonblocking(true)?;
            crate::udp::enlarge_buffers(&s);
            let port = s.local_addr()?.port();
            addrs.push(SocketAddr::new(config.announced_ip(), port));
            sockets.push(s);
        }
        // One ICE-TCP listener per worker, when TCP is offered.
        let mut listeners = Vec::with_capacity(n);
        let mut tcp_addrs = Vec::with_capacity(n);
        if let Some(first) = config.tcp_port {
            for i in 0..n {
                let port = match first {
                    0 => 0,
                    p => p + i as u16,
                };
                let l = StdTcpListener::bind(SocketAddr::new(config.bind_ip, port))?;
                l.set_nonblocking(true)?;
                tcp_addrs.push(SocketAddr::new(
                    config.announced_ip(),
                    l.local_addr()?.port(),
                ));
                listeners.push(Some(l));
            }
        } else {
            listeners.resize_with(n, || None);
        }
        // Registered once per registry (a second node on the same metrics keeps the first's).
        let _ = metrics
            .registry
            .register(Box::new(crate::socket_drops::SocketDrops::new(&sockets)));
        let tcp_limits = crate::tcp::limits(config.max_tcp_connections);
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..n).map(|_| mpsc::channel(COMMAND_QUEUE)).unzip();
        let (relay_tx, relay_rx) = mpsc::channel(RELAY_REQUESTS);
        let leveller = match config.level_audio {
            Some(cfg) => Some(crate::level::thread::Leveller::start(
                cfg,
                txs.clone(),
                &metrics.registry,
            )?),
            None => None,
        };
        let shared = Arc::new(Shared {
            directory: Arc::new(Directory::new(config.limits())),
            metrics,
            peers: txs,
            loads: (0..n).map(|_| Arc::new(AtomicUsize::new(0))).collect(),
            handshake_timeout: config.handshake_timeout,
            rtx_cache_packets: config.rtx_cache_packets,
            keyframe_throttle: config.keyframe_throttle,
            viewer_bwe: config.viewer_bwe,
            ladder: config.ladder,
            ladder_slots: crate::worker::ladder::LadderSlots::for_this_machine(),
            ladder_watermark: config.ladder_watermark.clone(),
            relay_requests: relay_tx,
            next_link: Default::default(),
            leveller,
        });
        // Ended sessions' memory goes back to the OS (glibc keeps it otherwise).
        crate::heap::spawn_trimmer(Arc::downgrade(&shared.directory))?;
        crate::budget::spawn_sampler(
            config.budget,
            Arc::downgrade(&shared.directory),
            shared.metrics.clone(),
        )?;
        let mut threads = Vec::with_capacity(n);
        for (i, ((socket, rx), listener)) in sockets.into_iter().zip(rxs).zip(listeners).enumerate()
        {
            let shared = shared.clone();
            let local = addrs[i];
            let tcp_local = tcp_addrs.get(i).copied();
            let t = std::thread::Builder::new()
                .name(format!("cascade-media-{i}"))
                .spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a current-thread runtime"); // Invariant: no I/O driver limits hit at start.
                    rt.block_on(async move {
                        let socket =
                            tokio::net::UdpSocket::from_std(socket).expect("a non-blocking socket"); // Invariant: set above.
                        let closed = shared.metrics.tcp_closed.clone();
                        let mut worker = Worker::new(WorkerId(i), socket, local, shared);
                        if let (Some(l), Some(at)) = (listener, tcp_local) {
                            match tokio::net::TcpListener::from_std(l) {
                                Ok(l) => {
                                    let (tx, rx) = mpsc::channel(TCP_EVENTS);
                                    tokio::spawn(crate::tcp::accept(l, tcp_limits, tx, closed));
                                    worker = worker.with_tcp(at, rx);
                                }
                                Err(e) => tracing::warn!("ICE-TCP off on worker {i}: {e}"),
                            }
                        }
                        worker.run(rx).await;
                    });
                })?;
            threads.push(t);
        }
        Ok(Node {
            inner: Arc::new(Inner {
                shared,
                addrs,
                tcp_addrs,
                threads: Mutex::new(threads),
                relay_requests: Mutex::new(Some(relay_rx)),
            }),
        })
    }

    /// The UDP address each worker announces.
    pub fn media_addrs(&self) -> &[SocketAddr] {
        &self.inner.addrs
    }

    /// The ICE-TCP address each worker announces (none when TCP is off).
    pub fn tcp_addrs(&self) -> &[SocketAddr] {
        &self.inner.tcp_addrs
    }

    /// Opens a publisher (WHIP) session on `stream`. `chat` takes its `chat` data
    /// channel when the peer opens one (`chat.rs`); without it, such a channel is
    /// negotiated and what the peer sends on it is dropped. `ladder`: whether its stream
    /// may be transcoded into lower layers (its channel's setting; the node's own
    /// `ladder` still decides whether any stream is).
    pub async fn publish(
        &self,
        stream: &str,
        offer: String,
        chat: Option<ChatHook>,
        ladder: bool,
    ) -> Result<Opened, SfuError> {
        let open = Open {
            role: Role::Publisher,
            pref: LayerPref::Auto,
            client: None,
            ladder,
        };
        self.open(stream, offer, open, chat).await
    }

    /// Opens a viewer (WHEP) session on `stream` for `client`, within the per-address
    /// limits. `chat` as for [`Node::publish`].
    pub async fn view(
        &self,
        stream: &str,
        offer: String,
        pref: LayerPref,
        client: Option<Client>,
        chat: Option<ChatHook>,
    ) -> Result<Opened, SfuError> {
        let open = Open {
            role: Role::Viewer,
            pref,
            client,
            ladder: false,
        };
        self.open(stream, offer, open, chat).await
    }

    fn least_loaded_worker(&self) -> usize {
        self.inner
            .shared
            .loads
            .iter()
            .enumerate()
            .min_by_key(|(_, l)| l.load(Ordering::Relaxed))
            .map_or(0, |(i, _)| i)
    }

    fn next_link(&self) -> LinkId {
        LinkId(self.inner.shared.next_link.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// A relay link from a parent becomes the source of `stream` here. Refused while a
    /// local publisher (or another link) has the stream.
    pub fn attach_relay_source(&self, stream: &str) -> Result<RelaySource, SfuError> {
        let shared = &self.inner.shared;
        let worker = self.least_loaded_worker();
        let id = shared
            .directory
            .add_relay_source(stream, WorkerId(worker))?;
        let link = self.next_link();
        let source = RelaySource {
            link,
            stream: id,
            name: stream.to_owned(),
            worker: shared.peers[worker].clone(),
            shared: shared.clone(),
        };
        let add = crate::worker::Command::AddRelaySource {
            link,
            stream: id,
            generation: rand::random(),
        };
        // On failure the handle, dropped, undoes what the directory recorded.
        shared.peers[worker]
            .try_send(add)
            .map_err(|_| SfuError::WorkerUnavailable)?;
        Ok(source)
    }

    /// A relay link to a child takes `stream` (the video encodings in `wanted`, a bit each,
    /// and audio) from here, through `out`.
    pub fn attach_pipe(
        &self,
        stream: &str,
        wanted: u8,
        out: std::sync::Arc<dyn PipeOut>,
    ) -> Result<Pipe, SfuError> {
        let shared = &self.inner.shared;
        let (id, worker) = shared.directory.add_pipe(stream);
        let worker = worker.map_or_else(|| self.least_loaded_worker(), |w| w.0);
        let link = self.next_link();
        let pipe = Pipe {
            link,
            name: stream.to_owned(),
            worker: shared.peers[worker].clone(),
            shared: shared.clone(),
        };
        let add = crate::worker::Command::AddPipe {
            link,
            stream: id,
            wanted,
            out,
        };
        shared.peers[worker]
            .try_send(add)
            .map_err(|_| SfuError::WorkerUnavailable)?;
        Ok(pipe)
    }

    /// Records `stream` into `cfg.dir` until the returned [`Recording`] is stopped (or
    /// dropped): a pipe taking every layer, whose packets a recorder thread turns into WebM
    /// files (see [`crate::record`]); each finished file goes to `sink`.
    pub fn record(
        &self,
        stream: &str,
        cfg: RecordConfig,
        sink: Arc<dyn RecordingSink>,
    ) -> Result<Recording, SfuError> {
        let dropped = self
            .inner
            .shared
            .metrics
            .forward_drops
            .with_label_values(&["recorder_queue_full"]);
        let skipped = self.inner.shared.metrics.recording_skipped.clone();
        let (queue, rx) = RecorderQueue::new(dropped);
        let pipe = self.attach_pipe(stream, u8::MAX, Arc::new(queue))?;
        Ok(Recording::start(stream, cfg, pipe, rx, sink, skipped)?)
    }

    /// A whole VP8, VP9 or H.264 keyframe of `stream`'s first encoding, with its codec, taken
    /// within `wait` (a keyframe is asked for at once), for its thumbnail
    /// ([`crate::process::still`]); `None` when none came (another codec, no publisher).
    /// Blocks: call it on a blocking thread.
    pub fn keyframe_of(
        &self,
        stream: &str,
        wait: std::time::Duration,
    ) -> Result<Option<crate::record::Keyframe>, SfuError> {
        let dropped = self
            .inner
            .shared
            .metrics
            .forward_drops
            .with_label_values(&["snapshot_queue_full"]);
        let (queue, rx) = RecorderQueue::new(dropped);
        let pipe = self.attach_pipe(
            stream,
            1 << crate::record::snapshot::ENCODING,
            Arc::new(queue),
        )?;
        Ok(crate::record::snapshot::take(&pipe, &rx, wait))
    }

    /// The workers' keyframe requests for relay links' parents (taken once, by the links'
    /// driver).
    pub fn take_relay_requests(&self) -> Option<mpsc::Receiver<RelayRequest>> {
        self.inner
            .relay_requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// Streams with viewers or pipes here and no local publisher: what to pull from a
    /// parent.
    pub fn wanted_remotely(&self) -> Vec<String> {
        self.inner.shared.directory.wanted_remotely()
    }

    /// Changes whenever [`Self::wanted_remotely`] may have.
    pub fn watch_remote(&self) -> watch::Receiver<u64> {
        self.inner.shared.directory.watch_remote()
    }

    /// Drains the node (or not): viewers' event streams say `move`, new viewers and relay
    /// children are refused; sessions already here go on until their clients leave.
    pub fn set_draining(&self, on: bool) {
        self.inner.shared.directory.set_draining(on);
    }

    /// Follows whether the node is drained.
    pub fn watch_draining(&self) -> watch::Receiver<bool> {
        self.inner.shared.directory.watch_draining()
    }

    /// Every stream this node carries, and how it has it.
    pub fn carried(&self) -> Vec<(String, crate::directory::Ingest)> {
        self.inner.shared.directory.carried()
    }

    /// The streams whose local publisher is sending now, and whether each is the primary
    /// or a standby ingest: "live streams published here".
    pub fn publishing(&self) -> Vec<(String, crate::directory::Ingest)> {
        self.inner.shared.directory.publishing()
    }

    /// The streams this node is the ingest of now (primary, or a standby in charge):
    /// what is recorded and given live stills here.
    pub fn ingesting(&self) -> Vec<String> {
        self.inner.shared.directory.ingesting()
    }

    /// Whether the standby ingest of `stream` here is in charge (its primary ingest is on
    /// no live origin, as the control plane sees the cluster).
    pub fn set_standby_in_charge(&self, stream: &str, in_charge: bool) {
        self.inner
            .shared
            .directory
            .set_standby_in_charge(stream, in_charge);
    }

    /// Marks the local publisher of `stream` as a standby ingest: the cluster pulls from
    /// the primary while it sends, from this one when it stops.
    pub fn set_backup_ingest(&self, stream: &str, backup: bool) {
        self.inner
            .shared
            .directory
            .set_backup_ingest(stream, backup);
    }

    /// Whether a local publisher (WHIP) sends `stream`.
    pub fn has_publisher(&self, stream: &str) -> bool {
        self.inner.shared.directory.has_publisher(stream)
    }

    /// The metrics registry (the relay driver adds its own).
    pub fn metrics(&self) -> &Metrics {
        &self.inner.shared.metrics
    }

    async fn open(
        &self,
        stream_name: &str,
        offer: String,
        open: Open,
        chat: Option<ChatHook>,
    ) -> Result<Opened, SfuError> {
        let Open {
            role,
            pref,
            client,
            ladder,
        } = open;
        let shared = &self.inner.shared;
        let worker = self.least_loaded_worker();
        let id = SessionId(rand::random::<u64>() | 1);
        let stream = shared
            .directory
            .admit(id, stream_name, role, WorkerId(worker), client)?;
        let (reply, rx) = oneshot::channel();
        let cmd = Command::Open {
            id,
            stream,
            role,
            offer,
            pref,
            ladder,
            chat,
            reply,
        };
        let result = match shared.peers[worker].try_send(cmd) {
            Ok(()) => rx.await.unwrap_or(Err(SfuError::WorkerUnavailable)),
            Err(_) => Err(SfuError::WorkerUnavailable),
        };
        match result {
            Ok(answer) => Ok(Opened { id, answer }),
            Err(e) => {
                shared.directory.release(id);
                Err(e)
            }
        }
    }

    fn worker_of(&self, id: SessionId, role: Role) -> Result<&mpsc::Sender<Command>, SfuError> {
        let info = self
            .inner
            .shared
            .directory
            .session(id)
            .filter(|i| i.role == role)
            .ok_or(SfuError::NoSuchSession)?;
        Ok(&self.inner.shared.peers[info.worker.0])
    }

    /// The stream a session belongs to, if it exists with that role.
    pub fn session_stream(&self, id: SessionId, role: Role) -> Option<String> {
        let info = self.inner.shared.directory.session(id)?;
        (info.role == role).then_some(info.stream_name)
    }

    /// Ends a session.
    pub async fn close(&self, id: SessionId, role: Role) -> Result<(), SfuError> {
        let (reply, rx) = oneshot::channel();
        self.worker_of(id, role)?
            .send(Command::Close { id, reply })
            .await
            .map_err(|_| SfuError::WorkerUnavailable)?;
        match rx.await {
            Ok(true) => Ok(()),
            Ok(false) => Err(SfuError::NoSuchSession),
            Err(_) => Err(SfuError::WorkerUnavailable),
        }
    }

    /// Applies a trickle-ice-sdpfrag; `Some(answer fragment)` after an ICE restart.
    pub async fn patch(
        &self,
        id: SessionId,
        role: Role,
        frag: String,
    ) -> Result<Option<String>, SfuError> {
        let (reply, rx) = oneshot::channel();
        self.worker_of(id, role)?
            .send(Command::Patch { id, frag, reply })
            .await
            .map_err(|_| SfuError::WorkerUnavailable)?;
        rx.await.unwrap_or(Err(SfuError::WorkerUnavailable))
    }

    /// Changes a viewer's wanted layer.
    pub async fn select_layer(&self, id: SessionId, pref: LayerPref) -> Result<(), SfuError> {
        self.worker_of(id, Role::Viewer)?
            .send(Command::SetPref { id, pref })
            .await
            .map_err(|_| SfuError::WorkerUnavailable)
    }

    /// Follows a viewer's allocation (paused, layer rank), if the session exists.
    pub fn watch_viewer(&self, id: SessionId) -> Option<watch::Receiver<crate::ViewerStatus>> {
        self.inner.shared.directory.watch_viewer(id)
    }

    /// Follows where a viewer's video timestamps stand on the wall clock (`None` until its
    /// first video), if the session exists: an ad break's start in the viewer's own RTP
    /// timestamps is [`crate::forward::timeline::Timeline::ts_at`].
    pub fn watch_timeline(
        &self,
        id: SessionId,
    ) -> Option<watch::Receiver<Option<crate::forward::timeline::Timeline>>> {
        Some(self.inner.shared.directory.timeline(id)?.subscribe())
    }

    /// Follows a stream's status (for server-sent events), if the stream exists.
    pub fn watch(&self, stream: &str) -> Option<watch::Receiver<StreamStatus>> {
        self.inner.shared.directory.watch(stream)
    }

    /// Tells every viewer of `stream` on this node `cue` at once (through the stream's
    /// status, which their event streams follow); false when the node has no such stream.
    pub fn cue(&self, stream: &str, cue: crate::directory::Cue) -> bool {
        self.inner.shared.directory.cue(stream, cue)
    }

    /// Every connected viewer session here: id, stream, join time (first video).
    pub fn viewer_sessions(&self) -> Vec<(SessionId, String, Option<std::time::Duration>)> {
        self.inner.shared.directory.viewer_sessions()
    }

    /// Streams this node may show in public lists: only those marked listed.
    pub fn streams(&self) -> Vec<(String, StreamStatus)> {
        self.inner.shared.directory.list()
    }

    /// Whether `stream` appears in public lists (`/api/streams`, the home page,
    /// per-stream metrics). Streams start unlisted; the front calls this after each
    /// successful publish with what the publisher's authorization said.
    pub fn set_listed(&self, stream: &str, listed: bool) {
        self.inner.shared.directory.set_listed(stream, listed);
    }

    /// The budget's level now (`budget.rs`).
    pub fn pressure(&self) -> crate::budget::Pressure {
        self.inner.shared.directory.pressure()
    }

    /// Open sessions.
    pub fn session_count(&self) -> usize {
        self.inner.shared.directory.session_count()
    }

    /// The metrics, in Prometheus text format.
    pub fn render_metrics(&self) -> String {
        let m = &self.inner.shared.metrics;
        m.viewers.reset();
        for (name, status) in self.streams() {
            m.viewers
                .with_label_values(&[&name])
                .set(i64::from(status.viewers));
        }
        // Unlisted streams' names stay private: their viewers are only summed.
        let s = self.inner.shared.directory.summary();
        let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        m.viewers_unlisted.set(int(s.unlisted_viewers));
        let ladders = self.inner.shared.ladder_slots.running();
        m.ladders_running
            .set(i64::try_from(ladders).unwrap_or(i64::MAX));
        for (publisher, (streams, viewers)) in ["not_yet_live", "gone"].iter().zip(s.waiting) {
            m.streams_waiting
                .with_label_values(&[publisher])
                .set(int(streams));
            m.viewers_waiting
                .with_label_values(&[publisher])
                .set(int(viewers));
        }
        m.stream_keyframe_interval.reset();
        for (name, d) in &s.keyframe_intervals {
            m.stream_keyframe_interval
                .with_label_values(&[name])
                .set(d.as_secs_f64());
        }
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = prometheus::TextEncoder::new().encode(&m.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// Closes every session cleanly and stops the workers.
    pub async fn shutdown(&self) {
        let mut waits = Vec::new();
        for peer in &self.inner.shared.peers {
            let (tx, rx) = oneshot::channel();
            if peer.send(Command::Shutdown(tx)).await.is_ok() {
                waits.push(rx);
            }
        }
        for w in waits {
            let _ = w.await;
        }
        let threads =
            std::mem::take(&mut *self.inner.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}
