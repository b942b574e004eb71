//! Audio levelling (`--level-audio`): one 20 ms stereo Opus packet of a publisher through
//! a stream's `LevelCore` (decode, BS.1770 measurement, gain, limiter, encode at 64 kbit/s),
//! the whole per-packet work of the leveller's thread. A stream sends 50 packets a second,
//! so the time per packet divided by 20 ms is the share of a core one levelled stream
//! takes. Mono (what browsers send from a microphone) and stereo.
//!
//! `cargo bench -p benches --bench level`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use opus::{Application, Channels, Encoder};
use sfu::level::LevelCore;

const RATE: u32 = 48_000;
const FRAME: usize = 960;

/// Ten seconds of a -30 LUFS tone over a little noise, as a publisher's packets.
fn packets(channels: Channels) -> Vec<Vec<u8>> {
    let mut enc = Encoder::new(RATE, channels, Application::Audio).unwrap();
    let n = if channels == Channels::Mono { 1 } else { 2 };
    let mut pcm = vec![0f32; FRAME * n];
    let mut noise = 0x9e37_79b9u32;
    let mut out = Vec::new();
    let mut buf = [0u8; 1500];
    for p in 0..500 {
        for i in 0..FRAME {
            let t = (p * FRAME + i) as f32 / RATE as f32;
            noise ^= noise << 13;
            noise ^= noise >> 17;
            noise ^= noise << 5;
            let s = 0.03 * (2.0 * std::f32::consts::PI * 440.0 * t).sin()
                + (noise as f32 / u32::MAX as f32 - 0.5) * 0.002;
            for c in 0..n {
                pcm[i * n + c] = s;
            }
        }
        let len = enc.encode_float(&pcm, &mut buf).unwrap();
        out.push(buf[..len].to_vec());
    }
    out
}

fn level(c: &mut Criterion) {
    let mut g = c.benchmark_group("level");
    for (name, ch) in [("mono", Channels::Mono), ("stereo", Channels::Stereo)] {
        let input = packets(ch);
        let mut core = LevelCore::new(-16.0).unwrap();
        let mut out = Vec::with_capacity(1500);
        let mut i = 0;
        g.bench_function(format!("opus_20ms_packet_{name}"), |b| {
            b.iter(|| {
                core.process(&input[i % input.len()], &mut out).unwrap();
                i += 1;
                black_box(out.len())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, level);
criterion_main!(benches);
