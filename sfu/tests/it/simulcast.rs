//! A three-layer VP8 publisher through a lossy link into the Router: every viewer's
//! output must stay decodable across layer switches and a publisher restart.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sfu::codec::Codec;
use sfu::forward::layers::LayerRanker;
use sfu::forward::{Consumer, Forward, Kind, LayerPref, MediaPacket, Sink, SourceKey};
use sfu::ids::{SessionId, StreamId};
use sfu::router::{Endpoint, Outputs, Router, Upstream};

use crate::link::{Clock, Link, Rng};

const STREAM: StreamId = StreamId(1);
const PUB: Endpoint = Endpoint::Session(SessionId(100));

/// One simulcast layer of a synthetic VP8 publisher.
struct Layer {
    seq: u64,
    ts: u32,
    pid: u16,
    tl0: u8,
    packets_per_frame: usize,
}

struct Publisher {
    generation: u32,
    ranker: LayerRanker,
    layers: Vec<Layer>,
    frame: u64,
}

impl Publisher {
    fn new(generation: u32, rng: &mut Rng) -> Publisher {
        let mut ranker = LayerRanker::new(generation);
        let layers = [(1usize, "q"), (2, "h"), (4, "f")]
            .iter()
            .map(|(ppf, rid)| {
                ranker.encoding_for(Some(rid)).unwrap();
                Layer {
                    seq: rng.next() % 60_000,
                    ts: rng.next() as u32,
                    pid: (rng.next() % 0x8000) as u16,
                    tl0: rng.next() as u8,
                    packets_per_frame: *ppf,
                }
            })
            .collect();
        Publisher {
            generation,
            ranker,
            layers,
            frame: 0,
        }
    }

    /// One 30 fps frame on every layer; keyframes every 30 frames or when `key` says so.
    fn frame(&mut self, clock: &Clock, key: &mut [bool; 3]) -> Vec<MediaPacket> {
        let mut out = Vec::new();
        for (e, l) in self.layers.iter_mut().enumerate() {
            let is_key = key[e] || self.frame.is_multiple_of(30);
            key[e] = false;
            for i in 0..l.packets_per_frame {
                let first = i == 0;
                let mut payload = vec![
                    if first { 0x90 } else { 0x80 },
                    0xe0,
                    0x80 | (l.pid >> 8) as u8,
                    l.pid as u8,
                    l.tl0,
                    0x00,
                    if is_key { 0x00 } else { 0x01 },
                ];
                payload.extend_from_slice(&self.generation.to_be_bytes());
                payload.resize(300, e as u8);
                let table = self
                    .ranker
                    .on_packet(clock.now, e as u8, payload.len(), None)
                    .clone();
                out.push(MediaPacket {
                    kind: Kind::Video,
                    source: SourceKey {
                        generation: self.generation,
                        encoding: e as u8,
                    },
                    codec: Codec::Vp8,
                    seq: l.seq,
                    ts: l.ts,
                    marker: i + 1 == l.packets_per_frame,
                    keyframe: first && is_key,
                    payload: Arc::from(payload),
                    arrival: clock.now,
                    layers: Some(table),
                    temporal: None,
                });
                l.seq += 1;
            }
            l.pid = (l.pid + 1) & 0x7fff;
            l.tl0 = l.tl0.wrapping_add(1);
            l.ts = l.ts.wrapping_add(3000);
        }
        self.frame += 1;
        self.ranker.handle_timeout(clock.now);
        out
    }
}

/// What the viewer's decoder would see, with the source each packet came from.
struct Seen {
    fwd: Forward,
    source: SourceKey,
    keyframe: bool,
    pid: u16,
    at: std::time::Instant,
}

#[test]
fn lossy_simulcast_with_switches_and_restart_stays_decodable() {
    let mut rng = Rng::seed(42);
    let mut clock = Clock::new();
    let mut link: Link<MediaPacket> = Link::new(7, 0.05, 0.02);
    let mut router = Router::default();
    let mut out = Outputs::default();
    router.set_source(STREAM, PUB, 1);
    let prefs = [LayerPref::Auto, LayerPref::Rank(0), LayerPref::Rank(1)];
    for (i, p) in prefs.iter().enumerate() {
        let c = Consumer::new(
            p.clone(),
            [rng.next() as u16, rng.next() as u16],
            [rng.next() as u32, 0],
        );
        let id = Endpoint::Session(SessionId(i as u64 + 1));
        router.add_sink(id, STREAM, Sink::Viewer(c), &mut out);
    }
    let mut publisher = Publisher::new(1, &mut rng);
    let mut key = [false; 3];
    let mut seen: HashMap<Endpoint, Vec<Seen>> = HashMap::new();

    for frame in 0..900u32 {
        // Random layer changes for viewer 1; a publisher restart at frame 450.
        if frame % 97 == 50 {
            let pref = LayerPref::Rank((rng.next() % 3) as u8);
            assert!(router.set_pref(SessionId(1), pref));
        }
        if frame == 450 {
            publisher = Publisher::new(2, &mut rng);
            router.set_source(STREAM, PUB, 2);
            clock.advance(Duration::from_millis(700)); // the publisher was away a while
        }
        for pkt in publisher.frame(&clock, &mut key) {
            for p in link.send(pkt) {
                let p = Arc::new(p);
                router.route(STREAM, &p, PUB, clock.now, &mut out);
                for (id, fwd) in out.forwards.drain(..) {
                    let pid = fwd
                        .vp8
                        .and_then(|v| v.picture_id)
                        .expect("a VP8 picture id");
                    seen.entry(id).or_default().push(Seen {
                        keyframe: p.keyframe,
                        source: p.source,
                        pid,
                        fwd,
                        at: clock.now,
                    });
                }
            }
        }
        // Keyframe requests reach the publisher (answered on its next frame).
        for u in out.upstream.drain(..) {
            if let Upstream::Keyframe { to, encoding } = u {
                assert_eq!(to, PUB);
                key[usize::from(encoding)] = true;
            }
        }
        clock.advance(Duration::from_millis(33));
    }
    assert!(link.lost > 100, "the link was lossy: {} lost", link.lost);

    for (id, packets) in &seen {
        assert!(
            packets.len() > 500,
            "viewer {id:?} got media: {}",
            packets.len()
        );
        assert!(packets[0].keyframe, "viewer {id:?} starts on a keyframe");
        let mut switches = 0;
        for w in packets.windows(2) {
            let (a, b) = (&w[0], &w[1]);
            assert!(
                b.fwd.seq > a.fwd.seq || a.source == b.source,
                "no sequence number reused"
            );
            assert_ne!(a.fwd.seq, b.fwd.seq, "no duplicate sequence numbers");
            if b.source != a.source {
                switches += 1;
                assert!(
                    b.keyframe && b.fwd.switched,
                    "a new source starts on its keyframe"
                );
                assert_eq!(b.fwd.seq, a.fwd.seq + 1, "no gap at a switch");
                assert_eq!(
                    b.pid,
                    (a.pid + 1) & 0x7fff,
                    "picture ids continue across a switch"
                );
                let ticks = b.fwd.ts.wrapping_sub(a.fwd.ts);
                let elapsed = (b.at - a.at).as_secs_f64() * 90_000.0;
                assert!(
                    (f64::from(ticks) - elapsed.max(1.0)).abs() <= 1.0,
                    "timestamps follow the wall clock"
                );
            } else {
                // Same source: numbering follows the publisher's, lost packets leave gaps.
                let gap = b.fwd.seq.wrapping_sub(a.fwd.seq) as i64;
                assert!(
                    (-3..=12).contains(&gap),
                    "seq step {gap} within loss/reorder bounds"
                );
            }
        }
        let gens: std::collections::HashSet<u32> =
            packets.iter().map(|p| p.source.generation).collect();
        assert_eq!(
            gens.len(),
            2,
            "viewer {id:?} followed the restarted publisher"
        );
        assert!(
            switches >= 1,
            "viewer {id:?} switched at least at the restart"
        );
    }
    // Viewer 2 (low) and 3 (mid) stay on their layers apart from the restart.
    for (id, rank) in [(SessionId(2), 0u8), (SessionId(3), 1u8)] {
        let id = Endpoint::Session(id);
        let on_rank = seen[&id]
            .iter()
            .filter(|p| p.source.encoding == rank)
            .count();
        assert!(
            on_rank * 10 >= seen[&id].len() * 9,
            "viewer {id:?} mostly on encoding {rank}"
        );
    }
    assert!(out.drops.awaiting_keyframe > 0 && out.drops.other_layer > 0);
}
