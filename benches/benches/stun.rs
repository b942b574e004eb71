//! Finding the session of a STUN binding request from an address the worker has not
//! seen (a new viewer, a NAT rebinding), among 1,000 sessions: asking every session's
//! str0m agent (what the worker did) against looking the USERNAME's ufrag up in the
//! worker's index and asking that one session (what it does). Both end in the same
//! integrity check of the one session that owns the request.
//!
//! `cargo bench -p benches --bench stun`

use std::collections::HashMap;
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use sfu::ids::{SessionId, StreamId};
use sfu::session::{OpenParams, Session};
use sfu::Role;
use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Input, Output, RtcConfig};

const SESSIONS: usize = 1000;

fn stun(c: &mut Criterion) {
    let server: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    let client_addr: SocketAddr = "127.0.0.1:6000".parse().unwrap();
    let params = OpenParams {
        local: server,
        tcp: None,
        rtx_cache_packets: 16,
        keyframe_throttle: Duration::from_millis(100),
        viewer_bwe: None,
    };
    let now = Instant::now();
    let mut sessions = Vec::with_capacity(SESSIONS);
    let mut request = Vec::new();
    for i in 0..SESSIONS {
        let mut client = RtcConfig::new().set_rtp_mode(true).build(now);
        client.add_local_candidate(Candidate::host(client_addr, Protocol::Udp).unwrap());
        let mut api = client.sdp_api();
        api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let (offer, pending) = api.apply().unwrap();
        let (session, answer) = Session::open(
            SessionId(i as u64 + 1),
            StreamId(1),
            Role::Viewer,
            &offer.to_sdp_string(),
            params,
            now,
        )
        .unwrap();
        sessions.push(session);
        // The request comes from the last session's client: a scan looks at every one.
        if i == SESSIONS - 1 {
            client
                .sdp_api()
                .accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap())
                .unwrap();
            let mut t = now;
            while request.is_empty() {
                t += Duration::from_millis(50);
                client.handle_input(Input::Timeout(t)).unwrap();
                while let Ok(out) = client.poll_output() {
                    match out {
                        Output::Transmit(x) => request = x.contents.to_vec(),
                        Output::Timeout(_) => break,
                        Output::Event(_) => {}
                    }
                }
            }
        }
    }
    let index: HashMap<String, usize> = sessions
        .iter()
        .enumerate()
        .map(|(i, s)| (s.local_ufrag().to_owned(), i))
        .collect();
    let recv = Receive::new(Protocol::Udp, client_addr, server, &request).unwrap();
    let input = Input::Receive(now, recv);
    let target = SessionId(SESSIONS as u64);

    let scan = |input: &Input| sessions.iter().find(|s| s.accepts(input)).map(|s| s.id);
    let lookup = |data: &[u8], input: &Input| {
        sfu::stun::local_ufrag(data)
            .and_then(|u| index.get(u))
            .map(|i| &sessions[*i])
            .filter(|s| s.accepts(input))
            .map(|s| s.id)
    };
    assert_eq!(scan(&input), Some(target));
    assert_eq!(lookup(&request, &input), Some(target));

    let mut g = c.benchmark_group("stun_from_new_address_1000_sessions");
    g.bench_function("scan_every_session", |b| {
        b.iter(|| black_box(scan(black_box(&input))))
    });
    g.bench_function("ufrag_index", |b| {
        b.iter(|| black_box(lookup(black_box(&request), black_box(&input))))
    });
    g.finish();
}

criterion_group!(benches, stun);
criterion_main!(benches);
