//! A session's setup, as the node pays it: both ends' certificates made, the offer
//! answered, ICE and the whole DTLS handshake run in memory until both are connected.
//! The node side on str0m's built-in DTLS (dimpl on aws-lc-rs, before) and on OpenSSL's
//! DTLS (`sfu::dtls`, now), against a str0m client with an ECDSA certificate (like a
//! browser); and OpenSSL's against a client with an RSA-2048 certificate (like
//! GStreamer), which the built-in DTLS refuses. The per-packet path (SRTP) is the same
//! aws-lc-rs code with either: see benches/srtp.rs and benches/forward.rs.
//!
//! `cargo bench -p benches --bench dtls`

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use str0m::crypto::dtls::DtlsCert;
use str0m::crypto::CryptoProvider;
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};

/// An RSA-2048 self-signed certificate, as GStreamer's DTLS agent makes.
fn rsa_cert() -> DtlsCert {
    sfu::dtls::rsa_certificate().expect("an RSA certificate")
}

/// Drains `from` at `now`, delivering its datagrams to `to`; returns (sent any,
/// connected, its next timeout).
fn drain(
    from: &mut Rtc,
    fa: SocketAddr,
    to: &mut Rtc,
    ta: SocketAddr,
    now: Instant,
) -> (bool, bool, Instant) {
    let (mut sent, mut connected) = (false, false);
    loop {
        match from.poll_output().expect("no error") {
            Output::Timeout(t) => return (sent, connected, t),
            Output::Transmit(t) => {
                let r = Receive::new(Protocol::Udp, fa, ta, &t.contents).unwrap();
                to.handle_input(Input::Receive(now, r)).unwrap();
                sent = true;
            }
            Output::Event(Event::Connected) => connected = true,
            Output::Event(_) => {}
        }
    }
}

/// One session's setup; panics unless both ends connect.
fn setup(node: &Arc<CryptoProvider>, client_dtls: Option<(&Arc<CryptoProvider>, &DtlsCert)>) {
    let (ca, sa): (SocketAddr, SocketAddr) = (
        "127.0.0.2:1000".parse().unwrap(),
        "127.0.0.1:5000".parse().unwrap(),
    );
    let now = Instant::now();
    let mut client = RtcConfig::new().set_rtp_mode(true);
    if let Some((p, cert)) = client_dtls {
        client = client
            .set_crypto_provider(p.clone())
            .set_dtls_cert(cert.clone());
    }
    let mut client = client.build(now);
    client.add_local_candidate(Candidate::host(ca, Protocol::Udp).unwrap());
    let mut api = client.sdp_api();
    api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    let (offer, pending) = api.apply().unwrap();
    let mut server = RtcConfig::new()
        .set_crypto_provider(node.clone())
        .set_ice_lite(true)
        .set_rtp_mode(true)
        .build(now);
    server.add_local_candidate(Candidate::host(sa, Protocol::Udp).unwrap());
    let answer = server.sdp_api().accept_offer(offer).unwrap();
    client.sdp_api().accept_answer(pending, answer).unwrap();
    // str0m's clock jumps to the next timer when nothing is in flight, so only work is
    // measured, not ICE's pacing. (Nothing is lost: OpenSSL's own timer never fires.)
    let (mut up_c, mut up_s, mut clock) = (false, false, now);
    for _ in 0..1000 {
        let (a, c, tc) = drain(&mut client, ca, &mut server, sa, clock);
        let (b, s, ts) = drain(&mut server, sa, &mut client, ca, clock);
        up_c |= c;
        up_s |= s;
        if up_c && up_s {
            return;
        }
        if !(a || b) {
            clock = clock.max(tc.min(ts));
            client.handle_input(Input::Timeout(clock)).unwrap();
            server.handle_input(Input::Timeout(clock)).unwrap();
        }
    }
    panic!("handshake did not complete");
}

fn handshake(c: &mut Criterion) {
    let mut g = c.benchmark_group("session_setup");
    g.sample_size(30);
    let builtin = Arc::new(str0m::crypto::from_feature_flags());
    let openssl = sfu::dtls::provider();
    g.bench_function("builtin_dtls_ecdsa_peer", |b| {
        b.iter(|| setup(&builtin, None))
    });
    g.bench_function("openssl_dtls_ecdsa_peer", |b| {
        b.iter(|| setup(&openssl, None))
    });
    let rsa = rsa_cert();
    g.bench_function("openssl_dtls_rsa_peer", |b| {
        b.iter(|| setup(&openssl, Some((&openssl, &rsa))))
    });
    g.finish();
}

criterion_group!(benches, handshake);
criterion_main!(benches);
