//! ICE over TCP (RFC 6544): a viewer whose network carries no UDP reaches the node over
//! its passive TCP candidate and gets the stream; what strangers send to the TCP port
//! closes their own connection and nothing else; the connection limit holds.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use str0m::media::MediaKind;

use crate::peer::{connect_both, tcp_candidate, Offered, Peer};
use crate::server::Server;
use crate::synth::{assert_continuous, run, Synth};

const LAYERS: [(&str, usize); 1] = [("h", 2)];

/// The first worker's ICE-TCP address, from `/healthz`.
fn tcp_port_of(server: &Server) -> SocketAddr {
    server.health()["tcp"][0]
        .as_str()
        .expect("the node listens for ICE-TCP")
        .parse()
        .unwrap()
}

fn video(v: &Peer) -> usize {
    v.received
        .iter()
        .filter(|r| r.kind == MediaKind::Video)
        .count()
}

/// Whether the viewer gets `more` video packets within `within` while the stream goes on.
fn gets_more(
    synth: &mut Synth,
    publ: &mut Peer,
    viewer: &mut Peer,
    more: usize,
    within: Duration,
) -> bool {
    let before = video(viewer);
    run(
        synth,
        publ,
        &mut [viewer],
        |v| video(v[0]) >= before + more,
        within,
    )
}

/// A live stream on `server`: `publ` and `viewer` (either may be on ICE-TCP alone)
/// connected to `stream`.
fn live(server: &Server, stream: &str, publ: Offered, viewer: Offered) -> (Synth, Peer, Peer) {
    let (publ, viewer) = connect_both(
        server,
        publ,
        viewer,
        &format!("/whip/{stream}"),
        &format!("/whep/{stream}"),
    );
    (Synth::new(&LAYERS, 3), publ, viewer)
}

/// A live stream on `server` and a viewer connected to it over TCP alone.
fn live_with_tcp_viewer(server: &Server, stream: &str) -> (Synth, Peer, Peer) {
    live(
        server,
        stream,
        Peer::publisher(&["h"]),
        Peer::viewer_over_tcp(),
    )
}

#[test]
fn a_viewer_that_reaches_the_node_only_over_tcp_gets_the_stream() {
    let server = Server::start(&[]);
    let (mut synth, mut publ, mut viewer) = live_with_tcp_viewer(&server, "tcp");
    assert!(
        gets_more(
            &mut synth,
            &mut publ,
            &mut viewer,
            100,
            Duration::from_secs(10)
        ),
        "the TCP viewer got {} video packets",
        video(&viewer)
    );
    // Whole, in order, byte for byte what the publisher sent.
    let packets = assert_continuous(&viewer);
    assert!(packets.len() >= 100);
    assert!(viewer.received.iter().any(|r| r.kind == MediaKind::Audio));
    assert_eq!(server.metric("cascade_tcp_connections "), 1.0);
    assert!(server.metric("cascade_tcp_frames_out_total{result=\"ok\"}") >= 100.0);
}

#[test]
fn a_publisher_over_tcp_alone_reaches_viewers_on_udp() {
    let server = Server::start(&[]);
    let (mut synth, mut publ, mut viewer) = live(
        &server,
        "up",
        Peer::publisher_over_tcp(&["h"]),
        Peer::viewer(),
    );
    assert!(
        gets_more(
            &mut synth,
            &mut publ,
            &mut viewer,
            100,
            Duration::from_secs(10)
        ),
        "the viewer got {} video packets from the TCP publisher",
        video(&viewer)
    );
    assert_continuous(&viewer);
}

#[test]
fn with_tcp_off_the_answer_offers_no_tcp_candidate() {
    let server = Server::start(&["--tcp-port", "off"]);
    let (_, offer, _) = Peer::viewer_over_tcp();
    let resp = server.post_sdp("/whep/off", &offer, None);
    assert_eq!(resp.status(), 201);
    let answer = resp.text().unwrap();
    assert_eq!(tcp_candidate(&answer), None, "{answer}");
    assert!(
        answer.contains(" udp "),
        "the UDP candidate stays: {answer}"
    );
}

/// Reads until the node closes the connection (EOF or reset) or `within` passes.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let end = Instant::now() + within;
    let mut buf = [0u8; 512];
    while Instant::now() < end {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
}

/// A STUN binding request header with a USERNAME naming `ufrag` (no integrity).
fn binding_for(ufrag: &str) -> Vec<u8> {
    let name = format!("{ufrag}:peer");
    let mut attr = vec![0x00, 0x06];
    attr.extend((name.len() as u16).to_be_bytes());
    attr.extend(name.as_bytes());
    attr.resize(attr.len().div_ceil(4) * 4, 0);
    let mut m = vec![0x00, 0x01];
    m.extend((attr.len() as u16).to_be_bytes());
    m.extend([0x21, 0x12, 0xa4, 0x42]);
    m.extend([7u8; 12]);
    m.extend(attr);
    m
}

fn framed(data: &[u8]) -> Vec<u8> {
    let mut f = (data.len() as u16).to_be_bytes().to_vec();
    f.extend(data);
    f
}

#[test]
fn garbage_and_oversized_frames_close_only_their_own_connection() {
    let server = Server::start(&[]);
    let (mut synth, mut publ, mut viewer) = live_with_tcp_viewer(&server, "tcp");
    let at = tcp_port_of(&server);
    let strangers: Vec<(&str, Vec<u8>)> = vec![
        // "GE" as a length: 18245 bytes, over the largest frame.
        (
            "an HTTP request",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
        ("an empty frame", vec![0, 0, 0, 5, 1, 2, 3, 4, 5]),
        (
            "a frame of neither STUN, DTLS nor RTP",
            framed(&[0xff; 100]),
        ),
        ("RTP before any STUN", framed(&[0x80; 100])),
        (
            "STUN naming no session",
            framed(&binding_for("nosuchufrag")),
        ),
    ];
    let mut socks = Vec::new();
    for (what, bytes) in &strangers {
        let mut s = TcpStream::connect(at).unwrap();
        s.write_all(bytes).unwrap();
        socks.push((what, s));
    }
    // While the strangers are dealt with, the viewer's stream goes on.
    assert!(
        gets_more(
            &mut synth,
            &mut publ,
            &mut viewer,
            60,
            Duration::from_secs(10)
        ),
        "the TCP viewer's stream stalled while strangers were closed: {} packets",
        video(&viewer)
    );
    for (what, s) in &mut socks {
        assert!(
            closed_within(s, Duration::from_secs(3)),
            "{what}: left open"
        );
    }
    // And goes on after.
    assert!(
        gets_more(
            &mut synth,
            &mut publ,
            &mut viewer,
            30,
            Duration::from_secs(5)
        ),
        "the TCP viewer's stream stalled after the strangers left"
    );
    assert!(!viewer.tcp_closed());
    assert_eq!(server.metric("cascade_tcp_connections "), 1.0);
    assert!(server.metric("cascade_tcp_connections_closed_total{reason=\"bad_frame\"}") >= 2.0);
}

#[test]
fn connections_over_the_limit_are_closed_and_a_freed_place_is_taken_again() {
    let server = Server::start(&["--max-tcp-connections", "2"]);
    let at = tcp_port_of(&server);
    let mut first = TcpStream::connect(at).unwrap();
    let mut second = TcpStream::connect(at).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let mut third = TcpStream::connect(at).unwrap();
    assert!(
        closed_within(&mut third, Duration::from_secs(2)),
        "a third connection is refused"
    );
    assert!(
        !closed_within(&mut first, Duration::from_millis(300)),
        "the first stays"
    );
    assert!(
        !closed_within(&mut second, Duration::from_millis(300)),
        "the second stays"
    );
    assert_eq!(
        server.metric("cascade_tcp_connections_closed_total{reason=\"limit\"}"),
        1.0
    );
    // Silent connections name no session: closed within the bind deadline (5 s).
    assert!(
        closed_within(&mut first, Duration::from_secs(7)),
        "a silent connection is closed"
    );
    drop((first, second));
    // Their places are free again: a viewer connects over TCP.
    let _live = live_with_tcp_viewer(&server, "limit");
}
