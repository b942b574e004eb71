//! Instructions per forwarded packet through the engine with viewers' bandwidth estimation
//! on (or off), on a virtual clock, for `valgrind --tool=callgrind`: criterion-free, so the
//! count is of the node's work alone. Each 10 ms tick one 1,100-byte packet goes to every
//! viewer (`node_forward`: the Router, `Session::write`, str0m's write, pacer and SRTP); the
//! str0m clients take what they were sent and answer (transport-wide feedback, receiver
//! reports; not counted); the node takes the answers and runs the timeouts due
//! (`node_feedback`: str0m's estimator, stats, pacer timers). Setup and a 2 s warm-up are
//! not counted.
//!
//! ```sh
//! cargo bench -p benches --bench egress --no-run
//! valgrind --tool=callgrind --toggle-collect='egress::node_*' \
//!     target/release/deps/egress-<hash> VIEWERS PACKETS on|off
//! ```
//! Instructions per packet per viewer = the total / (PACKETS × VIEWERS).

use std::hint::black_box;
use std::time::{Duration, Instant};

use benches::Engine;

const PAYLOAD: usize = 1100;
const TICK: Duration = Duration::from_millis(10);
/// The node's default starting estimate (`--viewer-bwe`).
const BWE_START: u64 = 3_000_000;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(100);
    let packets: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(500);
    let bwe = (args.get(2).map(String::as_str) != Some("off")).then_some(BWE_START);
    let mut e = Engine::with_bwe(n, PAYLOAD, bwe);
    let mut now = Instant::now();
    let warm = ticks(&mut e, &mut now, 200);
    let t = Instant::now();
    let counted = ticks(&mut e, &mut now, packets);
    let wall = t.elapsed();
    println!(
        "{n} viewers, estimation {}, {packets} packets: {} datagrams from the node \
         ({} in warm-up), {:.2} µs wall per packet per viewer (clients included)",
        if bwe.is_some() { "on" } else { "off" },
        counted,
        warm,
        wall.as_secs_f64() * 1e6 / (packets * n) as f64
    );
}

/// Runs `count` ticks; returns the datagrams the node sent.
fn ticks(e: &mut Engine, now: &mut Instant, count: usize) -> usize {
    let mut datagrams = 0;
    for _ in 0..count {
        *now += TICK;
        node_forward(e, *now);
        // This packet's datagrams and what the node sent after the last tick's answers.
        datagrams += e.collect.out.len();
        let back = e.clients_at(*now);
        node_feedback(e, &back, *now);
    }
    datagrams
}

#[inline(never)]
fn node_forward(e: &mut Engine, now: Instant) {
    black_box(e.forward_at(PAYLOAD, now));
}

#[inline(never)]
fn node_feedback(e: &mut Engine, back: &[(usize, Vec<u8>)], now: Instant) {
    e.node_at(back, now);
}
