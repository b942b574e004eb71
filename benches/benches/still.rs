//! A still's cost per keyframe (`sfu::process::still`): a 1280×720 keyframe of a textured
//! picture decoded (libvpx for VP8, OpenH264 for H.264), halved twice to 320×180 and
//! written as a JPEG, what a live thumbnail costs a node once per stream every 45 s, and
//! the H.264 decode alone.
//!
//! `cargo bench -p benches --bench still`

use std::hint::black_box;
use std::time::Duration;

use benches::pictures::textured;
use criterion::{criterion_group, criterion_main, Criterion};
use openh264::encoder::{BitRate, Encoder as H264Encoder, EncoderConfig as H264Config};
use openh264::formats::YUVBuffer;
use openh264::OpenH264API;
use sfu::process::h264dec::decode_keyframe;
use sfu::process::still::still_jpeg;
use sfu::process::vpx::{Encoder, EncoderConfig};

/// The first frame OpenH264 encodes of `p` (SPS, PPS, IDR) in AVC form: each NAL unit,
/// its start code dropped, after its 4-byte length.
fn h264_keyframe(p: &sfu::process::I420) -> Vec<u8> {
    let cfg = H264Config::new().bitrate(BitRate::from_bps(2_500_000));
    let mut enc = H264Encoder::with_api_config(OpenH264API::from_source(), cfg).unwrap();
    let yuv = YUVBuffer::from_vec([&p.y[..], &p.u, &p.v].concat(), p.width, p.height);
    let bits = enc.encode(&yuv).unwrap();
    let mut au = Vec::new();
    for layer in (0..bits.num_layers()).filter_map(|l| bits.layer(l)) {
        for nal in (0..layer.nal_count()).filter_map(|n| layer.nal_unit(n)) {
            let body = &nal[nal.iter().position(|&b| b == 1).unwrap() + 1..];
            au.extend_from_slice(&(body.len() as u32).to_be_bytes());
            au.extend_from_slice(body);
        }
    }
    au
}

fn still(c: &mut Criterion) {
    let source = textured(1280, 720, 0);
    let vp8 = Encoder::new(EncoderConfig::realtime(1280, 720))
        .unwrap()
        .encode(&source, 0, true)
        .unwrap()
        .remove(0)
        .data;
    let h264 = h264_keyframe(&source);

    let mut g = c.benchmark_group("still_per_keyframe");
    g.sample_size(20).measurement_time(Duration::from_secs(6));
    g.bench_function("vp8_720p_to_jpeg", |b| {
        b.iter(|| black_box(still_jpeg("vp8", black_box(&vp8)).unwrap()))
    });
    g.bench_function("h264_720p_to_jpeg", |b| {
        b.iter(|| black_box(still_jpeg("h264", black_box(&h264)).unwrap()))
    });
    g.bench_function("h264_720p_decode", |b| {
        b.iter(|| black_box(decode_keyframe(black_box(&h264)).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, still);
criterion_main!(benches);
