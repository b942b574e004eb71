//! Webhooks and analytics of a broadcast on a cluster: a `cascade control` replica and
//! media-only `cascade node`s (origin, relay, edge; real processes, the stream relayed
//! over QUIC). The publisher is on the origin, its viewers on the edge: the nodes report
//! their audience to the control plane, which merges them, so a local receiver gets
//! `stream.started` once, and `stream.ended` (with the edge's viewers as the peak) once
//! the origin is killed and the registry counts it dead; the channel's analytics count
//! the edge's viewers (peak, sessions, unique viewers, one of them signed in).

use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::accounts::{account, api, channel_with_key};
use crate::ads::{cluster_node, publish_through, receiver, CLUSTER_TOKEN};
use crate::peer::{pump, Peer};
use crate::server::{temp_dir, Server};
use crate::synth::Synth;

/// The first webhook of type `kind` within `within`, keeping the peers' timers running;
/// every webhook received on the way is kept in `seen`.
fn hook(
    peers: &mut [&mut Peer],
    synth: &mut Option<&mut Synth>,
    hooks: &mpsc::Receiver<Value>,
    seen: &mut Vec<Value>,
    kind: &str,
    within: Duration,
) -> Value {
    let end = Instant::now() + within;
    while Instant::now() < end {
        while let Ok(h) = hooks.try_recv() {
            seen.push(h.clone());
            if h["type"] == kind {
                return h;
            }
        }
        feed(peers, synth, Duration::from_millis(20));
    }
    panic!("no {kind} webhook within {within:?}; got {seen:?}");
}

/// Media for `d`: the publisher's frames (when there is one), every peer polled.
fn feed(peers: &mut [&mut Peer], synth: &mut Option<&mut Synth>, d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if let (Some(s), Some(p)) = (synth.as_deref_mut(), peers.first_mut()) {
            s.tick(p);
        }
        pump(peers, Duration::from_millis(2), |_| false);
    }
}

fn video(p: &Peer) -> usize {
    p.received
        .iter()
        .filter(|r| r.kind == str0m::media::MediaKind::Video)
        .count()
}

#[test]
fn a_broadcast_on_a_cluster_is_told_and_counted_from_its_edges() {
    let control = Server::launch_as(
        "control",
        &[
            "--cluster-token",
            CLUSTER_TOKEN,
            "--webhooks-allow-private",
            "--analytics-sample-ms",
            "500",
        ],
        &temp_dir("audience-control"),
        Stdio::inherit(),
        "warn",
    );
    account(&control, "admin");
    let amy = account(&control, "amy");
    let bob = account(&control, "bob");
    let (key, _) = channel_with_key(&control, &amy, "amy-show", "public");
    let (hook_url, hooks) = receiver();
    let (s, body) = api(
        &control,
        "POST",
        "/webhooks",
        Some(&amy),
        Some(json!({"channel": "amy-show", "url": hook_url,
                    "events": ["stream.started", "stream.ended"]})),
    );
    assert_eq!(s, 201, "{body}");

    let dir = temp_dir("audience-certs");
    crate::cluster::certificates(&dir, &["origin", "relay1", "edge1"]);
    let mut origin = cluster_node(&dir, &control.base, "origin", "origin");
    let _relay = cluster_node(&dir, &control.base, "relay1", "relay");
    let edge = cluster_node(&dir, &control.base, "edge1", "edge");
    std::thread::sleep(Duration::from_secs(2));

    // The broadcaster goes to the origin through the control plane's 307.
    let mut publ = publish_through(&control, &origin, "amy-show", &key);

    // Two viewers on the edge: one anonymous, one signed in (its token names bob).
    let mut viewers = Vec::new();
    for who in [None, Some(bob.as_str())] {
        let (s, t) = api(
            &control,
            "POST",
            "/channels/amy-show/viewer-token",
            who,
            None,
        );
        assert_eq!(s, 200, "{t}");
        let (mut v, offer, pending) = Peer::viewer();
        let url = edge.url(&format!(
            "/whep/amy-show?token={}",
            t["token"].as_str().unwrap()
        ));
        v.connect(&edge.http(), &url, offer, pending);
        viewers.push(v);
    }
    let [a, b] = &mut viewers[..] else {
        unreachable!()
    };
    let mut synth = Synth::new(&[("a", 2)], 11);
    let mut seen = Vec::new();
    let started = hook(
        &mut [&mut publ, &mut *a, &mut *b],
        &mut Some(&mut synth),
        &hooks,
        &mut seen,
        "stream.started",
        Duration::from_secs(15),
    );
    assert_eq!(started["data"]["stream"], "amy-show", "{started}");
    let end = Instant::now() + Duration::from_secs(20);
    while (video(a) < 50 || video(b) < 50) && Instant::now() < end {
        feed(
            &mut [&mut publ, &mut *a, &mut *b],
            &mut Some(&mut synth),
            Duration::from_millis(50),
        );
    }
    assert!(
        video(a) >= 50 && video(b) >= 50,
        "the edge's viewers play: {} and {} packets",
        video(a),
        video(b)
    );

    // The analytics count the edge's viewers: both at once, two sessions, two people.
    let figures = || {
        let (s, f) = api(
            &control,
            "GET",
            "/channels/amy-show/analytics",
            Some(&amy),
            None,
        );
        assert_eq!(s, 200, "{f}");
        f
    };
    let end = Instant::now() + Duration::from_secs(15);
    let mut f = figures();
    while (f["peak_viewers"] != 2 || f["sessions"] != 2) && Instant::now() < end {
        feed(
            &mut [&mut publ, &mut *a, &mut *b],
            &mut Some(&mut synth),
            Duration::from_millis(500),
        );
        f = figures();
    }
    assert_eq!(f["peak_viewers"], 2, "{f}");
    assert_eq!(f["sessions"], 2, "{f}");
    assert_eq!(f["unique_viewers"], 2, "{f}");
    assert!(
        f["join_seconds"]["p50"].as_f64().is_some_and(|j| j < 10.0),
        "join times recorded: {f}"
    );
    let broadcasts = f["broadcasts"].as_array().unwrap();
    assert_eq!(broadcasts.len(), 1, "one broadcast: {f}");
    assert!(broadcasts[0]["ended_at"].is_null(), "{f}");
    let broadcast = broadcasts[0]["id"].as_str().unwrap().to_owned();

    // The origin dies with the publisher on it: once the registry counts it dead, no
    // node holds the publisher and the broadcast ends, its peak the edge's viewers.
    origin.kill_hard();
    let ended = hook(
        &mut [&mut *a, &mut *b],
        &mut None,
        &hooks,
        &mut seen,
        "stream.ended",
        Duration::from_secs(15),
    );
    assert_eq!(ended["data"]["stream"], "amy-show", "{ended}");
    assert_eq!(ended["data"]["peak_viewers"], 2, "{ended}");
    // Nothing told twice.
    feed(&mut [&mut *a, &mut *b], &mut None, Duration::from_secs(2));
    seen.extend(hooks.try_iter());
    let kinds: Vec<&str> = seen.iter().filter_map(|h| h["type"].as_str()).collect();
    assert_eq!(kinds, ["stream.started", "stream.ended"], "{seen:?}");
    let (s, one) = api(
        &control,
        "GET",
        &format!("/channels/amy-show/analytics/streams/{broadcast}"),
        Some(&amy),
        None,
    );
    assert_eq!(s, 200, "{one}");
    assert_eq!(one["peak_viewers"], 2, "{one}");
    let (_, f) = api(
        &control,
        "GET",
        "/channels/amy-show/analytics",
        Some(&amy),
        None,
    );
    assert!(
        f["broadcasts"][0]["ended_at"].is_i64(),
        "the broadcast is over: {f}"
    );
}
