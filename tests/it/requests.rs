//! Request ids, request logs and request metrics at the HTTP edge: every response of a
//! node and of a control-plane replica carries `x-request-id` (the client's when sane,
//! else a fresh one), JSON error bodies quote it, `--log-format json` writes one object
//! per line with the request's id on the line of a failed request, and `/metrics` counts
//! WHEP refusals by route template, each request once.

use std::process::Stdio;

use reqwest::blocking::{RequestBuilder, Response};
use serde_json::Value;

use crate::peer::Peer;
use crate::server::{temp_dir, Server};

const ID: &str = "x-request-id";

fn id_of(resp: &Response) -> String {
    resp.headers()
        .get(ID)
        .unwrap_or_else(|| panic!("{} has no {ID}", resp.url()))
        .to_str()
        .unwrap()
        .to_owned()
}

/// A generated id: a UUID (8-4-4-4-12 hex digits).
fn is_generated(id: &str) -> bool {
    let groups: Vec<usize> = id.split('-').map(str::len).collect();
    groups == [8, 4, 4, 4, 12] && id.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
}

fn whep(server: &Server, stream: &str, id: Option<&str>) -> Response {
    let (_p, offer, _) = Peer::viewer();
    sdp(
        server.http().post(server.url(&format!("/whep/{stream}"))),
        &offer,
        id,
    )
}

fn sdp(req: RequestBuilder, offer: &str, id: Option<&str>) -> Response {
    let mut req = req
        .header("content-type", "application/sdp")
        .body(offer.to_owned());
    if let Some(id) = id {
        req = req.header(ID, id);
    }
    req.send().unwrap()
}

#[test]
fn every_response_carries_a_request_id() {
    let server = Server::start(&["--auth", "accounts"]);
    let http = server.http();

    // WHEP for a stream that does not exist, WHIP with a wrong key: plain-text errors,
    // each with an id of its own.
    let missing = whep(&server, "nobody-streams-here", None);
    assert_eq!(missing.status(), 404);
    let (_p, offer, _) = Peer::publisher(&["a"]);
    let refused = sdp(
        http.post(server.url("/whip/nobody-streams-here"))
            .bearer_auth("sk_not_a_key"),
        &offer,
        None,
    );
    assert_eq!(refused.status(), 401);
    let (a, b) = (id_of(&missing), id_of(&refused));
    assert!(is_generated(&a) && is_generated(&b), "{a} {b}");
    assert_ne!(a, b, "one id per request");

    // The client's own id comes back.
    let mine = "client-trace_42:x/y";
    assert_eq!(id_of(&whep(&server, "nobody", Some(mine))), mine);
    // One that is too long, or not visible ASCII, is replaced.
    let long = "a".repeat(65);
    for bad in [long.as_str(), "two words", "tab\there"] {
        let got = id_of(&whep(&server, "nobody", Some(bad)));
        assert!(is_generated(&got), "{bad:?} replaced by a fresh id: {got}");
    }
    let mut two = http.get(server.url("/healthz")).header(ID, "one");
    two = two.header(ID, "two");
    let got = id_of(&two.send().unwrap());
    assert!(is_generated(&got), "two ids: neither is taken ({got})");
    // Non-UTF-8 bytes: reqwest sends them as they are.
    let latin1 = reqwest::header::HeaderValue::from_bytes(b"caf\xe9").unwrap();
    let got = id_of(&http.get(server.url("/")).header(ID, latin1).send().unwrap());
    assert!(is_generated(&got), "{got}");

    // The server's own answers too: a body announced too large is refused before routing.
    let huge = http
        .post(server.url("/whep/x"))
        .header("content-type", "application/sdp")
        .body(vec![b'v'; 200 * 1024])
        .send()
        .unwrap();
    assert_eq!(huge.status(), 413);
    assert!(is_generated(&id_of(&huge)));

    // Pages, metrics, unknown paths, the API: every response.
    for path in [
        "/",
        "/watch/x",
        "/metrics",
        "/no/such/page",
        "/api/v1/signing-key",
    ] {
        let resp = http.get(server.url(path)).send().unwrap();
        assert!(is_generated(&id_of(&resp)), "{path}");
    }
    // A browser may read it.
    let preflight = http
        .request(reqwest::Method::OPTIONS, server.url("/whep/x"))
        .header("origin", "https://player.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,x-request-id",
        )
        .send()
        .unwrap();
    let allowed = preflight.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(allowed.contains(ID), "{allowed}");
    let (_p, offer, _) = Peer::viewer();
    let cross = sdp(
        http.post(server.url("/whep/nobody"))
            .header("origin", "https://player.example"),
        &offer,
        None,
    );
    let exposed = cross.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(exposed.contains(ID), "{exposed}");

    // A JSON error body quotes the id: the header's, generated or the client's.
    for sent in [None, Some("quote-me-7")] {
        let mut req = http.get(server.url("/api/v1/me"));
        if let Some(id) = sent {
            req = req.header(ID, id);
        }
        let resp = req.send().unwrap();
        assert_eq!(resp.status(), 401);
        let id = id_of(&resp);
        if let Some(sent) = sent {
            assert_eq!(id, sent);
        }
        let problem: Value = resp.json().unwrap();
        assert_eq!(problem["request_id"], id.as_str(), "{problem}");
        assert_eq!(problem["status"], 401, "the rest of the problem is kept");
    }
    let unknown = http
        .get(server.url("/api/v1/no/such/endpoint"))
        .send()
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let id = id_of(&unknown);
    assert_eq!(unknown.json::<Value>().unwrap()["request_id"], id.as_str());
}

#[test]
fn a_control_replica_answers_with_request_ids() {
    let server = Server::launch_as(
        "control",
        &["--cluster-token", "a cluster token for the tests only"],
        &temp_dir("ids-control"),
        Stdio::inherit(),
        "warn",
    );
    let resp = whep(&server, "nobody-streams-here", Some("replica-1"));
    assert_eq!(resp.status(), 404);
    assert_eq!(id_of(&resp), "replica-1");
    let problem: Value = resp.json().unwrap();
    assert_eq!(problem["request_id"], "replica-1", "{problem}");
    for path in ["/watch/x", "/metrics", "/nothing-here"] {
        let resp = server.http().get(server.url(path)).send().unwrap();
        assert!(is_generated(&id_of(&resp)), "{path}");
    }
    let text = server.metrics_text();
    assert!(
        text.lines().any(
            |l| l.starts_with("cascade_api_request_duration_seconds_count")
                && l.contains(r#"route="/whep/{stream}""#)
                && l.contains(r#"status="404""#)
        ),
        "a replica counts its WHEP answers: {text}"
    );
}

#[test]
fn json_log_lines_carry_the_request_id() {
    let dir = temp_dir("jsonlog");
    let log = dir.join("stderr.log");
    let server = Server::launch(
        &["--auth", "accounts", "--log-format", "json"],
        &dir.join("data"),
        Stdio::from(std::fs::File::create(&log).unwrap()),
        "warn,signaling::requests=debug",
    );
    let missing = whep(&server, "a-private-name", Some("trace-me-404"));
    assert_eq!(missing.status(), 404);
    let generated = id_of(&whep(&server, "another-name", None));
    assert!(server.terminate());

    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    assert!(!lines.is_empty(), "the log has lines");
    for id in ["trace-me-404", generated.as_str()] {
        let line = lines
            .iter()
            .find(|l| l["span"]["request_id"] == id && l["message"] == "answered")
            .unwrap_or_else(|| panic!("no line for request {id}:\n{text}"));
        assert_eq!(line["status"], 404, "{line}");
        assert_eq!(line["level"], "DEBUG", "{line}");
        assert_eq!(line["span"]["route"], "/whep/{stream}", "{line}");
        assert_eq!(line["span"]["method"], "POST", "{line}");
        assert!(line["latency_ms"].is_number(), "{line}");
        assert!(line["timestamp"].is_string(), "{line}");
    }
    assert!(
        !text.contains("a-private-name"),
        "routes are templates: a stream's name is not logged"
    );
}

/// The `_count` of a request histogram's series with all these labels (0 when absent).
fn count(text: &str, metric: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{metric}_count{{")))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

const NODE: &str = "cascade_http_request_duration_seconds";
const API: &str = "cascade_api_request_duration_seconds";

#[test]
fn the_node_counts_its_requests_by_route_template() {
    // Two sessions, one kept for publishers: the second viewer finds the node full.
    let server = Server::start(&["--max-sessions", "2"]);
    let http = server.http();
    let (_viewer, offer, _) = Peer::viewer();
    assert_eq!(
        sdp(http.post(server.url("/whep/full-a")), &offer, None).status(),
        201
    );
    for stream in ["full-a", "full-b"] {
        let resp = whep(&server, stream, None);
        assert_eq!(resp.status(), 503);
        assert!(resp.headers().get("retry-after").is_some());
    }
    let wrong_type = http
        .post(server.url("/whep/full-a"))
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .unwrap();
    assert_eq!(wrong_type.status(), 415);
    let odd = reqwest::Method::from_bytes(b"BREW").unwrap();
    assert_eq!(
        http.request(odd, server.url("/whep/full-a"))
            .send()
            .unwrap()
            .status(),
        405
    );
    assert_eq!(
        http.get(server.url("/no-such-page"))
            .send()
            .unwrap()
            .status(),
        404
    );
    // (Three segments would be `/{kind}/{stream}/{session}`'s 405.)
    let unknown_api = server.url("/api/v1/no/such/endpoint");
    assert_eq!(http.get(unknown_api).send().unwrap().status(), 404);
    assert_eq!(
        http.get(server.url("/api/v1/signing-key"))
            .send()
            .unwrap()
            .status(),
        200
    );

    let text = server.metrics_text();
    let whep_post = [("route", "/whep/{stream}"), ("method", "POST")];
    assert_eq!(
        count(
            &text,
            NODE,
            &[whep_post[0], whep_post[1], ("status", "503")]
        ),
        2.0,
        "both refusals, under one template:\n{text}"
    );
    assert_eq!(
        count(
            &text,
            NODE,
            &[whep_post[0], whep_post[1], ("status", "415")]
        ),
        1.0
    );
    assert_eq!(
        count(
            &text,
            NODE,
            &[whep_post[0], ("method", "other"), ("status", "405")]
        ),
        1.0,
        "a method outside the standard ones is `other`:\n{text}"
    );
    assert_eq!(
        count(&text, NODE, &[("route", "other"), ("status", "404")]),
        1.0,
        "an unknown path is `other`:\n{text}"
    );
    assert!(
        !text.contains("full-a") && !text.contains("no-such-page"),
        "no label holds a path asked for"
    );
    // The control plane's routes in `serve` are counted once, in its own histogram.
    assert_eq!(
        count(
            &text,
            API,
            &[("route", "/api/v1/signing-key"), ("status", "200")]
        ),
        1.0
    );
    assert_eq!(
        count(&text, API, &[("route", "other"), ("status", "404")]),
        1.0
    );
    assert_eq!(count(&text, NODE, &[("route", "/api/v1/signing-key")]), 0.0);
    assert_eq!(
        count(&text, NODE, &[]) + count(&text, API, &[]),
        8.0,
        "8 requests so far, each counted once (this scrape is not answered yet):\n{text}"
    );
}
