//! A Session: one str0m `Rtc` (ICE-lite, RTP mode) and what its role needs around it.
//!
//! A publisher's incoming RTP is parsed once into [`MediaPacket`]s; a viewer takes
//! [`Forward`]s into its outgoing streams. Everything a session produces that concerns
//! other sessions comes back as an [`Effect`] for the worker to route: the session never
//! reaches into another one.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::SdpOffer;
use str0m::format::CodecConfig;
use str0m::media::{KeyframeRequestKind, MediaKind, Mid, Pt, Rid};
use str0m::net::{Protocol, TcpType};
use str0m::rtp::{RtpPacket, RtpWrite, Ssrc};
use str0m::{Candidate, Event, IceConnectionState, IceCreds, Input, Output, Rtc, RtcConfig};

use crate::chat::{ChatHook, ChatOutbox, ChatState};
use crate::codec::{Codec, KeyframeStarts};
use crate::directory::Role;
use crate::error::SfuError;
use crate::forward::producer::Producer;
use crate::forward::{Forward, Kind, MediaPacket};
use crate::ids::{SessionId, StreamId};
use crate::red::RedAudio;

/// Something a session did that the worker must act on.
#[derive(Debug)]
pub enum Effect {
    /// ICE and DTLS are up.
    Connected(SessionId),
    /// The peer is gone (ICE timed out or DTLS closed).
    Gone(SessionId, &'static str),
    /// A publisher's packet (from this session), to route to the stream's viewers.
    Media(SessionId, StreamId, Arc<MediaPacket>),
    /// A viewer asked for a keyframe (PLI/FIR) of what it receives.
    ViewerKeyframe(SessionId),
    /// A NACK counted from a viewer (`true`) or sent to a publisher (`false`).
    Nacks(bool, u64),
    /// Packets str0m resent to a viewer from its retransmission cache.
    Retransmissions(u64),
    /// A data channel frame from the peer not passed on, and why (`chat.rs`).
    ChatDropped(&'static str),
    /// A viewer's first video packet was written, this long after its session opened (at
    /// the WHEP POST): its join time on the server's side.
    FirstVideo(SessionId, Duration),
    /// A viewer's receiver report on one of its tracks (`rtcp_report`).
    ReceiverReport(ReceiverReport),
    /// A publisher's lowest video encoding started a keyframe this long after its last one.
    KeyframeInterval(StreamId, Duration),
}

/// What a viewer's RTCP receiver report says about one track it receives: for the node's
/// loss, jitter and round-trip histograms (aggregated over viewers, no series per viewer).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReceiverReport {
    /// Fraction lost since the previous report, 0 to 1.
    pub loss: f32,
    /// Packets newly reported lost since the previous report.
    pub lost: u64,
    /// Interarrival jitter.
    pub jitter: Option<Duration>,
    /// Round-trip time, from the report's LSR/DLSR.
    pub rtt: Option<Duration>,
}

/// Reads a `MediaEgressStats` event into a [`ReceiverReport`]: `None` when no report came
/// since the last event. `clock_rate` converts the jitter (in RTP timestamp units);
/// `last_lost` holds the cumulative loss of the previous report of this track.
fn rtcp_report(
    s: &str0m::stats::MediaEgressStats,
    clock_rate: u32,
    last_lost: &mut u64,
) -> Option<ReceiverReport> {
    let loss = s.loss?;
    let (jitter, lost) = match &s.remote {
        Some(r) => {
            let d = r.packets_lost.saturating_sub(*last_lost);
            *last_lost = r.packets_lost;
            let jitter = Duration::from_secs_f64(f64::from(r.jitter) / f64::from(clock_rate));
            (Some(jitter), d)
        }
        None => (None, 0),
    };
    Some(ReceiverReport {
        loss: loss.clamp(0.0, 1.0),
        lost,
        jitter,
        rtt: s.rtt,
    })
}

/// Sends a datagram; the worker's socket.
pub trait Transmitter {
    /// Sends `data` to `to`; must not block.
    fn send(&mut self, to: SocketAddr, data: &[u8]);

    /// Sends `data` on the ICE-TCP connection from `to`; must not block. A transmitter
    /// without TCP drops it.
    fn send_tcp(&mut self, to: SocketAddr, data: &[u8]) {
        let _ = (to, data);
    }
}

#[derive(Debug, Clone, Copy)]
struct InTrack {
    kind: Kind,
    encoding: u8,
    starts: KeyframeStarts,
}

impl InTrack {
    /// Whether this packet of the track starts a video keyframe (once per picture).
    fn key(&mut self, codec: Codec, ts: u32, payload: &[u8]) -> bool {
        self.kind == Kind::Video && self.starts.first(codec, ts, payload)
    }
}

/// How a publisher's video encoding is asked for a keyframe: through its track, or, for a
/// rung of its transcoded ladder, through the ladder's encoder.
#[derive(Debug, Clone)]
enum Ask {
    Track(Mid, Option<Rid>),
    Rung(u8),
}

/// What became of a keyframe request to a publisher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyframeAsk {
    /// Sent to the publisher.
    Sent,
    /// Throttled, or nothing to ask.
    Throttled,
    /// A transcoded rung's: the ladder's encoder makes it (the caller tells the ladder).
    Rung(u8),
}

/// A publisher: its [`Producer`] (asking each video encoding through its `(mid, rid)`) and
/// what str0m's packets need to be told apart.
#[derive(Debug)]
struct PublisherState {
    producer: Producer<Ask>,
    /// The last extended sequence number of each transcoded rung (`crate::process`).
    rung_seqs: [crate::forward::SeqExtender; crate::process::ladder::MAX_RUNGS],
    tracks: HashMap<Ssrc, InTrack>,
    codecs: HashMap<Pt, Option<Codec>>,
    /// When the lowest encoding's last keyframe arrived.
    last_keyframe: Option<Instant>,
}

#[derive(Debug, Clone)]
struct OutTrack {
    mid: Mid,
    pts: Vec<(Codec, Pt)>,
}

#[derive(Debug, Default)]
struct ViewerState {
    video: Option<OutTrack>,
    audio: Option<OutTrack>,
    /// The send-side bandwidth estimate, once str0m can probe.
    estimate: Option<u64>,
    /// The (minimum, desired) rates last given to the estimator.
    bwe_rates: (u64, u64),
    /// The age of the oldest packet in the video pacer queue, as last sampled.
    queue_delay: Duration,
    /// The share of packets lost on the way to the viewer over the last second, from its
    /// transport-wide feedback.
    loss: f32,
    /// What the session sent (media, repairs and padding, bits per second) between its
    /// last two stats, and the byte count and time of the last.
    sent_bps: u64,
    sent_at: Option<(Instant, u64)>,
    /// Audio redundancy, when the viewer's offer had RED for Opus.
    red: Option<RedAudio>,
    /// Its first video packet was written (its join time counted).
    video_started: bool,
    /// Its video has no RTX, where str0m sends padding: it cannot be padded.
    unpadded: bool,
}

/// One WebRTC peer.
pub struct Session {
    /// Its id.
    pub id: SessionId,
    /// The stream it publishes or watches.
    pub stream: StreamId,
    /// Its role.
    pub role: Role,
    rtc: Rtc,
    created: Instant,
    connected: bool,
    /// When str0m next wants time.
    pub next_timeout: Instant,
    /// Packets written since the last [`Session::flush`]: they wait in str0m until then.
    unflushed: u32,
    /// The latest time a flush gave str0m (up to 1 µs per packet ahead of the clock).
    flushed_to: Instant,
    publisher: Option<PublisherState>,
    viewer: Option<ViewerState>,
    stats: HashMap<(Mid, Option<Rid>), u64>,
    /// Per outgoing mid: packets written, and the highest retransmission count derived.
    written: HashMap<Mid, (u64, u64)>,
    /// Per outgoing mid: the cumulative loss its viewer last reported.
    lost: HashMap<Mid, u64>,
    rtx_cache_packets: usize,
    remote_ufrag: String,
    /// The ufrag our answer (or last ICE restart) announced: STUN names it.
    local_ufrag: String,
    /// Its `chat` data channel's hook and ends, when it negotiated a data channel and has
    /// a hook; `None` costs nothing.
    chat: Option<Box<ChatState>>,
}

/// The RTP header extensions a viewer session offers to negotiate without bandwidth
/// estimation: the standard set without transport-wide sequence numbers. Their only use is
/// the feedback a receiver sends for the sender's estimate; without them a viewer sends no
/// transport-wide feedback, and the node neither stamps every packet nor parses that
/// feedback. With estimation on (the default) viewers keep str0m's standard set.
/// Publishers always keep it: the browser sizes its encoder by the node's feedback.
fn viewer_extensions_without_bwe() -> str0m::rtp::ExtensionMap {
    let mut exts = str0m::rtp::ExtensionMap::empty();
    for (id, ext) in [
        (1, str0m::rtp::Extension::AudioLevel),
        (2, str0m::rtp::Extension::AbsoluteSendTime),
        (4, str0m::rtp::Extension::RtpMid),
        (10, str0m::rtp::Extension::RtpStreamId),
        (11, str0m::rtp::Extension::RepairedRtpStreamId),
        (13, str0m::rtp::Extension::VideoOrientation),
    ] {
        exts.set(id, ext);
    }
    exts
}

/// How long a viewer's video packets are kept for retransmission.
const RTX_MAX_AGE: Duration = Duration::from_secs(3);
/// Queued resends are dropped when they pass this share of what a stream sends.
const RTX_RATIO_CAP: f32 = 0.15;

/// How often a viewer with bandwidth estimation reports its stats, and so its raw estimate.
const VIEWER_BWE_STATS: Duration = Duration::from_millis(100);

/// Settings for opening a session.
#[derive(Debug, Clone, Copy)]
pub struct OpenParams {
    /// The worker's announced address.
    pub local: SocketAddr,
    /// The worker's announced ICE-TCP address, if it listens on one: offered as a passive
    /// TCP host candidate (RFC 6544).
    pub tcp: Option<SocketAddr>,
    /// Packets kept for retransmission per outgoing video stream.
    pub rtx_cache_packets: usize,
    /// At most one keyframe request per publisher layer in this window.
    pub keyframe_throttle: Duration,
    /// A viewer's send-side bandwidth estimation starts at this rate (bits per second);
    /// `None` runs viewers without it (no transport-wide feedback negotiated).
    pub viewer_bwe: Option<u64>,
}

impl Session {
    /// Accepts an SDP offer; returns the session and the SDP answer.
    pub fn open(
        id: SessionId,
        stream: StreamId,
        role: Role,
        offer: &str,
        params: OpenParams,
        now: Instant,
    ) -> Result<(Session, String), SfuError> {
        let offer_text = offer;
        let remote_ufrag = sdp_attr(offer, "ice-ufrag").unwrap_or_default().to_owned();
        let offer = SdpOffer::from_sdp_string(offer_text)
            .map_err(|e| crate::error::bad_offer(&e, offer_text))?;
        let mut config = RtcConfig::new()
            .set_crypto_provider(crate::dtls::provider())
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .set_stats_interval(Some(Duration::from_secs(1)));
        match (role, params.viewer_bwe) {
            (Role::Viewer, Some(initial)) => {
                // The raw estimate comes with the stats (str0m's event is a 3 s average,
                // seconds late after a fall): often enough for the allocator's tick.
                config = config
                    .enable_bwe(Some(str0m::bwe::Bitrate::bps(initial)))
                    .set_stats_interval(Some(VIEWER_BWE_STATS));
            }
            (Role::Viewer, None) => {
                config = config.set_extension_map(viewer_extensions_without_bwe());
            }
            (Role::Publisher, _) => {}
        }
        if role == Role::Viewer {
            // RED for Opus, taken only where the viewer's offer has it (`red.rs`).
            config = config.enable_opus(true, true);
        }
        let mut rtc = config.build(now);
        let candidate = Candidate::host(params.local, Protocol::Udp)
            .map_err(|e| SfuError::BadSdp(e.to_string()))?;
        rtc.add_local_candidate(candidate);
        if let Some(addr) = params.tcp {
            let candidate = Candidate::builder()
                .tcp()
                .host(addr)
                .tcptype(TcpType::Passive)
                .build()
                .map_err(|e| SfuError::BadSdp(e.to_string()))?;
            rtc.add_local_candidate(candidate);
        }
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| crate::error::bad_offer(&e, offer_text))?;
        // Unique per publisher session: tells a restarted publisher's packets apart.
        let generation = (id.0 as u32) ^ ((id.0 >> 32) as u32);
        let mut session = Session {
            id,
            stream,
            role,
            rtc,
            created: now,
            connected: false,
            next_timeout: now,
            unflushed: 0,
            flushed_to: now,
            publisher: (role == Role::Publisher).then(|| PublisherState {
                producer: Producer::new(generation, params.keyframe_throttle),
                rung_seqs: Default::default(),
                tracks: HashMap::new(),
                codecs: HashMap::new(),
                last_keyframe: None,
            }),
            viewer: (role == Role::Viewer).then(ViewerState::default),
            stats: HashMap::new(),
            written: HashMap::new(),
            lost: HashMap::new(),
            rtx_cache_packets: params.rtx_cache_packets,
            remote_ufrag,
            local_ufrag: String::new(),
            chat: None,
        };
        let answer = answer.to_sdp_string();
        session.local_ufrag = sdp_attr(&answer, "ice-ufrag")
            .unwrap_or_default()
            .to_owned();
        session.check_directions(&answer)?;
        Ok((session, answer))
    }

    /// A publisher must send something; a viewer must receive something. str0m reports
    /// media only once connected, so the mids come from the answer.
    fn check_directions(&mut self, answer: &str) -> Result<(), SfuError> {
        let mut ok = false;
        let mids: Vec<Mid> = answer
            .lines()
            .filter_map(|l| l.trim_end().strip_prefix("a=mid:"))
            .map(Mid::from)
            .collect();
        for mid in mids {
            let Some(media) = self.rtc.media(mid) else {
                continue; // the data channel's m-line
            };
            let (kind, dir) = (media.kind(), media.direction());
            match self.role {
                Role::Publisher => ok |= dir.is_receiving(),
                Role::Viewer if dir.is_sending() => {
                    ok = true;
                    self.add_out_track(mid, kind);
                }
                Role::Viewer => {}
            }
        }
        if ok {
            Ok(())
        } else {
            Err(SfuError::BadSdp(match self.role {
                Role::Publisher => "a WHIP offer must send audio or video (sendonly)".into(),
                Role::Viewer => "a WHEP offer must receive audio or video (recvonly)".into(),
            }))
        }
    }

    fn add_out_track(&mut self, mid: Mid, kind: MediaKind) {
        let Some(media) = self.rtc.media(mid) else {
            return;
        };
        let remote: Vec<Pt> = media.remote_pts().to_vec();
        let config: &CodecConfig = self.rtc.codec_config();
        let pts = config
            .params()
            .iter()
            .filter(|p| remote.contains(&p.pt()))
            .filter_map(|p| Codec::from_str0m(p.spec().codec).map(|c| (c, p.pt())))
            .collect();
        let red = config
            .params()
            .iter()
            .filter(|p| p.spec().codec == str0m::format::Codec::Opus && remote.contains(&p.pt()))
            // Negotiated: str0m keeps RED on Opus only where the offer had it.
            .find_map(|p| Some((p.red()?, p.pt())))
            .filter(|_| kind == MediaKind::Audio)
            .map(|(red, opus)| RedAudio::new(*red, *opus));
        let track = OutTrack { mid, pts };
        let rtx = self.rtx_cache_packets;
        if let Some(tx) = self.rtc.direct_api().stream_tx_by_mid(mid, None) {
            if kind == MediaKind::Video {
                if let Some(v) = self.viewer.as_mut() {
                    v.unpadded = tx.rtx().is_none();
                }
                tx.set_rtx_cache(rtx, RTX_MAX_AGE, Some(RTX_RATIO_CAP));
                // The estimate picks the layer; the packets leave as they come, as they
                // did before estimation. Paced at 1.1 times an estimate that has seen
                // little yet (a viewer's first second, when an overuse sets it from the
                // audio alone), the video would wait in the pacer for seconds.
                tx.set_unpaced(true);
            }
        }
        if let Some(v) = self.viewer.as_mut() {
            match kind {
                MediaKind::Video => v.video = Some(track),
                MediaKind::Audio => {
                    v.audio = Some(track);
                    v.red = red;
                }
            }
        }
    }

    /// Whether this session owns a datagram from an unknown address (STUN ufrag check).
    pub fn accepts(&self, input: &Input) -> bool {
        self.rtc.accepts(input)
    }

    /// Whether ICE and DTLS completed.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// When the session was opened.
    pub fn created(&self) -> Instant {
        self.created
    }

    /// The publisher generation (unique per publisher session).
    pub fn generation(&self) -> Option<u32> {
        self.publisher.as_ref().map(|p| p.producer.generation())
    }

    /// Feeds a datagram or a timeout, then drains.
    pub fn handle_input(
        &mut self,
        input: Input,
        tx: &mut dyn Transmitter,
        effects: &mut Vec<Effect>,
    ) {
        if let Err(e) = self.rtc.handle_input(input) {
            tracing::debug!(session = %self.id, "input rejected: {e}");
        }
        self.drain(tx, effects);
    }

    /// Writes a forwarded packet into this viewer's outgoing stream. Nothing is sent yet:
    /// the packet waits in str0m for [`Session::flush`], which the worker runs once per loop
    /// turn for every session written to (`egress::flush_written`), after all of the turn's
    /// packets. Returns false when the viewer has no matching track or codec.
    pub fn write(
        &mut self,
        fwd: &Forward,
        wallclock: Instant,
        now: Instant,
        effects: &mut Vec<Effect>,
    ) -> bool {
        let Some(viewer) = self.viewer.as_mut() else {
            return false;
        };
        let track = match fwd.kind {
            Kind::Video => viewer.video.as_ref(),
            Kind::Audio => viewer.audio.as_ref(),
        };
        let Some(track) = track else {
            return false;
        };
        let Some(&(_, pt)) = track.pts.iter().find(|(c, _)| *c == fwd.codec) else {
            return false;
        };
        let mid = track.mid;
        let (pt, payload) = match viewer.red.as_mut() {
            Some(red) if fwd.kind == Kind::Audio && fwd.codec == Codec::Opus => (
                red.pt().into(),
                Arc::from(red.wrap(fwd.seq, fwd.ts, &fwd.payload)),
            ),
            _ => (pt, fwd.payload.clone()),
        };
        let mut api = self.rtc.direct_api();
        let Some(stream) = api.stream_tx_by_mid(mid, None) else {
            return false;
        };
        let mut w = RtpWrite::new(pt, fwd.seq.into(), fwd.ts, wallclock, payload)
            .marker(fwd.marker)
            .nackable(fwd.kind == Kind::Video);
        if let Some(rw) = fwd.vp8 {
            w = w.vp8_patch(rw.patch);
        }
        // Read here, where the stream is at hand anyway: a sample of the pacer's last pass
        // (a snapshot str0m takes in its timeout, so the last flush's, not this turn's).
        let queued = (fwd.kind == Kind::Video).then(|| {
            stream.queue_info().map_or(Duration::ZERO, |q| {
                q.first_unsent().map_or(Duration::ZERO, |t| {
                    q.created_at().saturating_duration_since(t)
                })
            })
        });
        stream.write_rtp(w);
        if let (Some(d), Some(v)) = (queued, self.viewer.as_mut()) {
            v.queue_delay = d;
            if !v.video_started {
                v.video_started = true;
                effects.push(Effect::FirstVideo(
                    self.id,
                    now.saturating_duration_since(self.created),
                ));
            }
        }
        // Bounded: one entry per negotiated mid.
        self.written.entry(mid).or_insert((0, 0)).0 += 1;
        self.unflushed = self.unflushed.saturating_add(1);
        true
    }

    /// Whether packets were written since the last [`Session::flush`].
    pub fn is_unflushed(&self) -> bool {
        self.unflushed > 0
    }

    /// Sends what was written since the last flush: str0m releases a written packet on a
    /// timeout, so its timeout is run now, then it is drained. Without bandwidth estimation
    /// that timeout lets them all out. With it, str0m's pacer lets one packet out per
    /// timeout and asks for the next 1 µs after it (time must advance between packets): its
    /// timeouts are run at the times it asks, at most one per packet written (up to 1 µs
    /// per packet ahead of `now`), so that the turn's packets all leave now. The pacer's
    /// last ask (1 µs after the last packet) releases nothing: it is left to the next turn,
    /// whose first timeout it is, or to the worker's timer, as before a turn's writes were
    /// batched.
    pub fn flush(&mut self, now: Instant, tx: &mut dyn Transmitter, effects: &mut Vec<Effect>) {
        let written = std::mem::take(&mut self.unflushed);
        if written == 0 {
            return;
        }
        // str0m ignores a timeout earlier than the latest it was given.
        let mut at = now.max(self.flushed_to);
        let until = at + Duration::from_micros(u64::from(written - 1));
        for _ in 0..written {
            self.handle_input(Input::Timeout(at), tx, effects);
            self.flushed_to = at;
            if self.next_timeout > until {
                break;
            }
            at = self.next_timeout.max(at);
        }
    }

    /// Asks the publisher for a keyframe of `encoding`, unless throttled; a transcoded
    /// rung's request is handed back for the ladder.
    pub fn request_keyframe(
        &mut self,
        encoding: u8,
        now: Instant,
        tx: &mut dyn Transmitter,
        effects: &mut Vec<Effect>,
    ) -> KeyframeAsk {
        let Some(p) = self.publisher.as_mut() else {
            return KeyframeAsk::Throttled;
        };
        let (mid, rid) = match p.producer.request_keyframe(encoding, now) {
            None => return KeyframeAsk::Throttled,
            Some(Ask::Rung(r)) => return KeyframeAsk::Rung(r),
            Some(Ask::Track(mid, rid)) => (mid, rid),
        };
        if let Some(rx) = self.rtc.direct_api().stream_rx_by_mid(mid, rid) {
            rx.request_keyframe(KeyframeRequestKind::Pli);
        }
        self.drain(tx, effects);
        KeyframeAsk::Sent
    }

    /// A packet of this publisher's transcoded ladder (`crate::process`) as a packet of
    /// one more of its video encodings: the rung is registered as an encoding of its own
    /// (RID `~ladder<rung>`), ranked below the publisher's own encodings
    /// ([`crate::forward::layers::RUNG_RIDS`]).
    pub fn rung_packet(
        &mut self,
        p: &crate::process::RungPacket,
        now: Instant,
    ) -> Option<MediaPacket> {
        let pb = self.publisher.as_mut()?;
        let seqs = pb.rung_seqs.get_mut(usize::from(p.rung))?;
        let seq = seqs.extend(p.packet.seq);
        let rid = *crate::forward::layers::RUNG_RIDS.get(usize::from(p.rung))?;
        let rung = p.rung;
        let encoding = pb.producer.video_encoding(Some(rid), || Ask::Rung(rung))?;
        let payload: Arc<[u8]> = Arc::from(p.packet.payload.as_slice());
        let layers = pb
            .producer
            .on_video(now, encoding, payload.len(), p.packet.keyframe, None);
        Some(MediaPacket {
            kind: Kind::Video,
            source: pb.producer.source(encoding),
            codec: p.codec,
            seq,
            ts: p.packet.ts,
            marker: p.packet.marker,
            keyframe: p.packet.keyframe,
            payload,
            arrival: now,
            layers: Some(layers),
            temporal: None,
        })
    }

    /// Re-ranks a publisher's layers; returns the new table's layers when they changed.
    pub fn poll_layers(
        &mut self,
        now: Instant,
    ) -> Option<Vec<crate::forward::layers::EncodingInfo>> {
        self.publisher.as_mut()?.producer.poll_layers(now)
    }

    /// A viewer's send-side bandwidth estimate (bits per second): `None` without
    /// estimation, or before str0m can probe.
    pub fn estimate(&self) -> Option<u64> {
        self.viewer.as_ref()?.estimate
    }

    /// The share of a viewer's packets lost over the last second (from its transport-wide
    /// feedback; 0 without estimation).
    pub fn loss(&self) -> f32 {
        self.viewer.as_ref().map_or(0.0, |v| v.loss)
    }

    /// Whether a viewer's video cannot be padded (no RTX): its step up rests on the
    /// estimate alone.
    pub fn unpadded(&self) -> bool {
        self.viewer.as_ref().is_some_and(|v| v.unpadded)
    }

    /// What a viewer's session sent between its last two stats (bits per second, padding
    /// and repairs included): with the estimate, whether padding and probes flow.
    pub fn sent_bps(&self) -> u64 {
        self.viewer.as_ref().map_or(0, |v| v.sent_bps)
    }

    /// How long the oldest packet in a viewer's video pacer queue had waited at str0m's
    /// last pacer pass, as read when a video packet was last written. It does not grow
    /// while no video is written (a paused viewer).
    pub fn queue_delay(&self) -> Duration {
        self.viewer
            .as_ref()
            .map_or(Duration::ZERO, |v| v.queue_delay)
    }

    /// Tells a viewer's estimator the rate to probe towards (and the least to keep
    /// sending, padding if need be); a repeat of the last rates does nothing.
    pub fn set_bwe_rates(
        &mut self,
        minimum: u64,
        desired: u64,
        tx: &mut dyn Transmitter,
        effects: &mut Vec<Effect>,
    ) {
        let Some(v) = self.viewer.as_mut() else {
            return;
        };
        if v.estimate.is_none() || v.bwe_rates == (minimum, desired) {
            return;
        }
        v.bwe_rates = (minimum, desired);
        self.rtc.bwe().set_bitrate(
            str0m::bwe::Bitrate::bps(minimum),
            str0m::bwe::Bitrate::bps(desired),
        );
        self.drain(tx, effects);
    }

    /// Forgets what a viewer's video stream keeps for retransmission: after a step down
    /// for congestion, resending the old layer's lost packets would only crowd the path
    /// the new layer needs (and its keyframe makes them useless).
    pub fn forget_retransmissions(&mut self, tx: &mut dyn Transmitter, effects: &mut Vec<Effect>) {
        let Some(mid) = self
            .viewer
            .as_ref()
            .and_then(|v| v.video.as_ref())
            .map(|t| t.mid)
        else {
            return;
        };
        let rtx = self.rtx_cache_packets;
        if let Some(stream) = self.rtc.direct_api().stream_tx_by_mid(mid, None) {
            stream.set_rtx_cache(rtx, RTX_MAX_AGE, Some(RTX_RATIO_CAP));
        }
        self.drain(tx, effects);
    }

    /// Starts a viewer's estimator over from `bps`, so that it probes again.
    pub fn reset_bwe(&mut self, bps: u64, tx: &mut dyn Transmitter, effects: &mut Vec<Effect>) {
        if self.estimate().is_none() {
            return;
        }
        self.rtc.bwe().reset(str0m::bwe::Bitrate::bps(bps));
        self.drain(tx, effects);
    }

    /// Tells the peer goodbye (RTCP BYE, DTLS close_notify), sends it, and stops.
    pub fn close(&mut self, tx: &mut dyn Transmitter) {
        let mut ignored = Vec::new();
        if self.connected && self.rtc.close().is_ok() {
            self.drain(tx, &mut ignored);
        }
        self.rtc.disconnect();
    }

    /// Whether str0m still runs this session.
    pub fn is_alive(&self) -> bool {
        self.rtc.is_alive()
    }

    /// Hands the `chat` data channel, when the peer opens it, to `hook`. Only a session
    /// whose answer has a data channel (`has_data_channel`) keeps it.
    pub(crate) fn set_chat(
        &mut self,
        has_data_channel: bool,
        hook: ChatHook,
        outbox: Arc<ChatOutbox>,
    ) {
        if has_data_channel {
            self.chat = Some(Box::new(ChatState::new(hook, outbox)));
        }
    }

    /// Writes a text message on the open `chat` channel, then drains; `Err(reason)` when
    /// it is dropped: no channel open (`closed`), the peer's send buffer full (`peer_slow`),
    /// or str0m refused it (`write_error`: too large for the peer, say).
    pub(crate) fn write_chat(
        &mut self,
        text: &str,
        tx: &mut dyn Transmitter,
        effects: &mut Vec<Effect>,
    ) -> Result<(), &'static str> {
        let id = self
            .chat
            .as_ref()
            .and_then(|c| c.channel())
            .ok_or("closed")?;
        let r = match self.rtc.channel(id) {
            None => Err("closed"),
            Some(mut ch) => match ch.write(false, text.as_bytes()) {
                Ok(true) => Ok(()),
                Ok(false) => Err("peer_slow"),
                Err(e) => {
                    tracing::debug!(session = %self.id, "chat write refused: {e}");
                    Err("write_error")
                }
            },
        };
        self.drain(tx, effects);
        r
    }

    /// Closes the open `chat` channel (its taker let go of it), then drains.
    pub(crate) fn close_chat(&mut self, tx: &mut dyn Transmitter, effects: &mut Vec<Effect>) {
        if let Some(id) = self.chat.as_mut().and_then(|c| c.take()) {
            self.rtc.direct_api().close_data_channel(id);
            self.drain(tx, effects);
        }
    }

    /// The current local ICE credentials and candidate, for an ICE restart answer.
    pub fn restart_ice(&mut self, remote: IceCreds, tx: &mut dyn Transmitter) -> IceCreds {
        let local = IceCreds::new();
        {
            self.remote_ufrag = remote.ufrag.clone();
            self.local_ufrag = local.ufrag.clone();
            let mut api = self.rtc.direct_api();
            api.set_remote_ice_credentials(remote);
            api.set_local_ice_credentials(local.clone());
        }
        let mut ignored = Vec::new();
        self.drain(tx, &mut ignored);
        local
    }

    /// Adds a trickled remote candidate (ICE-lite needs none, but keeps them).
    pub fn add_remote_candidate(&mut self, c: Candidate, tx: &mut dyn Transmitter) {
        self.rtc.add_remote_candidate(c);
        let mut ignored = Vec::new();
        self.drain(tx, &mut ignored);
    }

    /// The local ICE username fragment in use (STUN requests name it).
    pub fn local_ufrag(&self) -> &str {
        &self.local_ufrag
    }

    /// The remote ICE username fragment in use.
    pub fn remote_ufrag(&self) -> &str {
        &self.remote_ufrag
    }

    /// The str0m `Rtc`, for fuzz targets that install known SRTP keys (`fuzz/`).
    #[cfg(feature = "fuzzing")]
    #[doc(hidden)]
    pub fn rtc_mut(&mut self) -> &mut Rtc {
        &mut self.rtc
    }

    fn drain(&mut self, tx: &mut dyn Transmitter, effects: &mut Vec<Effect>) {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.next_timeout = t;
                    return;
                }
                Ok(Output::Transmit(t)) => match t.proto {
                    Protocol::Udp => tx.send(t.destination, &t.contents),
                    Protocol::Tcp => tx.send_tcp(t.destination, &t.contents),
                    // No candidate of ours uses another protocol.
                    _ => {}
                },
                Ok(Output::Event(e)) => self.on_event(e, effects),
                Err(e) => {
                    tracing::debug!(session = %self.id, "session failed: {e}");
                    self.rtc.disconnect();
                    effects.push(Effect::Gone(self.id, "error"));
                    self.next_timeout = self.created + Duration::from_secs(3600 * 24 * 365);
                    return;
                }
            }
        }
    }

    fn on_event(&mut self, e: Event, effects: &mut Vec<Effect>) {
        match e {
            Event::Connected => {
                self.connected = true;
                effects.push(Effect::Connected(self.id));
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                effects.push(Effect::Gone(self.id, "ice_timeout"));
            }
            Event::RtpPacket(pkt) => {
                if let Some(m) = self.parse(pkt) {
                    if let Some(d) = self.keyframe_interval(&m) {
                        effects.push(Effect::KeyframeInterval(self.stream, d));
                    }
                    effects.push(Effect::Media(self.id, self.stream, Arc::new(m)));
                }
            }
            Event::KeyframeRequest(_) => effects.push(Effect::ViewerKeyframe(self.id)),
            Event::ChannelOpen(id, label) => {
                if let Some(c) = self.chat.as_mut() {
                    c.on_open(self.id, id, &label);
                }
            }
            Event::ChannelData(d) => {
                let r = match self.chat.as_mut() {
                    Some(c) => c.on_data(d.id, d.binary, d.data),
                    None => Err("unattached"),
                };
                if let Err(reason) = r {
                    effects.push(Effect::ChatDropped(reason));
                }
            }
            Event::ChannelClose(id) => {
                if let Some(c) = self.chat.as_mut() {
                    c.on_close(id);
                }
            }
            // The first estimate (the configured start) comes as an event; later ones are
            // read raw from the stats.
            Event::EgressBitrateEstimate(str0m::bwe::BweKind::Twcc { estimate, .. }) => {
                if let Some(v) = self.viewer.as_mut().filter(|v| v.estimate.is_none()) {
                    v.estimate = Some(estimate.as_u64());
                }
            }
            Event::PeerStats(s) => {
                if let (Some(v), Some(bwe)) = (self.viewer.as_mut(), s.bwe_tx) {
                    if v.estimate.is_some() {
                        v.estimate = Some(bwe.as_u64());
                        v.loss = s.egress_loss_fraction.unwrap_or(0.0);
                    }
                    if let Some((at, bytes)) = v.sent_at {
                        let secs = s.timestamp.saturating_duration_since(at).as_secs_f64();
                        if secs > 0.0 {
                            let bits = s.peer_bytes_tx.saturating_sub(bytes) * 8;
                            v.sent_bps = (bits as f64 / secs) as u64;
                        }
                    }
                    v.sent_at = Some((s.timestamp, s.peer_bytes_tx));
                }
            }
            Event::MediaEgressStats(s) => {
                let audio = self.viewer.as_ref().and_then(|v| v.audio.as_ref());
                let rate = match audio {
                    Some(a) if a.mid == s.mid => 48_000,
                    _ => 90_000,
                };
                let last = self.lost.entry(s.mid).or_insert(0);
                if let Some(r) = rtcp_report(&s, rate, last) {
                    effects.push(Effect::ReceiverReport(r));
                }
                let d = self.stat_delta(s.mid, s.rid, s.nacks);
                if d > 0 {
                    effects.push(Effect::Nacks(true, d));
                }
                // str0m counts resent packets in `packets`; what we wrote is the rest. Packets
                // still queued make the difference lag, so only its growth is reported.
                if let Some((written, rtx)) = self.written.get_mut(&s.mid) {
                    let now_rtx = s.packets.saturating_sub(*written);
                    if now_rtx > *rtx {
                        effects.push(Effect::Retransmissions(now_rtx - *rtx));
                        *rtx = now_rtx;
                    }
                }
            }
            Event::MediaIngressStats(s) => {
                let d = self.stat_delta(s.mid, s.rid, s.nacks);
                if d > 0 {
                    effects.push(Effect::Nacks(false, d));
                }
            }
            _ => {}
        }
    }

    fn stat_delta(&mut self, mid: Mid, rid: Option<Rid>, total: u64) -> u64 {
        // Bounded: one entry per negotiated (mid, rid).
        let last = self.stats.entry((mid, rid)).or_insert(0);
        let d = total.saturating_sub(*last);
        *last = total;
        d
    }

    /// The time since the previous keyframe of the lowest encoding, when `m` starts one.
    fn keyframe_interval(&mut self, m: &MediaPacket) -> Option<Duration> {
        if !m.keyframe || m.source.encoding != 0 {
            return None;
        }
        let p = self.publisher.as_mut()?;
        let at = p.last_keyframe.replace(m.arrival)?;
        Some(m.arrival.saturating_duration_since(at))
    }

    /// Parses a publisher's packet once: track, encoding, codec, keyframe start.
    fn parse(&mut self, pkt: RtpPacket) -> Option<MediaPacket> {
        let p = self.publisher.as_mut()?;
        let ssrc = pkt.header.ssrc;
        let pt = pkt.header.payload_type;
        let codec = match p.codecs.get(&pt) {
            Some(c) => *c,
            None => {
                let c = self
                    .rtc
                    .codec_config()
                    .params()
                    .iter()
                    .find(|x| x.pt() == pt)
                    .and_then(|x| Codec::from_str0m(x.spec().codec));
                if p.codecs.len() < 32 {
                    p.codecs.insert(pt, c);
                }
                c
            }
        }?;
        let (ts, payload) = (pkt.header.timestamp, &pkt.payload);
        let (kind, encoding, keyframe) = match p.tracks.get_mut(&ssrc) {
            Some(t) => (t.kind, t.encoding, t.key(codec, ts, payload)),
            None => {
                let mut api = self.rtc.direct_api();
                let rx = api.stream_rx(&ssrc)?;
                let (mid, rid) = (rx.mid(), rx.rid());
                let kind = match self.rtc.media(mid)?.kind() {
                    MediaKind::Audio => Kind::Audio,
                    MediaKind::Video => Kind::Video,
                };
                let encoding = match kind {
                    Kind::Video => p
                        .producer
                        .video_encoding(rid.as_deref(), || Ask::Track(mid, rid))?,
                    Kind::Audio => 0,
                };
                let mut t = InTrack {
                    kind,
                    encoding,
                    starts: KeyframeStarts::default(),
                };
                let keyframe = t.key(codec, ts, payload);
                if p.tracks.len() < 16 {
                    p.tracks.insert(ssrc, t);
                }
                (kind, encoding, keyframe)
            }
        };
        let temporal = match kind {
            Kind::Video => codec.temporal(&pkt.payload),
            Kind::Audio => None,
        };
        let layers = match kind {
            Kind::Video => Some(p.producer.on_video(
                pkt.timestamp,
                encoding,
                pkt.payload.len(),
                keyframe,
                temporal.map(|t| t.tid),
            )),
            Kind::Audio => None,
        };
        Some(MediaPacket {
            kind,
            source: p.producer.source(encoding),
            codec,
            seq: *pkt.seq_no,
            ts: pkt.header.timestamp,
            marker: pkt.header.marker,
            keyframe,
            payload: pkt.payload,
            arrival: pkt.timestamp,
            layers,
            temporal,
        })
    }
}

/// The first `a=<name>:` value in an SDP or SDP fragment.
pub fn sdp_attr<'a>(sdp: &'a str, name: &str) -> Option<&'a str> {
    sdp.lines().find_map(|l| {
        l.trim_end()
            .strip_prefix("a=")?
            .strip_prefix(name)?
            .strip_prefix(':')
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use str0m::stats::{MediaEgressStats, RemoteIngressStats};

    fn stats(loss: Option<f32>, lost: u64, jitter: u32) -> MediaEgressStats {
        MediaEgressStats {
            mid: Mid::from("0"),
            rid: None,
            bytes: 0,
            packets: 0,
            firs: 0,
            plis: 0,
            nacks: 0,
            rtt: Some(Duration::from_millis(40)),
            loss,
            timestamp: Instant::now(),
            remote: Some(RemoteIngressStats {
                jitter,
                maximum_sequence_number: 1000u64.into(),
                packets_lost: lost,
            }),
        }
    }

    #[test]
    fn a_receiver_report_is_read_once_with_its_new_losses_and_jitter_in_seconds() {
        let mut last = 0;
        let r = rtcp_report(&stats(Some(0.03), 12, 900), 90_000, &mut last).unwrap();
        assert_eq!(r.loss, 0.03);
        assert_eq!(r.lost, 12);
        assert_eq!(r.jitter, Some(Duration::from_millis(10)));
        assert_eq!(r.rtt, Some(Duration::from_millis(40)));
        // The next report counts only what was lost since; audio's clock is 48 kHz.
        let r = rtcp_report(&stats(Some(0.0), 15, 480), 48_000, &mut last).unwrap();
        assert_eq!((r.lost, r.jitter), (3, Some(Duration::from_millis(10))));
        // No report since the last event: nothing to count.
        assert_eq!(rtcp_report(&stats(None, 15, 480), 48_000, &mut last), None);
        // A nonsense fraction is clamped.
        let r = rtcp_report(&stats(Some(7.0), 15, 0), 48_000, &mut last).unwrap();
        assert_eq!((r.loss, r.lost), (1.0, 0));
    }
}
