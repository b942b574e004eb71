//! Datagrams the kernel dropped on the node's media sockets because their receive buffers
//! were full: `cascade_udp_receive_drops_total`. A worker that falls behind loses packets
//! before any of our code sees them, so only the kernel can count them. Read at each
//! scrape from `/proc/net/udp` and `/proc/net/udp6` (the `drops` column of the lines whose
//! inode is one of our sockets); nothing is done on the media path.

use std::os::fd::AsRawFd;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounter, Opts};

/// The collector: the sockets' inodes, found once at start.
#[derive(Debug)]
pub(crate) struct SocketDrops {
    inodes: Vec<u64>,
    counter: IntCounter,
}

impl SocketDrops {
    /// Counts the drops of `sockets` (their inodes are read now; the sockets may move on).
    pub(crate) fn new<S: AsRawFd>(sockets: &[S]) -> SocketDrops {
        let inodes = sockets
            .iter()
            .filter_map(|s| socket_inode(s.as_raw_fd()))
            .collect();
        SocketDrops {
            inodes,
            counter: IntCounter::with_opts(Opts::new(
                "udp_receive_drops_total",
                "Datagrams the kernel dropped on the media sockets (receive buffer full)",
            ))
            // Invariant: a valid, constant name and help.
            .expect("a valid counter"),
        }
    }

    /// Drops counted by the kernel for our sockets now.
    pub(crate) fn read(&self) -> u64 {
        ["/proc/net/udp", "/proc/net/udp6"]
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .map(|table| drops_of(&table, &self.inodes))
            .sum()
    }
}

impl Collector for SocketDrops {
    fn desc(&self) -> Vec<&Desc> {
        self.counter.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        // The kernel's count is the truth; the counter only carries it out.
        let now = self.read();
        let seen = self.counter.get();
        if now > seen {
            self.counter.inc_by(now - seen);
        }
        self.counter.collect()
    }
}

/// The inode of the socket open as `fd` (`/proc/self/fd/N` links to `socket:[inode]`).
fn socket_inode(fd: i32) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).ok()?;
    let link = link.to_str()?;
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The `drops` (last column) summed over the lines of a `/proc/net/udp` table whose inode
/// (tenth column) is one of `inodes`.
fn drops_of(table: &str, inodes: &[u64]) -> u64 {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let inode: u64 = cols.get(9)?.parse().ok()?;
            inodes
                .contains(&inode)
                .then(|| cols.last()?.parse::<u64>().ok())?
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    #[test]
    fn reads_the_drops_column_of_our_inodes_only() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
          1: 0100007F:A1B2 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 17\n\
          2: 0100007F:A1B3 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 999 2 0000000000000000 5\n";
        assert_eq!(drops_of(table, &[4242]), 17);
        assert_eq!(drops_of(table, &[4242, 999]), 22);
        assert_eq!(drops_of(table, &[1]), 0);
        assert_eq!(drops_of("garbage\nnot a table at all\n", &[4242]), 0);
    }

    #[test]
    fn counts_what_a_full_receive_buffer_dropped() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket2::SockRef::from(&rx)
            .set_recv_buffer_size(4096)
            .unwrap();
        let collector = SocketDrops::new(std::slice::from_ref(&rx));
        assert_eq!(collector.read(), 0);
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = rx.local_addr().unwrap();
        for _ in 0..200 {
            tx.send_to(&[7u8; 1000], to).unwrap();
        }
        // Nothing read: most of them could not fit.
        let families = collector.collect();
        let counted = families[0].get_metric()[0].get_counter().get_value();
        assert!(counted >= 100.0, "counted {counted}");
        assert_eq!(counted as u64, collector.read());
    }
}
