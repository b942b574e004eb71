//! str0m-based WHIP publisher and WHEP viewer for tests: real ICE, DTLS and SRTP over
//! loopback UDP (or, for a viewer, over ICE-TCP alone), driven from the test thread.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{
    Direction, Frequency, MediaKind, MediaTime, Mid, Pt, Rid, Simulcast, SimulcastLayer,
};
use str0m::net::{Protocol, Receive, TcpType};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};

pub struct Peer {
    pub rtc: Rtc,
    link: Link,
    timeout: Instant,
    pub connected: bool,
    pub location: Option<String>,
    pub received: Vec<Received>,
    pub keyframe_requests: Vec<Option<Rid>>,
    mids: Vec<(MediaKind, Mid)>,
    /// Drops this share of incoming RTP/RTCP once connected (seeded), to force NACKs.
    pub loss: Option<(f64, u64)>,
    pub dropped: usize,
    /// The open data channel, and the text it received.
    pub channel: Option<str0m::channel::ChannelId>,
    pub channel_texts: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Received {
    pub kind: MediaKind,
    /// Its payload type.
    pub pt: u8,
    pub seq: u64,
    pub ts: u32,
    /// The RTP marker bit (a video frame's last packet).
    pub marker: bool,
    pub payload: Vec<u8>,
    /// When it arrived.
    pub at: Instant,
}

/// How a peer reaches the node.
enum Link {
    /// Its UDP socket, its one ICE candidate.
    Udp(UdpSocket),
    /// ICE-TCP alone (RFC 6544, active side): connected to the node's passive candidate
    /// once the answer names it; packets framed as RFC 4571 says.
    Tcp(Option<TcpLink>),
}

struct TcpLink {
    stream: TcpStream,
    local: SocketAddr,
    remote: SocketAddr,
    /// Bytes read and not yet a whole frame.
    inbox: Vec<u8>,
    /// Framed bytes not yet taken by the kernel.
    outbox: Vec<u8>,
    /// The node closed the connection.
    closed: bool,
}

impl TcpLink {
    fn connect(remote: SocketAddr) -> TcpLink {
        let stream = TcpStream::connect(remote).unwrap();
        stream.set_nonblocking(true).unwrap();
        stream.set_nodelay(true).unwrap();
        TcpLink {
            local: stream.local_addr().unwrap(),
            stream,
            remote,
            inbox: Vec::new(),
            outbox: Vec::new(),
            closed: false,
        }
    }

    fn send(&mut self, data: &[u8]) {
        self.outbox
            .extend_from_slice(&(data.len() as u16).to_be_bytes());
        self.outbox.extend_from_slice(data);
        self.flush();
    }

    fn flush(&mut self) {
        while !self.outbox.is_empty() {
            match self.stream.write(&self.outbox) {
                Ok(n) if n > 0 => drop(self.outbox.drain(..n)),
                _ => return,
            }
        }
    }

    /// Whole frames read so far.
    fn read_frames(&mut self) -> Vec<Vec<u8>> {
        let mut buf = [0u8; 8192];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    self.closed = true;
                    break;
                }
                Ok(n) => self.inbox.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.closed = true;
                    break;
                }
            }
        }
        let mut frames = Vec::new();
        while self.inbox.len() >= 2 {
            let len = usize::from(u16::from_be_bytes([self.inbox[0], self.inbox[1]]));
            if self.inbox.len() < 2 + len {
                break;
            }
            frames.push(self.inbox[2..2 + len].to_vec());
            self.inbox.drain(..2 + len);
        }
        frames
    }
}

/// The `ip port` of the passive TCP candidate in an SDP answer.
pub fn tcp_candidate(sdp: &str) -> Option<SocketAddr> {
    sdp.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let passive = l.ends_with("tcptype passive") || l.contains(" tcptype passive ");
        if !l.starts_with("a=candidate:") || !f.get(2)?.eq_ignore_ascii_case("tcp") || !passive {
            return None;
        }
        Some(SocketAddr::new(
            f.get(4)?.parse().ok()?,
            f.get(5)?.parse().ok()?,
        ))
    })
}

impl Peer {
    /// A peer whose UDP socket (its one ICE candidate) is on `ip`.
    fn new_at(ip: IpAddr) -> Peer {
        Peer::with_config(ip, RtcConfig::new().set_rtp_mode(true))
    }

    /// A peer on `ip` built from `config` (RTP mode unless [`Peer::frame_publisher`]).
    fn with_config(ip: IpAddr, config: RtcConfig) -> Peer {
        let socket = UdpSocket::bind((ip, 0)).unwrap();
        socket.set_nonblocking(true).unwrap();
        let c = Candidate::host(socket.local_addr().unwrap(), Protocol::Udp).unwrap();
        let mut p = Peer::on_with(Link::Udp(socket), config);
        p.rtc.add_local_candidate(c);
        p
    }

    fn on(link: Link) -> Peer {
        Peer::on_with(link, RtcConfig::new().set_rtp_mode(true))
    }

    fn on_with(link: Link, config: RtcConfig) -> Peer {
        Peer {
            rtc: config.build(Instant::now()),
            link,
            timeout: Instant::now(),
            connected: false,
            location: None,
            received: Vec::new(),
            keyframe_requests: Vec::new(),
            mids: Vec::new(),
            loss: None,
            dropped: 0,
            channel: None,
            channel_texts: Vec::new(),
        }
    }

    /// A publisher offering VP8 simulcast with `rids` (one plain layer with none) plus Opus.
    pub fn publisher(rids: &[&str]) -> (Peer, String, SdpPendingOffer) {
        Peer::publisher_at(Ipv4Addr::LOCALHOST.into(), rids)
    }

    /// A publisher as [`Peer::publisher`], its socket on `ip`.
    pub fn publisher_at(ip: IpAddr, rids: &[&str]) -> (Peer, String, SdpPendingOffer) {
        Peer::publisher_on(Peer::new_at(ip), rids)
    }

    /// A publisher as [`Peer::publisher`] that reaches the node over ICE-TCP alone.
    pub fn publisher_over_tcp(rids: &[&str]) -> (Peer, String, SdpPendingOffer) {
        Peer::publisher_on(Peer::on(Link::Tcp(None)), rids)
    }

    fn publisher_on(mut p: Peer, rids: &[&str]) -> (Peer, String, SdpPendingOffer) {
        let mut api = p.rtc.sdp_api();
        let mut sim = Simulcast::new();
        for r in rids {
            sim.add_send_layer(SimulcastLayer::new(r));
        }
        let a = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        // No RIDs: one video layer, no simulcast (as OBS or a browser without it sends).
        let sim = (!rids.is_empty()).then_some(sim);
        let v = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, sim);
        let (offer, pending) = api.apply().unwrap();
        p.mids = vec![(MediaKind::Audio, a), (MediaKind::Video, v)];
        (p, offer.to_sdp_string(), pending)
    }

    /// A publisher as [`Peer::publisher`] (one video layer) in str0m's frame mode: str0m
    /// packetizes the frames [`Peer::write_frame`] gives it.
    pub fn frame_publisher() -> (Peer, String, SdpPendingOffer) {
        Peer::publisher_on(
            Peer::with_config(Ipv4Addr::LOCALHOST.into(), RtcConfig::new()),
            &[],
        )
    }

    /// Writes one frame of `codec` at `rtp_time` (a frame-mode publisher's).
    pub fn write_frame(&mut self, codec: Codec, rtp_time: u64, frame: &[u8]) {
        let kind = if codec == Codec::Opus {
            MediaKind::Audio
        } else {
            MediaKind::Video
        };
        let (pt, mid) = (self.pt(codec), self.mid(kind));
        let clock = if codec == Codec::Opus {
            Frequency::FORTY_EIGHT_KHZ
        } else {
            Frequency::NINETY_KHZ
        };
        let time = MediaTime::new(rtp_time, clock);
        let writer = self.rtc.writer(mid).expect("a send stream");
        writer
            .write(pt, Instant::now(), time, frame.to_vec())
            .unwrap();
        self.drain();
    }

    /// A viewer receiving audio and video.
    pub fn viewer() -> (Peer, String, SdpPendingOffer) {
        Peer::viewer_with(Ipv4Addr::LOCALHOST.into(), false)
    }

    /// A viewer as [`Peer::viewer`], its socket on `ip`.
    pub fn viewer_at(ip: IpAddr) -> (Peer, String, SdpPendingOffer) {
        Peer::viewer_with(ip, false)
    }

    /// A viewer receiving audio and video, with a data channel in its offer.
    pub fn viewer_with_channel() -> (Peer, String, SdpPendingOffer) {
        Peer::viewer_with(Ipv4Addr::LOCALHOST.into(), true)
    }

    /// A viewer whose offer has RED for Opus, as browsers' do.
    pub fn viewer_with_red() -> (Peer, String, SdpPendingOffer) {
        let config = RtcConfig::new().set_rtp_mode(true).enable_opus(true, true);
        Peer::viewer_on(Peer::with_config(Ipv4Addr::LOCALHOST.into(), config), false)
    }

    /// A viewer that reaches the node over ICE-TCP alone: no UDP candidate, a TCP
    /// connection to the node's passive candidate once the answer names it.
    pub fn viewer_over_tcp() -> (Peer, String, SdpPendingOffer) {
        Peer::viewer_on(Peer::on(Link::Tcp(None)), false)
    }

    /// Whether the node closed this viewer's TCP connection.
    pub fn tcp_closed(&self) -> bool {
        matches!(&self.link, Link::Tcp(Some(t)) if t.closed)
    }

    fn viewer_with(ip: IpAddr, channel: bool) -> (Peer, String, SdpPendingOffer) {
        Peer::viewer_on(Peer::new_at(ip), channel)
    }

    fn viewer_on(mut p: Peer, channel: bool) -> (Peer, String, SdpPendingOffer) {
        let mut api = p.rtc.sdp_api();
        let a = api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        let v = api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        if channel {
            api.add_channel("chat".into());
        }
        let (offer, pending) = api.apply().unwrap();
        p.mids = vec![(MediaKind::Audio, a), (MediaKind::Video, v)];
        (p, offer.to_sdp_string(), pending)
    }

    /// POSTs the offer; on 201 applies the answer.
    pub fn connect(
        &mut self,
        http: &reqwest::blocking::Client,
        url: &str,
        offer: String,
        pending: SdpPendingOffer,
    ) {
        self.connect_as(http, url, offer, pending, None)
    }

    /// POSTs the offer with a bearer credential; on 201 applies the answer.
    pub fn connect_as(
        &mut self,
        http: &reqwest::blocking::Client,
        url: &str,
        offer: String,
        pending: SdpPendingOffer,
        bearer: Option<&str>,
    ) {
        let mut req = http.post(url).header("content-type", "application/sdp");
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        let resp = req.body(offer).send().unwrap();
        let status = resp.status();
        self.location = resp
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string());
        let text = resp.text().unwrap();
        assert_eq!(status, 201, "POST {url}: {text}");
        let answer = SdpAnswer::from_sdp_string(&text).unwrap();
        self.rtc.sdp_api().accept_answer(pending, answer).unwrap();
        if let Link::Tcp(link @ None) = &mut self.link {
            let remote = tcp_candidate(&text).expect("a passive TCP candidate in the answer");
            let l = TcpLink::connect(remote);
            let c = Candidate::builder()
                .tcp()
                .host(l.local)
                .tcptype(TcpType::Active)
                .build()
                .unwrap();
            *link = Some(l);
            self.rtc.add_local_candidate(c);
        }
        self.drain();
    }

    fn drain(&mut self) {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.timeout = t;
                    return;
                }
                Ok(Output::Transmit(t)) => match &mut self.link {
                    Link::Udp(s) => {
                        let _ = s.send_to(&t.contents, t.destination);
                    }
                    Link::Tcp(Some(l)) if t.proto == Protocol::Tcp => l.send(&t.contents),
                    Link::Tcp(_) => {}
                },
                Ok(Output::Event(e)) => match e {
                    Event::Connected => self.connected = true,
                    Event::RtpPacket(p) => {
                        let pt = p.header.payload_type;
                        let kind = if pt == self.pt(Codec::Opus) || Some(pt) == self.red_pt() {
                            MediaKind::Audio
                        } else {
                            MediaKind::Video
                        };
                        self.received.push(Received {
                            kind,
                            pt: *pt,
                            seq: *p.seq_no,
                            ts: p.header.timestamp,
                            marker: p.header.marker,
                            payload: p.payload.to_vec(),
                            at: Instant::now(),
                        })
                    }
                    Event::KeyframeRequest(r) => self.keyframe_requests.push(r.rid),
                    Event::ChannelOpen(id, _) => self.channel = Some(id),
                    Event::ChannelData(d) if !d.binary => {
                        self.channel_texts
                            .push(String::from_utf8_lossy(&d.data).into_owned());
                    }
                    _ => {}
                },
                Err(e) => panic!("peer failed: {e}"),
            }
        }
    }

    /// Sends text on the open data channel.
    pub fn send_text(&mut self, text: &str) {
        let id = self.channel.expect("the data channel is open");
        if let Some(mut ch) = self.rtc.channel(id) {
            ch.write(false, text.as_bytes()).unwrap();
        }
        self.drain();
    }

    /// Ends the session from this side (RTCP BYE, DTLS close_notify) and sends that now.
    pub fn hang_up(&mut self) {
        self.rtc.close().unwrap();
        self.drain();
    }

    /// Reads what arrived and runs timers.
    pub fn poll(&mut self) {
        for (proto, from, local, data) in self.read_link() {
            if self.lose(&data) {
                continue;
            }
            if let Ok(r) = Receive::new(proto, from, local, &data) {
                self.rtc
                    .handle_input(Input::Receive(Instant::now(), r))
                    .unwrap();
                self.drain();
            }
        }
        let now = Instant::now();
        if self.timeout <= now {
            self.rtc.handle_input(Input::Timeout(now)).unwrap();
            self.drain();
        }
    }

    /// The packets that arrived: (protocol, from, to, bytes).
    fn read_link(&mut self) -> Vec<(Protocol, SocketAddr, SocketAddr, Vec<u8>)> {
        match &mut self.link {
            Link::Udp(s) => {
                let local = s.local_addr().unwrap();
                let mut buf = [0u8; 2048];
                let mut out = Vec::new();
                while let Ok((n, from)) = s.recv_from(&mut buf) {
                    out.push((Protocol::Udp, from, local, buf[..n].to_vec()));
                }
                out
            }
            Link::Tcp(Some(l)) => {
                l.flush();
                let (from, local) = (l.remote, l.local);
                l.read_frames()
                    .into_iter()
                    .map(|f| (Protocol::Tcp, from, local, f))
                    .collect()
            }
            Link::Tcp(None) => Vec::new(),
        }
    }

    /// Whether the configured loss drops this packet: reproducible, media only (first
    /// byte 128..=191), once connected.
    fn lose(&mut self, data: &[u8]) -> bool {
        let Some((p, seed)) = self.loss.as_mut() else {
            return false;
        };
        // xorshift
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        let media = data.first().is_some_and(|b| (128..=191).contains(b));
        if self.connected && media && (*seed % 1000) as f64 / 1000.0 < *p {
            self.dropped += 1;
            return true;
        }
        false
    }

    pub fn pt(&self, codec: Codec) -> Pt {
        self.rtc
            .codec_config()
            .params()
            .iter()
            .find(|p| p.spec().codec == codec)
            .map(|p| p.pt())
            .expect("codec configured")
    }

    /// The codec that payload type `pt` names in this peer's session.
    pub fn codec_of(&self, pt: u8) -> Option<Codec> {
        self.rtc
            .codec_config()
            .params()
            .iter()
            .find(|p| p.pt() == pt.into())
            .map(|p| p.spec().codec)
    }

    /// The payload type of RED for Opus, if this peer offered it.
    pub fn red_pt(&self) -> Option<Pt> {
        self.rtc
            .codec_config()
            .params()
            .iter()
            .find(|p| p.spec().codec == Codec::Opus)
            .and_then(|p| p.red())
    }

    pub fn mid(&self, kind: MediaKind) -> Mid {
        self.mids
            .iter()
            .find(|(k, _)| *k == kind)
            .expect("media of that kind")
            .1
    }

    /// Writes one RTP packet on (mid, rid).
    pub fn send(&mut self, mid: Mid, rid: Option<&str>, write: RtpWrite) {
        let mut api = self.rtc.direct_api();
        let tx = api
            .stream_tx_by_mid(mid, rid.map(Rid::from))
            .expect("a send stream for the rid");
        tx.write_rtp(write);
        self.drain();
    }
}

/// Polls every peer until `done` or the deadline; returns whether `done` held.
pub fn pump(
    peers: &mut [&mut Peer],
    within: Duration,
    mut done: impl FnMut(&[&mut Peer]) -> bool,
) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        for p in peers.iter_mut() {
            p.poll();
        }
        if done(peers) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

/// Counts per key, a helper for assertions.
pub fn histogram<K: std::hash::Hash + Eq>(items: impl Iterator<Item = K>) -> HashMap<K, usize> {
    let mut m = HashMap::new();
    for k in items {
        *m.entry(k).or_insert(0) += 1;
    }
    m
}

/// A peer with its offer, not yet POSTed.
pub type Offered = (Peer, String, SdpPendingOffer);

/// `publ` POSTed to `whip` and `viewer` to `whep` (paths on `server`), both connected.
pub fn connect_both(
    server: &crate::server::Server,
    publ: Offered,
    viewer: Offered,
    whip: &str,
    whep: &str,
) -> (Peer, Peer) {
    connect_across(server, server, publ, viewer, whip, whep)
}

/// `publ` POSTed to `whip` on `to_publish` and `viewer` to `whep` on `to_watch` (two
/// nodes of a tree, or one), both connected.
pub fn connect_across(
    to_publish: &crate::server::Server,
    to_watch: &crate::server::Server,
    publ: Offered,
    viewer: Offered,
    whip: &str,
    whep: &str,
) -> (Peer, Peer) {
    let http = to_publish.http();
    let (mut publ, offer, pending) = publ;
    publ.connect(&http, &to_publish.url(whip), offer, pending);
    let (mut viewer, offer, pending) = viewer;
    viewer.connect(&http, &to_watch.url(whep), offer, pending);
    assert!(
        pump(
            &mut [&mut publ, &mut viewer],
            Duration::from_secs(10),
            |p| p.iter().all(|p| p.connected)
        ),
        "the publisher and the viewer connect"
    );
    (publ, viewer)
}

/// A publisher offering `rids` and a viewer, connected to `whip` and `whep`.
pub fn connected_pair(
    server: &crate::server::Server,
    rids: &[&str],
    whip: &str,
    whep: &str,
) -> (Peer, Peer) {
    connect_both(server, Peer::publisher(rids), Peer::viewer(), whip, whep)
}
