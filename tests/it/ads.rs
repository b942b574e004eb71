//! Ad breaks and analytics through a real `cascade serve`: two str0m viewers read their
//! event streams over HTTP and get the `adbreak` cue within 100 ms of each other, with
//! the same start, named in each one's RTP timestamps as the same frame of the publisher's; a subscriber of an ad-free tier is told `skip: true`; a non-owner is
//! refused; the `ad_break.started` webhook reaches a local receiver. Then the analytics
//! of that broadcast: peak, unique viewers and viewer-minutes against the test's own
//! clock, the CSV export, who may read them, and players' playback reports.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::accounts::{account, api, channel_with_key};
use crate::peer::{pump, Peer};
use crate::server::{temp_dir, Server};
use crate::synth::Synth;

const WITHIN: Duration = Duration::from_secs(10);

/// A server-sent event as received: name, data, when.
type Sse = (String, String, Instant);

/// Reads `url`'s event stream on a thread.
fn follow(url: String) -> mpsc::Receiver<Sse> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let resp = reqwest::blocking::Client::new().get(url).send().unwrap();
        let mut name = String::new();
        for line in BufReader::new(resp).lines() {
            let Ok(line) = line else { return };
            if let Some(n) = line.strip_prefix("event:") {
                name = n.trim().to_owned();
            } else if let Some(d) = line.strip_prefix("data:") {
                let ev = (
                    std::mem::take(&mut name),
                    d.trim().to_owned(),
                    Instant::now(),
                );
                if tx.send(ev).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

/// The first `name` event on `rx`, keeping the peers' timers running meanwhile.
fn wait_for(peers: &mut [&mut Peer], rx: &mpsc::Receiver<Sse>, name: &str) -> (Value, Instant) {
    let end = Instant::now() + WITHIN;
    while Instant::now() < end {
        while let Ok((n, d, at)) = rx.try_recv() {
            if n == name {
                return (serde_json::from_str(&d).unwrap(), at);
            }
        }
        pump(peers, Duration::from_millis(5), |_| false);
    }
    panic!("no {name} event within {WITHIN:?}");
}

/// A webhook receiver on loopback: every request's body, answered 200.
pub(crate) fn receiver() -> (String, mpsc::Receiver<Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut len = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let l = line.to_ascii_lowercase();
                if let Some(v) = l.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
            if let Ok(v) = serde_json::from_slice(&body) {
                let _ = tx.send(v);
            }
        }
    });
    (url, rx)
}

/// Runs SQL on the node's SQLite database (the `sqlite3` client).
fn sql(db: &std::path::Path, statement: &str) {
    let out = Command::new("sqlite3")
        .arg(db)
        .arg(format!("PRAGMA busy_timeout = 5000; {statement}"))
        .stderr(Stdio::inherit())
        .output()
        .expect("the sqlite3 client (apt install sqlite3)");
    assert!(out.status.success(), "{statement}");
}

fn viewer(server: &Server, slug: &str, bearer: Option<&str>) -> Peer {
    let (mut v, offer, pending) = Peer::viewer();
    v.connect_as(
        &server.http(),
        &server.url(&format!("/whep/{slug}")),
        offer,
        pending,
        bearer,
    );
    v
}

#[test]
fn every_viewer_gets_the_ad_break_at_once_and_analytics_count_them() {
    let data = temp_dir("ads");
    let server = Server::launch(
        &[
            "--auth",
            "accounts",
            "--webhooks-allow-private",
            "--analytics-sample-ms",
            "200",
        ],
        &data,
        Stdio::inherit(),
        "warn",
    );
    account(&server, "admin");
    let amy = account(&server, "amy");
    let bo = account(&server, "bo_b");
    let (key, _) = channel_with_key(&server, &amy, "amy-show", "public");
    let (_, ch) = api(&server, "GET", "/channels/amy-show", None, None);
    let (_, me) = api(&server, "GET", "/me", Some(&bo), None);
    // Bo subscribes to an ad-free tier (the gateway's part is the money tests').
    sql(
        &data.join("cascade.db"),
        &format!(
            "INSERT INTO tiers (id, channel_id, name, amount, currency, period, gateway_product, \
             gateway_price, active, ad_free, created_at, updated_at) VALUES ('t1', '{c}', \
             'No ads', 500, 'usd', 'month', 'p', 'pr', 1, 1, 0, 0); \
             INSERT INTO subscriptions (id, user_id, channel_id, tier_id, gateway_subscription, \
             status, status_at, idempotency_key, created_at, updated_at) VALUES ('s1', '{u}', \
             '{c}', 't1', 'sub_1', 'active', 0, 'k', 0, 0);",
            c = ch["id"].as_str().unwrap(),
            u = me["id"].as_str().unwrap(),
        ),
    );
    let (hook_url, hooks) = receiver();
    let (s, _) = api(
        &server,
        "POST",
        "/webhooks",
        Some(&amy),
        Some(json!({"channel": "amy-show", "url": hook_url, "events": ["ad_break.started"]})),
    );
    assert_eq!(s, 201);

    let http = server.http();
    let (mut publ, offer, pending) = Peer::publisher(&["a"]);
    publ.connect_as(
        &http,
        &server.url("/whip/amy-show"),
        offer,
        pending,
        Some(&key),
    );
    let mut anon = viewer(&server, "amy-show", None);
    let (_, t) = api(
        &server,
        "POST",
        "/channels/amy-show/viewer-token",
        Some(&bo),
        None,
    );
    let mut subscriber = viewer(&server, "amy-show", t["token"].as_str());
    assert!(pump(
        &mut [&mut publ, &mut anon, &mut subscriber],
        WITHIN,
        |p| p.iter().all(|p| p.connected)
    ));
    let t0 = Instant::now();
    let events =
        |v: &Peer| follow(server.url(&format!("{}/events", v.location.as_deref().unwrap())));
    let (rx_anon, rx_sub) = (events(&anon), events(&subscriber));
    // Media for a second: the viewers' join times.
    let mut synth = Synth::new(&[("a", 2)], 3);
    let end = Instant::now() + Duration::from_secs(1);
    while Instant::now() < end {
        synth.tick(&mut publ);
        pump(
            &mut [&mut publ, &mut anon, &mut subscriber],
            Duration::from_millis(5),
            |_| false,
        );
    }
    let mut peers = [&mut publ, &mut anon, &mut subscriber];
    wait_for(&mut peers, &rx_anon, "active");
    wait_for(&mut peers, &rx_sub, "active");

    let cue =
        json!({"duration_s": 5, "ad_tag_url": "https://ads.example/vast?s={stream}&d={duration}"});
    let (s, refused) = api(
        &server,
        "POST",
        "/channels/amy-show/ad-breaks",
        Some(&bo),
        Some(cue.clone()),
    );
    assert_eq!(s, 403, "only the owner cues a break: {refused}");
    let (s, brk) = api(
        &server,
        "POST",
        "/channels/amy-show/ad-breaks",
        Some(&amy),
        Some(cue.clone()),
    );
    assert_eq!(s, 201, "{brk}");
    let (a, at_a) = wait_for(&mut peers, &rx_anon, "adbreak");
    let (b, at_b) = wait_for(&mut peers, &rx_sub, "adbreak");
    let apart = if at_a > at_b {
        at_a - at_b
    } else {
        at_b - at_a
    };
    assert!(apart < Duration::from_millis(100), "told {apart:?} apart");
    assert_eq!(a["starts_at"], brk["starts_at"]);
    assert_eq!(a["starts_at"], b["starts_at"], "one start for all");
    assert_eq!(a["id"], b["id"]);
    assert_eq!(a["ad_tag_url"], "https://ads.example/vast?s=amy-show&d=5");
    assert_eq!(a["duration_s"], 5);
    assert_eq!(a["skip"], false);
    assert_eq!(b["skip"], true, "the ad-free subscriber skips it");
    let (s, _) = api(
        &server,
        "POST",
        "/channels/amy-show/ad-breaks",
        Some(&amy),
        Some(cue),
    );
    assert_eq!(s, 409, "one break at a time");
    let hook = hooks
        .recv_timeout(WITHIN)
        .expect("the ad_break.started webhook");
    assert_eq!(hook["type"], "ad_break.started");
    assert_eq!(hook["data"]["break_id"], brk["id"]);

    // Media past the break's start: both viewers' events name one frame of the
    // publisher's, each in its own timestamps.
    let starts_at = brk["starts_at"].as_u64().unwrap();
    while wall_ms() < starts_at + 500 {
        synth.tick(&mut *peers[0]);
        pump(&mut peers, Duration::from_millis(2), |_| false);
    }
    let (fa, fb) = (frame_at(&*peers[1], &a), frame_at(&*peers[2], &b));
    assert!(
        fa.abs_diff(fb) <= 1,
        "the break starts on frames {fa} and {fb}"
    );

    // Analytics: the anonymous viewer leaves after about 3 s; the subscriber stays.
    let anon_session = peers[1].location.clone().unwrap();
    http.delete(server.url(&anon_session)).send().unwrap();
    let t1 = Instant::now();
    pump(
        &mut [&mut publ, &mut subscriber],
        Duration::from_secs(3),
        |_| false,
    );
    let t2 = Instant::now();
    let (s, f) = api(
        &server,
        "GET",
        "/channels/amy-show/analytics",
        Some(&amy),
        None,
    );
    assert_eq!(s, 200, "{f}");
    assert_eq!(f["peak_viewers"], 2, "{f}");
    assert_eq!(f["unique_viewers"], 2, "{f}");
    assert_eq!(f["sessions"], 2, "{f}");
    let expected = ((t1 - t0) + (t2 - t0)).as_secs_f64() / 60.0;
    let got = f["viewer_minutes"].as_f64().unwrap();
    assert!(
        (got - expected).abs() < 4.0 / 60.0,
        "viewer-minutes {got} against {expected}"
    );
    assert!(
        f["join_seconds"]["p50"].as_f64().is_some_and(|j| j < 5.0),
        "{f}"
    );
    let broadcast = f["broadcasts"][0]["id"].as_str().unwrap().to_owned();
    let (s, one) = api(
        &server,
        "GET",
        &format!("/channels/amy-show/analytics/streams/{broadcast}"),
        Some(&amy),
        None,
    );
    assert_eq!(s, 200, "{one}");
    assert_eq!(one["unique_viewers"], 2);

    // CSV, by suffix and by Accept.
    let csv = http
        .get(server.url("/api/v1/channels/amy-show/analytics.csv"))
        .bearer_auth(&amy)
        .send()
        .unwrap();
    assert_eq!(csv.status(), 200);
    let text = csv.text().unwrap();
    let rows: Vec<(&str, &str)> = text.lines().filter_map(|l| l.split_once(',')).collect();
    assert_eq!(rows[0], ("metric", "value"));
    assert!(rows.contains(&("unique_viewers", "2")), "{text}");
    let by_accept = http
        .get(server.url(&format!(
            "/api/v1/channels/amy-show/analytics/streams/{broadcast}"
        )))
        .bearer_auth(&amy)
        .header("accept", "text/csv")
        .send()
        .unwrap();
    assert!(by_accept.text().unwrap().starts_with("metric,value"));

    // Who may read: the owner (above), an analytics:read key; not a channel:manage key,
    // nor another user.
    let key_with = |scope: &str| {
        let (s, k) = api(
            &server,
            "POST",
            "/api-keys",
            Some(&amy),
            Some(json!({"name": scope, "scopes": [scope]})),
        );
        assert_eq!(s, 201, "{k}");
        k["key"].as_str().unwrap().to_owned()
    };
    let reader = key_with("analytics:read");
    let manager = key_with("channel:manage");
    assert_eq!(
        api(
            &server,
            "GET",
            "/channels/amy-show/analytics",
            Some(&reader),
            None
        )
        .0,
        200
    );
    assert_eq!(
        api(
            &server,
            "GET",
            "/channels/amy-show/analytics",
            Some(&manager),
            None
        )
        .0,
        403
    );
    assert_eq!(
        api(
            &server,
            "GET",
            "/channels/amy-show/analytics",
            Some(&bo),
            None
        )
        .0,
        403
    );
    assert_eq!(
        api(
            &server,
            "POST",
            "/channels/amy-show/ad-breaks",
            Some(&reader),
            Some(json!({"duration_s": 5}))
        )
        .0,
        403,
        "reading analytics cues no break"
    );

    // Playback reports: garbage refused, one accepted, the next too soon.
    let session = subscriber
        .location
        .as_deref()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let post = |body: String| {
        http.post(server.url("/api/v1/playback-stats"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(post("not json".into()), 400);
    let report = |stall_ms: i64| {
        json!({"stream": "amy-show", "session": session, "watched_ms": 8000,
               "stall_ms": stall_ms, "stalls": 1, "frames": 200})
        .to_string()
    };
    assert_eq!(post(report(9000)), 400, "stalled longer than watched");
    assert_eq!(post(json!({"stream": "amy-show"}).to_string()), 400);
    assert_eq!(post(report(400)), 204);
    assert_eq!(post(report(400)), 429, "one report per 5 s");
    let (_, f) = api(
        &server,
        "GET",
        "/channels/amy-show/analytics",
        Some(&amy),
        None,
    );
    assert_eq!(f["rebuffer_ratio"]["p50"], 0.05, "{f}");
    assert!(server.metric("cascade_analytics_viewer_seconds_total") > 0.0);
    assert_eq!(
        server.metric("cascade_analytics_playback_reports_total{result=\"accepted\"}"),
        1.0
    );
}

pub(crate) const CLUSTER_TOKEN: &str = "a cluster token for the tests only";

/// A publisher of `stream` sent by `control`'s WHIP redirect (307) to `origin`, connected.
pub(crate) fn publish_through(control: &Server, origin: &Server, stream: &str, key: &str) -> Peer {
    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let (mut publ, offer, pending) = Peer::publisher(&["a"]);
    let r = http
        .post(control.url(&format!("/whip/{stream}")))
        .header("content-type", "application/sdp")
        .bearer_auth(key)
        .body(offer.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), 307);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(&origin.base), "{location}");
    publ.connect(&origin.http(), &location, offer, pending);
    publ
}

/// A `cascade node` of a cluster with one control plane at `control`.
pub(crate) fn cluster_node(dir: &std::path::Path, control: &str, name: &str, role: &str) -> Server {
    cluster_node_on(dir, control, name, role, &temp_dir("node"), &[])
}

/// [`cluster_node`] on the data directory `data`, with `extra` flags.
pub(crate) fn cluster_node_on(
    dir: &std::path::Path,
    control: &str,
    name: &str,
    role: &str,
    data: &std::path::Path,
    extra: &[&str],
) -> Server {
    let node_dir = dir.join(name);
    let mut args = vec![
        "--control-plane",
        control,
        "--cluster-token",
        CLUSTER_TOKEN,
        "--role",
        role,
        "--zone",
        "a",
        "--relay-listen",
        "127.0.0.1:0",
        "--node-dir",
        node_dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let mut s = Server::launch_as("node", &args, data, Stdio::inherit(), "warn");
    let banner = s.next_line();
    assert!(
        banner.starts_with(&format!("cascade relay {name} on quic ")),
        "{banner}"
    );
    s
}

/// Unix milliseconds now.
fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The publisher's frame on which `v`'s break starts: the first video packet whose RTP
/// timestamp reaches the event's `rtp_timestamp` (this viewer's own numbering), wrapping.
fn frame_at(v: &Peer, event: &Value) -> u32 {
    let target = event["rtp_timestamp"]
        .as_u64()
        .unwrap_or_else(|| panic!("the break's start in the viewer's timestamps: {event}"))
        as u32;
    v.received
        .iter()
        .filter(|r| r.kind == str0m::media::MediaKind::Video)
        .find(|r| r.ts.wrapping_sub(target) as i32 >= 0)
        .map(|r| crate::synth::parse_video(r).frame)
        .expect("a frame at or past the break's start")
}

/// A cluster: a `cascade control` replica and media-only nodes, which follow its cues
/// (`GET /api/v1/cluster/cues`): viewers on two edges get the break within 100 ms of each
/// other, and its start names, in each viewer's own RTP timestamps, the frame the
/// publisher sent at `starts_at` (the edges map it from their own arrivals, two relay hops
/// on loopback after the origin's: well under a frame).
#[test]
fn viewers_on_two_edges_get_the_ad_break_together() {
    let control = Server::launch_as(
        "control",
        &["--cluster-token", CLUSTER_TOKEN],
        &temp_dir("ads-control"),
        Stdio::inherit(),
        "warn",
    );
    account(&control, "admin");
    let amy = account(&control, "amy");
    let (key, _) = channel_with_key(&control, &amy, "amy-show", "public");
    let dir = temp_dir("ads-certs");
    crate::cluster::certificates(&dir, &["origin", "relay1", "edge1", "edge2"]);
    let origin = cluster_node(&dir, &control.base, "origin", "origin");
    let _relay = cluster_node(&dir, &control.base, "relay1", "relay");
    let edges = [
        cluster_node(&dir, &control.base, "edge1", "edge"),
        cluster_node(&dir, &control.base, "edge2", "edge"),
    ];
    std::thread::sleep(Duration::from_secs(2));

    let mut publ = publish_through(&control, &origin, "amy-show", &key);
    let mut viewers = Vec::new();
    let mut feeds = Vec::new();
    for edge in &edges {
        let (_, t) = api(
            &control,
            "POST",
            "/channels/amy-show/viewer-token",
            None,
            None,
        );
        let (mut v, offer, pending) = Peer::viewer();
        let url = edge.url(&format!(
            "/whep/amy-show?token={}",
            t["token"].as_str().unwrap()
        ));
        v.connect(&edge.http(), &url, offer, pending);
        feeds.push(follow(
            edge.url(&format!("{}/events", v.location.as_deref().unwrap())),
        ));
        viewers.push(v);
    }
    let [a, b] = &mut viewers[..] else {
        unreachable!()
    };
    let mut synth = Synth::new(&[("a", 2)], 7);
    let end = Instant::now() + Duration::from_secs(2);
    while Instant::now() < end {
        synth.tick(&mut publ);
        pump(
            &mut [&mut publ, &mut *a, &mut *b],
            Duration::from_millis(5),
            |_| false,
        );
    }
    let mut peers = [&mut publ, a, b];
    wait_for(&mut peers, &feeds[0], "active");
    wait_for(&mut peers, &feeds[1], "active");
    let (s, brk) = api(
        &control,
        "POST",
        "/channels/amy-show/ad-breaks",
        Some(&amy),
        Some(json!({"duration_s": 5})),
    );
    assert_eq!(s, 201, "{brk}");
    let (x, at_x) = wait_for(&mut peers, &feeds[0], "adbreak");
    let (y, at_y) = wait_for(&mut peers, &feeds[1], "adbreak");
    let apart = if at_x > at_y {
        at_x - at_y
    } else {
        at_y - at_x
    };
    assert!(apart < Duration::from_millis(100), "told {apart:?} apart");
    assert_eq!(x["starts_at"], brk["starts_at"]);
    assert_eq!(y["starts_at"], brk["starts_at"]);
    let starts_at = brk["starts_at"].as_u64().unwrap();
    let ahead = starts_at as i64 - wall_ms() as i64;
    assert!(ahead > 0, "told before the break starts ({ahead} ms ahead)");

    // Media past the start: which frame the publisher sent when.
    let [a, b] = &mut viewers[..] else {
        unreachable!()
    };
    let mut sent = Vec::new();
    while wall_ms() < starts_at + 500 {
        let before = synth.layers[0].frame;
        synth.tick(&mut publ);
        if synth.layers[0].frame != before {
            sent.push((wall_ms(), before));
        }
        pump(
            &mut [&mut publ, &mut *a, &mut *b],
            Duration::from_millis(2),
            |_| false,
        );
    }
    // The first frame sent at the start or after (a few ms of loopback and relay delay).
    let due = sent
        .iter()
        .find(|(at, _)| *at + 3 >= starts_at)
        .map(|(_, f)| *f)
        .unwrap();
    let (fa, fb) = (frame_at(a, &x), frame_at(b, &y));
    println!("the break starts on frames {fa} and {fb}; sent at starts_at: {due}");
    for f in [fa, fb] {
        assert!(
            f.abs_diff(due) <= 1,
            "frame {f} against {due} sent at the start"
        );
    }
}
