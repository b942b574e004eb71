//! The hub without str0m: sources, sinks, interest and keyframe wants on a virtual clock.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::codec::Codec;
use crate::forward::layers::{EncodingInfo, LayerTable};
use crate::forward::Kind;

const S: StreamId = StreamId(1);
const PUB: Endpoint = Endpoint::Session(SessionId(100));

fn table(layers: u8) -> Arc<LayerTable> {
    Arc::new(LayerTable {
        generation: 1,
        active: (0..layers)
            .map(|e| EncodingInfo {
                encoding: e,
                rid: None,
                bitrate_bps: 100_000 * (u64::from(e) + 1),
                temporal: Vec::new(),
            })
            .collect(),
        settled: true,
    })
}

fn video(encoding: u8, seq: u64, keyframe: bool, t: &Arc<LayerTable>) -> Arc<MediaPacket> {
    Arc::new(MediaPacket {
        kind: Kind::Video,
        source: SourceKey {
            generation: 1,
            encoding,
        },
        codec: Codec::H264,
        seq,
        ts: seq as u32 * 3000,
        marker: true,
        keyframe,
        payload: Arc::from(vec![0u8; 10]),
        arrival: Instant::now(),
        layers: Some(t.clone()),
        temporal: None,
    })
}

fn viewer(r: &mut Router, id: u64, out: &mut Outputs) -> Endpoint {
    r.add_viewer(SessionId(id), S, [1, 2], [3, 4], Instant::now(), out);
    Endpoint::Session(SessionId(id))
}

#[test]
fn interest_follows_the_first_and_last_sink() {
    let mut r = Router::default();
    let mut out = Outputs::default();
    let a = viewer(&mut r, 1, &mut out);
    let b = viewer(&mut r, 2, &mut out);
    assert_eq!(
        out.upstream,
        [Upstream::Interest {
            stream: S,
            on: true
        }]
    );
    out.upstream.clear();
    assert_eq!(r.remove_sink(a, &mut out), Some(S));
    assert!(out.upstream.is_empty(), "one sink left");
    assert_eq!(r.remove_sink(b, &mut out), Some(S));
    assert_eq!(
        out.upstream,
        [Upstream::Interest {
            stream: S,
            on: false
        }]
    );
    assert_eq!(r.remove_sink(b, &mut out), None);
    assert!(r.streams.is_empty(), "nothing left of the stream");
}

#[test]
fn packets_from_a_local_source_go_to_interested_workers_only_once() {
    let mut r = Router::default();
    let mut out = Outputs::default();
    let t = table(1);
    r.set_source(S, PUB, 1);
    r.set_interest(S, WorkerId(1), true);
    r.set_interest(S, WorkerId(3), true);
    let now = Instant::now();
    assert_eq!(
        r.route(S, &video(0, 1, true, &t), PUB, now, &mut out),
        0b1010
    );
    // From another worker: not handed on again.
    let w = Endpoint::Worker(WorkerId(1));
    assert_eq!(r.route(S, &video(0, 2, false, &t), w, now, &mut out), 0);
    r.set_interest(S, WorkerId(1), false);
    assert_eq!(
        r.route(S, &video(0, 3, false, &t), PUB, now, &mut out),
        0b1000
    );
    assert!(out.forwards.is_empty(), "no local sinks");
}

#[test]
fn a_joining_viewer_asks_the_local_source_for_a_keyframe_once_per_fanout() {
    let mut r = Router::default();
    let mut out = Outputs::default();
    let t = table(2);
    r.set_source(S, PUB, 1);
    let a = viewer(&mut r, 1, &mut out);
    viewer(&mut r, 2, &mut out);
    out.upstream.clear();
    let now = Instant::now();
    r.route(S, &video(1, 1, false, &t), PUB, now, &mut out);
    assert!(out.forwards.is_empty());
    assert_eq!(out.drops.awaiting_keyframe, 2);
    assert_eq!(
        out.upstream,
        [Upstream::Keyframe {
            to: PUB,
            encoding: 1
        }],
        "two viewers, one request (the source's Producer throttles the rest)"
    );
    out.upstream.clear();
    r.route(S, &video(1, 2, true, &t), PUB, now, &mut out);
    let to: Vec<_> = out.forwards.iter().map(|(to, _)| *to).collect();
    assert_eq!(to.len(), 2);
    assert!(to.contains(&a));
    assert!(out.upstream.is_empty(), "nobody waits");
    // A viewer's PLI asks for the layer it receives.
    r.sink_keyframe(a, now, &mut out);
    assert_eq!(
        out.upstream,
        [Upstream::Keyframe {
            to: PUB,
            encoding: 1
        }]
    );
    // A want for an older publisher is not passed on.
    out.upstream.clear();
    r.set_source(S, PUB, 2);
    r.sink_keyframe(a, now, &mut out);
    assert!(out.upstream.is_empty());
}

#[test]
fn without_a_local_source_wants_go_to_the_other_workers_at_most_every_100_ms() {
    let mut r = Router::default();
    let mut out = Outputs::default();
    let t = table(1);
    viewer(&mut r, 1, &mut out);
    out.upstream.clear();
    let t0 = Instant::now();
    let from = Endpoint::Worker(WorkerId(0));
    let want = Upstream::KeyframeWant {
        stream: S,
        source: SourceKey {
            generation: 1,
            encoding: 0,
        },
    };
    r.route(S, &video(0, 1, false, &t), from, t0, &mut out);
    assert_eq!(out.upstream, [want]);
    out.upstream.clear();
    r.route(
        S,
        &video(0, 2, false, &t),
        from,
        t0 + Duration::from_millis(99),
        &mut out,
    );
    assert!(out.upstream.is_empty(), "repeated too soon");
    r.route(
        S,
        &video(0, 3, false, &t),
        from,
        t0 + Duration::from_millis(100),
        &mut out,
    );
    assert_eq!(out.upstream, [want]);
    // Another worker's want is answered only by a source here.
    out.upstream.clear();
    let src = SourceKey {
        generation: 1,
        encoding: 0,
    };
    r.remote_keyframe_want(S, src, t0, &mut out);
    assert!(out.upstream.is_empty());
    r.set_source(S, PUB, 1);
    r.remote_keyframe_want(S, src, t0, &mut out);
    assert_eq!(
        out.upstream,
        [Upstream::Keyframe {
            to: PUB,
            encoding: 0
        }]
    );
}

#[test]
fn a_parked_preference_applies_when_the_viewer_connects() {
    let mut r = Router::default();
    let mut out = Outputs::default();
    let t = table(3);
    assert!(!r.set_pref(SessionId(1), LayerPref::Rank(0)), "unknown");
    r.park(SessionId(1), LayerPref::Auto);
    assert!(r.set_pref(SessionId(1), LayerPref::Rank(0)));
    viewer(&mut r, 1, &mut out);
    let now = Instant::now();
    for e in 0..3 {
        r.route(S, &video(e, 1, true, &t), PUB, now, &mut out);
    }
    assert_eq!(r.current_video(SessionId(1)).map(|k| k.encoding), Some(0));
    assert_eq!(r.demand(S), 0b001);
    assert!(r.set_pref(SessionId(1), LayerPref::Rank(2)));
    r.route(S, &video(2, 2, true, &t), PUB, now, &mut out);
    assert_eq!(r.current_video(SessionId(1)).map(|k| k.encoding), Some(2));
    // A session closed before connecting leaves nothing parked.
    r.park(SessionId(2), LayerPref::Auto);
    r.remove_sink(Endpoint::Session(SessionId(2)), &mut out);
    assert!(r.parked.is_empty());
}

#[test]
fn a_pipe_takes_every_wanted_layer_beside_viewers() {
    let mut r = Router::default();
    let mut out = Outputs::default();
    let t = table(3);
    r.set_source(S, PUB, 1);
    viewer(&mut r, 1, &mut out);
    let link = Endpoint::Relay(LinkId(7));
    r.add_pipe(link, S, 0b011, &mut out);
    assert_eq!(r.sink_count(S), 2);
    let now = Instant::now();
    let mut seq = 0;
    for kf in [true, false] {
        for e in 0..3 {
            seq += 1;
            r.route(S, &video(e, seq, kf, &t), PUB, now, &mut out);
        }
    }
    let piped: Vec<(u64, u8)> = out
        .forwards
        .iter()
        .filter(|(to, _)| *to == link)
        .map(|(_, f)| (f.seq, f.source.encoding))
        .collect();
    assert_eq!(
        piped,
        [(1, 0), (2, 1), (4, 0), (5, 1)],
        "original numbering"
    );
    // The viewer (Auto: the top layer) and the pipe together ask for all three.
    assert_eq!(r.demand(S), 0b111);
    assert_eq!(r.remove_sink(link, &mut out), Some(S));
    assert_eq!(r.demand(S), 0b100);
}

#[test]
fn layer_demand_is_reported_when_it_changes() {
    let mut r = Router::default();
    let mut out = Outputs::default();
    let t = table(3);
    r.set_source(S, PUB, 1);
    viewer(&mut r, 1, &mut out);
    out.upstream.clear();
    r.poll_demand(&mut out);
    assert!(out.upstream.is_empty(), "no target before a table arrives");
    let now = Instant::now();
    r.route(S, &video(2, 1, true, &t), PUB, now, &mut out);
    out.upstream.clear();
    r.poll_demand(&mut out);
    let demand = |layers| Upstream::LayerDemand {
        stream: S,
        to: Some(PUB),
        layers,
    };
    assert_eq!(out.upstream, [demand(0b100)]);
    out.upstream.clear();
    r.poll_demand(&mut out);
    assert!(out.upstream.is_empty(), "unchanged: not repeated");
    r.add_pipe(Endpoint::Relay(LinkId(1)), S, 0b001, &mut out);
    r.set_pref(SessionId(1), LayerPref::Rank(1));
    r.route(S, &video(1, 2, false, &t), PUB, now, &mut out);
    out.upstream.clear();
    r.poll_demand(&mut out);
    assert_eq!(out.upstream, [demand(0b011)]);
}

/// On a worker without the stream's source, the last viewer's leaving prunes the stream's
/// entry: its demand (here the layer and the ladder's rung) is taken back at the next poll,
/// or the relay link would go on pulling it (and the origin transcoding for nobody).
#[test]
fn the_demand_of_a_pruned_stream_is_taken_back() {
    let other = Endpoint::Worker(WorkerId(0));
    let demand = |layers| Upstream::LayerDemand {
        stream: S,
        to: None,
        layers,
    };
    let now = Instant::now();
    let mut r = Router::default();
    let mut out = Outputs::default();
    let v = viewer(&mut r, 1, &mut out);
    assert!(r.set_pref(SessionId(1), LayerPref::Rank(0)));
    r.route(S, &video(0, 1, true, &table(1)), other, now, &mut out);
    out.upstream.clear();
    r.poll_demand(&mut out);
    assert_eq!(out.upstream, [demand(0b001 | RUNG_WANT)]);
    assert_eq!(r.remove_sink(v, &mut out), Some(S));
    assert!(r.streams.is_empty(), "the entry is pruned");
    out.upstream.clear();
    r.poll_demand(&mut out);
    assert_eq!(out.upstream, [demand(0)], "taken back");
    out.upstream.clear();
    r.poll_demand(&mut out);
    assert!(out.upstream.is_empty(), "once");

    // Back before the poll, with a viewer that has no target yet: nothing is wanted.
    let v = viewer(&mut r, 2, &mut out);
    r.route(S, &video(0, 2, true, &table(1)), other, now, &mut out);
    out.upstream.clear();
    r.poll_demand(&mut out);
    assert_eq!(out.upstream, [demand(0b001)]);
    r.remove_sink(v, &mut out);
    viewer(&mut r, 3, &mut out);
    out.upstream.clear();
    r.poll_demand(&mut out);
    assert_eq!(out.upstream, [demand(0)]);
}

#[test]
fn the_fanout_allocates_nothing_once_buffers_have_grown() {
    let mut r = Router::default();
    let mut out = Outputs::default();
    let t = table(1);
    for i in 0..50 {
        viewer(&mut r, i, &mut out);
    }
    let now = Instant::now();
    r.route(S, &video(0, 1, true, &t), PUB, now, &mut out);
    let cap = out.forwards.capacity();
    for seq in 2..200 {
        out.forwards.clear();
        r.route(S, &video(0, seq, false, &t), PUB, now, &mut out);
        assert_eq!(out.forwards.len(), 50);
    }
    assert_eq!(out.forwards.capacity(), cap);
}

/// A packet of frame `frame` (30 fps), arriving `at`.
fn frame_pkt(
    seq: u64,
    frame: u32,
    keyframe: bool,
    t: &Arc<LayerTable>,
    at: Instant,
) -> Arc<MediaPacket> {
    let mut p = MediaPacket::clone(&video(0, seq, keyframe, t));
    p.ts = 90_000 + frame * 3000;
    p.arrival = at;
    Arc::new(p)
}

/// Whether a keyframe was asked for, of the source here or of the other workers.
fn asks_keyframe(out: &Outputs) -> bool {
    out.upstream
        .iter()
        .any(|u| matches!(u, Upstream::Keyframe { .. } | Upstream::KeyframeWant { .. }))
}

/// Viewer 1 joins at `now` (origins 100 and 5000): the forwards it got at once.
fn join_at(r: &mut Router, now: Instant, out: &mut Outputs) -> Vec<Forward> {
    r.add_viewer(SessionId(1), S, [100, 0], [5000, 0], now, out);
    let v = Endpoint::Session(SessionId(1));
    out.forwards
        .iter()
        .filter(|(to, _)| *to == v)
        .map(|(_, f)| f.clone())
        .collect()
}

/// A router whose stream has its source here.
fn sourced() -> (Router, Outputs) {
    let mut r = Router::default();
    r.set_source(S, PUB, 1);
    (r, Outputs::default())
}

#[test]
fn a_viewer_joining_mid_group_gets_it_at_once_squeezed_then_live() {
    let (mut r, mut out) = sourced();
    let t = table(1);
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    // A keyframe of two packets, then four delta frames of one packet each, 33 ms apart.
    let mut gop = Vec::new();
    let frames = [0, 0, 1, 2, 3, 4];
    for (seq, frame) in (10..).zip(frames) {
        let p = frame_pkt(seq, frame, seq == 10, &t, at(u64::from(frame) * 33));
        r.route(S, &p, PUB, p.arrival, &mut out);
        gop.push(p);
    }
    assert!(
        out.forwards.is_empty() && out.upstream.is_empty(),
        "no sinks yet"
    );
    // A viewer joins 150 ms after the keyframe: everything since it, before any new packet.
    let sent = join_at(&mut r, at(150), &mut out);
    assert_eq!(sent.len(), 6, "the whole group of pictures");
    assert!(
        sent[0].keyframe && sent[0].switched,
        "starts at the keyframe"
    );
    let seqs: Vec<u64> = sent.iter().map(|f| f.seq).collect();
    assert_eq!(seqs, [100, 101, 102, 103, 104, 105], "continuous numbering");
    let ts: Vec<u32> = sent.iter().map(|f| f.ts).collect();
    // Five frames, one tick apart, shown at once; the packets of one frame share one.
    assert_eq!(ts, [5000, 5000, 5001, 5002, 5003, 5004]);
    assert!(
        !asks_keyframe(&out),
        "a young group of pictures: no keyframe asked for"
    );
    out.forwards.clear();
    // Live goes on with its own spacing after the newest replayed frame.
    r.route(
        S,
        &frame_pkt(16, 5, false, &t, at(165)),
        PUB,
        at(165),
        &mut out,
    );
    assert_eq!(out.forwards.len(), 1);
    assert_eq!(
        (out.forwards[0].1.seq, out.forwards[0].1.ts),
        (106, 5004 + 3000)
    );
    out.forwards.clear();
    // A late copy of a replayed packet (a retransmission) does not follow with its real
    // timestamp: dropped.
    r.route(S, &gop[3], PUB, at(170), &mut out);
    assert!(out.forwards.is_empty());
    assert_eq!(out.drops.stale, 1);
}

/// A packet of `encoding` of frame `frame`, `size` payload bytes, arriving at `at`.
fn layer_pkt(
    encoding: u8,
    seq: u64,
    frame: u32,
    keyframe: bool,
    size: usize,
    t: &Arc<LayerTable>,
    at: Instant,
) -> Arc<MediaPacket> {
    let mut p = MediaPacket::clone(&frame_pkt(seq, frame, keyframe, t, at));
    p.source.encoding = encoding;
    p.payload = Arc::from(vec![0u8; size]);
    Arc::new(p)
}

#[test]
fn a_group_of_pictures_too_large_to_send_at_once_starts_the_viewer_on_a_lower_layer() {
    let (mut r, mut out) = sourced();
    let t = table(2);
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    // Six frames of each layer (each its own sequence): the high one's 84 packets of
    // 1,100 bytes (92 KB, over the join burst), the low one's 12.
    let mut seqs = [0u64; 2];
    for frame in 0..6u32 {
        for (encoding, per_frame) in [(0u8, 2), (1, 14)] {
            for i in 0..per_frame {
                let e = usize::from(encoding);
                seqs[e] += 1;
                let key = frame == 0 && i == 0;
                let arrival = at(u64::from(frame) * 33);
                let p = layer_pkt(encoding, seqs[e], frame, key, 1100, &t, arrival);
                r.route(S, &p, PUB, p.arrival, &mut out);
            }
        }
    }
    let sent = join_at(&mut r, at(180), &mut out);
    assert_eq!(sent.len(), 12, "the low layer's group of pictures");
    assert!(sent.iter().all(|f| f.source.encoding == 0));
    let bytes: usize = sent.iter().map(|f| f.payload.len()).sum();
    assert!(bytes <= JOIN_BURST, "{bytes} bytes at once");
    assert!(sent[0].keyframe && sent[0].switched);
    // The high layer, which the viewer is to get, is asked for at once.
    assert!(out.upstream.contains(&Upstream::Keyframe {
        to: PUB,
        encoding: 1
    }));
    out.forwards.clear();
    // Live: low goes on until the high layer's keyframe, which moves the viewer up.
    let low = layer_pkt(0, 13, 6, false, 1100, &t, at(200));
    r.route(S, &low, PUB, low.arrival, &mut out);
    let high = layer_pkt(1, 85, 6, false, 1100, &t, at(200));
    r.route(S, &high, PUB, high.arrival, &mut out);
    assert_eq!(out.forwards.len(), 1);
    assert_eq!(out.forwards[0].1.source.encoding, 0);
    assert_eq!(out.forwards[0].1.seq, 112, "continuous after the replay");
    out.forwards.clear();
    let key = layer_pkt(1, 86, 7, true, 1100, &t, at(233));
    r.route(S, &key, PUB, key.arrival, &mut out);
    let low = layer_pkt(0, 14, 7, false, 1100, &t, at(233));
    r.route(S, &low, PUB, low.arrival, &mut out);
    assert_eq!(out.forwards.len(), 1, "the low layer no more");
    let f = &out.forwards[0].1;
    assert!(f.source.encoding == 1 && f.keyframe && f.switched);
    assert_eq!(f.seq, 113);
}

#[test]
fn a_single_layer_group_of_pictures_over_the_burst_is_replayed_whole() {
    let (mut r, mut out) = sourced();
    let t = table(1);
    let t0 = Instant::now();
    // Five frames of 12 packets of 1,100 bytes: 66 KB, over the join burst.
    for frame in 0..5u32 {
        for i in 0..12u64 {
            let seq = u64::from(frame) * 12 + i + 1;
            let at = t0 + Duration::from_millis(u64::from(frame) * 33);
            let p = layer_pkt(0, seq, frame, seq == 1, 1100, &t, at);
            r.route(S, &p, PUB, p.arrival, &mut out);
        }
    }
    let sent = join_at(&mut r, t0 + Duration::from_millis(150), &mut out);
    assert_eq!(
        sent.len(),
        60,
        "no lower layer: the whole group, not a wait"
    );
    assert!(sent[0].keyframe && sent[0].switched);
}

#[test]
fn an_old_or_missing_group_of_pictures_asks_for_a_keyframe_at_the_join() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let t = table(1);
    let kf = Upstream::Keyframe {
        to: PUB,
        encoding: 0,
    };
    // Older than the refresh age: replayed, and a keyframe asked for the next joiner.
    let (mut r, mut out) = sourced();
    for (seq, frame) in (1..=20u64).zip(0..) {
        let p = frame_pkt(seq, frame, seq == 1, &t, at(u64::from(frame) * 33));
        r.route(S, &p, PUB, p.arrival, &mut out);
    }
    r.add_viewer(SessionId(1), S, [0, 0], [0, 0], at(660), &mut out);
    assert_eq!(out.forwards.len(), 20);
    assert!(out.upstream.contains(&kf));
    // Older than the cache keeps: nothing replayed, the keyframe asked for at once.
    out.forwards.clear();
    out.upstream.clear();
    let late = at(GopCache::MAX_AGE.as_millis() as u64 + 1);
    r.add_viewer(SessionId(2), S, [0, 0], [0, 0], late, &mut out);
    assert!(out.forwards.is_empty());
    assert!(out.upstream.contains(&kf));
    // No keyframe seen yet (deltas only): asked for at the join, not at the next packet;
    // with one, the joiner gets it.
    for keyframe in [false, true] {
        let (mut r, mut out) = sourced();
        r.route(S, &frame_pkt(1, 0, keyframe, &t, t0), PUB, t0, &mut out);
        r.add_viewer(SessionId(1), S, [0, 0], [0, 0], t0, &mut out);
        assert_eq!(out.forwards.len(), usize::from(keyframe));
        assert_eq!(out.upstream.contains(&kf), !keyframe);
    }
    // The publisher left: its picture is not handed to the next viewer.
    let (mut r, mut out) = sourced();
    r.route(S, &frame_pkt(1, 0, true, &t, t0), PUB, t0, &mut out);
    assert!(r.remove_source(S, PUB));
    out.forwards.clear();
    r.add_viewer(SessionId(2), S, [0, 0], [0, 0], t0, &mut out);
    assert!(out.forwards.is_empty());
}

#[test]
fn a_viewer_handshaking_on_another_worker_starts_from_the_source_workers_cache() {
    let t0 = Instant::now();
    let t = table(1);
    // The source's worker has a group of pictures.
    let (mut a, mut out_a) = sourced();
    for (seq, frame) in (1..=5u64).zip(0..) {
        let p = frame_pkt(seq, frame, seq == 1, &t, t0);
        a.route(S, &p, PUB, t0, &mut out_a);
    }
    // A viewer opens on another worker: the stream is wanted there at once.
    let mut b = Router::default();
    let mut out = Outputs::default();
    b.expect_viewer(SessionId(7), S, t0, &mut out);
    let on = Upstream::Interest {
        stream: S,
        on: true,
    };
    assert_eq!(out.upstream, [on]);
    // The source's worker answers the interest with its cache; the viewer starts from it.
    a.set_interest(S, WorkerId(1), true);
    let snapshot = a.gop_snapshot(S).expect("the source's cache");
    b.seed_gops(S, &snapshot, t0, &mut out);
    assert!(
        !asks_keyframe(&out),
        "a fresh group of pictures: nothing asked"
    );
    out.upstream.clear();
    b.add_viewer(SessionId(7), S, [0, 0], [0, 0], t0, &mut out);
    assert_eq!(out.forwards.len(), 5, "replayed from the seeded cache");
    assert!(
        out.upstream.is_empty(),
        "no second interest, no keyframe asked"
    );
    // A worker without the source has no snapshot to give.
    assert!(b.gop_snapshot(S).is_none());
    // A viewer gone before its media started: the interest goes with it.
    let mut out = Outputs::default();
    b.expect_viewer(SessionId(8), StreamId(2), t0, &mut out);
    b.remove_sink(Endpoint::Session(SessionId(8)), &mut out);
    assert_eq!(
        out.upstream,
        [
            Upstream::Interest {
                stream: StreamId(2),
                on: true
            },
            Upstream::Interest {
                stream: StreamId(2),
                on: false
            }
        ]
    );
    assert!(!b.streams.contains_key(&StreamId(2)), "pruned");
    assert!(b.pending.is_empty());
}

#[test]
fn a_replay_keeps_the_target_chosen_from_the_newest_table() {
    let t0 = Instant::now();
    let (mut r, mut out) = sourced();
    // The keyframe left before the layers were ranked: its packets carry an unsettled
    // table; the newest packet carries the ranking.
    let mut unranked = LayerTable::clone(&table(2));
    unranked.settled = false;
    let unranked = Arc::new(unranked);
    let ranked = table(2);
    for (seq, frame) in (1..=4u64).zip(0..) {
        let t = if seq == 4 { &ranked } else { &unranked };
        let mut p = MediaPacket::clone(&frame_pkt(seq, frame, seq == 1, t, t0));
        p.source.encoding = 1;
        r.route(S, &Arc::new(p), PUB, t0, &mut out);
    }
    r.add_viewer(SessionId(1), S, [0, 0], [0, 0], t0, &mut out);
    assert_eq!(
        out.forwards.len(),
        4,
        "the whole group, not dropped as no layer"
    );
    assert_eq!(r.current_video(SessionId(1)).map(|k| k.encoding), Some(1));
}

#[test]
fn a_viewer_without_a_recent_group_of_pictures_asks_for_a_keyframe_at_its_post() {
    let t0 = Instant::now();
    let t = table(1);
    let kf = Upstream::Keyframe {
        to: PUB,
        encoding: 0,
    };
    // The source's worker knows the layers but holds no keyframe: asked for at once, while
    // the viewer's ICE and DTLS run.
    let (mut a, mut out) = sourced();
    a.route(S, &frame_pkt(1, 0, false, &t, t0), PUB, t0, &mut out);
    a.expect_viewer(SessionId(1), S, t0, &mut out);
    assert!(out.upstream.contains(&kf));
    // The keyframe arrives before the viewer's media starts: cached, then replayed.
    a.route(S, &frame_pkt(2, 1, true, &t, t0), PUB, t0, &mut out);
    out.upstream.clear();
    a.add_viewer(SessionId(1), S, [0, 0], [0, 0], t0, &mut out);
    assert_eq!(out.forwards.len(), 1);
    assert!(!out.upstream.contains(&kf), "asked once, early");
    // With a recent group of pictures, nothing is asked.
    out.upstream.clear();
    a.expect_viewer(SessionId(2), S, t0, &mut out);
    assert!(!out.upstream.contains(&kf));
    // On another worker, once the source's worker told it the layers (with no packets).
    let snapshot = a.gop_snapshot(S).expect("the source's table");
    let (mut b, mut out) = (Router::default(), Outputs::default());
    b.expect_viewer(SessionId(3), S, t0, &mut out);
    let empty = GopSnapshot {
        table: snapshot.table,
        packets: Vec::new(),
    };
    b.seed_gops(S, &empty, t0, &mut out);
    assert!(out.upstream.contains(&Upstream::KeyframeWant {
        stream: S,
        source: SourceKey {
            generation: 1,
            encoding: 0
        }
    }));
}

/// A single-layer stream's ladder is wanted by a viewer asking for the low or middle
/// layer, here or (as told) on another worker; not by one on the top layer; and a worker
/// without the source tells the others when its viewers change their mind.
#[test]
fn the_ladder_is_wanted_by_viewers_below_the_top() {
    let mut r = Router::default();
    let mut out = Outputs::default();
    let t = table(1);
    viewer(&mut r, 1, &mut out);
    r.route(S, &video(0, 1, true, &t), PUB, Instant::now(), &mut out);
    assert!(!r.ladder_wanted(S), "an auto viewer on the one layer");
    assert!(
        r.poll_ladder_wants().is_empty(),
        "no source here, nothing changed: nothing to tell"
    );
    assert!(r.set_pref(SessionId(1), LayerPref::Rank(2)));
    assert!(!r.ladder_wanted(S), "high is the source");
    assert!(r.set_pref(SessionId(1), LayerPref::Rank(0)));
    assert!(r.ladder_wanted(S), "low");
    assert_eq!(r.poll_ladder_wants(), [(S, true)]);
    assert!(r.poll_ladder_wants().is_empty());
    assert!(r.set_pref(SessionId(1), LayerPref::Rank(1)));
    assert!(r.ladder_wanted(S), "mid");
    assert!(r.set_pref(SessionId(1), LayerPref::Auto));
    assert_eq!(r.poll_ladder_wants(), [(S, false)]);
    // Another worker's viewers count until it says otherwise.
    r.set_ladder_want(S, WorkerId(1), true);
    assert!(r.ladder_wanted(S));
    r.set_ladder_want(S, WorkerId(1), false);
    assert!(!r.ladder_wanted(S));
}

/// A viewer on another worker that leaves while on the ladder tells no `LadderWant` off
/// (its entry there is gone), only its lost interest: that alone ends its want here.
#[test]
fn a_worker_that_loses_interest_wants_no_ladder() {
    let mut r = Router::default();
    let mut out = Outputs::default();
    r.set_source(S, PUB, 1);
    r.set_interest(S, WorkerId(1), true);
    r.set_ladder_want(S, WorkerId(1), true);
    assert!(r.ladder_wanted(S));
    r.set_interest(S, WorkerId(1), false);
    assert!(!r.ladder_wanted(S), "its want went with its interest");
    // A worker with neither source nor viewers keeps no entry for another's want.
    let mut idle = Router::default();
    idle.set_interest(S, WorkerId(1), true);
    idle.set_ladder_want(S, WorkerId(1), true);
    idle.set_interest(S, WorkerId(1), false);
    assert!(!idle.ladder_wanted(S));
    idle.route(
        S,
        &video(0, 1, true, &table(1)),
        PUB,
        Instant::now(),
        &mut out,
    );
    assert!(
        !idle.ladder_wanted(S),
        "a publisher here later starts no ladder"
    );
}

/// A single-layer stream that comes over a relay link: a viewer here who wants a lower
/// layer asks upstream for the ladder's first rung as well (what starts the ladder where
/// the stream is published); a simulcast stream's does not.
#[test]
fn a_relayed_single_layer_stream_asks_upstream_for_a_rung() {
    let relay = Endpoint::Relay(LinkId(9));
    let demand = |layers| Upstream::LayerDemand {
        stream: S,
        to: Some(relay),
        layers,
    };
    let now = Instant::now();
    let mut r = Router::default();
    let mut out = Outputs::default();
    r.set_source(S, relay, 1);
    viewer(&mut r, 1, &mut out);
    r.route(S, &video(0, 1, true, &table(1)), relay, now, &mut out);
    out.upstream.clear();
    r.poll_demand(&mut out);
    assert_eq!(
        out.upstream,
        [demand(0b001)],
        "on the one layer: that layer"
    );
    assert!(r.set_pref(SessionId(1), LayerPref::Rank(0)));
    out.upstream.clear();
    r.poll_demand(&mut out);
    assert_eq!(out.upstream, [demand(0b001 | RUNG_WANT)]);

    // Simulcast: a viewer on the lowest layer wants that layer only.
    let mut r = Router::default();
    viewer(&mut r, 1, &mut out);
    r.set_source(S, relay, 1);
    assert!(r.set_pref(SessionId(1), LayerPref::Rank(0)));
    r.route(S, &video(0, 1, true, &table(3)), relay, now, &mut out);
    out.upstream.clear();
    r.poll_demand(&mut out);
    assert_eq!(out.upstream, [demand(0b001)]);
}

/// Where the stream is published, a relay child that wants an encoding above a
/// single-layer source's (a rung, or the rung it asks for before the ladder runs) wants
/// the ladder; one that wants the source's only does not.
#[test]
fn a_relay_child_wanting_a_rung_wants_the_ladder() {
    let mut r = Router::default();
    let mut out = Outputs::default();
    r.set_source(S, PUB, 1);
    let link = Endpoint::Relay(LinkId(1));
    r.add_pipe(link, S, 0b001, &mut out);
    r.route(
        S,
        &video(0, 1, true, &table(1)),
        PUB,
        Instant::now(),
        &mut out,
    );
    assert!(!r.ladder_wanted(S));
    r.set_pipe_wanted(link, 0b001 | RUNG_WANT);
    assert!(r.ladder_wanted(S));
    // The rung is not sent yet: no keyframe is asked of it at every packet.
    out.upstream.clear();
    for seq in 2..10 {
        r.route(
            S,
            &video(0, seq, false, &table(1)),
            PUB,
            Instant::now(),
            &mut out,
        );
    }
    assert!(
        !out.upstream
            .iter()
            .any(|u| matches!(u, Upstream::Keyframe { encoding: 1, .. })),
        "{:?}",
        out.upstream
    );
    r.set_pipe_wanted(link, 0b001);
    assert!(!r.ladder_wanted(S));
    // Every layer: a child whose viewers have not chosen yet.
    r.set_pipe_wanted(link, 0x0f);
    assert!(!r.ladder_wanted(S));
}
