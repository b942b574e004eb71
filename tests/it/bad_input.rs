//! Bad input gets a clear error and loses nothing: table-driven HTTP cases, garbage
//! datagrams on every media port, and a viewer that vanishes mid-handshake.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;

use crate::peer::Peer;
use crate::server::Server;

struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    content_type: Option<&'static str>,
    body: String,
    status: u16,
    body_contains: &'static str,
}

fn send(http: &Client, server: &Server, c: &Case) -> (u16, String, reqwest::header::HeaderMap) {
    let method = reqwest::Method::from_bytes(c.method.as_bytes()).unwrap();
    let mut req = http
        .request(method, server.url(&c.path))
        .body(c.body.clone());
    if let Some(ct) = c.content_type {
        req = req.header("content-type", ct);
    }
    let resp = req.send().unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, resp.text().unwrap_or_default(), headers)
}

#[test]
fn bad_requests_get_clear_errors() {
    let server = Server::start(&["--max-sessions", "3"]);
    let http = server.http();
    let (_p, publisher_offer, _) = Peer::publisher(&["a", "b"]);
    let (_v, viewer_offer, _) = Peer::viewer();

    // A publisher holds "busy" (it need not connect to hold the stream).
    let first = server.post_sdp("/whip/busy", &publisher_offer, None);
    assert_eq!(first.status(), 201);
    let publisher_location = first.headers()["location"].to_str().unwrap().to_string();
    let etag = first.headers()["etag"].to_str().unwrap().to_string();

    let sdp = Some("application/sdp");
    let cases = vec![
        Case {
            name: "garbage SDP",
            method: "POST",
            path: "/whip/s".into(),
            content_type: sdp,
            body: "hello".into(),
            status: 400,
            body_contains: "bad SDP offer",
        },
        Case {
            name: "hostile SDP: no media",
            method: "POST",
            path: "/whep/s".into(),
            content_type: sdp,
            body: "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n".into(),
            status: 400,
            body_contains: "bad SDP offer",
        },
        Case {
            name: "WHIP offer that only receives",
            method: "POST",
            path: "/whip/s".into(),
            content_type: sdp,
            body: viewer_offer.clone(),
            status: 400,
            body_contains: "must send",
        },
        Case {
            name: "WHEP offer that only sends",
            method: "POST",
            path: "/whep/s".into(),
            content_type: sdp,
            body: publisher_offer.clone(),
            status: 400,
            body_contains: "must receive",
        },
        Case {
            name: "wrong content type",
            method: "POST",
            path: "/whip/s".into(),
            content_type: Some("text/plain"),
            body: publisher_offer.clone(),
            status: 415,
            body_contains: "application/sdp",
        },
        Case {
            name: "no content type",
            method: "POST",
            path: "/whep/s".into(),
            content_type: None,
            body: viewer_offer.clone(),
            status: 415,
            body_contains: "application/sdp",
        },
        Case {
            name: "body over 64 KiB",
            method: "POST",
            path: "/whip/s".into(),
            content_type: sdp,
            body: "a".repeat(65 * 1024),
            status: 413,
            body_contains: "",
        },
        Case {
            name: "bad stream name",
            method: "POST",
            path: "/whip/a%20b".into(),
            content_type: sdp,
            body: publisher_offer.clone(),
            status: 400,
            body_contains: "stream names",
        },
        Case {
            name: "unknown session DELETE",
            method: "DELETE",
            path: "/whep/s/00000000000000ff".into(),
            content_type: None,
            body: String::new(),
            status: 404,
            body_contains: "not found",
        },
        Case {
            name: "unparsable session id",
            method: "DELETE",
            path: "/whip/s/zz".into(),
            content_type: None,
            body: String::new(),
            status: 404,
            body_contains: "not found",
        },
        Case {
            name: "unknown session PATCH",
            method: "PATCH",
            path: "/whip/s/00000000000000ff".into(),
            content_type: Some("application/trickle-ice-sdpfrag"),
            body: "a=ice-ufrag:x\r\n".into(),
            status: 404,
            body_contains: "",
        },
        Case {
            name: "wrong method on endpoint",
            method: "GET",
            path: "/whip/s".into(),
            content_type: None,
            body: String::new(),
            status: 405,
            body_contains: "",
        },
        Case {
            name: "wrong method on session",
            method: "PUT",
            path: publisher_location.clone(),
            content_type: None,
            body: String::new(),
            status: 405,
            body_contains: "",
        },
        Case {
            name: "PATCH with wrong content type",
            method: "PATCH",
            path: publisher_location.clone(),
            content_type: sdp,
            body: "a=ice-ufrag:x\r\n".into(),
            status: 415,
            body_contains: "trickle-ice-sdpfrag",
        },
        Case {
            name: "PATCH with bad candidate",
            method: "PATCH",
            path: publisher_location.clone(),
            content_type: Some("application/trickle-ice-sdpfrag"),
            body: "a=candidate:nonsense\r\n".into(),
            status: 400,
            body_contains: "candidate",
        },
        Case {
            name: "stream already published",
            method: "POST",
            path: "/whip/busy".into(),
            content_type: sdp,
            body: publisher_offer.clone(),
            status: 409,
            body_contains: "already",
        },
        Case {
            name: "layer request for an unknown session",
            method: "POST",
            path: "/whep/s/00000000000000ff/layer".into(),
            content_type: Some("text/plain"),
            body: "{}".into(),
            status: 404,
            body_contains: "",
        },
    ];
    for c in &cases {
        let (status, body, _) = send(&http, &server, c);
        assert_eq!(status, c.status, "{}: {body}", c.name);
        assert!(
            body.contains(c.body_contains),
            "{}: body {body:?} lacks {:?}",
            c.name,
            c.body_contains
        );
    }

    // Trickle is 204; an If-Match that is not current is 412; an ICE restart is 200 with a
    // new ETag and our new credentials.
    let frag = "application/trickle-ice-sdpfrag";
    let ufrag = publisher_offer
        .lines()
        .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
        .unwrap()
        .trim()
        .to_string();
    let trickle = http
        .patch(server.url(&publisher_location))
        .header("content-type", frag)
        .header("if-match", &etag)
        .body(format!(
            "a=ice-ufrag:{ufrag}\r\na=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\n"
        ))
        .send()
        .unwrap();
    assert_eq!(trickle.status(), 204);
    let stale = http
        .patch(server.url(&publisher_location))
        .header("content-type", frag)
        .header("if-match", "\"nope\"")
        .body("a=ice-ufrag:new1\r\na=ice-pwd:newpasswordnewpassword\r\n")
        .send()
        .unwrap();
    assert_eq!(stale.status(), 412);
    let restart = http
        .patch(server.url(&publisher_location))
        .header("content-type", frag)
        .header("if-match", "*")
        .body("a=ice-ufrag:new1\r\na=ice-pwd:newpasswordnewpassword\r\n")
        .send()
        .unwrap();
    assert_eq!(restart.status(), 200);
    let new_etag = restart.headers()["etag"].to_str().unwrap().to_string();
    assert_ne!(new_etag, etag);
    let body = restart.text().unwrap();
    assert!(
        body.contains("a=ice-ufrag:") && body.contains("a=candidate:"),
        "{body}"
    );

    // Over the session limit (3): 503 with Retry-After.
    let mut viewer_location = String::new();
    for _ in 0..2 {
        let ok = send(
            &http,
            &server,
            &Case {
                name: "fill",
                method: "POST",
                path: "/whep/busy".into(),
                content_type: sdp,
                body: viewer_offer.clone(),
                status: 201,
                body_contains: "",
            },
        );
        assert_eq!(ok.0, 201, "{}", ok.1);
        viewer_location = ok.2["location"].to_str().unwrap().to_string();
    }
    let (status, _, headers) = send(
        &http,
        &server,
        &Case {
            name: "full",
            method: "POST",
            path: "/whep/busy".into(),
            content_type: sdp,
            body: viewer_offer.clone(),
            status: 503,
            body_contains: "",
        },
    );
    assert_eq!(status, 503);
    assert!(
        headers.get("retry-after").is_some(),
        "503 says when to retry"
    );

    // The layer extension of a real viewer session checks its body.
    let layer = |ct: &str, body: &str| {
        http.post(server.url(&format!("{viewer_location}/layer")))
            .header("content-type", ct)
            .body(body.to_string())
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(layer("text/plain", r#"{"layer":"low"}"#), 415);
    assert_eq!(layer("application/json", "{not json"), 400);
    assert_eq!(layer("application/json", r#"{"layer":"low"}"#), 204);

    // CORS preflight and OPTIONS advertise what a browser needs.
    let pre = http
        .request(reqwest::Method::OPTIONS, server.url("/whip/s"))
        .header("origin", "http://example.test")
        .header("access-control-request-method", "POST")
        .send()
        .unwrap();
    assert!(pre.status().is_success());
    assert_eq!(pre.headers()["access-control-allow-origin"], "*");
    let opt = http
        .request(reqwest::Method::OPTIONS, server.url("/whip/s"))
        .send()
        .unwrap();
    assert_eq!(opt.headers()["accept-post"], "application/sdp");
}

#[test]
fn garbage_datagrams_and_vanished_viewers() {
    let server = Server::start(&["--handshake-timeout", "1"]);
    let http = server.http();
    let health: serde_json::Value = http
        .get(server.url("/healthz"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let ports: Vec<String> = health["media"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(ports.len(), 2, "one media port per worker");

    // A viewer posts an offer and is never heard from again.
    let (_gone, offer, _) = Peer::viewer();
    let resp = server.post_sdp("/whep/garbage", &offer, None);
    assert_eq!(resp.status(), 201);

    // Garbage of every shape to every media port.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut seed = 42u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for port in &ports {
        for i in 0..2000 {
            let len = (next() % 1400) as usize;
            let mut d: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            match i % 4 {
                0 if d.len() > 20 => d[0] = 0x00, // looks like STUN
                1 if !d.is_empty() => d[0] = 22,  // looks like DTLS
                2 if d.len() > 12 => d[0] = 0x80, // looks like RTP
                _ => {}
            }
            let _ = sock.send_to(&d, port);
            if i % 50 == 0 {
                // Paced so the kernel's socket buffer, not the node, decides nothing here.
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let dropped = server.metric("cascade_udp_datagrams_dropped_total");
    assert!(dropped >= 3000.0, "garbage is counted: {dropped} of 4000");

    // Still serving: health, and a new session opens.
    assert_eq!(
        http.get(server.url("/healthz")).send().unwrap().status(),
        200
    );
    // The vanished viewer is reaped by the handshake timeout and counted.
    let deadline = Instant::now() + Duration::from_secs(5);
    while server
        .metric("cascade_sessions_closed_total{reason=\"handshake_timeout\",role=\"viewer\"}")
        < 1.0
    {
        assert!(Instant::now() < deadline, "the vanished viewer is reaped");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(server.metric("cascade_sessions{role=\"viewer\"}"), 0.0);

    // A real publisher and viewer still work after all that.
    let (mut p, offer, pending) = Peer::publisher(&["a"]);
    p.connect(&http, &server.url("/whip/garbage"), offer, pending);
    let (mut v, offer, pending) = Peer::viewer();
    v.connect(&http, &server.url("/whep/garbage"), offer, pending);
    let mut all = [&mut p, &mut v];
    assert!(crate::peer::pump(&mut all, Duration::from_secs(10), |p| p
        .iter()
        .all(|p| p.connected)));
}
