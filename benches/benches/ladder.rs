//! The transcoded ladder's cost per source frame (`sfu::process`), for each codec it takes
//! (VP8 with libvpx, H.264 with OpenH264): decoding a 720p frame, halving the picture,
//! encoding the 640×360 and 320×180 rungs at the ladder's real-time settings, and the
//! whole step (decode, two halvings, two encodes). The source is a textured picture
//! panning 4 pixels a frame, encoded at the ladder's own settings and reassembled from its
//! RTP packets as the ladder receives it (an H.264 access unit in AVC form), so that motion
//! search and residuals cost what a camera's would, roughly. The same codec-neutral parts
//! the ladder runs (`sfu::process::coding`) are measured for both codecs.
//!
//! `cargo bench -p benches --bench ladder`

use std::hint::black_box;
use std::time::{Duration, Instant};

use benches::pictures::textured;
use criterion::{criterion_group, criterion_main, Criterion};
use sfu::codec::Codec;
use sfu::process::coding::{EncoderConfig, Payloader, RungEncoder, SourceDecoder};
use sfu::process::ladder::MAX_SOURCE_PIXELS;
use sfu::process::I420;
use sfu::record::assemble::Assembler;

const FRAMES: usize = 60;

/// `source` encoded with `codec` at the ladder's settings, each frame as the ladder's
/// decoder takes it (packetized, then reassembled).
fn stream(codec: Codec, source: &[I420]) -> Vec<Vec<u8>> {
    let (w, h) = (source[0].width, source[0].height);
    let mut enc = RungEncoder::new(codec, EncoderConfig::realtime(w, h)).unwrap();
    let mut pay = Payloader::new(codec, 1, 1);
    let mut asm = Assembler::new(codec);
    let mut frames = Vec::new();
    for (t, p) in source.iter().enumerate() {
        let ts = t as u32 * 3000;
        let mut pkts = Vec::new();
        for e in enc.encode(p, i64::from(ts), t == 0).unwrap() {
            pay.packetize(&e.data, ts, e.keyframe, &mut pkts);
        }
        for p in pkts {
            asm.push(&p.into_rec(codec), Instant::now(), &mut frames);
        }
    }
    assert_eq!(frames.len(), FRAMES, "every frame reassembled");
    frames.into_iter().map(|f| f.data).collect()
}

fn ladder(c: &mut Criterion) {
    let source: Vec<I420> = (0..FRAMES).map(|t| textured(1280, 720, t)).collect();
    let halves: Vec<I420> = source.iter().map(I420::half).collect();
    let quarters: Vec<I420> = halves.iter().map(I420::half).collect();

    let mut g = c.benchmark_group("ladder_per_frame");
    g.sample_size(20).measurement_time(Duration::from_secs(8));

    g.bench_function("halve_720p_to_360p", |b| {
        b.iter(|| black_box(black_box(&source[0]).half()))
    });

    for codec in [Codec::Vp8, Codec::H264] {
        let name = codec.name();
        let stream = stream(codec, &source);
        let decoder = || SourceDecoder::new(codec, MAX_SOURCE_PIXELS).unwrap();
        let encoder = |w, h| RungEncoder::new(codec, EncoderConfig::realtime(w, h)).unwrap();

        // Each pass starts again at the keyframe, so that the decoder never meets a frame
        // out of order.
        let mut dec = decoder();
        let mut i = 0;
        g.bench_function(format!("{name}/decode_720p"), |b| {
            b.iter(|| {
                let pic = dec.decode(black_box(&stream[i % FRAMES])).unwrap();
                i += 1;
                black_box(pic)
            })
        });

        for (rung, pics) in [("encode_360p", &halves), ("encode_180p", &quarters)] {
            let mut enc = encoder(pics[0].width, pics[0].height);
            let mut t = 0usize;
            g.bench_function(format!("{name}/{rung}"), |b| {
                b.iter(|| {
                    let out = enc
                        .encode(&pics[t % FRAMES], t as i64 * 3000, false)
                        .unwrap();
                    t += 1;
                    black_box(out)
                })
            });
        }

        let mut dec = decoder();
        let (mut e360, mut e180) = (encoder(640, 360), encoder(320, 180));
        let mut t = 0usize;
        g.bench_function(
            format!("{name}/decode_720p_halve_encode_360p_and_180p"),
            |b| {
                b.iter(|| {
                    let pic = dec.decode(&stream[t % FRAMES]).unwrap().unwrap();
                    let half = pic.half();
                    let a = e360.encode(&half, t as i64 * 3000, false).unwrap();
                    let quarter = half.half();
                    let b = e180.encode(&quarter, t as i64 * 3000, false).unwrap();
                    t += 1;
                    black_box((a, b))
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, ladder);
criterion_main!(benches);
