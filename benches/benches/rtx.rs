//! Retransmissions: a viewer lost packets and sends NACKs; the node decrypts the SRTCP,
//! finds each packet in its retransmission cache and sends it again (RTX, protected).
//! The NACKs are made, untimed, by really losing every second packet on the way to a
//! str0m client connected in memory (fresh ones each time: SRTCP refuses replays); the
//! time is per retransmitted packet.
//!
//! `cargo bench -p benches --bench rtx`

use std::hint::black_box;
use std::time::{Duration, Instant};

use benches::Engine;
use criterion::{criterion_group, criterion_main, Criterion};

const PAYLOAD: usize = 1100;
/// Losses per round (the node's cache holds 1,024 packets).
const ROUND: usize = 200;

fn rtx(c: &mut Criterion) {
    let mut engine = Engine::new(1, PAYLOAD);
    // It must really retransmit: NACKs in, retransmissions out. (The client asks for only
    // part of a round's losses within the wait, about a quarter; the time is divided by
    // what was actually sent again.)
    let nacks = engine.lose(ROUND, PAYLOAD);
    assert!(!nacks.is_empty(), "the client sends NACKs");
    let out = engine.to_node(&nacks);
    assert!(
        out >= ROUND / 10,
        "{out} retransmissions for {ROUND} losses"
    );
    eprintln!(
        "a round: {} NACK datagrams, {out} retransmissions for {ROUND} losses",
        nacks.len()
    );
    engine.clear();
    let mut g = c.benchmark_group("rtx");
    g.sample_size(10);
    g.bench_function("nack_to_retransmission_per_packet", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut done = 0u64;
            while done < iters {
                let nacks = engine.lose(ROUND, PAYLOAD);
                let t = Instant::now();
                let sent = engine.to_node(&nacks);
                let took = t.elapsed();
                engine.clear();
                // Scale the round's time to the packets it retransmitted.
                let per = took / (sent.max(1) as u32);
                let take = (iters - done).min(sent.max(1) as u64);
                total += per * take as u32;
                done += take;
                black_box(sent);
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, rtx);
criterion_main!(benches);
