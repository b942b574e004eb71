//! Who gets a session when the node is busy: viewers cannot take the slots kept for
//! publishers, one address cannot hold many handshakes, a stream's handshakes are
//! capped, and a handshake that ends (connected, or failed) frees its place at once.

use std::time::{Duration, Instant};

use crate::peer::{pump, Peer};
use crate::server::Server;

/// POSTs a viewer offer that will never connect; returns the status and body.
fn idle_viewer(server: &Server, stream: &str) -> (u16, String, bool) {
    let (_p, offer, _) = Peer::viewer();
    let resp = server.post_sdp(&format!("/whep/{stream}"), &offer, None);
    let status = resp.status().as_u16();
    let retry = resp.headers().get("retry-after").is_some();
    (status, resp.text().unwrap_or_default(), retry)
}

fn publisher_status(server: &Server, stream: &str) -> u16 {
    let (_p, offer, _) = Peer::publisher(&["a"]);
    server
        .post_sdp(&format!("/whip/{stream}"), &offer, None)
        .status()
        .as_u16()
}

#[test]
fn viewers_cannot_take_the_publishers_reserve() {
    // The per-address caps are off: this is many addresses' worth of viewers.
    let server = Server::start(&[
        "--max-sessions",
        "20",
        "--max-pending",
        "100",
        "--max-pending-per-address",
        "0",
        "--max-viewers-per-address",
        "0",
    ]);
    let statuses: Vec<u16> = (0..20).map(|_| idle_viewer(&server, "flood").0).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        19,
        "one slot (5 %, at least 1) stays for publishers: {statuses:?}"
    );
    let (status, body, retry) = idle_viewer(&server, "flood");
    assert_eq!((status, retry), (503, true), "{body}");
    assert_eq!(
        publisher_status(&server, "live"),
        201,
        "WHIP gets the reserve"
    );
}

#[test]
fn one_address_holds_few_handshakes() {
    let server = Server::start(&["--max-sessions", "20"]);
    for i in 0..10 {
        assert_eq!(idle_viewer(&server, "s").0, 201, "viewer {i}");
    }
    let (status, body, retry) = idle_viewer(&server, "other");
    assert_eq!(status, 429, "{body}");
    assert!(retry, "429 says when to retry");
    assert!(body.contains("too many"), "{body}");
    assert_eq!(publisher_status(&server, "live"), 201);
}

#[test]
fn a_stream_holds_few_handshakes() {
    let server = Server::start(&[
        "--max-pending-per-stream",
        "2",
        "--max-pending-per-address",
        "0",
    ]);
    assert_eq!(idle_viewer(&server, "s").0, 201);
    assert_eq!(idle_viewer(&server, "s").0, 201);
    let (status, body, _) = idle_viewer(&server, "s");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("connecting to this stream"), "{body}");
    assert_eq!(
        idle_viewer(&server, "t").0,
        201,
        "other streams are not held up"
    );
}

#[test]
fn a_connected_viewer_leaves_the_handshake_budget() {
    let server = Server::start(&["--max-pending-per-address", "1"]);
    let http = server.http();
    let (mut v, offer, pending) = Peer::viewer();
    v.connect(&http, &server.url("/whep/s"), offer, pending);
    assert!(pump(&mut [&mut v], Duration::from_secs(10), |p| p[0].connected));
    // The node learns of the connection a moment after the client does.
    let deadline = Instant::now() + Duration::from_secs(2);
    let status = loop {
        let (status, _, _) = idle_viewer(&server, "s");
        if status == 201 || Instant::now() > deadline {
            break status;
        }
        pump(&mut [&mut v], Duration::from_millis(50), |_| false);
    };
    assert_eq!(
        status, 201,
        "the connected viewer no longer counts as pending"
    );
    assert_eq!(
        idle_viewer(&server, "s").0,
        429,
        "but the new handshake does"
    );
}

#[test]
fn a_viewer_that_hangs_up_frees_its_slot_at_once() {
    // Two sessions, one kept for publishers: room for one viewer. The handshake timeout
    // (10 s by default) is far longer than the test waits.
    let server = Server::start(&["--max-sessions", "2"]);
    let http = server.http();
    let (mut v, offer, pending) = Peer::viewer();
    v.connect(&http, &server.url("/whep/s"), offer, pending);
    assert!(pump(&mut [&mut v], Duration::from_secs(10), |p| p[0].connected));
    assert_eq!(idle_viewer(&server, "s").0, 503, "full");
    // DTLS close_notify: the node knows the peer is gone.
    v.hang_up();
    let start = Instant::now();
    let status = loop {
        let (status, _, _) = idle_viewer(&server, "s");
        if status == 201 || start.elapsed() > Duration::from_secs(3) {
            break status;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let closed = server.metric("cascade_sessions_closed_total");
    assert_eq!(
        status,
        201,
        "slot freed within {:?}; closed {closed}",
        start.elapsed()
    );
}

#[test]
fn signed_in_viewers_are_not_capped_per_address() {
    use crate::accounts::{account, api, channel_with_key};
    let server = Server::start(&["--auth", "accounts", "--max-pending-per-address", "2"]);
    account(&server, "admin");
    let amy = account(&server, "amy");
    channel_with_key(&server, &amy, "amy-tv", "public");
    let whep = |bearer: Option<&str>| {
        let (_p, offer, _) = Peer::viewer();
        server
            .post_sdp("/whep/amy-tv", &offer, bearer)
            .status()
            .as_u16()
    };
    // Anonymous viewers from one address: capped.
    assert_eq!([whep(None), whep(None), whep(None)], [201, 201, 429]);
    // Anonymous viewer tokens are free to mint, so they are capped too.
    let (_, anon) = api(&server, "POST", "/channels/amy-tv/viewer-token", None, None);
    assert_eq!(whep(anon["token"].as_str()), 429);
    // A signed-in viewer's token names them: behind one NAT, many may watch.
    let bo = account(&server, "bo_b");
    let (s, t) = api(
        &server,
        "POST",
        "/channels/amy-tv/viewer-token",
        Some(&bo),
        None,
    );
    assert_eq!(s, 200);
    let token = t["token"].as_str().unwrap();
    assert_eq!([whep(Some(token)), whep(Some(token))], [201, 201]);
}
