//! SRTP protection on its own: str0m's AEAD-AES-256-GCM cipher (what the node negotiates
//! with browsers and str0m peers) sealing one 1,100-byte RTP payload with its 12-byte
//! header as associated data, beside the floor's AES-128-GCM seal of the same bytes
//! (which also copies and rewrites the header) in the same run.
//!
//! `cargo bench -p benches --bench srtp`

use std::hint::black_box;

use benches::Floor;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const PAYLOAD: usize = 1100;

fn protect(c: &mut Criterion) {
    let mut g = c.benchmark_group("srtp_protect");
    g.throughput(Throughput::Bytes(PAYLOAD as u64));
    let provider = str0m_aws_lc_rs::default_provider();
    let mut cipher = provider
        .srtp_provider
        .aead_aes_256_gcm()
        .create_cipher([9u8; 32], true);
    let header = [0x80u8, 96, 0, 1, 0, 0, 0x0b, 0xb8, 0, 0, 0, 1];
    let payload = vec![0xabu8; PAYLOAD];
    let mut out = vec![0u8; PAYLOAD + 16];
    let mut iv = [0u8; 12];
    // It must really seal: the output differs from the input and carries a tag.
    cipher.encrypt(&iv, &header, &payload, &mut out).unwrap();
    assert_ne!(&out[..PAYLOAD], &payload[..]);
    assert!(out[PAYLOAD..].iter().any(|&b| b != 0));
    let mut n = 0u32;
    g.bench_function("str0m_aead_aes256gcm", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            iv[8..].copy_from_slice(&n.to_be_bytes());
            cipher.encrypt(&iv, &header, &payload, &mut out).unwrap();
            black_box(out[PAYLOAD]);
        })
    });
    let mut floor = Floor::new();
    g.bench_function("floor_aes128gcm_copy_rewrite_seal", |b| {
        b.iter(|| black_box(floor.protect(&payload, 1)))
    });
    g.finish();
}

criterion_group!(benches, protect);
criterion_main!(benches);
