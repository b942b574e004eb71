//! Instructions per forwarded packet through the engine with viewers' bandwidth estimation
//! on (or off), on a virtual clock, for `valgrind --tool=callgrind`: criterion-free, so the
//! count is of the node's work alone. Each 10 ms tick one 1,100-byte packet goes to every
//! viewer (`node_forward`: the Router, `Session::write`, str0m's write, pacer and SRTP); the
//! str0m clients take what they were sent and answer (transport-wide feedback, receiver
//! reports; not counted); the node takes the answers and runs the timeouts due
//! (`node_feedback`: str0m's estimator, stats, pacer timers). Setup and a 2 s warm-up are
//! not counted.
//!
//! With FRAME above 1, each tick is 33 ms and carries a frame of FRAME packets to every
//! viewer (a 30 fps video's frame; 5 packets is a mid layer's), written in one pass as the
//! worker writes one loop turn's packets: what a turn's batching saves shows there.
//!
//! ```sh
//! cargo bench -p benches --bench egress --no-run
//! valgrind --tool=callgrind --toggle-collect='egress::node_*' \
//!     target/release/deps/egress-<hash> VIEWERS PACKETS on|off [FRAME]
//! ```
//! Instructions per packet per viewer = the total / (PACKETS × VIEWERS), PACKETS rounded
//! down to whole frames.

use std::hint::black_box;
use std::time::{Duration, Instant};

use benches::Engine;

const PAYLOAD: usize = 1100;
/// A tick carrying one packet (FRAME 1, the default: the figures before FRAME existed).
const TICK: Duration = Duration::from_millis(10);
/// A tick carrying a frame of several packets: 30 frames a second.
const FRAME_TICK: Duration = Duration::from_millis(33);
/// The warm-up, not counted.
const WARM_UP: Duration = Duration::from_secs(2);
/// The node's default starting estimate (`--viewer-bwe`).
const BWE_START: u64 = 3_000_000;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(100);
    let packets: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(500);
    let bwe = (args.get(2).map(String::as_str) != Some("off")).then_some(BWE_START);
    let frame: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(1).max(1);
    let tick = if frame == 1 { TICK } else { FRAME_TICK };
    let packets = packets / frame * frame;
    let mut e = Engine::with_bwe(n, PAYLOAD, bwe);
    let mut now = Instant::now();
    let warm_ticks = (WARM_UP.as_millis() / tick.as_millis()) as usize;
    let warm = ticks(&mut e, &mut now, warm_ticks, frame, tick);
    let t = Instant::now();
    let counted = ticks(&mut e, &mut now, packets / frame, frame, tick);
    let wall = t.elapsed();
    println!(
        "{n} viewers, estimation {}, {packets} packets in frames of {frame}: {} datagrams \
         from the node ({} in warm-up), {:.2} µs wall per packet per viewer (clients \
         included)",
        if bwe.is_some() { "on" } else { "off" },
        counted,
        warm,
        wall.as_secs_f64() * 1e6 / (packets * n) as f64
    );
}

/// Runs `count` ticks of `frame` packets each; returns the datagrams the node sent.
fn ticks(e: &mut Engine, now: &mut Instant, count: usize, frame: usize, tick: Duration) -> usize {
    let mut datagrams = 0;
    for _ in 0..count {
        *now += tick;
        node_forward(e, frame, *now);
        // This frame's datagrams and what the node sent after the last tick's answers.
        datagrams += e.collect.out.len();
        let back = e.clients_at(*now);
        node_feedback(e, &back, *now);
    }
    datagrams
}

#[inline(never)]
fn node_forward(e: &mut Engine, frame: usize, now: Instant) {
    black_box(e.forward_frame_at(PAYLOAD, frame, now));
}

#[inline(never)]
fn node_feedback(e: &mut Engine, back: &[(usize, Vec<u8>)], now: Instant) {
    e.node_at(back, now);
}
