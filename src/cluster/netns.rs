//! `cascade cluster up --netns`: each node in its own network namespace, on its own address,
//! as if on its own machine.
//!
//! One run makes, in the caller's namespace, a bridge `csc<pid>b` holding the subnet's first
//! address, and per node a named namespace `cascade-<pid>-<node>` (`ip netns`) whose `eth0`
//! is one end of a veth pair (the other end, `csc<pid>v<i>`, is on the bridge), with the
//! node's address, `lo` up and a default route via the bridge. The caller's namespace
//! reaches every node through the bridge and the nodes reach one another; nothing goes
//! beyond the subnet (no forwarding or NAT is set up).
//!
//! Everything is made and removed with iproute2's `ip`; a command that fails is reported
//! with its arguments and what it printed. The names carry the pid of the `cluster up` that
//! made them: each run first removes what dead runs left (one killed by SIGKILL has no
//! chance to), and a file lock keeps two runs starting at once from taking the same subnet.
//! Interface names stay within the kernel's 15 bytes (a pid has at most 7 digits).
//!
//! Where `br_netfilter` is loaded with `bridge-nf-call-iptables` set, traffic between nodes
//! crosses the host's iptables FORWARD chain: a DROP policy there (Docker sets one) cuts
//! the nodes off from one another, though the caller still reaches each of them.

use std::fmt;
use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::str::FromStr;

/// Where `ip netns` keeps its named namespaces.
const NETNS_DIR: &str = "/run/netns";
/// Prefix of every namespace a run makes: `cascade-<pid>-<node>`.
const NETNS_PREFIX: &str = "cascade-";
/// Prefix of every link a run makes: `csc<pid>b` (bridge), `csc<pid>v<i>` (veth).
const LINK_PREFIX: &str = "csc";
/// CAP_NET_ADMIN (links, addresses) and CAP_SYS_ADMIN (`ip netns add`'s mount, `setns`).
const CAPS_NEEDED: u64 = (1 << 12) | (1 << 21);

/// What went wrong making or removing a run's network.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetnsError {
    /// The process may not make namespaces and links.
    #[error(
        "--netns needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) to make network namespaces \
         and links: run it as root, or without --netns"
    )]
    NotPrivileged,
    /// `ip` could not be run.
    #[error("running `{command}`: {source} (is iproute2 installed?)")]
    Spawn {
        /// The command line.
        command: String,
        /// Why it did not start.
        source: io::Error,
    },
    /// `ip` ran and failed.
    #[error("`{command}` failed: {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// A file could not be read or opened.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: io::Error,
    },
    /// `--netns-subnet` is not an IPv4 network.
    #[error("{why} (expected a network such as 10.77.0.0/24)")]
    BadSubnet {
        /// What is wrong with it.
        why: &'static str,
    },
    /// The subnet holds too few addresses.
    #[error("{subnet} is too small for the bridge and {nodes} nodes")]
    TooSmall {
        /// The subnet.
        subnet: Subnet,
        /// Nodes asked for.
        nodes: usize,
    },
    /// The subnet is already routed here.
    #[error("{subnet} overlaps {existing}, already in use here: choose another --netns-subnet")]
    InUse {
        /// The subnet asked for.
        subnet: Subnet,
        /// The route or address it meets.
        existing: Subnet,
    },
    /// Every 10.X.0.0/24 is taken.
    #[error("no free 10.X.0.0/24 here (each overlaps a route or an address): pass --netns-subnet")]
    NoFreeSubnet,
    /// Some of the network could not be removed.
    #[error("removing the cluster's network: {0}")]
    Teardown(String),
}

/// An IPv4 network, `A.B.C.D/N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    net: Ipv4Addr,
    prefix: u8,
}

impl Subnet {
    fn mask(prefix: u8) -> u32 {
        u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
    }

    /// The network holding `addr/prefix` (host bits cleared).
    fn containing(addr: Ipv4Addr, prefix: u8) -> Subnet {
        Subnet {
            net: Ipv4Addr::from(u32::from(addr) & Subnet::mask(prefix)),
            prefix,
        }
    }

    /// Whether the two share an address.
    fn overlaps(&self, other: &Subnet) -> bool {
        let m = Subnet::mask(self.prefix.min(other.prefix));
        u32::from(self.net) & m == u32::from(other.net) & m
    }

    /// Its `i`-th host address (from 1), if it has one.
    fn host(&self, i: u32) -> Option<Ipv4Addr> {
        let size = 1u64 << (32 - u32::from(self.prefix));
        (i >= 1 && u64::from(i) < size - 1).then(|| Ipv4Addr::from(u32::from(self.net) + i))
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

impl FromStr for Subnet {
    type Err = NetnsError;

    fn from_str(s: &str) -> Result<Subnet, NetnsError> {
        let bad = |why| NetnsError::BadSubnet { why };
        let (addr, prefix) = s.split_once('/').ok_or_else(|| bad("no /prefix"))?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad("not an IPv4 address"))?;
        let prefix: u8 = prefix.parse().map_err(|_| bad("not a prefix length"))?;
        if !(8..=30).contains(&prefix) {
            return Err(bad("the prefix must be from /8 to /30"));
        }
        let subnet = Subnet::containing(addr, prefix);
        if subnet.net != addr {
            return Err(bad("host bits are set"));
        }
        Ok(subnet)
    }
}

/// One node's namespace and address.
#[derive(Debug)]
pub struct Attached {
    /// The namespace's name (`ip netns`), `cascade-<pid>-<node>`.
    pub netns: String,
    /// The node's address, on its `eth0`.
    pub addr: Ipv4Addr,
    /// The veth end on the bridge, once made.
    veth: Option<String>,
}

/// A run's bridge and namespaces; removed by [`Network::teardown`] (or when dropped).
#[derive(Debug)]
pub struct Network {
    /// The subnet the bridge and the nodes share.
    pub subnet: Subnet,
    /// The bridge's address: the caller's side.
    pub host: Ipv4Addr,
    /// One per node, in the order asked for.
    pub nodes: Vec<Attached>,
    /// The bridge's name.
    pub bridge: String,
    /// Whether the bridge was made (and is to be removed).
    bridge_made: bool,
}

impl Network {
    /// Makes a namespace per name (one node each) joined by a bridge on `subnet` (or a free
    /// 10.X.0.0/24), after removing what dead runs left; returns what it removed too.
    /// What is made before a failure is removed again.
    pub fn create(
        names: &[&str],
        subnet: Option<Subnet>,
    ) -> Result<(Network, Vec<String>), NetnsError> {
        check_privileges()?;
        let _lock = Lock::take()?;
        let removed = remove_stale()?;
        let owner = std::process::id();
        let in_use = in_use()?;
        let subnet = match subnet {
            Some(s) => {
                // A broader route (a VPN's 10.0.0.0/8) is only shadowed; an equal or
                // narrower one (another run's bridge) would collide.
                if let Some(e) = in_use
                    .iter()
                    .find(|e| e.prefix >= s.prefix && s.overlaps(e))
                {
                    return Err(NetnsError::InUse {
                        subnet: s,
                        existing: *e,
                    });
                }
                s
            }
            None => free_subnet(owner, &in_use)?,
        };
        let host = subnet.host(1).ok_or(NetnsError::TooSmall {
            subnet,
            nodes: names.len(),
        })?;
        let bridge = format!("{LINK_PREFIX}{owner}b");
        let mut net = Network {
            subnet,
            host,
            nodes: Vec::with_capacity(names.len()),
            bridge: bridge.clone(),
            bridge_made: false,
        };
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        net.bridge_made = true;
        ip(&["addr", "add", &cidr(host, subnet), "dev", &bridge])?;
        ip(&["link", "set", &bridge, "up"])?;
        for (i, name) in names.iter().enumerate() {
            let addr = u32::try_from(i + 2)
                .ok()
                .and_then(|n| subnet.host(n))
                .ok_or(NetnsError::TooSmall {
                    subnet,
                    nodes: names.len(),
                })?;
            let netns = format!("{NETNS_PREFIX}{owner}-{name}");
            ip(&["netns", "add", &netns])?;
            net.nodes.push(Attached {
                netns: netns.clone(),
                addr,
                veth: None,
            });
            let veth = format!("{LINK_PREFIX}{owner}v{i}");
            let peer = ["peer", "name", "eth0", "netns", &netns];
            ip(&[&["link", "add", &veth, "type", "veth"][..], &peer].concat())?;
            net.nodes[i].veth = Some(veth.clone());
            ip(&["link", "set", &veth, "master", &bridge, "up"])?;
            let n = ["-n", netns.as_str()];
            ip(&[&n[..], &["addr", "add", &cidr(addr, subnet), "dev", "eth0"]].concat())?;
            ip(&[&n[..], &["link", "set", "lo", "up"]].concat())?;
            ip(&[&n[..], &["link", "set", "eth0", "up"]].concat())?;
            let via = host.to_string();
            ip(&[&n[..], &["route", "add", "default", "via", &via]].concat())?;
        }
        Ok((net, removed))
    }

    /// Removes the veths, the namespaces and the bridge (the nodes must have stopped: a
    /// namespace lives on while a process is in it). Goes on past failures; reports them.
    pub fn teardown(&mut self) -> Result<(), NetnsError> {
        let mut failed = Vec::new();
        for node in self.nodes.drain(..).rev() {
            if let Some(veth) = &node.veth {
                // Deleting one end deletes both, at once (a namespace's links go later).
                if let Err(e) = ip(&["link", "delete", veth]) {
                    failed.push(e.to_string());
                }
            }
            if let Err(e) = ip(&["netns", "delete", &node.netns]) {
                failed.push(e.to_string());
            }
        }
        if std::mem::take(&mut self.bridge_made) {
            if let Err(e) = ip(&["link", "delete", &self.bridge]) {
                failed.push(e.to_string());
            }
        }
        match failed.is_empty() {
            true => Ok(()),
            false => Err(NetnsError::Teardown(failed.join("; "))),
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            eprintln!("cluster up: {e}");
        }
    }
}

/// Makes `cmd`'s process start inside the named namespace. The file returned must stay open
/// until `cmd` is spawned.
pub fn run_inside(cmd: &mut Command, netns: &str) -> Result<File, NetnsError> {
    let path = Path::new(NETNS_DIR).join(netns);
    let file = File::open(&path).map_err(|source| NetnsError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let fd = file.as_raw_fd();
    // SAFETY: setns(2) is async-signal-safe and touches no memory; `fd` stays open in the
    // parent until the spawn returns (the caller holds the file), so the child's copy is
    // valid, and it is close-on-exec, so the node does not keep it.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(file)
}

fn cidr(addr: Ipv4Addr, subnet: Subnet) -> String {
    format!("{addr}/{}", subnet.prefix)
}

/// Runs `ip ARGS`; its stdout, or an error naming the command and what it printed.
fn ip(args: &[&str]) -> Result<String, NetnsError> {
    let command = format!("ip {}", args.join(" "));
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| NetnsError::Spawn {
            command: command.clone(),
            source,
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        let stderr = match stderr.is_empty() {
            true => out.status.to_string(),
            false => stderr,
        };
        return Err(NetnsError::Command { command, stderr });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn check_privileges() -> Result<(), NetnsError> {
    let path = "/proc/self/status";
    let status = std::fs::read_to_string(path).map_err(|source| NetnsError::Io {
        path: path.into(),
        source,
    })?;
    let caps = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    match caps & CAPS_NEEDED == CAPS_NEEDED {
        true => Ok(()),
        false => Err(NetnsError::NotPrivileged),
    }
}

/// An exclusive lock on a file in /run, held while a run looks for a subnet and takes it.
struct Lock(#[allow(dead_code)] File);

impl Lock {
    fn take() -> Result<Lock, NetnsError> {
        let path = match Path::new("/run").is_dir() {
            true => Path::new("/run").join("cascade-netns.lock"),
            false => std::env::temp_dir().join("cascade-netns.lock"),
        };
        let io_err = |source| NetnsError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err)?;
        // SAFETY: flock(2) on a descriptor we own; released when the file is closed.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(io_err(io::Error::last_os_error()));
        }
        Ok(Lock(file))
    }
}

/// The IPv4 networks addressed or routed here (but the default route).
fn in_use() -> Result<Vec<Subnet>, NetnsError> {
    let mut nets = Vec::new();
    for line in ip(&["-4", "-o", "addr", "show"])?.lines() {
        let mut words = line.split_whitespace();
        if let Some(s) = words.find(|w| *w == "inet").and_then(|_| words.next()) {
            nets.extend(parse_net(s));
        }
    }
    for line in ip(&["-4", "route", "show", "table", "all"])?.lines() {
        let mut words = line.split_whitespace().peekable();
        const TYPES: [&str; 10] = [
            "unicast",
            "local",
            "broadcast",
            "multicast",
            "anycast",
            "unreachable",
            "prohibit",
            "blackhole",
            "throw",
            "nat",
        ];
        if words.peek().is_some_and(|w| TYPES.contains(w)) {
            words.next();
        }
        nets.extend(words.next().and_then(parse_net));
    }
    Ok(nets)
}

/// `A.B.C.D/N` or `A.B.C.D` (a /32) as its network; `None` for `default` and the like.
fn parse_net(s: &str) -> Option<Subnet> {
    let (addr, prefix) = s.split_once('/').unwrap_or((s, "32"));
    let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32)?;
    Some(Subnet::containing(addr.parse().ok()?, prefix))
}

/// A 10.X.0.0/24 that overlaps nothing in use, trying X from one the pid picks.
fn free_subnet(owner: u32, in_use: &[Subnet]) -> Result<Subnet, NetnsError> {
    (0..254)
        .map(|k| 1 + (owner + k) % 254)
        .map(|x| Subnet {
            net: Ipv4Addr::new(10, x as u8, 0, 0),
            prefix: 24,
        })
        .find(|s| !in_use.iter().any(|e| e.prefix > 0 && s.overlaps(e)))
        .ok_or(NetnsError::NoFreeSubnet)
}

/// The pid in a name this module makes: `cascade-<pid>-<node>` (a namespace) or
/// `csc<pid>b`, `csc<pid>v<i>` (links).
fn owner(name: &str) -> Option<u32> {
    let digits = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if let Some(rest) = name.strip_prefix(NETNS_PREFIX) {
        let n = digits(rest);
        return rest[n..].starts_with('-').then(|| rest[..n].parse().ok())?;
    }
    let rest = name.strip_prefix(LINK_PREFIX)?;
    let n = digits(rest);
    let tail = &rest[n..];
    let ours = tail == "b"
        || tail
            .strip_prefix('v')
            .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()));
    ours.then(|| rest[..n].parse().ok())?
}

/// Whether a process runs (a zombie has ended).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, r)| r.trim_start().to_owned()))
        .is_some_and(|r| !r.starts_with('Z') && !r.starts_with('X'))
}

/// Removes the veths, namespaces and bridges of runs whose process has ended; returns their
/// names.
fn remove_stale() -> Result<Vec<String>, NetnsError> {
    let dead = |name: &str| owner(name).is_some_and(|p| p != std::process::id() && !alive(p));
    let links: Vec<String> = ip(&["-o", "link", "show"])?
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_owned())
        .filter(|n| dead(n))
        .collect();
    let namespaces: Vec<String> = ip(&["netns", "list"])?
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| dead(n))
        .map(str::to_owned)
        .collect();
    let (bridges, veths): (Vec<String>, Vec<String>) =
        links.into_iter().partition(|n| n.ends_with('b'));
    let mut removed = Vec::new();
    for veth in veths {
        ip(&["link", "delete", &veth])?;
        removed.push(veth);
    }
    for ns in namespaces {
        ip(&["netns", "delete", &ns])?;
        removed.push(ns);
    }
    for bridge in bridges {
        ip(&["link", "delete", &bridge])?;
        removed.push(bridge);
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_parse_strictly_and_number_their_hosts() {
        let s: Subnet = "10.77.0.0/24".parse().unwrap();
        assert_eq!(s.to_string(), "10.77.0.0/24");
        assert_eq!(s.host(1), Some(Ipv4Addr::new(10, 77, 0, 1)));
        assert_eq!(s.host(254), Some(Ipv4Addr::new(10, 77, 0, 254)));
        assert_eq!(s.host(255), None, "the broadcast address");
        assert_eq!(s.host(0), None, "the network address");
        for bad in [
            "10.77.0.1/24",
            "10.77.0.0",
            "10.77.0.0/31",
            "10.77.0.0/4",
            "x/24",
        ] {
            assert!(bad.parse::<Subnet>().is_err(), "{bad}");
        }
        let wide: Subnet = "10.0.0.0/8".parse().unwrap();
        assert!(wide.overlaps(&s) && s.overlaps(&wide));
        assert!(!s.overlaps(&"10.78.0.0/24".parse().unwrap()));
    }

    #[test]
    fn a_free_subnet_avoids_what_is_routed_but_the_default() {
        let taken = [
            parse_net("10.5.0.0/24").unwrap(),
            parse_net("10.6.0.7").unwrap(),
            parse_net("0.0.0.0/0").unwrap(),
        ];
        let s = free_subnet(4 + 254, &taken).unwrap();
        assert_eq!(s.to_string(), "10.7.0.0/24");
        assert!(parse_net("default").is_none());
        assert!(matches!(
            free_subnet(1, &[parse_net("10.0.0.0/8").unwrap()]),
            Err(NetnsError::NoFreeSubnet)
        ));
    }

    #[test]
    fn names_carry_their_owner_and_fit_an_interface_name() {
        assert_eq!(owner("cascade-4194304-edge12"), Some(4_194_304));
        assert_eq!(owner("csc123b"), Some(123));
        assert_eq!(owner("csc123v7"), Some(123));
        for not_ours in [
            "cascade-x-a",
            "cascade-12",
            "csc123",
            "csc123v",
            "cscb",
            "eth0",
        ] {
            assert_eq!(owner(not_ours), None, "{not_ours}");
        }
        // IFNAMSIZ is 16 with the NUL: the longest pid and node index fit.
        assert!(format!("{LINK_PREFIX}4194304v252").len() <= 15);
    }
}
