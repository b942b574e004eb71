//! `cascade cluster up`: a local cluster of separate `cascade serve` processes, for trying
//! the tree and measuring it on one machine.
//!
//! The layout: one origin, R relays whose parent is the origin, and the rest edges whose
//! parents are relay i (primary) and relay i+1 (backup), round-robin; with no relay, the
//! edges' parent is the origin. Every node has its own certificate (one CA made here), data
//! directory and log under the cluster's directory, and binds 127.0.0.1 on ports the kernel
//! picks. Once all are up, one line a node is printed (or one line of JSON with `--json`),
//! then `cluster up: N nodes`; the command then waits. Ctrl-C or SIGTERM stops every node
//! (SIGTERM, then SIGKILL after [`STOP_GRACE`]); a node also gets SIGKILL if this process
//! dies (`PR_SET_PDEATHSIG`), so no node outlives the command.
//!
//! With `--netns` (root only), each node runs in its own network namespace on its own
//! address behind a bridge here ([`super::netns`]), HTTP on port [`NETNS_HTTP_PORT`] and
//! relay links on [`NETNS_RELAY_PORT`]; the namespaces, links and bridge go when the
//! cluster stops, or at the next `--netns` run if this one was killed.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;

use super::netns::{self, Network, Subnet};

/// How long a node may take to print its two banner lines.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the nodes get to stop after SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// A node's HTTP port with `--netns` (each node has the port space of its namespace).
pub const NETNS_HTTP_PORT: u16 = 8080;
/// A node's relay (QUIC) port with `--netns`.
pub const NETNS_RELAY_PORT: u16 = 4433;

/// Options of `cascade cluster up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Nodes in all: one origin, the relays, the rest edges.
    #[arg(long)]
    pub nodes: usize,
    /// Relays between the origin and the edges [default: 2 from 5 nodes, 1 from 3, else 0].
    #[arg(long)]
    pub relays: Option<usize>,
    /// Directory for the CA, the nodes' certificates, data and logs (`NAME/cascade.log`)
    /// [default: a new temporary directory, removed when the cluster stops].
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The `cascade` binary the nodes run [default: this one].
    #[arg(long)]
    pub binary: Option<PathBuf>,
    /// Print the nodes as one line of JSON instead of one line each.
    #[arg(long)]
    pub json: bool,
    /// Start a node that exits on its own again after this many milliseconds, on the same
    /// addresses (failover drills); without it, a node that exits stays down.
    #[arg(long)]
    pub restart_after_ms: Option<u64>,
    /// Run each node in its own network namespace, on its own address (10.X.0.2, .3, …),
    /// joined by a bridge here that holds 10.X.0.1; needs root (CAP_NET_ADMIN and
    /// CAP_SYS_ADMIN).
    #[arg(long)]
    pub netns: bool,
    /// The subnet of `--netns` [default: a 10.X.0.0/24 not routed here yet].
    #[arg(long, requires = "netns")]
    pub netns_subnet: Option<Subnet>,
    /// More `cascade serve` arguments for every node, after `--` (e.g. `-- --workers 1`);
    /// `--auth open` is added unless they say `--auth` or `--publish-key`.
    #[arg(last = true)]
    pub serve_args: Vec<String>,
}

/// A node's place in the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Where the publisher goes.
    Origin,
    /// Pulls from the origin, serves edges.
    Relay,
    /// Pulls from relays (or the origin), serves viewers.
    Edge,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Origin => "origin",
            Role::Relay => "relay",
            Role::Edge => "edge",
        }
    }
}

/// A node of the layout: its role, name and parents (indices of earlier nodes, primary first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// Its role.
    pub role: Role,
    /// Its name (and certificate's).
    pub name: String,
    /// Its parents, primary first, as indices into the layout.
    pub parents: Vec<usize>,
}

/// The default number of relays for `nodes` nodes.
pub fn default_relays(nodes: usize) -> usize {
    match nodes {
        0..=2 => 0,
        3..=4 => 1,
        _ => 2,
    }
}

/// The layout of `nodes` nodes with `relays` relays (origin first, then relays, then edges).
pub fn layout(nodes: usize, relays: usize) -> Result<Vec<Planned>, String> {
    if nodes == 0 {
        return Err("--nodes must be at least 1".into());
    }
    if relays >= nodes {
        return Err(format!(
            "{relays} relays need at least {} nodes (an origin too)",
            relays + 1
        ));
    }
    let mut plan = vec![Planned {
        role: Role::Origin,
        name: "origin".into(),
        parents: vec![],
    }];
    for r in 0..relays {
        plan.push(Planned {
            role: Role::Relay,
            name: format!("relay{}", r + 1),
            parents: vec![0],
        });
    }
    for e in 0..nodes - 1 - relays {
        let parents = match relays {
            0 => vec![0],
            1 => vec![1],
            r => vec![1 + e % r, 1 + (e + 1) % r],
        };
        plan.push(Planned {
            role: Role::Edge,
            name: format!("edge{}", e + 1),
            parents,
        });
    }
    Ok(plan)
}

/// A running node, as printed with `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct NodeInfo {
    /// Its role.
    pub role: Role,
    /// Its name.
    pub name: String,
    /// Its HTTP base URL (WHIP, WHEP, /healthz, /metrics).
    pub http: String,
    /// Its relay (QUIC) address.
    pub quic: String,
    /// Its process id.
    pub pid: u32,
    /// Its parents' names, primary first.
    pub parents: Vec<String>,
    /// Its directory (certificate, data, log).
    pub dir: PathBuf,
    /// Its network namespace (`ip netns`), with `--netns`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
}

/// The network of `--netns`, as printed with `--json`.
#[derive(Debug, Serialize)]
struct NetInfo {
    /// The bridge in the caller's namespace.
    bridge: String,
    /// The bridge's address: the caller's on the nodes' subnet.
    address: String,
    /// The subnet, `A.B.C.D/N`.
    subnet: String,
}

/// The cluster's directory and nodes, as printed with `--json`.
#[derive(Debug, Serialize)]
struct Listing<'a> {
    dir: &'a Path,
    nodes: Vec<&'a NodeInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    netns: Option<NetInfo>,
}

struct Running {
    info: NodeInfo,
    child: Option<Child>,
    /// When it exited, for a restart.
    down_since: Option<Instant>,
}

/// Runs `cascade cluster up` until Ctrl-C or SIGTERM.
pub fn run(args: UpArgs) -> Result<(), String> {
    let plan = layout(
        args.nodes,
        args.relays.unwrap_or(default_relays(args.nodes)),
    )?;
    let binary = match &args.binary {
        Some(b) => b.clone(),
        None => std::env::current_exe().map_err(|e| format!("this binary's path: {e}"))?,
    };
    let (dir, temporary) = match &args.dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("cascade-cluster-{}", std::process::id())),
            true,
        ),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    // Caught from here on: a Ctrl-C while the nodes start stops them once all are up, and
    // the network goes with them.
    let signals = {
        let _in = rt.enter();
        Signals::catch()?
    };
    let mut network = match args.netns {
        true => Some(make_network(&plan, args.netns_subnet)?),
        false => None,
    };
    let mut nodes: Vec<Running> = Vec::with_capacity(plan.len());
    let started = start_all(
        &plan,
        &binary,
        &dir,
        &args.serve_args,
        network.as_ref(),
        &mut nodes,
    );
    let result = match started {
        Ok(()) => {
            print_nodes(&dir, &nodes, network.as_ref(), args.json);
            rt.block_on(watch(signals, &mut nodes, &binary, &args))
        }
        Err(e) => Err(e),
    };
    stop_all(&mut nodes);
    // Only now: a namespace lives on while a node is in it.
    let removed = network.as_mut().map_or(Ok(()), Network::teardown);
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result.and(removed.map_err(|e| e.to_string()))
}

/// The namespaces of `--netns`, one per planned node, after removing what ended runs left.
fn make_network(plan: &[Planned], subnet: Option<Subnet>) -> Result<Network, String> {
    let names: Vec<&str> = plan.iter().map(|p| p.name.as_str()).collect();
    let (network, removed) = Network::create(&names, subnet).map_err(|e| e.to_string())?;
    if !removed.is_empty() {
        eprintln!(
            "cluster up: removed what ended runs left: {}",
            removed.join(", ")
        );
    }
    Ok(network)
}

/// SIGINT and SIGTERM, caught: once made, neither ends the process any more (tokio keeps
/// its handlers for the life of the process).
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    /// Starts catching them; must run inside a tokio runtime.
    fn catch() -> Result<Signals, String> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            int: signal(SignalKind::interrupt()).map_err(|e| e.to_string())?,
            term: signal(SignalKind::terminate()).map_err(|e| e.to_string())?,
        })
    }
}

fn start_all(
    plan: &[Planned],
    binary: &Path,
    dir: &Path,
    extra: &[String],
    network: Option<&Network>,
    nodes: &mut Vec<Running>,
) -> Result<(), String> {
    let ca = dir.join("ca");
    if !ca.join("ca.pem").exists() {
        edge_relay::tls::init_cluster(&ca).map_err(|e| format!("{}: {e}", ca.display()))?;
    }
    for (i, p) in plan.iter().enumerate() {
        let node_dir = dir.join(&p.name);
        edge_relay::tls::issue_node(&ca, &p.name, &node_dir)
            .map_err(|e| format!("certificate of {}: {e}", p.name))?;
        let parents: Vec<String> = p
            .parents
            .iter()
            .map(|&i| format!("{}@{}", nodes[i].info.name, nodes[i].info.quic))
            .collect();
        // Its own namespace: its own ports, known in advance; else any free port here.
        let (addr, http_port, quic_port, netns) = match network {
            Some(n) => (
                n.nodes[i].addr.to_string(),
                NETNS_HTTP_PORT,
                NETNS_RELAY_PORT,
                Some(n.nodes[i].netns.clone()),
            ),
            None => ("127.0.0.1".to_owned(), 0, 0, None),
        };
        let info = NodeInfo {
            role: p.role,
            name: p.name.clone(),
            http: format!("{addr}:{http_port}"),
            quic: format!("{addr}:{quic_port}"),
            pid: 0,
            parents: p.parents.iter().map(|&i| plan[i].name.clone()).collect(),
            dir: node_dir,
            netns,
        };
        let (child, http, quic) = spawn(binary, &info, &parents, extra)?;
        nodes.push(Running {
            info: NodeInfo {
                pid: child.id(),
                http,
                quic,
                ..info
            },
            child: Some(child),
            down_since: None,
        });
    }
    Ok(())
}

/// The `serve` arguments of a node; `info.http` and `info.quic` are the addresses to bind
/// (port 0 the first time, the same addresses on a restart).
fn serve_args(info: &NodeInfo, parents: &[String], extra: &[String]) -> Vec<String> {
    let http = info.http.trim_start_matches("http://");
    let mut a: Vec<String> = [
        "serve",
        "--http",
        http,
        "--relay-listen",
        &info.quic,
        "--role",
        info.role.as_str(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if info.netns.is_some() {
        // Media on the node's own address too (the default is 127.0.0.1).
        if let Ok(addr) = info.quic.parse::<std::net::SocketAddr>() {
            a.push("--bind-ip".into());
            a.push(addr.ip().to_string());
        }
    }
    a.push("--node-dir".into());
    a.push(info.dir.display().to_string());
    a.push("--data-dir".into());
    a.push(info.dir.join("data").display().to_string());
    for p in parents {
        a.push("--parent".into());
        a.push(p.clone());
    }
    let says_auth = extra
        .iter()
        .any(|x| x == "--auth" || x.starts_with("--auth=") || x.starts_with("--publish-key"));
    if !says_auth {
        a.extend(["--auth".into(), "open".into()]);
    }
    a.extend(extra.iter().cloned());
    a
}

/// Starts one node; returns it with its HTTP base URL and relay address, read from the
/// banner lines it prints.
fn spawn(
    binary: &Path,
    info: &NodeInfo,
    parents: &[String],
    extra: &[String],
) -> Result<(Child, String, String), String> {
    std::fs::create_dir_all(&info.dir).map_err(|e| format!("{}: {e}", info.dir.display()))?;
    let log_path = info.dir.join("cascade.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| format!("{}: {e}", log_path.display()))?;
    let mut cmd = Command::new(binary);
    cmd.args(serve_args(info, parents, extra))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log);
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent's; it is the
    // only thing done between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            // The node dies with this process, even on SIGKILL (no orphans).
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // Held open until the spawn: the child enters the namespace through it.
    let _netns = match &info.netns {
        Some(ns) => Some(netns::run_inside(&mut cmd, ns).map_err(|e| e.to_string())?),
        None => None,
    };
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("starting {}: {e}", binary.display()))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    let name = info.name.clone();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        for _ in 0..2 {
            match lines.next() {
                Some(Ok(l)) => {
                    if tx.send(l).is_err() {
                        return;
                    }
                }
                _ => return,
            }
        }
        // Anything later goes to our stderr, so the node never writes to a closed pipe.
        for l in lines.map_while(Result::ok) {
            eprintln!("[{name}] {l}");
        }
    });
    let by = Instant::now() + START_TIMEOUT;
    let banner = || rx.recv_timeout(by.saturating_duration_since(Instant::now()));
    let failed = |child: &mut Child, what: &str| {
        let _ = child.kill();
        let _ = child.wait();
        let tail = std::fs::read_to_string(&log_path)
            .map(|t| {
                let lines: Vec<&str> = t.lines().collect();
                lines[lines.len().saturating_sub(5)..].join("\n")
            })
            .unwrap_or_default();
        format!("node {}: {what}; its log ends:\n{tail}", info.name)
    };
    let http = match banner() {
        Ok(l) if l.starts_with("cascade listening on ") => {
            l["cascade listening on ".len()..].to_string()
        }
        Ok(l) => return Err(failed(&mut child, &format!("unexpected line {l:?}"))),
        Err(_) => return Err(failed(&mut child, "did not start")),
    };
    let quic = match banner() {
        Ok(l) => match l.rsplit_once(" on quic ") {
            Some((_, addr)) => addr.to_string(),
            None => return Err(failed(&mut child, &format!("unexpected line {l:?}"))),
        },
        Err(_) => return Err(failed(&mut child, "opened no relay link")),
    };
    Ok((child, http, quic))
}

fn print_nodes(dir: &Path, nodes: &[Running], network: Option<&Network>, json: bool) {
    let mut out = std::io::stdout().lock();
    if json {
        let listing = Listing {
            dir,
            nodes: nodes.iter().map(|n| &n.info).collect(),
            netns: network.map(|n| NetInfo {
                bridge: n.bridge.clone(),
                address: n.host.to_string(),
                subnet: n.subnet.to_string(),
            }),
        };
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string(&listing).unwrap_or_default()
        );
    } else {
        for n in nodes {
            let i = &n.info;
            let _ = write!(
                out,
                "{} {} {} quic {}",
                i.role.as_str(),
                i.name,
                i.http,
                i.quic
            );
            let _ = match &i.netns {
                Some(ns) => writeln!(out, " netns {ns}"),
                None => writeln!(out),
            };
        }
        if let Some(n) = network {
            let _ = writeln!(
                out,
                "network {}: bridge {} holds {} here",
                n.subnet, n.bridge, n.host
            );
        }
    }
    let _ = writeln!(out, "cluster up: {} nodes", nodes.len());
    let _ = out.flush();
}

/// Waits for Ctrl-C or SIGTERM; meanwhile notes nodes that exit (and restarts them when
/// asked to).
async fn watch(
    mut signals: Signals,
    nodes: &mut [Running],
    binary: &Path,
    args: &UpArgs,
) -> Result<(), String> {
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            _ = signals.int.recv() => break,
            _ = signals.term.recv() => break,
            _ = tick.tick() => {}
        }
        for i in 0..nodes.len() {
            reap_or_restart(nodes, i, binary, args);
        }
    }
    eprintln!("cluster up: stopping {} nodes", nodes.len());
    Ok(())
}

fn reap_or_restart(nodes: &mut [Running], i: usize, binary: &Path, args: &UpArgs) {
    if let Some(child) = nodes[i].child.as_mut() {
        if let Ok(Some(status)) = child.try_wait() {
            eprintln!("cluster up: {} exited ({status})", nodes[i].info.name);
            nodes[i].child = None;
            nodes[i].down_since = Some(Instant::now());
        }
        return;
    }
    let (Some(after), Some(since)) = (args.restart_after_ms, nodes[i].down_since) else {
        return;
    };
    if since.elapsed() < Duration::from_millis(after) {
        return;
    }
    let parents: Vec<String> = nodes[i]
        .info
        .parents
        .iter()
        .filter_map(|p| nodes.iter().find(|n| &n.info.name == p))
        .map(|n| format!("{}@{}", n.info.name, n.info.quic))
        .collect();
    match spawn(binary, &nodes[i].info, &parents, &args.serve_args) {
        Ok((child, _, _)) => {
            nodes[i].info.pid = child.id();
            nodes[i].child = Some(child);
            nodes[i].down_since = None;
            eprintln!(
                "cluster up: {} restarted (pid {})",
                nodes[i].info.name, nodes[i].info.pid
            );
        }
        Err(e) => {
            eprintln!("cluster up: restarting {}: {e}", nodes[i].info.name);
            nodes[i].down_since = Some(Instant::now());
        }
    }
}

/// SIGTERM to every node, then SIGKILL to those still up after [`STOP_GRACE`].
fn stop_all(nodes: &mut [Running]) {
    for n in nodes.iter() {
        if let Some(c) = &n.child {
            // SAFETY: kill(2) on our own child's pid, which we have not reaped yet.
            unsafe {
                libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
            }
        }
    }
    let by = Instant::now() + STOP_GRACE;
    for n in nodes.iter_mut() {
        let Some(mut c) = n.child.take() else {
            continue;
        };
        loop {
            match c.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() >= by => {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(nodes: usize, relays: usize) -> Vec<(Role, String, Vec<usize>)> {
        layout(nodes, relays)
            .unwrap()
            .into_iter()
            .map(|p| (p.role, p.name, p.parents))
            .collect()
    }

    #[test]
    fn edges_take_relays_round_robin_with_the_next_as_backup() {
        assert_eq!(
            (1..=7).map(default_relays).collect::<Vec<_>>(),
            [0, 0, 1, 1, 2, 2, 2]
        );
        let s = shape(6, 2);
        assert_eq!(s[0], (Role::Origin, "origin".into(), vec![]));
        assert_eq!(s[1], (Role::Relay, "relay1".into(), vec![0]));
        assert_eq!(s[2], (Role::Relay, "relay2".into(), vec![0]));
        assert_eq!(s[3], (Role::Edge, "edge1".into(), vec![1, 2]));
        assert_eq!(s[4], (Role::Edge, "edge2".into(), vec![2, 1]));
        assert_eq!(s[5], (Role::Edge, "edge3".into(), vec![1, 2]));
        // One relay: no backup; none: the origin.
        assert_eq!(shape(4, 1)[3], (Role::Edge, "edge2".into(), vec![1]));
        assert_eq!(shape(2, 0)[1], (Role::Edge, "edge1".into(), vec![0]));
        assert_eq!(shape(1, 0).len(), 1);
        assert!(layout(0, 0).is_err());
        assert!(layout(3, 3).is_err());
    }

    #[test]
    fn serve_arguments_open_auth_unless_told_and_keep_addresses() {
        let info = NodeInfo {
            role: Role::Edge,
            name: "edge1".into(),
            http: "http://127.0.0.1:8080".into(),
            quic: "127.0.0.1:9000".into(),
            pid: 0,
            parents: vec!["relay1".into()],
            dir: PathBuf::from("/tmp/c/edge1"),
            netns: None,
        };
        let a = serve_args(&info, &["relay1@127.0.0.1:9001".into()], &[]);
        let s = a.join(" ");
        assert!(s.starts_with("serve --http 127.0.0.1:8080 --relay-listen 127.0.0.1:9000"));
        assert!(s.contains("--parent relay1@127.0.0.1:9001"));
        assert!(s.ends_with("--auth open"), "{s}");
        let a = serve_args(&info, &[], &["--auth".into(), "accounts".into()]);
        assert_eq!(a.iter().filter(|x| *x == "--auth").count(), 1);
        assert!(
            !a.contains(&"--bind-ip".to_owned()),
            "loopback: the default"
        );
        // In its own namespace, media binds the node's address too.
        let info = NodeInfo {
            http: "http://10.77.0.4:8080".into(),
            quic: "10.77.0.4:4433".into(),
            netns: Some("cascade-1-edge1".into()),
            ..info
        };
        let s = serve_args(&info, &[], &[]).join(" ");
        assert!(s.contains("--bind-ip 10.77.0.4 "), "{s}");
    }
}
