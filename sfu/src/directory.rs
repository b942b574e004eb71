//! The node's control-path state: stream names, who publishes, who watches, and each
//! stream's status for server-sent events. Behind one mutex, touched only when sessions
//! open, connect or close, or once a second when layers change: never per packet.
//!
//! It is also where sessions are admitted, so every limit is checked and counted under
//! the one lock that also frees it (see [`Limits`]): viewers cannot take the slots kept
//! for publishers, nor hold more than their share of handshakes in progress, node-wide,
//! per stream and per client address.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::budget::Pressure;
use crate::error::SfuError;
use crate::forward::layers::EncodingInfo;
use crate::forward::timeline::Timeline;
use crate::ids::{SessionId, StreamId, WorkerId};

/// Publisher or viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends media (WHIP).
    Publisher,
    /// Receives media (WHEP).
    Viewer,
}

impl Role {
    /// Label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            Role::Publisher => "publisher",
            Role::Viewer => "viewer",
        }
    }
}

/// What viewers see of a stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamStatus {
    /// A publisher is connected and sending.
    pub active: bool,
    /// Its video layers, lowest first.
    pub layers: Vec<EncodingInfo>,
    /// Viewers on this node.
    pub viewers: u32,
    /// The last cues announced to its viewers (at most [`CUES_KEPT`]), oldest first.
    pub cues: Vec<Arc<Cue>>,
}

/// Cues a stream keeps for feeds that wake late or join after them.
pub const CUES_KEPT: usize = 8;

/// Something every viewer of a stream is told at once (an ad break, a sponsor's slot),
/// opaque here: the control plane says what, each viewer's event stream tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cue {
    /// Numbered by the directory, increasing: a feed tells each cue once.
    pub seq: u64,
    /// The event's name (`adbreak`, `sponsor`).
    pub event: String,
    /// Its data, a JSON object.
    pub data: String,
    /// Until when (Unix ms) a viewer whose feed starts later is still told.
    pub until_ms: u64,
    /// Viewers, by the identity their grant named, told it with `"skip": true` (those
    /// entitled to skip it).
    pub exempt: Arc<HashSet<String>>,
}

/// How many sessions the node admits, and how many of them viewers may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Sessions of any role.
    pub max_sessions: usize,
    /// Slots only publishers may use: viewers hold at most `max_sessions - this`.
    pub publisher_reserve: usize,
    /// Viewer handshakes in progress (admitted, not yet connected), node-wide.
    pub max_pending: usize,
    /// Viewer handshakes in progress on one stream.
    pub max_pending_per_stream: usize,
    /// Viewer sessions from one client address (IPv6: one /64); 0 means no cap.
    pub max_per_address: usize,
    /// Viewer handshakes in progress from one client address; 0 means no cap.
    pub max_pending_per_address: usize,
}

impl Limits {
    /// Everything but the session count unlimited.
    pub fn sessions(max_sessions: usize) -> Self {
        Limits {
            max_sessions,
            publisher_reserve: 0,
            max_pending: usize::MAX,
            max_pending_per_stream: usize::MAX,
            max_per_address: 0,
            max_pending_per_address: 0,
        }
    }
}

/// Who asks for a session: what the per-address limits count by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Client(IpAddr);

impl Client {
    /// A client at `addr`. IPv6 clients are counted per /64, the block one subscriber
    /// usually gets: counting single addresses would let one host take a whole budget.
    pub fn new(addr: IpAddr) -> Self {
        Client(match addr {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let bits = u128::from(v6) & !((1u128 << 64) - 1);
                    IpAddr::V6(bits.into())
                }
            },
            v4 => v4,
        })
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    sessions: usize,
    pending: usize,
}

/// What a viewer's allocator gives it, as its player is told (server-sent events).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ViewerStatus {
    /// No layer fits the viewer's path: audio alone.
    pub paused: bool,
    /// The rank of the layer it is sent (0 is the lowest), once decided.
    pub rank: Option<u8>,
    /// The highest temporal layer it is sent, when not all (a reduced frame rate).
    pub temporal: Option<u8>,
}

/// How a node has a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingest {
    /// Its publisher is here, the stream's primary ingest.
    Primary,
    /// Its publisher is here, a standby (`?backup=1` on the WHIP URL).
    Backup,
    /// Pulled from a parent.
    Relayed,
}

/// Where a session lives.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// The worker that owns its `Rtc`.
    pub worker: WorkerId,
    /// The stream it publishes or watches.
    pub stream: StreamId,
    /// Stream name.
    pub stream_name: String,
    /// Its role.
    pub role: Role,
    /// Who opened it (viewers only: what the per-address limits count).
    pub client: Option<Client>,
    /// Admitted and not yet connected.
    pub pending: bool,
    /// A viewer's first video left this long after its session opened.
    pub joined: Option<Duration>,
}

#[derive(Debug)]
struct StreamEntry {
    id: StreamId,
    publisher: Option<SessionId>,
    viewers: u32,
    /// Viewer handshakes in progress.
    pending: usize,
    /// Shown in public lists (`/api/streams`, the home page, per-stream metrics). False
    /// until the publisher's authorization says so: nothing private leaks by omission.
    listed: bool,
    status: watch::Sender<StreamStatus>,
    /// A relay link from a parent feeds it (on this worker).
    relay_source: Option<WorkerId>,
    /// Relay links to children that take it.
    pipes: u32,
    /// Its local publisher is a standby (`?backup=1`): the cluster pulls from the primary.
    backup_ingest: bool,
    /// The standby is in charge: the primary ingest is on no live origin (the control
    /// plane says so), so the cluster takes the stream from here.
    standby_in_charge: bool,
    /// Its publisher's last keyframe interval (lowest encoding).
    keyframe_interval: Option<Duration>,
    /// It has been live since its entry was made: viewers without a publisher now saw it go.
    was_live: bool,
}

/// A scrape's view of the streams (`Directory::summary`).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Summary {
    /// Viewers of unlisted streams, summed.
    pub unlisted_viewers: u64,
    /// (streams, viewers) with viewers here and no publisher sending: `[0]` not live yet,
    /// `[1]` their publisher gone.
    pub waiting: [(u64, u64); 2],
    /// Listed streams' last keyframe intervals.
    pub keyframe_intervals: Vec<(String, Duration)>,
}

impl StreamEntry {
    fn new(id: StreamId) -> Self {
        StreamEntry {
            id,
            publisher: None,
            viewers: 0,
            pending: 0,
            listed: false,
            status: watch::channel(StreamStatus::default()).0,
            relay_source: None,
            pipes: 0,
            backup_ingest: false,
            standby_in_charge: false,
            keyframe_interval: None,
            was_live: false,
        }
    }

    /// Sinks here and no local publisher: what a node with a parent pulls from it.
    fn wanted_remotely(&self) -> bool {
        self.publisher.is_none() && (self.viewers > 0 || self.pipes > 0)
    }

    fn is_unused(&self) -> bool {
        self.publisher.is_none()
            && self.viewers == 0
            && self.pipes == 0
            && self.relay_source.is_none()
    }
}

#[derive(Debug, Default)]
struct Inner {
    streams: HashMap<String, StreamEntry>,
    names: HashMap<StreamId, String>,
    sessions: HashMap<SessionId, SessionInfo>,
    /// Viewers' allocations, for their event streams; an entry per viewer whose
    /// allocation was set or watched, gone with the session.
    viewer_status: HashMap<SessionId, watch::Sender<ViewerStatus>>,
    /// Viewers' video timelines (`forward::timeline`): the sender is cloned once by the
    /// viewer's worker, which tells it without this lock; gone with the session.
    timelines: HashMap<SessionId, watch::Sender<Option<Timeline>>>,
    /// Viewer sessions, and those of them not yet connected.
    viewers: Counts,
    /// The same, per client; an entry leaves when its counts reach zero.
    clients: HashMap<Client, Counts>,
    next_stream: u32,
    /// The last cue's number.
    cue_seq: u64,
}

impl Inner {
    /// The entry of `name`, made if missing.
    fn entry(&mut self, name: &str) -> &mut StreamEntry {
        if !self.streams.contains_key(name) {
            self.next_stream += 1;
            let sid = StreamId(self.next_stream);
            self.names.insert(sid, name.to_owned());
            self.streams.insert(name.to_owned(), StreamEntry::new(sid));
        }
        // Invariant: inserted just above when missing.
        self.streams.get_mut(name).expect("stream entry")
    }

    /// Forgets `name` once nothing uses it.
    fn prune(&mut self, name: &str) {
        if let Some(entry) = self.streams.get(name).filter(|e| e.is_unused()) {
            self.names.remove(&entry.id);
            self.streams.remove(name);
        }
    }
}

/// The directory of streams and sessions.
#[derive(Debug)]
pub struct Directory {
    inner: Mutex<Inner>,
    limits: Limits,
    /// Bumped whenever the set of streams wanted from a parent may have changed.
    remote: watch::Sender<u64>,
    /// The node is drained: viewers are told to move, no new viewer is admitted.
    draining: watch::Sender<bool>,
    /// The budget's level ([`crate::budget::Pressure`]), set once a second.
    pressure: std::sync::atomic::AtomicU8,
}

impl Default for Directory {
    fn default() -> Self {
        Directory::new(Limits::sessions(usize::MAX))
    }
}

impl Directory {
    /// A directory admitting sessions within `limits`.
    pub fn new(limits: Limits) -> Self {
        Directory {
            inner: Mutex::default(),
            limits,
            remote: watch::channel(0).0,
            draining: watch::channel(false).0,
            pressure: std::sync::atomic::AtomicU8::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock is a bug elsewhere; the data stays usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a session: checks the limits and, for a publisher, that the stream is free.
    /// A viewer is counted as pending (a handshake in progress) until [`Self::connected`].
    pub fn admit(
        &self,
        id: SessionId,
        name: &str,
        role: Role,
        worker: WorkerId,
        client: Option<Client>,
    ) -> Result<StreamId, SfuError> {
        let mut g = self.lock();
        let l = &self.limits;
        if g.sessions.len() >= l.max_sessions {
            return Err(SfuError::AtCapacity);
        }
        let client = client.filter(|_| role == Role::Viewer);
        if role == Role::Viewer && self.pressure() == Pressure::Refuse {
            return Err(SfuError::Overloaded(
                "this node is over its CPU or egress budget: retry shortly",
            ));
        }
        if role == Role::Viewer && *self.draining.borrow() {
            return Err(SfuError::Overloaded(
                "this node is draining: ask the cluster again",
            ));
        }
        if role == Role::Viewer {
            if g.viewers.sessions >= l.max_sessions.saturating_sub(l.publisher_reserve) {
                return Err(SfuError::AtCapacity);
            }
            let from = client
                .and_then(|c| g.clients.get(&c).copied())
                .unwrap_or_default();
            if l.max_per_address != 0 && from.sessions >= l.max_per_address {
                return Err(SfuError::TooMany("viewer sessions from this address"));
            }
            if l.max_pending_per_address != 0 && from.pending >= l.max_pending_per_address {
                return Err(SfuError::TooMany("viewer handshakes from this address"));
            }
            if g.viewers.pending >= l.max_pending {
                return Err(SfuError::Overloaded("too many viewers are connecting"));
            }
            if g.streams.get(name).map_or(0, |e| e.pending) >= l.max_pending_per_stream {
                return Err(SfuError::Overloaded(
                    "too many viewers are connecting to this stream",
                ));
            }
        }
        let inner = &mut *g;
        let entry = inner.entry(name);
        match role {
            Role::Publisher if entry.publisher.is_some() => return Err(SfuError::StreamBusy),
            Role::Publisher => {
                entry.publisher = Some(id);
                // Each publish says again whether it is listed (`set_listed`) and
                // whether it is a standby (`set_backup_ingest`).
                entry.listed = false;
                entry.backup_ingest = false;
                entry.standby_in_charge = false;
            }
            Role::Viewer => {
                entry.viewers += 1;
                entry.pending += 1;
                let v = entry.viewers;
                entry.status.send_modify(|s| s.viewers = v);
            }
        }
        let stream = entry.id;
        if role == Role::Viewer {
            inner.viewers.sessions += 1;
            inner.viewers.pending += 1;
            if let Some(c) = client {
                let n = inner.clients.entry(c).or_default();
                n.sessions += 1;
                n.pending += 1;
            }
        }
        inner.sessions.insert(
            id,
            SessionInfo {
                worker,
                stream,
                stream_name: name.to_owned(),
                role,
                client,
                pending: role == Role::Viewer,
                joined: None,
            },
        );
        drop(g);
        self.remote.send_modify(|n| *n += 1);
        Ok(stream)
    }

    /// A session finished its handshake: it no longer counts as pending.
    pub fn connected(&self, id: SessionId) {
        let mut g = self.lock();
        let inner = &mut *g;
        let Some(info) = inner.sessions.get_mut(&id).filter(|i| i.pending) else {
            return;
        };
        info.pending = false;
        let (name, client) = (info.stream_name.clone(), info.client);
        inner.unpend(&name, client);
    }

    /// Whether a stream appears in public lists. The publisher's authorization decides,
    /// after each publish; a stream is unlisted until then.
    pub fn set_listed(&self, name: &str, listed: bool) {
        if let Some(e) = self.lock().streams.get_mut(name) {
            e.listed = listed;
        }
    }

    /// Forgets a session; frees the publisher slot or lowers the viewer count.
    pub fn release(&self, id: SessionId) -> Option<SessionInfo> {
        let mut g = self.lock();
        let info = g.sessions.remove(&id)?;
        g.viewer_status.remove(&id);
        g.timelines.remove(&id);
        let inner = &mut *g;
        if let Some(entry) = inner.streams.get_mut(&info.stream_name) {
            match info.role {
                Role::Publisher if entry.publisher == Some(id) => {
                    entry.publisher = None;
                    entry.status.send_modify(|s| {
                        s.active = false;
                        s.layers.clear();
                    });
                }
                Role::Publisher => {}
                Role::Viewer => {
                    entry.viewers = entry.viewers.saturating_sub(1);
                    let v = entry.viewers;
                    entry.status.send_modify(|s| s.viewers = v);
                }
            }
        }
        if info.role == Role::Viewer {
            if info.pending {
                inner.unpend(&info.stream_name, info.client);
            }
            inner.viewers.sessions = inner.viewers.sessions.saturating_sub(1);
            if let Some(c) = info.client {
                if let Some(n) = inner.clients.get_mut(&c) {
                    n.sessions = n.sessions.saturating_sub(1);
                    if n.sessions == 0 && n.pending == 0 {
                        inner.clients.remove(&c);
                    }
                }
            }
        }
        inner.prune(&info.stream_name);
        drop(g);
        self.remote.send_modify(|n| *n += 1);
        Some(info)
    }

    /// A relay link from a parent feeds `name` on `worker`. Refused while a local
    /// publisher has it (a node's own publisher wins) or another link feeds it.
    pub fn add_relay_source(&self, name: &str, worker: WorkerId) -> Result<StreamId, SfuError> {
        let mut g = self.lock();
        let entry = g.entry(name);
        if entry.publisher.is_some() || entry.relay_source.is_some() {
            return Err(SfuError::StreamBusy);
        }
        entry.relay_source = Some(worker);
        Ok(entry.id)
    }

    /// The relay link feeding `name` is gone.
    pub fn remove_relay_source(&self, name: &str) {
        let mut g = self.lock();
        if let Some(e) = g.streams.get_mut(name) {
            e.relay_source = None;
            e.status.send_modify(|s| {
                s.active = false;
                s.layers.clear();
            });
        }
        g.prune(name);
    }

    /// A relay link to a child takes `name`: its stream id and the worker its source is on,
    /// if it has one yet.
    pub fn add_pipe(&self, name: &str) -> (StreamId, Option<WorkerId>) {
        let mut g = self.lock();
        let inner = &mut *g;
        let entry = inner.entry(name);
        entry.pipes += 1;
        let (id, publisher, relay) = (entry.id, entry.publisher, entry.relay_source);
        let worker = relay.or_else(|| Some(inner.sessions.get(&publisher?)?.worker));
        drop(g);
        self.remote.send_modify(|n| *n += 1);
        (id, worker)
    }

    /// A relay link to a child no longer takes `name`.
    pub fn remove_pipe(&self, name: &str) {
        let mut g = self.lock();
        if let Some(e) = g.streams.get_mut(name) {
            e.pipes = e.pipes.saturating_sub(1);
        }
        g.prune(name);
        drop(g);
        self.remote.send_modify(|n| *n += 1);
    }

    /// Streams with sinks here (viewers or pipes) and no local publisher: what a node
    /// pulls from its parent. Sorted.
    pub fn wanted_remotely(&self) -> Vec<String> {
        let g = self.lock();
        let mut v: Vec<String> = g
            .streams
            .iter()
            .filter(|(_, e)| e.wanted_remotely())
            .map(|(n, _)| n.clone())
            .collect();
        v.sort();
        v
    }

    /// Changes whenever [`Self::wanted_remotely`] may have.
    pub fn watch_remote(&self) -> watch::Receiver<u64> {
        self.remote.subscribe()
    }

    /// Every stream this node carries (a local publisher or a relay link feeds it), and
    /// how it is published here.
    pub fn carried(&self) -> Vec<(String, Ingest)> {
        let g = self.lock();
        g.streams
            .iter()
            .filter(|(_, e)| e.publisher.is_some() || e.relay_source.is_some())
            .map(|(n, e)| {
                let ingest = match (e.publisher.is_some(), e.backup_ingest) {
                    (false, _) => Ingest::Relayed,
                    (true, false) => Ingest::Primary,
                    (true, true) => Ingest::Backup,
                };
                (n.clone(), ingest)
            })
            .collect()
    }

    /// The streams published here that are live now: a local publisher that is sending
    /// (its media flows: [`StreamStatus::active`]), primary or standby ingest. What the
    /// recorder, the server's stills and the audience reports count as "live here".
    pub fn publishing(&self) -> Vec<(String, Ingest)> {
        let g = self.lock();
        g.streams
            .iter()
            .filter(|(_, e)| e.publisher.is_some() && e.status.borrow().active)
            .map(|(n, e)| {
                let ingest = if e.backup_ingest {
                    Ingest::Backup
                } else {
                    Ingest::Primary
                };
                (n.clone(), ingest)
            })
            .collect()
    }

    /// The streams this node is the ingest of now: a local publisher sending, the primary
    /// or a standby in charge ([`Self::set_standby_in_charge`]). What the recorder and the
    /// server's stills take (a standby's copy is the same live: one recording of it).
    pub fn ingesting(&self) -> Vec<String> {
        let g = self.lock();
        g.streams
            .iter()
            .filter(|(_, e)| e.publisher.is_some() && e.status.borrow().active)
            .filter(|(_, e)| !e.backup_ingest || e.standby_in_charge)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Whether the standby ingest of `name` here is in charge: the stream's primary ingest
    /// is on no live origin.
    pub fn set_standby_in_charge(&self, name: &str, in_charge: bool) {
        if let Some(e) = self.lock().streams.get_mut(name) {
            e.standby_in_charge = in_charge;
        }
    }

    /// Marks the local publisher of `name` as a standby ingest (or not).
    pub fn set_backup_ingest(&self, name: &str, backup: bool) {
        if let Some(e) = self.lock().streams.get_mut(name) {
            e.backup_ingest = backup;
        }
    }

    /// Sets the budget's level: at [`Pressure::Refuse`] new viewers are refused.
    pub fn set_pressure(&self, p: Pressure) {
        self.pressure
            .store(p as u8, std::sync::atomic::Ordering::Relaxed);
    }

    /// The budget's level now.
    pub fn pressure(&self) -> Pressure {
        Pressure::from_u8(self.pressure.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Drains the node (or not): its viewers are told to move, new ones are refused.
    pub fn set_draining(&self, on: bool) {
        self.draining
            .send_if_modified(|d| std::mem::replace(d, on) != on);
    }

    /// Follows whether the node is drained.
    pub fn watch_draining(&self) -> watch::Receiver<bool> {
        self.draining.subscribe()
    }

    /// Whether a local publisher sends `name`.
    pub fn has_publisher(&self, name: &str) -> bool {
        self.lock()
            .streams
            .get(name)
            .is_some_and(|e| e.publisher.is_some())
    }

    /// Where a session lives.
    pub fn session(&self, id: SessionId) -> Option<SessionInfo> {
        self.lock().sessions.get(&id).cloned()
    }

    /// Marks a stream live or not.
    pub fn set_active(&self, stream: StreamId, active: bool) {
        if active {
            let mut g = self.lock();
            let g = &mut *g;
            if let Some(e) = g.names.get(&stream).and_then(|n| g.streams.get_mut(n)) {
                e.was_live = true;
            }
        }
        self.update(stream, |s| s.active = active);
    }

    /// Publishes a stream's layers.
    pub fn set_layers(&self, stream: StreamId, layers: Vec<EncodingInfo>) {
        self.update(stream, |s| s.layers = layers);
    }

    fn update(&self, stream: StreamId, f: impl FnOnce(&mut StreamStatus)) {
        let g = self.lock();
        let Some(entry) = g.names.get(&stream).and_then(|n| g.streams.get(n)) else {
            return;
        };
        entry.status.send_if_modified(|s| {
            let before = s.clone();
            f(s);
            *s != before
        });
    }

    /// A viewer's allocation changed. Called by its worker only on a change (a step of
    /// layer, a pause): never per packet.
    pub fn set_viewer_status(&self, id: SessionId, status: ViewerStatus) {
        let mut g = self.lock();
        if !g.sessions.contains_key(&id) {
            return;
        }
        match g.viewer_status.get(&id) {
            Some(tx) => {
                tx.send_if_modified(|s| std::mem::replace(s, status) != status);
            }
            None => {
                g.viewer_status.insert(id, watch::channel(status).0);
            }
        }
    }

    /// A viewer's video timeline, made on first use, if the session exists: its worker
    /// keeps a clone of the sender, its event stream subscribes.
    pub fn timeline(&self, id: SessionId) -> Option<watch::Sender<Option<Timeline>>> {
        let mut g = self.lock();
        if !g.sessions.contains_key(&id) {
            return None;
        }
        Some(
            g.timelines
                .entry(id)
                .or_insert_with(|| watch::channel(None).0)
                .clone(),
        )
    }

    /// Follows a viewer's allocation, if the session exists.
    pub fn watch_viewer(&self, id: SessionId) -> Option<watch::Receiver<ViewerStatus>> {
        let mut g = self.lock();
        if !g.sessions.contains_key(&id) {
            return None;
        }
        Some(
            g.viewer_status
                .entry(id)
                .or_insert_with(|| watch::channel(ViewerStatus::default()).0)
                .subscribe(),
        )
    }

    /// Notes a viewer's join time (its first video, after its session opened).
    pub fn set_joined(&self, id: SessionId, after: Duration) {
        if let Some(s) = self.lock().sessions.get_mut(&id) {
            s.joined = Some(after);
        }
    }

    /// Every connected viewer session: its id, stream and join time.
    pub fn viewer_sessions(&self) -> Vec<(SessionId, String, Option<Duration>)> {
        self.lock()
            .sessions
            .iter()
            .filter(|(_, s)| s.role == Role::Viewer && !s.pending)
            .map(|(id, s)| (*id, s.stream_name.clone(), s.joined))
            .collect()
    }

    /// Announces `cue` (its `seq` set here) to the viewers of `name`; false when the
    /// node has no such stream. The oldest of more than [`CUES_KEPT`] is dropped.
    pub fn cue(&self, name: &str, mut cue: Cue) -> bool {
        let mut g = self.lock();
        if !g.streams.contains_key(name) {
            return false;
        }
        g.cue_seq += 1;
        cue.seq = g.cue_seq;
        let Some(entry) = g.streams.get(name) else {
            return false;
        };
        let cue = Arc::new(cue);
        entry.status.send_modify(|s| {
            if s.cues.len() >= CUES_KEPT {
                s.cues.remove(0);
            }
            s.cues.push(cue);
        });
        true
    }

    /// Follows a stream's status, if the stream exists.
    pub fn watch(&self, name: &str) -> Option<watch::Receiver<StreamStatus>> {
        self.lock().streams.get(name).map(|e| e.status.subscribe())
    }

    /// Every listed stream and its status, sorted by name.
    pub fn list(&self) -> Vec<(String, StreamStatus)> {
        let g = self.lock();
        let mut v: Vec<_> = g
            .streams
            .iter()
            .filter(|(_, e)| e.listed)
            .map(|(n, e)| (n.clone(), e.status.borrow().clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// What the node's metrics say of its streams, read at a scrape.
    pub fn summary(&self) -> Summary {
        let g = self.lock();
        let mut s = Summary::default();
        for (name, e) in &g.streams {
            if !e.listed {
                // All metrics may say of unlisted streams: their viewers, summed.
                s.unlisted_viewers += u64::from(e.viewers);
            } else if let Some(d) = e.keyframe_interval {
                s.keyframe_intervals.push((name.clone(), d));
            }
            if e.viewers > 0 && !e.status.borrow().active {
                let w = &mut s.waiting[usize::from(e.was_live)];
                w.0 += 1;
                w.1 += u64::from(e.viewers);
            }
        }
        s
    }

    /// Notes the last keyframe interval of a stream's publisher (for [`Self::summary`]).
    pub fn set_keyframe_interval(&self, stream: StreamId, d: Duration) {
        let mut g = self.lock();
        let g = &mut *g;
        if let Some(e) = g.names.get(&stream).and_then(|n| g.streams.get_mut(n)) {
            e.keyframe_interval = Some(d);
        }
    }

    /// Sessions open, by role.
    pub fn session_count(&self) -> usize {
        self.lock().sessions.len()
    }
}

impl Inner {
    /// A viewer's handshake ended (connected, or the session closed before it did).
    fn unpend(&mut self, stream: &str, client: Option<Client>) {
        self.viewers.pending = self.viewers.pending.saturating_sub(1);
        if let Some(e) = self.streams.get_mut(stream) {
            e.pending = e.pending.saturating_sub(1);
        }
        if let Some(n) = client.and_then(|c| self.clients.get_mut(&c)) {
            n.pending = n.pending.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_publisher_per_stream_and_limit() {
        let d = Directory::new(Limits::sessions(3));
        let w = WorkerId(0);
        let s = d
            .admit(SessionId(1), "a", Role::Publisher, w, None)
            .unwrap();
        assert!(matches!(
            d.admit(SessionId(2), "a", Role::Publisher, w, None),
            Err(SfuError::StreamBusy)
        ));
        assert_eq!(
            d.admit(SessionId(3), "a", Role::Viewer, w, None).unwrap(),
            s
        );
        d.admit(SessionId(4), "b", Role::Viewer, w, None).unwrap();
        assert!(matches!(
            d.admit(SessionId(5), "c", Role::Viewer, w, None),
            Err(SfuError::AtCapacity)
        ));
        assert_eq!(d.watch("a").unwrap().borrow().viewers, 1);
        d.release(SessionId(1));
        d.admit(SessionId(6), "a", Role::Publisher, w, None)
            .unwrap();
        d.release(SessionId(6));
        d.release(SessionId(3));
        assert!(d.watch("a").is_none(), "an empty stream is forgotten");
        assert_eq!(d.session_count(), 1);
    }

    fn client(last: u8) -> Option<Client> {
        Some(Client::new(IpAddr::from([192, 0, 2, last])))
    }

    #[test]
    fn viewers_leave_the_reserve_to_publishers() {
        let d = Directory::new(Limits {
            publisher_reserve: 1,
            ..Limits::sessions(3)
        });
        let w = WorkerId(0);
        d.admit(SessionId(1), "a", Role::Viewer, w, client(1))
            .unwrap();
        d.admit(SessionId(2), "a", Role::Viewer, w, client(2))
            .unwrap();
        assert!(matches!(
            d.admit(SessionId(3), "a", Role::Viewer, w, client(3)),
            Err(SfuError::AtCapacity)
        ));
        d.admit(SessionId(4), "a", Role::Publisher, w, client(3))
            .expect("the reserved slot");
    }

    #[test]
    fn handshakes_in_progress_are_capped_and_freed_on_connect_or_close() {
        let d = Directory::new(Limits {
            max_pending: 3,
            max_pending_per_stream: 2,
            max_pending_per_address: 1,
            max_per_address: 2,
            ..Limits::sessions(100)
        });
        let w = WorkerId(0);
        d.admit(SessionId(1), "a", Role::Viewer, w, client(1))
            .unwrap();
        assert!(matches!(
            d.admit(SessionId(2), "b", Role::Viewer, w, client(1)),
            Err(SfuError::TooMany(_))
        ));
        d.admit(SessionId(3), "a", Role::Viewer, w, client(2))
            .unwrap();
        assert!(
            matches!(
                d.admit(SessionId(4), "a", Role::Viewer, w, client(3)),
                Err(SfuError::Overloaded(_))
            ),
            "two handshakes on the stream"
        );
        d.admit(SessionId(5), "b", Role::Viewer, w, client(3))
            .unwrap();
        assert!(
            matches!(
                d.admit(SessionId(6), "c", Role::Viewer, w, client(4)),
                Err(SfuError::Overloaded(_))
            ),
            "three handshakes on the node"
        );
        // Publishers are not held up by viewers' handshakes.
        d.admit(SessionId(7), "c", Role::Publisher, w, client(4))
            .unwrap();
        // A connected viewer no longer counts as pending; a closed one not at all.
        d.connected(SessionId(1));
        d.connected(SessionId(1));
        d.admit(SessionId(8), "a", Role::Viewer, w, client(1))
            .unwrap();
        d.connected(SessionId(8));
        assert!(
            matches!(
                d.admit(SessionId(9), "c", Role::Viewer, w, client(1)),
                Err(SfuError::TooMany(_))
            ),
            "two sessions from the address"
        );
        d.release(SessionId(3));
        d.admit(SessionId(10), "a", Role::Viewer, w, client(4))
            .unwrap();
        for id in [1, 5, 7, 8, 10] {
            d.release(SessionId(id));
        }
        let g = d.lock();
        assert!(
            g.clients.is_empty(),
            "no client entry outlives its sessions"
        );
        assert_eq!((g.viewers.sessions, g.viewers.pending), (0, 0));
        assert!(g.streams.is_empty());
    }

    #[test]
    fn ipv6_clients_count_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(Client::new(a), Client::new(b));
        assert_ne!(Client::new(a), Client::new(c));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(Client::new(mapped), client(1).unwrap());
    }

    #[test]
    fn the_summary_counts_viewers_waiting_and_listed_keyframe_intervals() {
        let d = Directory::default();
        let w = WorkerId(0);
        let live = d
            .admit(SessionId(1), "live", Role::Publisher, w, None)
            .unwrap();
        d.admit(SessionId(2), "live", Role::Viewer, w, client(1))
            .unwrap();
        d.admit(SessionId(3), "early", Role::Viewer, w, client(2))
            .unwrap();
        d.admit(SessionId(4), "early", Role::Viewer, w, client(3))
            .unwrap();
        d.set_active(live, true);
        d.set_listed("live", true);
        d.set_keyframe_interval(live, Duration::from_secs(2));
        let s = d.summary();
        assert_eq!(s.waiting, [(1, 2), (0, 0)], "{s:?}");
        assert_eq!(
            s.keyframe_intervals,
            [("live".to_string(), Duration::from_secs(2))]
        );
        // The publisher goes: its viewer waits too; an unlisted stream's interval is not told.
        d.set_active(live, false);
        d.set_listed("live", false);
        let s = d.summary();
        assert_eq!(s.waiting, [(1, 2), (1, 1)], "one not live yet, one gone");
        assert!(s.keyframe_intervals.is_empty());
        assert_eq!(s.unlisted_viewers, 3);
    }

    #[test]
    fn publishing_lists_the_local_publishers_that_send_and_ingesting_a_standby_in_charge() {
        let d = Directory::default();
        let w = WorkerId(0);
        let a = d
            .admit(SessionId(1), "a", Role::Publisher, w, None)
            .unwrap();
        let b = d
            .admit(SessionId(2), "b", Role::Publisher, w, None)
            .unwrap();
        d.admit(SessionId(3), "c", Role::Publisher, w, None)
            .unwrap();
        d.admit(SessionId(4), "d", Role::Viewer, w, client(1))
            .unwrap();
        d.set_active(a, true);
        d.set_active(b, true);
        d.set_backup_ingest("b", true);
        let mut live = d.publishing();
        live.sort_by(|x, y| x.0.cmp(&y.0));
        // "c" has a publisher that sends nothing yet; "d" only a viewer.
        assert_eq!(
            live,
            [
                ("a".to_string(), Ingest::Primary),
                ("b".into(), Ingest::Backup)
            ]
        );
        // What is recorded here: the primary, and the standby only while it is in charge
        // (still a standby as the cluster sees it).
        assert_eq!(d.ingesting(), ["a".to_string()]);
        d.set_standby_in_charge("b", true);
        let mut ingesting = d.ingesting();
        ingesting.sort();
        assert_eq!(ingesting, ["a", "b"]);
        assert!(d.publishing().contains(&("b".into(), Ingest::Backup)));
        d.set_standby_in_charge("b", false);
        assert_eq!(d.ingesting(), ["a".to_string()]);
        d.set_active(a, false);
        assert_eq!(d.publishing(), [("b".to_string(), Ingest::Backup)]);
        // A new publish (the stream's entry kept by a viewer in between) starts as no
        // standby in charge.
        d.set_standby_in_charge("b", true);
        d.admit(SessionId(9), "b", Role::Viewer, w, client(2))
            .unwrap();
        d.release(SessionId(2));
        let b = d
            .admit(SessionId(10), "b", Role::Publisher, w, None)
            .unwrap();
        d.set_active(b, true);
        d.set_backup_ingest("b", true);
        assert!(d.ingesting().is_empty());
    }

    #[test]
    fn cues_reach_the_streams_status_numbered_and_bounded() {
        let d = Directory::new(Limits::sessions(10));
        let cue = |event: &str| Cue {
            seq: 0,
            event: event.into(),
            data: "{}".into(),
            until_ms: 0,
            exempt: Arc::default(),
        };
        assert!(!d.cue("a", cue("adbreak")), "no such stream here");
        d.admit(SessionId(1), "a", Role::Viewer, WorkerId(0), None)
            .unwrap();
        let mut rx = d.watch("a").unwrap();
        rx.borrow_and_update();
        assert!(d.cue("a", cue("adbreak")));
        assert!(rx.has_changed().unwrap(), "its viewers' feeds wake");
        for _ in 0..CUES_KEPT + 2 {
            d.cue("a", cue("sponsor"));
        }
        let cues = rx.borrow_and_update().cues.clone();
        assert_eq!(cues.len(), CUES_KEPT);
        assert!(cues.windows(2).all(|w| w[0].seq < w[1].seq));
        assert_eq!(cues.last().unwrap().seq, (CUES_KEPT + 3) as u64);
        d.set_joined(SessionId(1), Duration::from_millis(300));
        assert!(d.viewer_sessions().is_empty(), "not connected yet");
        d.connected(SessionId(1));
        assert_eq!(
            d.viewer_sessions(),
            [(
                SessionId(1),
                "a".to_owned(),
                Some(Duration::from_millis(300))
            )]
        );
    }

    #[test]
    fn only_listed_streams_are_listed() {
        let d = Directory::default();
        let w = WorkerId(0);
        d.admit(SessionId(1), "public", Role::Publisher, w, None)
            .unwrap();
        d.admit(SessionId(2), "private", Role::Publisher, w, None)
            .unwrap();
        d.admit(SessionId(3), "private", Role::Viewer, w, client(1))
            .unwrap();
        assert!(
            d.list().is_empty(),
            "unlisted until the publisher's grant says"
        );
        d.set_listed("public", true);
        d.set_listed("private", false);
        let names: Vec<_> = d.list().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["public"]);
        assert_eq!(d.summary().unlisted_viewers, 1);
        // A new publish of the same name starts unlisted again.
        d.release(SessionId(1));
        d.admit(SessionId(4), "public", Role::Publisher, w, None)
            .unwrap();
        d.admit(SessionId(5), "public", Role::Viewer, w, None)
            .unwrap();
        assert!(d.list().is_empty());
    }
}
