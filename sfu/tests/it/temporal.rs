//! A VP8 L1T3 publisher (temporal layers 0 2 1 2) into the Router, and a viewer whose path
//! first carries only the base layer, then everything, then the base again: its frame rate
//! must follow, and what it gets must stay decodable (no sequence or picture id gap, no
//! frame cut, a layer resumed only at a sync frame).

use std::time::Duration;

use sfu::budget::Pressure;
use sfu::codec::Codec;
use sfu::forward::allocator::PathReport;
use sfu::forward::layers::LayerRanker;
use sfu::forward::{Allocation, Consumer, Kind, LayerPref, MediaPacket, Sink, SourceKey};
use sfu::ids::{SessionId, StreamId};
use sfu::router::{Endpoint, Outputs, Router};

use crate::link::{Clock, Link};

const STREAM: StreamId = StreamId(1);
const PUB: Endpoint = Endpoint::Session(SessionId(100));
const VIEWER: SessionId = SessionId(1);

/// Packets per frame by temporal layer: the base carries the most.
const PACKETS: [usize; 3] = [3, 2, 1];

struct Publisher {
    ranker: LayerRanker,
    seq: u64,
    pid: u16,
    tl0: u8,
    frame: u64,
    /// A keyframe was asked for: the next frame is one (and a base frame).
    key: bool,
}

impl Publisher {
    /// One 30 fps frame: layers 0 2 1 2, the first 1 and 2 after a base frame in sync.
    fn frame(&mut self, clock: &Clock) -> Vec<MediaPacket> {
        let asked = std::mem::take(&mut self.key);
        if asked {
            // The pattern starts over at a keyframe.
            self.frame = self.frame.next_multiple_of(4);
        }
        let key = asked || self.frame.is_multiple_of(120);
        let (tid, sync) = match self.frame % 4 {
            0 => (0u8, false),
            1 => (2, true),
            2 => (1, true),
            _ => (2, false),
        };
        if tid == 0 {
            self.tl0 = self.tl0.wrapping_add(1);
        }
        let n = PACKETS[usize::from(tid)];
        let mut out = Vec::new();
        for i in 0..n {
            let mut payload = vec![
                if i == 0 { 0x90 } else { 0x80 },
                0xe0,
                0x80 | (self.pid >> 8) as u8,
                self.pid as u8,
                self.tl0,
                tid << 6 | if sync { 0x20 } else { 0 },
                if key { 0x00 } else { 0x01 },
            ];
            payload.resize(1000, 0);
            let temporal = Codec::Vp8.temporal(&payload);
            let table = self
                .ranker
                .on_packet(clock.now, 0, payload.len(), temporal.map(|t| t.tid))
                .clone();
            out.push(MediaPacket {
                kind: Kind::Video,
                source: SourceKey {
                    generation: 1,
                    encoding: 0,
                },
                codec: Codec::Vp8,
                seq: self.seq,
                ts: (self.frame * 3000) as u32,
                marker: i + 1 == n,
                keyframe: key && i == 0,
                payload: payload.into(),
                arrival: clock.now,
                layers: Some(table),
                temporal,
            });
            self.seq += 1;
        }
        self.pid = (self.pid + 1) & 0x7fff;
        self.frame += 1;
        self.ranker.handle_timeout(clock.now);
        out
    }
}

/// A forwarded packet as the viewer's decoder sees it.
struct Seen {
    seq: u64,
    pid: u16,
    tid: u8,
    sync: bool,
    frame_start: bool,
    ms: u64,
}

/// Runs the plan through a link reordering `reorder` of the packets: what the viewer got,
/// and each change of its temporal target (ms, highest layer).
fn run(reorder: f64) -> (Vec<Seen>, Vec<(u64, Option<u8>)>) {
    let mut clock = Clock::new();
    let start = clock.now;
    let mut link: Link<MediaPacket> = Link::new(3, 0.0, reorder);
    let mut router = Router::default();
    let mut out = Outputs::default();
    router.set_source(STREAM, PUB, 1);
    let viewer = Consumer::new(LayerPref::Auto, [100, 200], [0, 0]);
    router.add_sink(
        Endpoint::Session(VIEWER),
        STREAM,
        Sink::Viewer(viewer),
        &mut out,
    );
    let mut ranker = LayerRanker::new(1);
    ranker.encoding_for(None).unwrap();
    let mut publisher = Publisher {
        ranker,
        seq: 5000,
        // About to wrap: the closing up must cross it.
        pid: 0x7ff0,
        tl0: 0,
        frame: 0,
        key: false,
    };
    // The publisher sends about 420 kbit/s: the base layer about 180, layers 0–1 about
    // 300. Its base layer with audio fits 300 kbit/s; everything fits 900.
    let estimate = |ms: u64| match ms {
        0..6000 => 300_000,
        6000..12_000 => 900_000,
        _ => 300_000,
    };
    let mut seen: Vec<Seen> = Vec::new();
    let mut temporal_targets = Vec::new();
    for frame in 0..600u64 {
        let ms = frame * 100 / 3;
        for pkt in publisher.frame(&clock) {
            for p in link.send(pkt) {
                let p = std::sync::Arc::new(p);
                router.route(STREAM, &p, PUB, clock.now, &mut out);
                let t = p.temporal.expect("L1T3");
                for (_, fwd) in out.forwards.drain(..) {
                    seen.push(Seen {
                        seq: fwd.seq,
                        pid: fwd.vp8.and_then(|v| v.picture_id).expect("picture id"),
                        tid: t.tid,
                        sync: t.sync,
                        frame_start: t.frame_start,
                        ms,
                    });
                }
            }
        }
        if frame % 3 == 0 {
            // The path carries what it is estimated to (the padding proves it).
            let path = PathReport {
                estimate: Some(estimate(ms)),
                sent_bps: estimate(ms),
                ..PathReport::default()
            };
            let a = router.allocate(VIEWER, clock.now, path, Pressure::Normal);
            if let Some(a) = a.filter(|a| a.changed) {
                assert_eq!(a.target, Allocation::Layer(0), "one spatial layer");
                temporal_targets.push((ms, a.temporal));
            }
        }
        if !out.upstream.is_empty() {
            publisher.key = true;
            out.upstream.clear();
        }
        clock.advance(Duration::from_millis(33));
    }
    assert!(clock.now > start);
    (seen, temporal_targets)
}

#[test]
fn frame_rate_follows_the_path_and_stays_decodable() {
    let (seen, temporal_targets) = run(0.0);
    let changes: Vec<Option<u8>> = temporal_targets.iter().map(|(_, t)| *t).collect();
    assert_eq!(
        changes,
        [Some(0), None, Some(0)],
        "base only, all, base only: {temporal_targets:?}"
    );

    // Decodable: no sequence number gap or reuse, picture ids go on by one a frame, and
    // every frame forwarded is whole.
    for w in seen.windows(2) {
        assert_eq!(w[1].seq, w[0].seq + 1, "no gap, no reuse");
        if w[1].frame_start {
            assert_eq!(w[1].pid, (w[0].pid + 1) & 0x7fff, "picture ids close up");
        } else {
            assert_eq!(w[1].pid, w[0].pid, "a frame is never cut");
        }
    }
    let starts: Vec<&Seen> = seen.iter().filter(|s| s.frame_start).collect();
    for s in &starts {
        let n = seen.iter().filter(|x| x.pid == s.pid).count();
        assert_eq!(n, PACKETS[usize::from(s.tid)], "whole frame {}", s.pid);
    }
    // The frame rate follows the path: 7.5 fps on the base layer, 30 with all of them.
    let fps = |from: u64, to: u64| {
        let n = starts.iter().filter(|s| (from..to).contains(&s.ms)).count();
        n as f64 * 1000.0 / (to - from) as f64
    };
    assert!(
        (6.0..=9.0).contains(&fps(500, 6000)),
        "base only: {}",
        fps(500, 6000)
    );
    assert!(
        fps(9000, 12_000) >= 28.0,
        "all layers: {}",
        fps(9000, 12_000)
    );
    assert!(
        (6.0..=9.0).contains(&fps(13_000, 20_000)),
        "base again: {}",
        fps(13_000, 20_000)
    );
    // Upper layers come back at a sync frame.
    let first_up = starts
        .iter()
        .find(|s| s.tid > 0)
        .expect("upper layers came back");
    assert!(first_up.sync, "resumed at a sync frame");
    assert!(first_up.ms >= 6000);
}

/// The same through a link that reorders packets: a late packet keeps its place, a
/// late packet of a frame taken out stays out, and no number is used twice.
#[test]
fn reordered_packets_never_reuse_a_number() {
    let (mut seen, temporal_targets) = run(0.05);
    assert!(temporal_targets.len() >= 3, "{temporal_targets:?}");
    seen.sort_by_key(|s| s.seq);
    let mut holes = 0;
    for w in seen.windows(2) {
        assert_ne!(w[1].seq, w[0].seq, "a sequence number used twice");
        holes += (w[1].seq - w[0].seq - 1) as usize;
        let step = w[1].pid.wrapping_sub(w[0].pid) & 0x7fff;
        assert!(
            step <= 1,
            "picture ids in sequence order: {} then {}: {:?}",
            w[0].pid,
            w[1].pid,
            seen.iter()
                .filter(|s| s.seq + 12 >= w[0].seq && s.seq <= w[1].seq + 8)
                .map(|s| (s.seq, s.pid, s.tid, s.frame_start, s.ms))
                .collect::<Vec<_>>()
        );
    }
    // A hole is a late packet of a frame already taken out (its number was kept for it
    // when it was due; the packets after it had taken theirs): 1 % of packets at this
    // heavy reordering.
    assert!(holes * 50 <= seen.len(), "{holes} holes in {}", seen.len());
    let whole = seen
        .iter()
        .filter(|s| s.frame_start)
        .filter(|s| seen.iter().filter(|x| x.pid == s.pid).count() == PACKETS[usize::from(s.tid)])
        .count();
    let frames = seen.iter().filter(|s| s.frame_start).count();
    assert!(
        whole * 100 >= frames * 99,
        "{whole} of {frames} frames whole"
    );
}
