//! The transcoded ladder's cost per source frame (`sfu::process`): decoding a 720p VP8
//! frame, halving the picture, encoding the 640×360 and 320×180 rungs with libvpx in its
//! real-time settings, and the whole step (decode, two halvings, two encodes). The source
//! is a textured picture panning 4 pixels a frame, encoded at the ladder's own settings,
//! so that motion search and residuals cost what a camera's would, roughly.
//!
//! `cargo bench -p benches --bench ladder`

use std::hint::black_box;
use std::time::Duration;

use benches::pictures::textured;
use criterion::{criterion_group, criterion_main, Criterion};
use sfu::process::vpx::{Decoder, Encoder, EncoderConfig};
use sfu::process::I420;

const FRAMES: usize = 60;

fn ladder(c: &mut Criterion) {
    let source: Vec<I420> = (0..FRAMES).map(|t| textured(1280, 720, t)).collect();
    let mut enc = Encoder::new(EncoderConfig::realtime(1280, 720)).unwrap();
    let stream: Vec<Vec<u8>> = source
        .iter()
        .enumerate()
        .map(|(t, p)| {
            enc.encode(p, t as i64 * 3000, t == 0)
                .unwrap()
                .remove(0)
                .data
        })
        .collect();
    let halves: Vec<I420> = source.iter().map(I420::half).collect();
    let quarters: Vec<I420> = halves.iter().map(I420::half).collect();

    let mut g = c.benchmark_group("ladder_per_frame");
    g.sample_size(20).measurement_time(Duration::from_secs(8));

    let mut dec = Decoder::new().unwrap();
    let mut i = 0;
    g.bench_function("decode_720p", |b| {
        b.iter(|| {
            let pic = dec.decode(black_box(&stream[i % FRAMES])).unwrap();
            i += 1;
            black_box(pic)
        })
    });

    g.bench_function("halve_720p_to_360p", |b| {
        b.iter(|| black_box(black_box(&source[0]).half()))
    });

    for (name, pics) in [("encode_360p", &halves), ("encode_180p", &quarters)] {
        let (w, h) = (pics[0].width, pics[0].height);
        let mut enc = Encoder::new(EncoderConfig::realtime(w, h)).unwrap();
        let mut t = 0usize;
        g.bench_function(name, |b| {
            b.iter(|| {
                let out = enc
                    .encode(&pics[t % FRAMES], t as i64 * 3000, false)
                    .unwrap();
                t += 1;
                black_box(out)
            })
        });
    }

    let mut dec = Decoder::new().unwrap();
    let mut e360 = Encoder::new(EncoderConfig::realtime(640, 360)).unwrap();
    let mut e180 = Encoder::new(EncoderConfig::realtime(320, 180)).unwrap();
    let mut t = 0usize;
    g.bench_function("decode_720p_halve_encode_360p_and_180p", |b| {
        b.iter(|| {
            let pic = dec.decode(&stream[t % FRAMES]).unwrap().unwrap();
            let half = pic.half();
            let a = e360.encode(&half, t as i64 * 3000, false).unwrap();
            let quarter = half.half();
            let b = e180.encode(&quarter, t as i64 * 3000, false).unwrap();
            t += 1;
            black_box((a, b))
        })
    });
    g.finish();
}

criterion_group!(benches, ladder);
criterion_main!(benches);
