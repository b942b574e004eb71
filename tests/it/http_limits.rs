//! The HTTP server does not wait forever on a client: a connection that sends nothing,
//! headers a byte at a time, or a body that never comes is closed; an oversized body is
//! refused before it is read; past the connection cap new clients wait; and server-sent
//! events outlive every one of those timeouts.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::peer::Peer;
use crate::server::Server;

/// One-second header and body timeouts, two seconds to answer, three connections.
fn quick_server() -> Server {
    Server::start(&[
        "--http-header-timeout",
        "1",
        "--http-body-timeout",
        "1",
        "--http-request-timeout",
        "2",
        "--http-max-connections",
        "3",
    ])
}

fn connect(server: &Server) -> TcpStream {
    let addr = server.base.trim_start_matches("http://");
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    s
}

/// Reads until the server closes; returns what came and how long it took. Panics if the
/// connection is still open after the read timeout.
fn read_to_close(s: &mut TcpStream) -> (String, Duration) {
    let start = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!(
                "still open after {:?} ({e}); got {:?}",
                start.elapsed(),
                String::from_utf8_lossy(&out)
            ),
        }
    }
    (String::from_utf8_lossy(&out).into_owned(), start.elapsed())
}

#[test]
fn a_silent_connection_is_closed() {
    let server = quick_server();
    let mut s = connect(&server);
    let (got, took) = read_to_close(&mut s);
    assert!(took < Duration::from_secs(4), "{took:?}");
    assert!(!got.starts_with("HTTP/1.1 2"), "{got}");
}

#[test]
fn headers_sent_a_byte_at_a_time_are_cut_off() {
    let server = quick_server();
    let mut s = connect(&server);
    let start = Instant::now();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut closed = false;
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(200));
        if s.write_all(b"X").is_err() {
            closed = true;
            break;
        }
        s.set_nonblocking(true).unwrap();
        let mut b = [0u8; 512];
        let r = s.read(&mut b);
        s.set_nonblocking(false).unwrap();
        match r {
            Ok(_) => {
                closed = true; // an error response or EOF: either way, not waiting
                break;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    assert!(closed, "still reading headers after {:?}", start.elapsed());
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn a_huge_announced_body_is_refused_before_it_is_read() {
    let server = quick_server();
    let mut s = connect(&server);
    s.write_all(
        b"POST /whep/s HTTP/1.1\r\nHost: x\r\nContent-Type: application/sdp\r\nContent-Length: 1000000000000\r\n\r\nv=0\r\n",
    )
    .unwrap();
    let (got, took) = read_to_close(&mut s);
    assert!(got.starts_with("HTTP/1.1 413"), "{got}");
    // In words a client reads as any other refusal: a problem document with the bound.
    assert!(
        got.to_ascii_lowercase()
            .contains("\r\ncontent-type: application/problem+json\r\n"),
        "{got}"
    );
    assert!(got.contains("at most 65536 bytes"), "{got}");
    // Its body unread, the connection cannot be used again: clients are told so.
    assert!(
        got.to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n"),
        "{got}"
    );
    assert!(
        took < Duration::from_secs(1),
        "at once, not on a timeout: {took:?}"
    );
}

/// Only a tus chunk to an upload is exempt from the early refusal: the same content type
/// sent to any other route is refused as any huge body is.
#[test]
fn the_upload_chunk_exemption_holds_for_uploads_only() {
    let server = quick_server();
    let mut s = connect(&server);
    s.write_all(
        b"POST /whep/s HTTP/1.1\r\nHost: x\r\nContent-Type: application/offset+octet-stream\r\nContent-Length: 1000000000000\r\n\r\nv=0\r\n",
    )
    .unwrap();
    let (got, took) = read_to_close(&mut s);
    assert!(got.starts_with("HTTP/1.1 413"), "{got}");
    assert!(took < Duration::from_secs(1), "at once: {took:?}");
}

/// Routes that take larger bodies (a node's audience report, a thumbnail) are bounded by
/// their own limit, not the early one: a report of a few hundred viewers reaches its route.
#[test]
fn routes_with_larger_bodies_are_bounded_by_their_own_limit() {
    // With the cluster's registry on, so that the audience route is there.
    let server = Server::start(&["--cluster-token", crate::ads::CLUSTER_TOKEN]);
    let status = |method_path: &str, length: u64| {
        let mut s = connect(&server);
        let head = format!(
            "{method_path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
        );
        s.write_all(head.as_bytes()).unwrap();
        let (got, _) = read_to_close(&mut s);
        got.lines().next().unwrap_or_default().to_owned()
    };
    // 200 KB: over the early bound (64 KiB), under the audience route's 4 MiB. The route
    // answers (without the cluster's token: 401).
    let audience = "PUT /api/v1/cluster/nodes/n1/audience";
    assert_eq!(status(audience, 200_000), "HTTP/1.1 401 Unauthorized");
    // Over the route's own limit: refused before it is read, as anywhere.
    assert!(status(audience, 5_000_000).starts_with("HTTP/1.1 413"));
    // A studio's 100 KB frame reaches its route (no token: 401); the same length to a
    // route that takes less is refused.
    let thumbnail = "PUT /api/v1/channels/c/thumbnail";
    assert_eq!(status(thumbnail, 100_000), "HTTP/1.1 401 Unauthorized");
    assert!(status("PUT /api/v1/channels/c/thumbnailx", 100_000).starts_with("HTTP/1.1 413"));
    assert!(status("POST /whep/s", 100_000).starts_with("HTTP/1.1 413"));
}

/// A route that answers before its body is all in (a 413 past its limit, a 401 before
/// reading) is heard by a client still writing the rest: the server reads and drops the
/// rest after its answer (a lingering close), where it used to close with it unread and
/// the client met a reset.
#[test]
fn a_client_still_sending_a_refused_body_reads_the_answer() {
    let server = Server::start(&[]);
    let http = server.http();
    let big = || vec![b'v'; 4 * 1024 * 1024];
    let streamed = || reqwest::blocking::Body::new(std::io::Cursor::new(big()));
    let post = reqwest::Method::POST;
    let cases: [(_, _, _, reqwest::blocking::Body, _); 3] = [
        // 4 MiB of unsaid length (chunked) to an offer's 64 KiB: 413 once the limit is read.
        (post.clone(), "/whep/s", "application/sdp", streamed(), 413),
        // Announced: refused before a byte is read, and still heard.
        (post, "/whep/s", "application/sdp", big().into(), 413),
        // Refused for want of a token, body unread.
        (
            reqwest::Method::PUT,
            "/api/v1/channels/c/thumbnail",
            "image/jpeg",
            streamed(),
            401,
        ),
    ];
    for (method, path, ct, body, want) in cases {
        let got = http
            .request(method, server.url(path))
            .header("content-type", ct)
            .body(body)
            .send()
            .map(|r| r.status().as_u16())
            .map_err(|e| format!("{e:?}"));
        assert_eq!(got, Ok(want), "{path}");
    }
}

/// A client that waits to be told to send its body (`Expect: 100-continue`) and is refused
/// first is not invited to send it after all: the refusal comes alone.
#[test]
fn a_refused_body_held_back_for_100_continue_is_not_asked_for() {
    let server = Server::start(&[]);
    let mut s = connect(&server);
    s.write_all(
        b"POST /whep/s HTTP/1.1\r\nHost: x\r\nContent-Type: application/sdp\r\nExpect: 100-continue\r\nContent-Length: 100000\r\n\r\n",
    )
    .unwrap();
    let (got, _) = read_to_close(&mut s);
    assert!(got.starts_with("HTTP/1.1 413"), "{got}");
    assert!(!got.contains(" 100 Continue"), "{got}");
}

#[test]
fn a_body_that_stops_coming_is_abandoned() {
    let server = quick_server();
    // Half of a small body, then nothing.
    let mut s = connect(&server);
    s.write_all(
        b"POST /whep/s HTTP/1.1\r\nHost: x\r\nContent-Type: application/sdp\r\nContent-Length: 100\r\n\r\nv=0\r\n",
    )
    .unwrap();
    let (got, took) = read_to_close(&mut s);
    assert!(took < Duration::from_secs(4), "{took:?}");
    assert!(got.is_empty() || got.starts_with("HTTP/1.1 4"), "{got}");
    // A body trickled a byte at a time beats the body timeout, not the request's.
    let mut s = connect(&server);
    s.write_all(
        b"POST /whep/s HTTP/1.1\r\nHost: x\r\nContent-Type: application/sdp\r\nContent-Length: 1000\r\n\r\n",
    )
    .unwrap();
    let start = Instant::now();
    let mut answered = String::new();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    while start.elapsed() < Duration::from_secs(6) && answered.is_empty() {
        if s.write_all(b"a").is_err() {
            break;
        }
        let mut b = [0u8; 512];
        match s.read(&mut b) {
            Ok(0) => break,
            Ok(n) => answered = String::from_utf8_lossy(&b[..n]).into_owned(),
            Err(_) => {}
        }
    }
    assert!(answered.starts_with("HTTP/1.1 408"), "{answered:?}");
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn connections_over_the_cap_wait_for_a_free_one() {
    let server = quick_server();
    let idle: Vec<TcpStream> = (0..3).map(|_| connect(&server)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let start = Instant::now();
    let mut s = connect(&server);
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (got, took) = read_to_close(&mut s);
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(
        took >= Duration::from_millis(500),
        "served only once an idle connection timed out, not at once: {took:?}"
    );
    drop(idle);
    let _ = start;
}

#[test]
fn server_sent_events_outlive_the_timeouts_and_shutdown_still_works() {
    let server = quick_server();
    let (_p, offer, _) = Peer::viewer();
    let resp = server.post_sdp("/whep/sse", &offer, None);
    assert_eq!(resp.status(), 201);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let mut s = connect(&server);
    write!(
        s,
        "GET {location}/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let mut b = [0u8; 4096];
    let n = s.read(&mut b).unwrap();
    let head = String::from_utf8_lossy(&b[..n]).into_owned();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/event-stream"), "{head}");
    // Longer than the header, body and request timeouts together.
    std::thread::sleep(Duration::from_secs(4));
    s.set_nonblocking(true).unwrap();
    match s.read(&mut b) {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        Ok(n) if n > 0 => {}
        other => panic!("the event stream was closed: {other:?}"),
    }
    assert!(
        server.terminate(),
        "SIGTERM still ends the node with a stream open"
    );
}
