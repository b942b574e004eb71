//! `cascade cluster up`: one command starts a tree of real `cascade serve` processes, says
//! where each is, carries a stream from the origin to an edge, and leaves no process behind
//! when it is stopped (SIGTERM) or killed (SIGKILL).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::peer::Peer;
use crate::synth::{assert_continuous, Synth};

/// Starts `cascade cluster up` with `args`; returns it, its JSON listing and the nodes' pids.
fn cluster_up(args: &[&str]) -> (Child, Value, Vec<u32>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cascade"))
        .args(["cluster", "up", "--json"])
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn cascade cluster up");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let listing: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    let mut last = String::new();
    out.read_line(&mut last).unwrap();
    let n = listing["nodes"].as_array().unwrap().len();
    assert_eq!(last.trim(), format!("cluster up: {n} nodes"));
    let pids = listing["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["pid"].as_u64().unwrap() as u32)
        .collect();
    (child, listing, pids)
}

/// Whether a process is alive (a zombie waiting for its parent counts as gone).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, r)| r.trim_start().to_owned()))
        .is_some_and(|r| !r.starts_with('Z') && !r.starts_with('X'))
}

fn all_gone(pids: &[u32], within: Duration) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if !pids.iter().any(|&p| alive(p)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

#[test]
fn cluster_up_starts_a_tree_that_carries_a_stream_and_stops_with_it() {
    let (mut up, listing, pids) = cluster_up(&["--nodes", "4"]);
    let nodes = listing["nodes"].as_array().unwrap();
    // Four nodes: one relay (3 or 4 nodes), both edges behind it.
    let shape: Vec<(String, String, Vec<String>)> = nodes
        .iter()
        .map(|n| {
            (
                n["role"].as_str().unwrap().to_owned(),
                n["name"].as_str().unwrap().to_owned(),
                serde_json::from_value(n["parents"].clone()).unwrap(),
            )
        })
        .collect();
    let s = |r: &str, n: &str, p: &[&str]| {
        (
            r.to_owned(),
            n.to_owned(),
            p.iter().map(|x| x.to_string()).collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        shape,
        [
            s("origin", "origin", &[]),
            s("relay", "relay1", &["origin"]),
            s("edge", "edge1", &["relay1"]),
            s("edge", "edge2", &["relay1"]),
        ]
    );
    assert!(pids.iter().all(|&p| alive(p)), "every node runs: {pids:?}");

    // A publisher on the origin, a viewer on an edge: origin → relay1 → edge2.
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let origin = nodes[0]["http"].as_str().unwrap();
    let edge = nodes[3]["http"].as_str().unwrap();
    let (mut publ, offer, pending) = Peer::publisher(&["h", "m", "l"]);
    publ.connect(&http, &format!("{origin}/whip/live"), offer, pending);
    let (mut viewer, offer, pending) = Peer::viewer();
    viewer.connect(&http, &format!("{edge}/whep/live"), offer, pending);
    let mut synth = Synth::new(&[("h", 4), ("m", 2), ("l", 1)], 3);
    let end = Instant::now() + Duration::from_secs(15);
    let video = |v: &Peer| {
        v.received
            .iter()
            .filter(|r| r.kind == str0m::media::MediaKind::Video)
            .count()
    };
    while Instant::now() < end && video(&viewer) < 100 {
        synth.tick(&mut publ);
        publ.poll();
        viewer.poll();
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(
        video(&viewer) >= 100,
        "the edge's viewer gets the origin's stream: {} video packets",
        video(&viewer)
    );
    assert_continuous(&viewer);

    // SIGTERM: the command stops every node, then exits cleanly.
    signal(up.id(), "-TERM");
    let status = up.wait().unwrap();
    assert!(status.success(), "cluster up exits cleanly: {status}");
    assert!(
        all_gone(&pids, Duration::from_secs(2)),
        "no node left: {:?}",
        pids.iter().filter(|&&p| alive(p)).collect::<Vec<_>>()
    );
}

#[test]
fn nodes_die_with_a_killed_cluster_up() {
    let (mut up, listing, pids) = cluster_up(&["--nodes", "2"]);
    assert_eq!(
        listing["nodes"][1]["parents"],
        serde_json::json!(["origin"])
    );
    assert!(pids.iter().all(|&p| alive(p)));
    // SIGKILL leaves the command no chance to stop them: the kernel does.
    up.kill().unwrap();
    up.wait().unwrap();
    assert!(
        all_gone(&pids, Duration::from_secs(5)),
        "nodes outlived a killed cluster up: {:?}",
        pids.iter().filter(|&&p| alive(p)).collect::<Vec<_>>()
    );
}
