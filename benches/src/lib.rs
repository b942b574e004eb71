//! Fixtures for the benchmarks: viewers connected to real `sfu` sessions entirely in
//! memory (str0m on both ends, datagrams handed across by hand), and the floor: the same
//! bytes copied, rewritten, sealed with AES-128-GCM and sent with `sendmmsg`.

pub mod pictures;

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sfu::codec::Codec;
use sfu::forward::layers::{EncodingInfo, LayerTable};
use sfu::forward::{Consumer, Kind, LayerPref, MediaPacket, SourceKey};
use sfu::ids::{SessionId, StreamId};
use sfu::router::{Endpoint, Outputs, Router};
use sfu::session::{Effect, OpenParams, Session, Transmitter};
use sfu::Role;
use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Input, Output, Rtc, RtcConfig};

/// The stream every fixture uses.
pub const STREAM: StreamId = StreamId(1);
/// Its publisher (generation 1), a session on the same worker.
pub const PUBLISHER: Endpoint = Endpoint::Session(SessionId(u64::MAX));

/// A router with `n` viewers (sessions `1..=n`, fixed origins) of [`STREAM`], whose
/// source is [`PUBLISHER`].
pub fn router_with_viewers(n: usize) -> (Router, Outputs) {
    let mut router = Router::default();
    let mut out = Outputs::default();
    router.set_source(STREAM, PUBLISHER, 1);
    for i in 0..n {
        router.add_viewer(
            SessionId(i as u64 + 1),
            STREAM,
            [100, 200],
            [1000, 2000],
            Instant::now(),
            &mut out,
        );
    }
    out.upstream.clear();
    (router, out)
}

/// Collects datagrams instead of sending them.
#[derive(Default)]
pub struct Collect {
    /// (destination, bytes)
    pub out: Vec<(SocketAddr, Vec<u8>)>,
}

impl Transmitter for Collect {
    fn send(&mut self, to: SocketAddr, data: &[u8]) {
        self.out.push((to, data.to_vec()));
    }
}

/// A VP8 packet of `size` bytes from encoding 0 of publisher generation 1.
pub fn vp8_packet(
    seq: u64,
    keyframe: bool,
    size: usize,
    table: &Arc<LayerTable>,
) -> Arc<MediaPacket> {
    vp8_packet_on(0, seq, keyframe, size, table)
}

/// A VP8 packet of `size` bytes from `encoding` of publisher generation 1.
pub fn vp8_packet_on(
    encoding: u8,
    seq: u64,
    keyframe: bool,
    size: usize,
    table: &Arc<LayerTable>,
) -> Arc<MediaPacket> {
    let mut payload = vec![
        0x90,
        0xe0,
        0x80,
        (seq / 3) as u8,
        0x01,
        0x00,
        u8::from(!keyframe),
    ];
    payload.resize(size, 0xab);
    Arc::new(MediaPacket {
        kind: Kind::Video,
        source: SourceKey {
            generation: 1,
            encoding,
        },
        codec: Codec::Vp8,
        seq,
        ts: (seq as u32 / 3) * 3000,
        marker: seq % 3 == 2,
        keyframe,
        payload: Arc::from(payload),
        arrival: Instant::now(),
        layers: Some(table.clone()),
        temporal: None,
    })
}

/// A settled one-layer table for generation 1.
pub fn one_layer() -> Arc<LayerTable> {
    Arc::new(LayerTable {
        generation: 1,
        active: vec![EncodingInfo {
            encoding: 0,
            rid: None,
            bitrate_bps: 1_000_000,
            temporal: Vec::new(),
        }],
        settled: true,
    })
}

/// A settled two-layer table for generation 1 (encoding 0 low, 1 high).
pub fn two_layers() -> Arc<LayerTable> {
    Arc::new(LayerTable {
        generation: 1,
        active: vec![
            EncodingInfo {
                encoding: 0,
                rid: None,
                bitrate_bps: 300_000,
                temporal: Vec::new(),
            },
            EncodingInfo {
                encoding: 1,
                rid: None,
                bitrate_bps: 1_000_000,
                temporal: Vec::new(),
            },
        ],
        settled: true,
    })
}

/// A consumer with fixed origins.
pub fn consumer() -> Consumer {
    Consumer::new(LayerPref::Auto, [100, 200], [1000, 2000])
}

/// Viewer sessions on the node side with their str0m clients, connected in memory.
pub struct Viewers {
    /// The node's sessions, session id `i + 1` at index `i`.
    pub sessions: Vec<Session>,
    clients: Vec<(Rtc, SocketAddr)>,
    server_addr: SocketAddr,
}

impl Viewers {
    /// Lets every client send what is due (ICE consent checks) and delivers the node's
    /// replies: ICE-lite drops a pair after 15 s without a binding request, and setting up
    /// a thousand handshakes takes longer than that.
    pub fn keepalive(&mut self) {
        let mut effects = Vec::new();
        for (session, (client, addr)) in self.sessions.iter_mut().zip(self.clients.iter_mut()) {
            let now = Instant::now();
            let mut to_client = Collect::default();
            exchange(
                session,
                client,
                *addr,
                self.server_addr,
                now,
                &mut to_client,
                &mut effects,
            );
        }
    }
}

/// One round: the client's due output to the session, the session's output back.
fn exchange(
    session: &mut Session,
    client: &mut Rtc,
    client_addr: SocketAddr,
    server_addr: SocketAddr,
    now: Instant,
    to_client: &mut Collect,
    effects: &mut Vec<Effect>,
) -> bool {
    client.handle_input(Input::Timeout(now)).unwrap();
    let mut to_server = Vec::new();
    loop {
        match client.poll_output().unwrap() {
            Output::Timeout(_) => break,
            Output::Transmit(t) => to_server.push(t.contents.to_vec()),
            Output::Event(_) => {}
        }
    }
    session.handle_input(Input::Timeout(now), to_client, effects);
    for d in &to_server {
        let r = Receive::new(Protocol::Udp, client_addr, server_addr, d).unwrap();
        session.handle_input(Input::Receive(now, r), to_client, effects);
    }
    for (_, d) in &to_client.out {
        let r = Receive::new(Protocol::Udp, server_addr, client_addr, d).unwrap();
        client.handle_input(Input::Receive(now, r)).unwrap();
    }
    !(to_server.is_empty() && to_client.out.is_empty())
}

/// `n` viewer sessions on the node side, each connected (ICE-lite, DTLS, SRTP) to a str0m
/// client in memory, without bandwidth estimation.
pub fn connected_viewers(n: usize) -> Viewers {
    connected_viewers_with(n, None)
}

/// The same, with the viewers' bandwidth estimation starting at `bwe` bits per second.
pub fn connected_viewers_with(n: usize, bwe: Option<u64>) -> Viewers {
    let server_addr: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    let params = OpenParams {
        local: server_addr,
        tcp: None,
        rtx_cache_packets: 1024,
        keyframe_throttle: Duration::from_millis(100),
        viewer_bwe: bwe,
    };
    let mut sessions = Vec::with_capacity(n);
    let mut clients = Vec::with_capacity(n);
    for i in 0..n {
        // The wall clock throughout: sessions must not run ahead of the time the
        // benchmark later writes with. Nothing is lost in memory, so no timer is awaited.
        let now = Instant::now();
        let client_addr = SocketAddr::from(([127, 0, 0, 2], 1000 + (i % 60000) as u16));
        let mut client = RtcConfig::new().set_rtp_mode(true).build(now);
        client.add_local_candidate(Candidate::host(client_addr, Protocol::Udp).unwrap());
        let mut api = client.sdp_api();
        api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let (offer, pending) = api.apply().unwrap();
        let id = SessionId(i as u64 + 1);
        let (mut session, answer) = Session::open(
            id,
            STREAM,
            Role::Viewer,
            &offer.to_sdp_string(),
            params,
            now,
        )
        .unwrap();
        client
            .sdp_api()
            .accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap())
            .unwrap();
        let mut effects = Vec::new();
        let deadline = now + Duration::from_secs(5);
        while !session.is_connected() && Instant::now() < deadline {
            let mut to_client = Collect::default();
            let now = Instant::now();
            if !exchange(
                &mut session,
                &mut client,
                client_addr,
                server_addr,
                now,
                &mut to_client,
                &mut effects,
            ) {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        assert!(session.is_connected(), "viewer {i} connected in memory");
        effects.retain(|e| !matches!(e, Effect::Connected(_)));
        sessions.push(session);
        clients.push((client, client_addr));
    }
    Viewers {
        sessions,
        clients,
        server_addr,
    }
}

/// The floor: a loopback socket pair and an AES-128-GCM key.
pub struct Floor {
    socket: UdpSocket,
    sink: SocketAddr,
    _sink_socket: UdpSocket,
    key: aws_lc_rs::aead::LessSafeKey,
    bufs: Vec<Vec<u8>>,
}

impl Floor {
    /// Binds the sockets; the sink never reads (the kernel drops what overflows).
    pub fn new() -> Floor {
        let sink_socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sink = sink_socket.local_addr().unwrap();
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_nonblocking(true).unwrap();
        let unbound =
            aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_128_GCM, &[7u8; 16]).unwrap();
        Floor {
            socket,
            sink,
            _sink_socket: sink_socket,
            key: aws_lc_rs::aead::LessSafeKey::new(unbound),
            bufs: Vec::new(),
        }
    }

    /// Copies `payload` behind a rewritten 12-byte RTP header, seals it as SRTP AEAD does
    /// (header as associated data, 16-byte tag), for `n` receivers; returns the datagrams.
    pub fn protect(&mut self, payload: &[u8], n: usize) -> usize {
        self.bufs.resize_with(n, Vec::new);
        for (i, buf) in self.bufs.iter_mut().enumerate() {
            buf.clear();
            let seq = (i as u16).wrapping_mul(7);
            let header = [
                0x80,
                96,
                (seq >> 8) as u8,
                seq as u8,
                0,
                0,
                0x0b,
                0xb8,
                0,
                0,
                0,
                i as u8,
            ];
            buf.extend_from_slice(&header);
            buf.extend_from_slice(payload);
            let mut nonce = [0u8; 12];
            nonce[8..].copy_from_slice(&(i as u32).to_be_bytes());
            let (head, body) = buf.split_at_mut(12);
            let tag = self
                .key
                .seal_in_place_separate_tag(
                    aws_lc_rs::aead::Nonce::assume_unique_for_key(nonce),
                    aws_lc_rs::aead::Aad::from(&head[..]),
                    body,
                )
                .unwrap();
            buf.extend_from_slice(tag.as_ref());
        }
        n
    }

    /// Sends the last `protect`ed datagrams with `sendmmsg`, in batches of up to 64.
    pub fn send_all(&mut self) -> usize {
        send_mmsg(&self.socket, self.sink, self.bufs.iter().map(Vec::as_slice))
    }

    /// Sends arbitrary datagrams to the sink with `sendmmsg`.
    pub fn send_these<'a>(&self, datagrams: impl Iterator<Item = &'a [u8]>) -> usize {
        send_mmsg(&self.socket, self.sink, datagrams)
    }
}

impl Default for Floor {
    fn default() -> Self {
        Self::new()
    }
}

fn send_mmsg<'a>(
    socket: &UdpSocket,
    to: SocketAddr,
    datagrams: impl Iterator<Item = &'a [u8]>,
) -> usize {
    let all: Vec<&[u8]> = datagrams.collect();
    all.chunks(sfu::udp::BATCH)
        .map(|c| sfu::udp::send_mmsg(socket.as_raw_fd(), c.iter().map(|d| (to, *d))))
        .sum()
}

/// Sessions by position: session id `i + 1` at index `i`.
struct BySlot<'a>(&'a mut [Session]);

impl sfu::egress::Sessions for BySlot<'_> {
    fn session_mut(&mut self, id: SessionId) -> Option<&mut Session> {
        self.0.get_mut(usize::try_from(id.0).ok()?.checked_sub(1)?)
    }
}

/// The whole forwarding path for `n` connected viewers: the Router, then its forwards
/// written into the viewers' sessions by the worker's own `sfu::egress`.
pub struct Engine {
    router: Router,
    viewers: Viewers,
    table: Arc<LayerTable>,
    out: Outputs,
    unflushed: sfu::egress::Unflushed,
    effects: Vec<Effect>,
    /// The datagrams of the last pass, until [`Engine::clear`].
    pub collect: Collect,
    seq: u64,
}

impl Engine {
    /// `n` viewers, connected, on a stream whose first keyframe they already received.
    pub fn new(n: usize, payload: usize) -> Engine {
        Engine::with_bwe(n, payload, None)
    }

    /// The same, the viewers' bandwidth estimation starting at `bwe` bits per second.
    pub fn with_bwe(n: usize, payload: usize, bwe: Option<u64>) -> Engine {
        let table = one_layer();
        let (router, out) = router_with_viewers(n);
        let mut viewers = connected_viewers_with(n, bwe);
        viewers.keepalive();
        let mut e = Engine {
            router,
            viewers,
            table,
            out,
            unflushed: Default::default(),
            effects: Vec::new(),
            collect: Collect::default(),
            seq: 0,
        };
        e.forward_next(payload, true);
        e.clear();
        e
    }

    /// Forwards the next packet to every viewer (a loop turn of one packet); returns the
    /// datagrams produced.
    pub fn forward_next(&mut self, payload: usize, keyframe: bool) -> usize {
        self.seq += 1;
        let pkt = vp8_packet(self.seq, keyframe, payload, &self.table);
        self.write(&pkt, pkt.arrival);
        self.flush(pkt.arrival);
        self.collect.out.len()
    }

    /// Routes `pkt` and writes its forwards into the viewers' sessions, as the worker does
    /// for each packet of a loop turn.
    fn write(&mut self, pkt: &Arc<MediaPacket>, now: Instant) {
        self.router
            .route(STREAM, pkt, PUBLISHER, pkt.arrival, &mut self.out);
        sfu::egress::write_forwards(
            &mut self.out.forwards,
            &mut BySlot(&mut self.viewers.sessions),
            &mut (),
            pkt.arrival,
            now,
            &mut self.unflushed,
            &mut self.effects,
        );
    }

    /// Flushes the sessions written to, as the worker does at the end of a loop turn.
    fn flush(&mut self, now: Instant) {
        sfu::egress::flush_written(
            &mut self.unflushed,
            &mut BySlot(&mut self.viewers.sessions),
            now,
            &mut self.collect,
            &mut self.effects,
        );
    }

    /// Makes viewer 1 lose `n` packets (forwards `2n`, delivers every second one to its
    /// client), waits for the client's NACK timer, and returns what the client then sends
    /// the node: its NACKs, as SRTCP datagrams.
    pub fn lose(&mut self, n: usize, payload: usize) -> Vec<Vec<u8>> {
        let server_addr = self.viewers.server_addr;
        for i in 0..2 * n {
            self.collect.out.clear();
            self.forward_next(payload, false);
            if i % 2 == 1 {
                let now = Instant::now();
                let (client, addr) = &mut self.viewers.clients[0];
                for (to, d) in &self.collect.out {
                    if to == addr {
                        let r = Receive::new(Protocol::Udp, server_addr, *addr, d).unwrap();
                        client.handle_input(Input::Receive(now, r)).unwrap();
                    }
                }
            }
        }
        self.clear();
        let mut to_server = Vec::new();
        let until = Instant::now() + Duration::from_millis(60);
        let (client, _) = &mut self.viewers.clients[0];
        while Instant::now() < until {
            client.handle_input(Input::Timeout(Instant::now())).unwrap();
            loop {
                match client.poll_output().unwrap() {
                    Output::Timeout(_) => break,
                    Output::Transmit(t) => to_server.push(t.contents.to_vec()),
                    Output::Event(_) => {}
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        to_server
    }

    /// Hands viewer 1's datagrams to its node session; returns the datagrams the node
    /// sends back (the retransmissions).
    pub fn to_node(&mut self, datagrams: &[Vec<u8>]) -> usize {
        let now = Instant::now();
        let addr = self.viewers.clients[0].1;
        let session = &mut self.viewers.sessions[0];
        for d in datagrams {
            let r = Receive::new(Protocol::Udp, addr, self.viewers.server_addr, d).unwrap();
            session.handle_input(Input::Receive(now, r), &mut self.collect, &mut self.effects);
        }
        self.collect.out.len()
    }

    /// Forwards a frame of the next `frame` packets to every viewer as if they arrived at
    /// `now` (a virtual clock the caller moves), in one loop turn: all written, then the
    /// sessions flushed once; returns the datagrams produced.
    pub fn forward_frame_at(&mut self, payload: usize, frame: usize, now: Instant) -> usize {
        for _ in 0..frame {
            self.seq += 1;
            let mut pkt = vp8_packet(self.seq, false, payload, &self.table);
            Arc::get_mut(&mut pkt).expect("a fresh packet").arrival = now;
            self.write(&pkt, now);
        }
        self.flush(now);
        self.collect.out.len()
    }

    /// The clients' side at `now`: each takes the datagrams the node sent it since the last
    /// call, runs its timers, and what it sends back (its transport-wide feedback, receiver
    /// reports) is returned by viewer index.
    pub fn clients_at(&mut self, now: Instant) -> Vec<(usize, Vec<u8>)> {
        let server_addr = self.viewers.server_addr;
        for (to, d) in self.collect.out.drain(..) {
            let i = usize::from(to.port() - 1000);
            let (client, addr) = &mut self.viewers.clients[i];
            let r = Receive::new(Protocol::Udp, server_addr, *addr, &d).unwrap();
            let _ = client.handle_input(Input::Receive(now, r));
        }
        let mut back = Vec::new();
        for (i, (client, _)) in self.viewers.clients.iter_mut().enumerate() {
            let _ = client.handle_input(Input::Timeout(now));
            while let Ok(o) = client.poll_output() {
                match o {
                    Output::Timeout(_) => break,
                    Output::Transmit(t) => back.push((i, t.contents.to_vec())),
                    Output::Event(_) => {}
                }
            }
        }
        back
    }

    /// The node's side at `now` besides forwarding: the clients' datagrams handed to their
    /// sessions, then the timeout of every session due (as the worker's timers run them).
    pub fn node_at(&mut self, back: &[(usize, Vec<u8>)], now: Instant) {
        let server_addr = self.viewers.server_addr;
        for (i, d) in back {
            let addr = self.viewers.clients[*i].1;
            let r = Receive::new(Protocol::Udp, addr, server_addr, d).unwrap();
            self.viewers.sessions[*i].handle_input(
                Input::Receive(now, r),
                &mut self.collect,
                &mut self.effects,
            );
        }
        for s in &mut self.viewers.sessions {
            if s.next_timeout <= now {
                s.handle_input(Input::Timeout(now), &mut self.collect, &mut self.effects);
            }
        }
        self.effects.clear();
        self.out.upstream.clear();
    }

    /// Forgets the last pass's output.
    pub fn clear(&mut self) {
        self.collect.out.clear();
        self.effects.clear();
        self.out.upstream.clear();
    }
}
