//! str0m-based WHIP publisher and WHEP viewer for tests: real ICE, DTLS and SRTP over
//! loopback UDP, driven from the test thread.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid, Pt, Rid, Simulcast, SimulcastLayer};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};

pub struct Peer {
    pub rtc: Rtc,
    socket: UdpSocket,
    timeout: Instant,
    pub connected: bool,
    pub location: Option<String>,
    pub received: Vec<Received>,
    pub keyframe_requests: Vec<Option<Rid>>,
    mids: Vec<(MediaKind, Mid)>,
    /// Drops this share of incoming RTP/RTCP once connected (seeded), to force NACKs.
    pub loss: Option<(f64, u64)>,
    pub dropped: usize,
}

#[derive(Debug, Clone)]
pub struct Received {
    pub kind: MediaKind,
    /// Its payload type.
    pub pt: u8,
    pub seq: u64,
    pub ts: u32,
    pub payload: Vec<u8>,
    /// When it arrived.
    pub at: Instant,
}

impl Peer {
    /// A peer whose UDP socket (its one ICE candidate) is on `ip`.
    fn new_at(ip: IpAddr) -> Peer {
        Peer::with_config(ip, RtcConfig::new())
    }

    fn with_config(ip: IpAddr, config: RtcConfig) -> Peer {
        let socket = UdpSocket::bind((ip, 0)).unwrap();
        socket.set_nonblocking(true).unwrap();
        let mut rtc = config.set_rtp_mode(true).build(Instant::now());
        let c = Candidate::host(socket.local_addr().unwrap(), Protocol::Udp).unwrap();
        rtc.add_local_candidate(c);
        Peer {
            rtc,
            socket,
            timeout: Instant::now(),
            connected: false,
            location: None,
            received: Vec::new(),
            keyframe_requests: Vec::new(),
            mids: Vec::new(),
            loss: None,
            dropped: 0,
        }
    }

    /// A publisher offering VP8 simulcast with `rids` plus Opus.
    pub fn publisher(rids: &[&str]) -> (Peer, String, SdpPendingOffer) {
        Peer::publisher_at(Ipv4Addr::LOCALHOST.into(), rids)
    }

    /// A publisher as [`Peer::publisher`], its socket on `ip`.
    pub fn publisher_at(ip: IpAddr, rids: &[&str]) -> (Peer, String, SdpPendingOffer) {
        let mut p = Peer::new_at(ip);
        let mut api = p.rtc.sdp_api();
        let mut sim = Simulcast::new();
        for r in rids {
            sim.add_send_layer(SimulcastLayer::new(r));
        }
        let a = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let v = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, Some(sim));
        let (offer, pending) = api.apply().unwrap();
        p.mids = vec![(MediaKind::Audio, a), (MediaKind::Video, v)];
        (p, offer.to_sdp_string(), pending)
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
        let config = RtcConfig::new().enable_opus(true, true);
        Peer::offer_to_receive(Peer::with_config(Ipv4Addr::LOCALHOST.into(), config), false)
    }

    fn viewer_with(ip: IpAddr, channel: bool) -> (Peer, String, SdpPendingOffer) {
        Peer::offer_to_receive(Peer::new_at(ip), channel)
    }

    fn offer_to_receive(mut p: Peer, channel: bool) -> (Peer, String, SdpPendingOffer) {
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
        self.drain();
    }

    fn drain(&mut self) {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.timeout = t;
                    return;
                }
                Ok(Output::Transmit(t)) => {
                    let _ = self.socket.send_to(&t.contents, t.destination);
                }
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
                            payload: p.payload.to_vec(),
                            at: Instant::now(),
                        })
                    }
                    Event::KeyframeRequest(r) => self.keyframe_requests.push(r.rid),
                    _ => {}
                },
                Err(e) => panic!("peer failed: {e}"),
            }
        }
    }

    /// Ends the session from this side (RTCP BYE, DTLS close_notify) and sends that now.
    pub fn hang_up(&mut self) {
        self.rtc.close().unwrap();
        self.drain();
    }

    /// Reads what arrived and runs timers.
    pub fn poll(&mut self) {
        let mut buf = [0u8; 2048];
        let local = self.socket.local_addr().unwrap();
        while let Ok((n, from)) = self.socket.recv_from(&mut buf) {
            if let Some((p, seed)) = self.loss.as_mut() {
                // xorshift: reproducible loss of media only (first byte 128..=191).
                *seed ^= *seed << 13;
                *seed ^= *seed >> 7;
                *seed ^= *seed << 17;
                let media = (128..=191).contains(&buf[0]);
                if self.connected && media && (*seed % 1000) as f64 / 1000.0 < *p {
                    self.dropped += 1;
                    continue;
                }
            }
            if let Ok(r) = Receive::new(Protocol::Udp, from, local, &buf[..n]) {
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

    pub fn pt(&self, codec: Codec) -> Pt {
        self.rtc
            .codec_config()
            .params()
            .iter()
            .find(|p| p.spec().codec == codec)
            .map(|p| p.pt())
            .expect("codec configured")
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
