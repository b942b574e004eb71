//! What the fuzz targets share: sessions opened the way a worker opens them, and a
//! publisher session that takes plaintext RTP from a fuzz input.
//!
//! A session is opened per input (never shared across inputs), so a crash reproduces
//! from its one input file.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sfu::directory::Role;
use sfu::ids::{SessionId, StreamId};
use sfu::session::{Effect, OpenParams, Session, Transmitter};
use str0m::_internal_test_exports::TestSrtp;
use str0m::crypto::dtls::{KeyingMaterial, SrtpProfile};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{ExtensionMap, RtpHeader};
use str0m::Input;

/// The worker's announced address in every fuzz session.
pub const LOCAL: &str = "127.0.0.1:5000";
/// Where the fuzzed peer's datagrams come from.
pub const REMOTE: &str = "127.0.0.1:6000";

/// Chromium 156's WHIP offer (`corpus/sdp_offer/chromium_whip.sdp`) cut down to what
/// the node forwards, so that a session opens fast enough to fuzz what follows: Opus 111,
/// VP8 96 (RTX 97), H.264 102, AV1 45, VP9 98; three simulcast layers `q`, `h`, `f`; mid
/// in extension 4, rid in 10, repaired rid in 11. Audio is mid 0, video mid 1.
pub const CHROMIUM_WHIP: &str = include_str!("chromium_whip_trimmed.sdp");

/// Chromium 156's WHEP offer, cut down the same way.
pub const CHROMIUM_WHEP: &str = include_str!("chromium_whep_trimmed.sdp");

/// Drops every datagram: the fuzz targets look at effects, not at what is sent.
pub struct Discard;

impl Transmitter for Discard {
    fn send(&mut self, _to: SocketAddr, _data: &[u8]) {}
}

fn params() -> OpenParams {
    OpenParams {
        local: LOCAL.parse().expect("a socket address"),
        tcp: None,
        rtx_cache_packets: 64,
        keyframe_throttle: Duration::from_millis(300),
        viewer_bwe: Some(3_000_000),
    }
}

/// Opens a session on an offer exactly as a worker does for a WHIP/WHEP POST.
pub fn open(role: Role, offer: &str, now: Instant) -> Option<Session> {
    Session::open(SessionId(1), StreamId(1), role, offer, params(), now)
        .ok()
        .map(|(s, _answer)| s)
}

/// Installs known SRTP keys in `session`; returns the peer's matching sending context.
fn known_keys(session: &mut Session) -> (TestSrtp, ExtensionMap) {
    // AES-128-CM-SHA1-80 takes 60 bytes; the same bytes on both sides make the
    // peer's sending context equal to the session's receiving one.
    let profile = SrtpProfile::AES128_CM_SHA1_80;
    let material = KeyingMaterial::new(&[42; 60]);
    let crypto = str0m::crypto::from_feature_flags();
    let srtp = TestSrtp::new(&crypto, profile, &material);
    let rtc = session.rtc_mut();
    rtc._set_srtp_keys(material, profile, false);
    (srtp, rtc._exts().clone())
}

/// A viewer session on Chromium's WHEP offer with SRTP keys in place, so what is written
/// to it is serialised and sent as to a connected browser.
pub fn viewer(now: Instant) -> Session {
    let mut session = open(Role::Viewer, CHROMIUM_WHEP, now).expect("Chromium's offer");
    known_keys(&mut session);
    session
}

/// A publisher session on Chromium's offer whose SRTP keys are known, so a fuzz input
/// can reach str0m's RTP parsing and the session's own parsing as if a connected peer
/// sent it. ICE and DTLS are skipped: they guard nothing a connected peer cannot send.
pub struct Publisher {
    /// The session under test.
    pub session: Session,
    srtp: TestSrtp,
    exts: ExtensionMap,
    /// When the session was opened.
    pub start: Instant,
}

impl Publisher {
    /// Opens the session and installs the keys.
    pub fn new() -> Publisher {
        let start = Instant::now();
        let mut session = open(Role::Publisher, CHROMIUM_WHIP, start).expect("Chromium's offer");
        let (srtp, exts) = known_keys(&mut session);
        Publisher {
            session,
            srtp,
            exts,
            start,
        }
    }

    /// Feeds `packet` (plaintext RTP, header and payload) as a peer would send it at
    /// `now`: str0m parses the header with the session's extensions; what parses is
    /// protected and handed to the session. Returns the session's effects.
    pub fn receive(&mut self, packet: &[u8], now: Instant) -> Vec<Effect> {
        let mut effects = Vec::new();
        // `protect` serialises into an MTU-sized buffer; nothing larger arrives over UDP
        // from a browser, and the session refuses nothing on size alone.
        if packet.len() > 1200 {
            return effects;
        }
        let Some(header) = RtpHeader::_parse(packet, &self.exts) else {
            return effects;
        };
        let Some(payload) = packet.get(header.header_len..) else {
            return effects;
        };
        let seq = u64::from(header.sequence_number);
        let datagram = self.srtp.protect(header, seq, payload, &self.exts);
        self.datagram(&datagram, now, &mut effects);
        effects
    }

    /// Feeds a raw datagram (STUN, DTLS, SRTP or SRTCP by its first byte).
    pub fn datagram(&mut self, data: &[u8], now: Instant, effects: &mut Vec<Effect>) {
        let (from, to) = (REMOTE.parse().unwrap(), LOCAL.parse().unwrap());
        if let Ok(r) = Receive::new(Protocol::Udp, from, to, data) {
            self.session
                .handle_input(Input::Receive(now, r), &mut Discard, effects);
        }
    }
}

impl Default for Publisher {
    fn default() -> Self {
        Publisher::new()
    }
}
