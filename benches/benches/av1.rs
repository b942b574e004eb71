//! What an AV1 rung would cost: rav1e encoding the ladder's 640×360 and 320×180 pictures at
//! its real-time settings (speed 10, low latency: no reordering, one frame of RDO
//! lookahead, one thread, bitrate mode at the VP8 rungs' rates). Run beside
//! `--bench ladder`, whose `encode_360p` and `encode_180p` are libvpx's VP8 on the same
//! pictures, to compare the two encoders per rung frame on the same machine.
//!
//! Before timing, each configuration prints how many frames rav1e takes in before its
//! first packet comes out (its lag, which a live rung adds to glass-to-glass delay).
//!
//! `cargo bench -p benches --bench av1`

use std::hint::black_box;
use std::time::Duration;

use benches::pictures::textured;
use criterion::{criterion_group, criterion_main, Criterion};
use rav1e::prelude::*;
use sfu::process::I420;

const FRAMES: usize = 60;

/// The encoder a live rung would run.
fn encoder(w: usize, h: usize, bitrate: i32) -> Context<u8> {
    let mut speed = SpeedSettings::from_preset(10);
    speed.rdo_lookahead_frames = 1;
    speed.scene_detection_mode = SceneDetectionSpeed::None;
    let enc = EncoderConfig {
        width: w,
        height: h,
        time_base: Rational::new(1, 30),
        low_latency: true,
        min_key_frame_interval: 0,
        max_key_frame_interval: 300,
        bitrate,
        speed_settings: speed,
        ..Default::default()
    };
    Config::new()
        .with_encoder_config(enc)
        .with_threads(1)
        .new_context()
        .expect("a valid rav1e configuration")
}

fn frame(ctx: &Context<u8>, pic: &I420) -> Frame<u8> {
    let mut f = ctx.new_frame();
    let cw = pic.width.div_ceil(2);
    f.planes[0].copy_from_raw_u8(&pic.y, pic.width, 1);
    f.planes[1].copy_from_raw_u8(&pic.u, cw, 1);
    f.planes[2].copy_from_raw_u8(&pic.v, cw, 1);
    f
}

/// Sends one picture and takes what is ready: the packets' total size.
fn encode(ctx: &mut Context<u8>, pic: &I420) -> usize {
    let f = frame(ctx, pic);
    ctx.send_frame(f).expect("rav1e takes a frame");
    let mut bytes = 0;
    loop {
        match ctx.receive_packet() {
            Ok(p) => bytes += p.data.len(),
            Err(EncoderStatus::Encoded) => continue,
            Err(_) => return bytes,
        }
    }
}

fn lag(w: usize, h: usize, bitrate: i32, pics: &[I420]) -> usize {
    let mut ctx = encoder(w, h, bitrate);
    for (i, p) in pics.iter().enumerate() {
        if encode(&mut ctx, p) > 0 {
            return i;
        }
    }
    pics.len()
}

fn av1(c: &mut Criterion) {
    let source: Vec<I420> = (0..FRAMES).map(|t| textured(1280, 720, t)).collect();
    let halves: Vec<I420> = source.iter().map(I420::half).collect();
    let quarters: Vec<I420> = halves.iter().map(I420::half).collect();

    let mut g = c.benchmark_group("av1_rung_per_frame");
    g.sample_size(20).measurement_time(Duration::from_secs(10));
    for (name, pics, bitrate) in [
        ("encode_360p", &halves, 690_000),
        ("encode_180p", &quarters, 170_000),
    ] {
        let (w, h) = (pics[0].width, pics[0].height);
        eprintln!(
            "{name}: {w}x{h}, rav1e lag {} frames before its first packet",
            lag(w, h, bitrate, pics)
        );
        let mut ctx = encoder(w, h, bitrate);
        let mut t = 0usize;
        let mut bytes = 0usize;
        g.bench_function(name, |b| {
            b.iter(|| {
                bytes += encode(&mut ctx, black_box(&pics[t % FRAMES]));
                t += 1;
            })
        });
        eprintln!(
            "{name}: {t} frames encoded, {} bytes per frame on average",
            bytes / t.max(1)
        );
    }
    g.finish();
}

criterion_group!(benches, av1);
criterion_main!(benches);
