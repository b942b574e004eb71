//! Forwarding one packet to 1, 100 and 1,000 viewers, against the floor measured in the
//! same run: the same bytes copied, rewritten, sealed with AES-128-GCM and sent with
//! `sendmmsg` to loopback. Per-viewer cost = time / viewers.
//!
//! `cargo bench -p benches --bench forward`

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use benches::{consumer, one_layer, router_with_viewers, vp8_packet, Engine, Floor};
use benches::{PUBLISHER, STREAM};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sfu::ids::LinkId;
use sfu::relay::{PipeOut, RelayPacket};
use sfu::router::{Endpoint, Outputs, Router};

const PAYLOAD: usize = 1100;

fn fanout(c: &mut Criterion) {
    let mut g = c.benchmark_group("fanout");
    let table = one_layer();
    for n in [1usize, 100, 1000] {
        g.throughput(Throughput::Elements(n as u64));

        // The forwarding core alone: the Router deciding, selecting, rewriting for every
        // viewer.
        let (mut router, mut out) = router_with_viewers(n);
        let first = vp8_packet(0, true, PAYLOAD, &table);
        router.route(STREAM, &first, PUBLISHER, Instant::now(), &mut out);
        out.forwards.clear();
        let mut seq = 1;
        g.bench_with_input(BenchmarkId::new("core", n), &n, |b, _| {
            b.iter(|| {
                seq += 1;
                let pkt = vp8_packet(seq, false, PAYLOAD, &table);
                router.route(STREAM, &pkt, PUBLISHER, pkt.arrival, &mut out);
                black_box(out.forwards.len());
                out.forwards.clear();
            })
        });

        // The relay-link path: the core with pipes (a child node each, every layer
        // unrewritten), then each forward encoded as a relay RTP packet and handed to the
        // link's queue at the turn's end (here a Vec; on a node, the link task's channel).
        // The link's own work after that, QUIC's seal and send in edge-relay's task, is not
        // in it.
        let (mut router, mut out) = router_with_pipes(n);
        let mut pipes = sfu::egress::PipeLinks::default();
        let queue = Arc::new(Queue::default());
        for i in 0..n {
            pipes.insert(LinkId(i as u32 + 1), queue.clone());
        }
        let first = vp8_packet(0, true, PAYLOAD, &table);
        router.route(STREAM, &first, PUBLISHER, Instant::now(), &mut out);
        let mut effects = Vec::new();
        let w = sfu::egress::write_forwards(
            &mut out.forwards,
            &mut HashMap::new(),
            &mut pipes,
            first.arrival,
            first.arrival,
            &mut sfu::egress::Unflushed::default(),
            &mut effects,
        );
        assert_eq!(w.piped, n as u64, "every pipe takes the keyframe");
        assert_eq!(pipes.flush().sent, n as u64);
        queue.clear();
        g.bench_with_input(BenchmarkId::new("pipe", n), &n, |b, _| {
            b.iter(|| {
                seq += 1;
                let pkt = vp8_packet(seq, false, PAYLOAD, &table);
                router.route(STREAM, &pkt, PUBLISHER, pkt.arrival, &mut out);
                let w = sfu::egress::write_forwards(
                    &mut out.forwards,
                    &mut HashMap::new(),
                    &mut pipes,
                    pkt.arrival,
                    pkt.arrival,
                    &mut sfu::egress::Unflushed::default(),
                    &mut effects,
                );
                black_box(w.piped);
                black_box(pipes.flush());
                queue.clear();
            })
        });

        // Recording off and on: the core for n viewers, then the turn's forwards applied
        // (write_forwards, the pipes flushed) with no recorder, and with one: a pipe wanting
        // every layer whose batches go to a real recorder queue (sfu::record), drained by
        // another thread as the recorder's would be. The difference is what recording costs
        // the media worker per packet.
        for recording in [false, true] {
            let (mut router, mut out) = router_with_viewers(n);
            let mut pipes = sfu::egress::PipeLinks::default();
            let drain = if recording {
                let drops = sfu::Metrics::new()
                    .forward_drops
                    .with_label_values(&["recorder_queue_full"]);
                let (queue, rx) = sfu::record::RecorderQueue::new(drops);
                let link = LinkId(u32::MAX);
                router.add_pipe(Endpoint::Relay(link), STREAM, u8::MAX, &mut out);
                pipes.insert(link, Arc::new(queue));
                Some(std::thread::spawn(move || {
                    rx.iter().map(|b| b.len()).sum::<usize>()
                }))
            } else {
                None
            };
            let first = vp8_packet(0, true, PAYLOAD, &table);
            router.route(STREAM, &first, PUBLISHER, Instant::now(), &mut out);
            let mut effects = Vec::new();
            let mut sessions = HashMap::new();
            let mut apply = |out: &mut Outputs, pipes: &mut sfu::egress::PipeLinks, at| {
                let w = sfu::egress::write_forwards(
                    &mut out.forwards,
                    &mut sessions,
                    pipes,
                    at,
                    at,
                    &mut sfu::egress::Unflushed::default(),
                    &mut effects,
                );
                black_box(pipes.flush());
                w.piped
            };
            assert_eq!(
                apply(&mut out, &mut pipes, first.arrival),
                u64::from(recording)
            );
            let name = if recording {
                "recording_on"
            } else {
                "recording_off"
            };
            g.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
                b.iter(|| {
                    seq += 1;
                    let pkt = vp8_packet(seq, false, PAYLOAD, &table);
                    router.route(STREAM, &pkt, PUBLISHER, pkt.arrival, &mut out);
                    black_box(apply(&mut out, &mut pipes, pkt.arrival));
                })
            });
            drop(pipes);
            if let Some(d) = drain {
                assert!(d.join().unwrap() > 0, "the recorder's queue got packets");
            }
        }

        // The engine: core, then str0m write_rtp and SRTP for every viewer's session.
        let mut engine = Engine::new(n, PAYLOAD);
        // It must really produce a protected datagram per viewer per packet (RTCP and STUN
        // may travel alongside).
        engine.forward_next(PAYLOAD, false);
        let media = engine
            .collect
            .out
            .iter()
            .filter(|(_, d)| d.len() > PAYLOAD)
            .count();
        assert!(
            media * 10 >= n * 9,
            "{media} protected datagrams for {n} viewers"
        );
        engine.clear();
        g.bench_with_input(BenchmarkId::new("engine", n), &n, |b, _| {
            b.iter(|| {
                black_box(engine.forward_next(PAYLOAD, false));
                engine.clear();
            })
        });

        // The engine's datagrams, sent with sendmmsg as the floor sends its own.
        let floor = Floor::new();
        g.bench_with_input(BenchmarkId::new("engine+sendmmsg", n), &n, |b, _| {
            b.iter(|| {
                engine.forward_next(PAYLOAD, false);
                black_box(floor.send_these(engine.collect.out.iter().map(|(_, d)| d.as_slice())));
                engine.clear();
            })
        });

        // The floor: copy, rewrite, seal (AES-128-GCM), sendmmsg.
        let mut floor = Floor::new();
        let payload = vec![0xabu8; PAYLOAD];
        g.bench_with_input(BenchmarkId::new("floor_seal", n), &n, |b, &n| {
            b.iter(|| black_box(floor.protect(&payload, n)))
        });
        g.bench_with_input(BenchmarkId::new("floor_seal+sendmmsg", n), &n, |b, &n| {
            b.iter(|| {
                floor.protect(&payload, n);
                black_box(floor.send_all())
            })
        });
    }
    g.finish();
}

/// A router whose stream has `n` pipes (relay links to children), each wanting layer 0.
fn router_with_pipes(n: usize) -> (Router, Outputs) {
    let mut router = Router::default();
    let mut out = Outputs::default();
    router.set_source(STREAM, PUBLISHER, 1);
    for i in 0..n {
        router.add_pipe(Endpoint::Relay(LinkId(i as u32 + 1)), STREAM, 0b1, &mut out);
    }
    out.upstream.clear();
    (router, out)
}

/// A relay link's queue: keeps what it is sent until cleared.
#[derive(Default)]
struct Queue(Mutex<Vec<RelayPacket>>);

impl Queue {
    fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
}

impl PipeOut for Queue {
    fn send(&self, mut packets: Vec<RelayPacket>) -> bool {
        self.0.lock().unwrap().append(&mut packets);
        true
    }
}

/// A viewer's layer switch: the target changes, the selector waits for the new layer's
/// keyframe, and the rewriters splice sequence numbers, timestamps and picture ids onto
/// it. Measured per switch (one keyframe packet of the other layer per iteration).
fn layer_switch(c: &mut Criterion) {
    let mut g = c.benchmark_group("layer_switch");
    let table = benches::two_layers();
    let mut viewer = consumer();
    let mut seq = [10u64, 5000];
    let mut rank = 0u8;
    // It must really switch: each keyframe of the other layer moves the viewer onto it.
    for want in [1u8, 0, 1, 0] {
        viewer.set_pref(sfu::forward::LayerPref::Rank(want));
        let layer = usize::from(want);
        seq[layer] += 3;
        let pkt = benches::vp8_packet_on(want, seq[layer], true, PAYLOAD, &table);
        assert!(viewer.forward(&pkt, pkt.arrival).is_ok());
        assert_eq!(viewer.current_video().map(|k| k.encoding), Some(want));
    }
    g.bench_function("switch_at_keyframe", |b| {
        b.iter(|| {
            rank ^= 1;
            viewer.set_pref(sfu::forward::LayerPref::Rank(rank));
            let layer = usize::from(rank);
            seq[layer] += 3;
            let pkt = benches::vp8_packet_on(layer as u8, seq[layer], true, PAYLOAD, &table);
            black_box(viewer.forward(&pkt, pkt.arrival).is_ok())
        })
    });
    // Steady state for comparison: the same layer, no switch.
    g.bench_function("same_layer", |b| {
        b.iter(|| {
            seq[0] += 1;
            let pkt = benches::vp8_packet_on(0, seq[0], false, PAYLOAD, &table);
            black_box(viewer.forward(&pkt, pkt.arrival).is_ok())
        })
    });
    g.finish();
}

criterion_group!(benches, fanout, layer_switch);
criterion_main!(benches);
