//! `cascade cluster up`: one command starts a tree of real `cascade serve` processes, says
//! where each is, carries a stream from the origin to an edge, and leaves no process behind
//! when it is stopped (SIGTERM) or killed (SIGKILL). With `--netns` (these tests run as
//! root, in the host's namespace), each node has its own address and the namespaces, links
//! and bridge go with the cluster.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cluster::video_count;
use crate::peer::Peer;
use crate::synth::{assert_continuous, Synth};

/// Starts `cascade cluster up` with `args`; returns it, its JSON listing and the nodes' pids.
fn cluster_up(args: &[&str]) -> (Child, Value, Vec<u32>) {
    let mut child = Command::new(crate::server::cascade_bin())
        .args(["cluster", "up", "--json"])
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn cascade cluster up");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(
        !line.is_empty(),
        "cluster up {args:?} printed nothing (its error is above)"
    );
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
    let origin = nodes[0]["http"].as_str().unwrap();
    let edge = nodes[3]["http"].as_str().unwrap();
    carries_a_stream(origin, edge, Ipv4Addr::LOCALHOST.into());

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

fn http_client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .unwrap()
}

/// A publisher on `origin`, a viewer on `edge`, both peers' sockets on `ip`: the viewer gets
/// 100 video packets of the stream, in order, within 15 s.
fn carries_a_stream(origin: &str, edge: &str, ip: IpAddr) {
    let http = http_client();
    let (mut publ, offer, pending) = Peer::publisher_at(ip, &["h", "m", "l"]);
    publ.connect(&http, &format!("{origin}/whip/live"), offer, pending);
    let (mut viewer, offer, pending) = Peer::viewer_at(ip);
    viewer.connect(&http, &format!("{edge}/whep/live"), offer, pending);
    let mut synth = Synth::new(&[("h", 4), ("m", 2), ("l", 1)], 3);
    let end = Instant::now() + Duration::from_secs(15);
    while Instant::now() < end && video_count(&viewer) < 100 {
        synth.tick(&mut publ);
        publ.poll();
        viewer.poll();
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(
        video_count(&viewer) >= 100,
        "the edge's viewer gets the origin's stream: {} video packets",
        video_count(&viewer)
    );
    assert_continuous(&viewer);
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

/// What `ip ARGS` prints; the test fails if it cannot run.
fn ip(args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("run ip (iproute2)");
    assert!(out.status.success(), "ip {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The namespaces (`ip netns list`) and links (`ip link`) that the `cluster up --netns`
/// with this pid made and that still exist.
fn netns_leftovers(pid: u32) -> Vec<String> {
    let namespaces = ip(&["netns", "list"]);
    let links = ip(&["-o", "link", "show"]);
    let ns = namespaces
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&format!("cascade-{pid}-")));
    let link = links
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap())
        .filter(|n| *n == format!("csc{pid}b") || n.starts_with(&format!("csc{pid}v")));
    ns.chain(link).map(str::to_owned).collect()
}

/// One `--netns` test at a time: a run removes what ended runs left, so a run starting
/// while the other test holds a killed run's leftovers would remove them before it looks.
fn netns_turn() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

/// A `cluster up` that is stopped (SIGTERM) if the test fails first, so its network goes.
struct StopOnDrop(Child);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.0.id().to_string()])
                .status();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn with_netns_each_node_has_its_own_address_and_the_network_goes_with_the_cluster() {
    let _turn = netns_turn();
    let (up, listing, pids) = cluster_up(&["--netns", "--nodes", "3", "--relays", "1"]);
    let mut up = StopOnDrop(up);
    let pid = up.0.id();
    let net = &listing["netns"];
    let host: Ipv4Addr = net["address"].as_str().unwrap().parse().unwrap();
    let subnet = net["subnet"].as_str().unwrap();
    assert!(
        subnet.starts_with("10.") && subnet.ends_with(".0/24"),
        "{net}"
    );
    assert_eq!(net["bridge"], format!("csc{pid}b"));
    let mut addrs = HashSet::new();
    for n in listing["nodes"].as_array().unwrap() {
        let name = n["name"].as_str().unwrap();
        let http: SocketAddr = n["http"]
            .as_str()
            .unwrap()
            .strip_prefix("http://")
            .unwrap()
            .parse()
            .unwrap();
        let quic: SocketAddr = n["quic"].as_str().unwrap().parse().unwrap();
        let IpAddr::V4(addr) = http.ip() else {
            panic!("{name}: not IPv4: {http}")
        };
        // On the bridge's /24, not the bridge's own address, HTTP and relay on one address.
        assert_eq!(addr.octets()[..3], host.octets()[..3], "{name}: {http}");
        assert_ne!(addr, host);
        assert_eq!(quic.ip(), http.ip(), "{name}");
        assert_eq!(n["netns"], format!("cascade-{pid}-{name}"));
        addrs.insert(addr);
    }
    assert_eq!(addrs.len(), 3, "three nodes, three addresses: {addrs:?}");
    let mut made = netns_leftovers(pid);
    made.sort();
    assert_eq!(
        made,
        [
            format!("cascade-{pid}-edge1"),
            format!("cascade-{pid}-origin"),
            format!("cascade-{pid}-relay1"),
            format!("csc{pid}b"),
            format!("csc{pid}v0"),
            format!("csc{pid}v1"),
            format!("csc{pid}v2"),
        ],
        "a namespace and a veth per node, one bridge"
    );

    // origin → relay1 → edge1, each hop between two namespaces; the peers are on the bridge.
    let nodes = listing["nodes"].as_array().unwrap();
    let (origin, edge) = (nodes[0]["http"].as_str(), nodes[2]["http"].as_str());
    carries_a_stream(origin.unwrap(), edge.unwrap(), host.into());

    signal(pid, "-TERM");
    let status = up.0.wait().unwrap();
    assert!(status.success(), "cluster up exits cleanly: {status}");
    assert!(all_gone(&pids, Duration::from_secs(2)), "no node left");
    assert_eq!(netns_leftovers(pid), Vec::<String>::new(), "nothing left");
}

#[test]
fn a_killed_netns_clusters_network_goes_at_the_next_start() {
    let _turn = netns_turn();
    let (mut first, _, pids) = cluster_up(&["--netns", "--nodes", "1"]);
    let killed = first.id();
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(
        all_gone(&pids, Duration::from_secs(5)),
        "the node died with it"
    );
    assert_eq!(
        netns_leftovers(killed).len(),
        3,
        "SIGKILL left its namespace, veth and bridge"
    );

    let (second, listing, _) = cluster_up(&["--netns", "--nodes", "1"]);
    let mut second = StopOnDrop(second);
    assert_eq!(
        netns_leftovers(killed),
        Vec::<String>::new(),
        "removed at start"
    );
    let http = listing["nodes"][0]["http"].as_str().unwrap();
    let health = http_client().get(format!("{http}/healthz")).send().unwrap();
    assert!(health.status().is_success(), "{}", health.status());
    signal(second.0.id(), "-TERM");
    assert!(second.0.wait().unwrap().success());
    assert_eq!(netns_leftovers(second.0.id()), Vec::<String>::new());
}
