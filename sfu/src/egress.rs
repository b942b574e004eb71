//! Applying the router's forwards: each [`Forward`] written into its sink's transport, and
//! the sessions written to flushed once per worker loop turn ([`flush_written`]). The
//! worker and the benchmarks run this same code after [`Router::route`], so a benchmark
//! measures the path the node takes, not a copy of it.
//!
//! [`Router::route`]: crate::router::Router::route

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use crate::forward::{Forward, Kind};
use crate::ids::{LinkId, SessionId};
use crate::relay::{rtp, PipeOut, RelayPacket, AUDIO_LAYER};
use crate::router::Endpoint;
use crate::session::{Effect, Session, Transmitter};

/// The sessions forwards are written into, by id.
pub trait Sessions {
    /// The session `id`, if it is here.
    fn session_mut(&mut self, id: SessionId) -> Option<&mut Session>;
}

impl Sessions for HashMap<SessionId, Session> {
    fn session_mut(&mut self, id: SessionId) -> Option<&mut Session> {
        self.get_mut(&id)
    }
}

/// The relay links forwards to pipes are sent on, by id.
pub trait Pipes {
    /// Queues `fwd` for the link `id`: false for no such link.
    fn send(&mut self, id: LinkId, fwd: &Forward) -> bool;
}

/// A worker's relay links to children, each with the packets this turn gave it: a turn's
/// forwards are encoded as they come and handed to each link at once by [`Self::flush`].
#[derive(Default)]
pub struct PipeLinks {
    links: HashMap<LinkId, (Arc<dyn PipeOut>, Vec<RelayPacket>)>,
}

/// What [`PipeLinks::flush`] handed over.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Piped {
    /// Packets the links took.
    pub sent: u64,
    /// Packets dropped because a link's queue was full.
    pub dropped: u64,
}

impl PipeLinks {
    /// Adds (or replaces) the link `id`.
    pub fn insert(&mut self, id: LinkId, out: Arc<dyn PipeOut>) {
        self.links.insert(id, (out, Vec::new()));
    }

    /// Removes the link `id`; packets not yet flushed go with it.
    pub fn remove(&mut self, id: LinkId) {
        self.links.remove(&id);
    }

    /// Removes every link.
    pub fn clear(&mut self) {
        self.links.clear();
    }

    /// Hands each link the packets queued for it since the last flush.
    pub fn flush(&mut self) -> Piped {
        let mut p = Piped::default();
        for (out, pending) in self.links.values_mut() {
            if pending.is_empty() {
                continue;
            }
            let n = pending.len() as u64;
            let batch = std::mem::replace(pending, Vec::with_capacity(n as usize));
            if out.send(batch) {
                p.sent += n;
            } else {
                p.dropped += n;
            }
        }
        p
    }
}

impl Pipes for PipeLinks {
    fn send(&mut self, id: LinkId, fwd: &Forward) -> bool {
        let Some((_, pending)) = self.links.get_mut(&id) else {
            return false;
        };
        let layer = match fwd.kind {
            Kind::Audio => AUDIO_LAYER,
            Kind::Video => fwd.source.encoding,
        };
        pending.push(RelayPacket {
            layer,
            keyframe: fwd.keyframe,
            rtp: rtp::encode(fwd),
        });
        true
    }
}

/// No relay links (a benchmark's node).
impl Pipes for () {
    fn send(&mut self, _: LinkId, _: &Forward) -> bool {
        false
    }
}

/// The sessions written to since the last [`flush_written`], each once (a session's own
/// [`Session::is_unflushed`] tells whether it is listed): at most one entry per session.
#[derive(Debug, Default)]
pub struct Unflushed(Vec<SessionId>);

impl Unflushed {
    /// Whether no session waits for a flush.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Flushes every session written to since the last call ([`Session::flush`]: its timeout
/// run, its packets sent to `tx`), once each; returns how many were flushed. The worker
/// runs it once its loop turn's packets are all written, before the turn's sends.
pub fn flush_written(
    unflushed: &mut Unflushed,
    sessions: &mut impl Sessions,
    now: Instant,
    tx: &mut dyn Transmitter,
    effects: &mut Vec<Effect>,
) -> usize {
    let mut n = 0;
    for id in unflushed.0.drain(..) {
        // A session closed since it was written to is gone, its packets with it.
        if let Some(s) = sessions.session_mut(id) {
            s.flush(now, tx, effects);
            n += 1;
        }
    }
    n
}

/// What [`write_forwards`] did, summed: the caller adds it to shared counters once.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Packets written into a session.
    pub packets: u64,
    /// Their payload bytes.
    pub bytes: u64,
    /// Video packets that began a new layer or publisher for their viewer.
    pub switches: u64,
    /// Forwards a viewer could not take (no such track or codec).
    pub unsupported: u64,
    /// Packets queued for relay links to children (handed over by [`PipeLinks::flush`]).
    pub piped: u64,
}

/// Writes `forwards` (drained) into their sessions and relay links; `wallclock` is the
/// packet's arrival. The sessions written to are listed in `unflushed`: what was written
/// leaves at their [`flush_written`].
pub fn write_forwards(
    forwards: &mut Vec<(Endpoint, Forward)>,
    sessions: &mut impl Sessions,
    pipes: &mut impl Pipes,
    wallclock: Instant,
    now: Instant,
    unflushed: &mut Unflushed,
    effects: &mut Vec<Effect>,
) -> Written {
    let mut w = Written::default();
    for (to, fwd) in forwards.drain(..) {
        let id = match to {
            Endpoint::Session(id) => id,
            Endpoint::Relay(link) => {
                w.piped += u64::from(pipes.send(link, &fwd));
                continue;
            }
            Endpoint::Worker(_) => continue,
        };
        let Some(s) = sessions.session_mut(id) else {
            continue;
        };
        let listed = s.is_unflushed();
        if s.write(&fwd, wallclock, now, effects) {
            if !listed {
                unflushed.0.push(id);
            }
            w.packets += 1;
            w.bytes += fwd.payload.len() as u64;
            w.switches += u64::from(fwd.switched && fwd.kind == Kind::Video);
        } else {
            w.unsupported += 1;
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Codec;
    use crate::directory::Role;
    use crate::forward::SourceKey;
    use crate::ids::StreamId;
    use crate::session::OpenParams;
    use std::net::SocketAddr;
    use std::time::Duration;
    use str0m::change::SdpAnswer;
    use str0m::media::{Direction, MediaKind};
    use str0m::net::{Protocol, Receive};
    use str0m::{Candidate, Input, Output, Rtc, RtcConfig};

    const NODE: &str = "127.0.0.1:5000";
    const CLIENT: &str = "127.0.0.2:1000";

    /// Keeps what a session sends.
    #[derive(Default)]
    struct Sent(Vec<Vec<u8>>);

    impl Transmitter for Sent {
        fn send(&mut self, _: SocketAddr, data: &[u8]) {
            self.0.push(data.to_vec());
        }
    }

    /// Whether a datagram is an (S)RTP packet: not STUN or DTLS (first byte 128 to 191,
    /// RFC 7983), not RTCP (second byte 192 to 223, RFC 5761).
    fn is_rtp(d: &[u8]) -> bool {
        matches!(d, [128..=191, b, ..] if !(192..=223).contains(b))
    }

    /// Hands `sent` to the client and runs its timeout; returns what it sends back.
    fn deliver(client: &mut Rtc, sent: &mut Sent, now: Instant) -> Vec<Vec<u8>> {
        let (node, addr) = (NODE.parse().unwrap(), CLIENT.parse().unwrap());
        for d in sent.0.drain(..) {
            let r = Receive::new(Protocol::Udp, node, addr, &d).unwrap();
            client.handle_input(Input::Receive(now, r)).unwrap();
        }
        client.handle_input(Input::Timeout(now)).unwrap();
        let mut back = Vec::new();
        loop {
            match client.poll_output().unwrap() {
                Output::Timeout(_) => return back,
                Output::Transmit(t) => back.push(t.contents.to_vec()),
                Output::Event(_) => {}
            }
        }
    }

    /// A viewer session (estimation from `bwe`) connected to a str0m client in memory, on
    /// a virtual clock; returns them with the clock.
    fn connected_viewer(bwe: Option<u64>) -> (HashMap<SessionId, Session>, Rtc, Instant) {
        let (node, addr): (SocketAddr, SocketAddr) =
            (NODE.parse().unwrap(), CLIENT.parse().unwrap());
        let mut now = Instant::now();
        let mut client = RtcConfig::new().set_rtp_mode(true).build(now);
        client.add_local_candidate(Candidate::host(addr, Protocol::Udp).unwrap());
        let mut api = client.sdp_api();
        api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let (offer, pending) = api.apply().unwrap();
        let params = OpenParams {
            local: node,
            tcp: None,
            rtx_cache_packets: 1024,
            keyframe_throttle: Duration::from_millis(100),
            viewer_bwe: bwe,
        };
        let (id, offer) = (SessionId(1), offer.to_sdp_string());
        let (mut s, answer) =
            Session::open(id, StreamId(1), Role::Viewer, &offer, params, now).unwrap();
        let answer = SdpAnswer::from_sdp_string(&answer).unwrap();
        client.sdp_api().accept_answer(pending, answer).unwrap();
        let (mut sent, mut effects) = (Sent::default(), Vec::new());
        for _ in 0..100 {
            if s.is_connected() {
                break;
            }
            now += Duration::from_millis(10);
            s.handle_input(Input::Timeout(now), &mut sent, &mut effects);
            let back = deliver(&mut client, &mut sent, now);
            for d in back {
                let r = Receive::new(Protocol::Udp, addr, node, &d).unwrap();
                s.handle_input(Input::Receive(now, r), &mut sent, &mut effects);
            }
        }
        assert!(s.is_connected(), "the viewer connects in memory");
        (HashMap::from([(id, s)]), client, now)
    }

    /// A frame of `n` VP8 packets for session 1, the first numbered `seq`.
    fn frame(seq: u64, n: usize, keyframe: bool) -> Vec<(Endpoint, Forward)> {
        (0..n)
            .map(|i| {
                let mut payload = vec![0x10, 0x00];
                payload.resize(1100, 0xab);
                let fwd = Forward {
                    kind: Kind::Video,
                    codec: Codec::Vp8,
                    seq: seq + i as u64,
                    ts: seq as u32 * 90,
                    marker: i + 1 == n,
                    payload: Arc::from(payload),
                    vp8: None,
                    switched: i == 0,
                    source: SourceKey {
                        generation: 1,
                        encoding: 0,
                    },
                    keyframe: keyframe && i == 0,
                };
                (Endpoint::Session(SessionId(1)), fwd)
            })
            .collect()
    }

    /// A frame's packets written to a viewer in one turn all leave at the turn's flush,
    /// with str0m's pacer (estimation on: one packet per timeout) as without it; nothing is
    /// sent before the flush, and no packet waits for a later one.
    #[test]
    fn a_frame_written_in_a_turn_leaves_whole_at_its_flush() {
        for bwe in [Some(3_000_000), None] {
            let (mut sessions, mut client, mut now) = connected_viewer(bwe);
            let mut unflushed = Unflushed::default();
            let (mut sent, mut effects) = (Sent::default(), Vec::new());
            let mut seq = 100;
            for (turn, n) in [(0, 5), (1, 5), (2, 12), (3, 1)] {
                now += Duration::from_millis(33);
                let mut forwards = frame(seq, n, turn == 0);
                seq += n as u64;
                let w = write_forwards(
                    &mut forwards,
                    &mut sessions,
                    &mut (),
                    now,
                    now,
                    &mut unflushed,
                    &mut effects,
                );
                assert_eq!(w.packets, n as u64);
                assert!(sent.0.is_empty(), "nothing leaves before the flush");
                assert_eq!(unflushed.0, [SessionId(1)], "listed once");
                let flushed =
                    flush_written(&mut unflushed, &mut sessions, now, &mut sent, &mut effects);
                assert_eq!(flushed, 1);
                let rtp = sent.0.iter().filter(|d| is_rtp(d)).count();
                deliver(&mut client, &mut sent, now);
                assert_eq!(rtp, n, "turn {turn}, estimation {bwe:?}: the whole frame");
                assert!(unflushed.is_empty());
            }
            let first = effects
                .iter()
                .filter(|e| matches!(e, Effect::FirstVideo(..)));
            assert_eq!(first.count(), 1, "the join counted once");
        }
    }
}
