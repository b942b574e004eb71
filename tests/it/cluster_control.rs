//! A cluster run by its control plane: two `cascade control` replicas on one database and
//! `cascade node`s (origin, two relays in two zones, two edges) that register, report and
//! take their parents from it. The broadcaster's WHIP POST to a replica is answered 307 to
//! the origin with a publish token in the URL, a viewer's WHEP POST 307 to an edge with a
//! viewer token; the edge pulls the stream through a relay from the
//! origin; with one replica killed, new viewers are still placed and nodes keep reporting.
//! A drained origin keeps feeding the stream published on it.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::accounts::{account, channel_with_key};
use crate::cluster::{cascade, certificates, video_count};
use crate::peer::Peer;
use crate::server::{temp_dir, Server};
use crate::synth::{assert_continuous, run, Synth};

const TOKEN: &str = "a cluster token for the tests only";

fn control(data: &std::path::Path) -> Server {
    Server::launch_as(
        "control",
        &["--cluster-token", TOKEN],
        data,
        Stdio::inherit(),
        "warn",
    )
}

fn node(dir: &std::path::Path, controls: &str, name: &str, role: &str, zone: &str) -> Server {
    let node_dir = dir.join(name);
    let args = [
        "--control-plane",
        controls,
        "--cluster-token",
        TOKEN,
        "--role",
        role,
        "--zone",
        zone,
        "--relay-listen",
        "127.0.0.1:0",
        "--node-dir",
        node_dir.to_str().unwrap(),
    ];
    let mut s = Server::launch_as(
        "node",
        &args,
        &temp_dir("node"),
        Stdio::inherit(),
        "warn,cascade::cluster=info",
    );
    let banner = s.next_line();
    assert!(
        banner.starts_with(&format!("cascade relay {name} on quic ")),
        "{banner}"
    );
    s
}

/// Waits up to 10 s for `n` nodes to be registered and alive on `control`.
fn wait_registered(control: &Server, n: usize) {
    let end = Instant::now() + Duration::from_secs(10);
    while alive(control).len() < n && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(alive(control).len(), n, "every node registered and reports");
}

/// The nodes the registry says are alive.
fn alive(control: &Server) -> Vec<String> {
    let r = control
        .http()
        .get(control.url("/api/v1/cluster/nodes"))
        .bearer_auth(TOKEN)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .filter(|n| n["alive"] == true)
        .map(|n| n["name"].as_str().unwrap().to_owned())
        .collect()
}

/// POSTs an offer to `path` on a control plane, redirects not followed: the status and
/// where it points (or the body).
fn redirected(control: &Server, path: &str, offer: &str, bearer: Option<&str>) -> (u16, String) {
    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut req = http
        .post(control.url(path))
        .header("content-type", "application/sdp")
        .body(offer.to_owned());
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    let r = req.send().unwrap();
    let status = r.status().as_u16();
    match r.headers().get("location") {
        Some(l) => (status, l.to_str().unwrap().to_owned()),
        None => (status, r.text().unwrap_or_default()),
    }
}

/// A broadcaster (three simulcast layers) going live on "show" through the control plane's
/// 307 with its stream key.
fn go_live(control: &Server, key: &str) -> Peer {
    let (mut publ, offer, pending) = Peer::publisher(&["h", "m", "l"]);
    let (status, location) = redirected(control, "/whip/show", &offer, Some(key));
    assert_eq!(status, 307, "{location}");
    publ.connect(&control.http(), &location, offer, pending);
    publ
}

/// POSTs a viewer's offer to a control plane: where the 307 points.
fn placed(control: &Server, stream: &str, offer: &str) -> String {
    let (status, location) = redirected(control, &format!("/whep/{stream}"), offer, None);
    assert_eq!(status, 307, "{location}");
    location
}

#[test]
fn a_control_plane_places_viewers_on_edges_that_pull_through_relays() {
    let data = temp_dir("replicas");
    let c1 = control(&data);
    let c2 = control(&data);
    // A replica answers its orchestrator's probes: alive, and ready on its database.
    for path in ["/healthz", "/readyz"] {
        let r = c2.http().get(c2.url(path)).send().unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    account(&c1, "admin");
    let owner = account(&c1, "ana_x");
    let (key, _) = channel_with_key(&c1, &owner, "show", "public");
    let dir = temp_dir("cluster-certs");
    certificates(&dir, &["origin", "relay1", "relay2", "edge1", "edge2"]);
    let controls = format!("{},{}", c1.base, c2.base);
    let origin = node(&dir, &controls, "origin", "origin", "a");
    let _relays = [
        node(&dir, &controls, "relay1", "relay", "a"),
        node(&dir, &controls, "relay2", "relay", "b"),
    ];
    let edges = [
        node(&dir, &controls, "edge1", "edge", "a"),
        node(&dir, &controls, "edge2", "edge", "b"),
    ];
    wait_registered(&c2, 5);

    // The broadcaster's WHIP POST to a replica, with its stream key, is sent to the
    // origin with a publish token in the URL; a wrong key is refused there and then.
    let http = origin.http();
    let (mut publ, offer, pending) = Peer::publisher(&["h", "m", "l"]);
    let (status, _) = redirected(&c2, "/whip/show", &offer, Some("csk_not_a_key"));
    assert_eq!(status, 401);
    let (status, location) = redirected(&c2, "/whip/show", &offer, Some(&key));
    assert_eq!(status, 307);
    assert!(
        location.starts_with(&format!("{}/whip/show?token=", origin.base)),
        "placed on the origin: {location}"
    );
    assert!(
        !location.contains(&key),
        "the key stays with the broadcaster"
    );
    // As OBS does, the broadcaster sends its key again to the origin: the URL's token wins.
    publ.connect_as(&http, &location, offer, pending, Some(&key));

    // Two viewers ask the replicas; each is sent to an edge, token in the URL.
    let mut viewers = Vec::new();
    for c in [&c1, &c2] {
        let (mut v, offer, pending) = Peer::viewer();
        let location = placed(c, "show", &offer);
        assert!(
            edges
                .iter()
                .any(|e| location.starts_with(&format!("{}/whep/show?token=", e.base))),
            "placed on an edge: {location}"
        );
        v.connect(&http, &location, offer, pending);
        viewers.push(v);
    }
    let mut synth = Synth::new(&[("h", 4), ("m", 2), ("l", 1)], 1);
    let end = Instant::now() + Duration::from_secs(20);
    while viewers.iter().any(|v| video_count(v) < 100) && Instant::now() < end {
        synth.tick(&mut publ);
        publ.poll();
        for v in viewers.iter_mut() {
            v.poll();
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    for v in &viewers {
        assert!(
            video_count(v) >= 100,
            "the edge's viewer plays: {} packets",
            video_count(v)
        );
        assert_continuous(v);
    }

    // A replica dies: the other places new viewers, and the nodes report to it.
    drop(c1);
    let (_, offer, _) = Peer::viewer();
    let location = placed(&c2, "show", &offer);
    assert!(location.contains("/whep/show?token="), "{location}");
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        alive(&c2).len(),
        5,
        "nodes moved their reports to the live replica"
    );
    // Their streams hardly change: a second's report is the load alone, a list is written
    // only when it changed (five nodes sending theirs every second wrote 15 in 3 s).
    let written = || {
        let text = c2
            .http()
            .get(c2.url("/metrics"))
            .send()
            .unwrap()
            .text()
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("cascade_cluster_stream_lists_written_total "))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no list counter on /metrics:\n{text}"))
    };
    let before = written();
    std::thread::sleep(Duration::from_secs(3));
    let more = written() - before;
    assert!(more <= 2, "{more} lists written in 3 s");
}

/// Disaster recovery (docs/DISASTER-RECOVERY.md): an edge dies (`kill -9`) under a live
/// viewer. The viewer does what the SDK does when its session fails: it asks the control
/// plane again. Until the registry judges the edge dead (3 s without stats) it may be sent
/// there again and find nobody (the POST fails); then it is sent to the other edge, which
/// pulls the stream from the origin, and the picture comes back.
#[test]
fn a_viewer_whose_edge_is_killed_asks_again_and_is_placed_on_another_edge() {
    let started = Instant::now();
    let c = control(&temp_dir("edge-loss"));
    account(&c, "admin");
    let owner = account(&c, "oli_x");
    let (key, _) = channel_with_key(&c, &owner, "show", "public");
    let dir = temp_dir("edge-loss-certs");
    certificates(&dir, &["origin", "edge1", "edge2"]);
    let origin = node(&dir, &c.base, "origin", "origin", "a");
    let mut edges = [
        node(&dir, &c.base, "edge1", "edge", "a"),
        node(&dir, &c.base, "edge2", "edge", "b"),
    ];
    wait_registered(&c, 3);

    let http = origin.http();
    let mut publ = go_live(&c, &key);
    let mut synth = Synth::new(&[("h", 4), ("m", 2), ("l", 1)], 1);
    let mut pump = |publ: &mut Peer, v: &mut Peer, packets: usize, within: Duration| {
        let end = Instant::now() + within;
        while video_count(v) < packets && Instant::now() < end {
            synth.tick(publ);
            publ.poll();
            v.poll();
            std::thread::sleep(Duration::from_millis(1));
        }
        video_count(v) >= packets
    };

    let (mut v, offer, pending) = Peer::viewer();
    let location = placed(&c, "show", &offer);
    let on = edges
        .iter()
        .position(|e| location.starts_with(&format!("{}/whep/show?token=", e.base)))
        .unwrap_or_else(|| panic!("placed on an edge: {location}"));
    v.connect(&http, &location, offer, pending);
    assert!(
        pump(&mut publ, &mut v, 100, Duration::from_secs(20)),
        "the viewer plays on edge{}",
        on + 1
    );

    let dead = edges[on].base.clone();
    edges[on].kill_hard();
    let killed = Instant::now();
    let (mut again, tries) = {
        let mut tries = 0;
        loop {
            tries += 1;
            assert!(
                killed.elapsed() < Duration::from_secs(15),
                "still sent to the dead edge after {tries} tries"
            );
            let (mut v, offer, pending) = Peer::viewer();
            let location = placed(&c, "show", &offer);
            if location.starts_with(&dead) {
                // What the SDK meets there: nobody.
                let r = http
                    .post(&location)
                    .header("content-type", "application/sdp")
                    .body(offer)
                    .send();
                assert!(r.is_err(), "the killed edge answered: {r:?}");
                std::thread::sleep(Duration::from_millis(250));
                continue;
            }
            let other = &edges[1 - on].base;
            assert!(
                location.starts_with(&format!("{other}/whep/show?token=")),
                "placed on the live edge: {location}"
            );
            v.connect(&http, &location, offer, pending);
            break (v, tries);
        }
    };
    let placed_after = killed.elapsed();
    assert!(
        pump(&mut publ, &mut again, 1, Duration::from_secs(15)),
        "video on the other edge"
    );
    let first_video = killed.elapsed();
    assert!(pump(&mut publ, &mut again, 100, Duration::from_secs(15)));
    assert_continuous(&again);
    eprintln!(
        "edge killed: placed again after {placed_after:?} ({tries} asks), video after \
         {first_video:?}; test {:?}",
        started.elapsed()
    );
}

/// A backup ingest placed by the control plane: the broadcaster's second encoder asks for
/// `?backup=1` and is sent to the other origin (another zone); the primary origin dies
/// (`kill -9`): the relay above the viewer's edge moves to the backup's origin and the same
/// viewer session plays the backup's stream.
#[test]
fn a_backup_ingest_placed_by_the_control_plane_takes_over_when_the_primary_origin_dies() {
    backup_ingest_takes_over(false);
}

/// The same with the control plane gone before the kill (its one replica killed): the relay
/// moves to the backup parent the control plane named last, asking nothing.
#[test]
fn with_the_control_plane_away_a_relay_still_moves_to_the_backup_it_was_given() {
    backup_ingest_takes_over(true);
}

fn backup_ingest_takes_over(control_plane_away: bool) {
    let c = control(&temp_dir("ingest-backup"));
    account(&c, "admin");
    let owner = account(&c, "bea_x");
    let (key, _) = channel_with_key(&c, &owner, "show", "public");
    let dir = temp_dir("ingest-backup-certs");
    certificates(&dir, &["origin1", "origin2", "relay1", "edge1"]);
    let mut origins = [
        node(&dir, &c.base, "origin1", "origin", "a"),
        node(&dir, &c.base, "origin2", "origin", "b"),
    ];
    let _relay = node(&dir, &c.base, "relay1", "relay", "a");
    let _edge = node(&dir, &c.base, "edge1", "edge", "a");
    wait_registered(&c, 4);
    let http = origins[0].http();
    let on = |location: &str, origins: &[Server]| {
        origins
            .iter()
            .position(|o| location.starts_with(&format!("{}/whip/show?token=", o.base)))
            .unwrap_or_else(|| panic!("placed on an origin: {location}"))
    };

    let (mut main, offer, pending) = Peer::publisher(&["h", "m", "l"]);
    let (status, location) = redirected(&c, "/whip/show", &offer, Some(&key));
    assert_eq!(status, 307, "{location}");
    let primary = on(&location, &origins);
    main.connect(&http, &location, offer, pending);
    let (mut standby, offer, pending) = Peer::publisher(&["h", "m", "l"]);
    let (status, location) = redirected(&c, "/whip/show?backup=1", &offer, Some(&key));
    assert_eq!(status, 307, "{location}");
    assert_eq!(
        on(&location, &origins),
        1 - primary,
        "the standby goes to the other origin"
    );
    standby.connect(&http, &location, offer, pending);

    let (mut v, offer, pending) = Peer::viewer();
    let location = placed(&c, "show", &offer);
    v.connect(&http, &location, offer, pending);
    let mut synth_main = Synth::new(&[("h", 4), ("m", 2), ("l", 1)], 1);
    let mut synth_standby = Synth::new(&[("h", 4), ("m", 2), ("l", 1)], 2);
    let end = Instant::now() + Duration::from_secs(20);
    while video_count(&v) < 100 && Instant::now() < end {
        synth_main.tick(&mut main);
        main.poll();
        synth_standby.tick(&mut standby);
        standby.poll();
        v.poll();
        std::thread::sleep(Duration::from_millis(1));
    }
    let played = assert_continuous(&v);
    assert!(played.len() >= 100, "the viewer plays: {}", played.len());
    assert!(played.iter().all(|p| p.src == 1), "the primary's stream");

    if control_plane_away {
        drop(c);
    }
    origins[primary].kill_hard();
    let killed = Instant::now();
    let end = killed + Duration::from_secs(15);
    let backup_video = |v: &Peer| assert_continuous(v).iter().filter(|p| p.src == 2).count();
    while backup_video(&v) < 100 && Instant::now() < end {
        synth_standby.tick(&mut standby);
        standby.poll();
        v.poll();
        std::thread::sleep(Duration::from_millis(1));
    }
    let first = assert_continuous(&v)
        .iter()
        .position(|p| p.src == 2)
        .expect("the backup's video reaches the viewer");
    let resumed = v
        .received
        .iter()
        .filter(|r| r.kind == str0m::media::MediaKind::Video)
        .nth(first)
        .map(|r| r.at)
        .unwrap();
    eprintln!(
        "primary origin killed: the viewer resumed on the backup ingest after {:?}",
        resumed.duration_since(killed)
    );
    assert!(backup_video(&v) >= 100, "the backup's stream plays on");
    assert!(v.connected, "the same viewer session throughout");
}

/// An operator drains the only origin while its broadcaster is live (no standby ingest):
/// the stream is nowhere else, so the origin keeps feeding the tree and the viewer keeps
/// playing, while the drain still keeps new streams off it. Before, the origin ended its
/// children's subscriptions and refused them back, and every viewer froze for good.
#[test]
fn a_drained_origin_keeps_feeding_the_stream_published_on_it() {
    let data = temp_dir("drain-origin");
    let c = control(&data);
    account(&c, "admin");
    let owner = account(&c, "dee_x");
    let (key, _) = channel_with_key(&c, &owner, "show", "public");
    let dir = temp_dir("drain-origin-certs");
    certificates(&dir, &["origin", "relay1", "edge1"]);
    let controls = c.base.clone();
    let origin = node(&dir, &controls, "origin", "origin", "a");
    let _relay = node(&dir, &controls, "relay1", "relay", "a");
    let edge = node(&dir, &controls, "edge1", "edge", "a");
    wait_registered(&c, 3);

    let http = origin.http();
    let mut publ = go_live(&c, &key);
    let (mut v, offer, pending) = Peer::viewer();
    let location = placed(&c, "show", &offer);
    assert!(location.starts_with(&edge.base), "{location}");
    v.connect(&http, &location, offer, pending);
    let mut synth = Synth::new(&[("h", 4), ("m", 2), ("l", 1)], 1);
    let playing = run(
        &mut synth,
        &mut publ,
        &mut [&mut v],
        |v| video_count(v[0]) >= 100,
        Duration::from_secs(20),
    );
    assert!(
        playing,
        "the edge's viewer plays: {} packets",
        video_count(&v)
    );

    cascade(&[
        "cluster",
        "drain",
        "--control",
        &c.base,
        "--cluster-token",
        TOKEN,
        "--node",
        "origin",
    ]);
    // The origin hears it in the answer to its next report (every second); then 3 s more.
    let mut counts = Vec::new();
    for _ in 0..2 {
        let idle = |_: &[&mut Peer]| false;
        run(
            &mut synth,
            &mut publ,
            &mut [&mut v],
            idle,
            Duration::from_secs(3),
        );
        counts.push(video_count(&v));
    }
    let after = counts[1] - counts[0];
    assert!(
        after >= 60,
        "{after} video packets in the 3 s after the drain took effect"
    );
    assert!(v.connected);
    // New broadcasts keep off the drained origin: no other origin, so none is placed.
    let (_, offer, _) = Peer::publisher(&["h"]);
    let (status, body) = redirected(&c, "/whip/other", &offer, Some(&key));
    assert_ne!(status, 307, "{body}");
}
