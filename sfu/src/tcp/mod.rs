//! ICE over TCP (RFC 6544), passive side: each worker listens on a TCP port of its own and
//! its sessions announce it as a `tcptype passive` host candidate beside their UDP one, so
//! a viewer whose network blocks UDP can still connect. Packets travel framed as RFC 4571
//! says ([`framing`]).
//!
//! Parts: [`framing`] (sans-I/O), `conns` (the worker's table of connections: which
//! session, which address, which never named a session), `net` (the driver tasks that
//! accept, read and write). A connection belongs to the session its first STUN request
//! names (the ufrag, as for a UDP datagram from a new address), and str0m's `Transmit`s
//! with `Protocol::Tcp` leave on the connection of their destination address.
//!
//! Bounds: connections per worker, packets queued per connection (a full queue drops, as
//! UDP would; a peer that takes nothing for a while is closed), a deadline to name a
//! session, an idle deadline, and a largest frame; broken framing or a packet that is not
//! WebRTC closes that connection and nothing else.

pub mod framing;

mod conns;
mod net;

use std::net::SocketAddr;
use std::time::Duration;

pub(crate) use conns::Conns;
pub(crate) use net::{accept, ConnId, Limits, Queued, TcpIn};

use crate::session::Transmitter;
use crate::udp::SendBatch;

/// How long a new connection may take to send a STUN request naming its session.
pub(crate) const BIND_TIMEOUT: Duration = Duration::from_secs(5);

/// The bounds the node runs with (connections per worker come from the config).
pub(crate) fn limits(max_connections: usize) -> Limits {
    Limits {
        max_connections,
        // About a second of a 3 Mbit/s viewer's packets.
        write_queue: 512,
        idle: Duration::from_secs(30),
        write_stall: Duration::from_secs(5),
    }
}

/// What a worker's turn sends: UDP datagrams batched for `sendmmsg`, and framed packets
/// for ICE-TCP connections by remote address.
#[derive(Debug, Default)]
pub struct Outgoing {
    /// The UDP datagrams.
    pub udp: SendBatch,
    /// The TCP packets, already framed.
    pub tcp: Vec<(SocketAddr, Vec<u8>)>,
}

impl Transmitter for Outgoing {
    fn send(&mut self, to: SocketAddr, data: &[u8]) {
        self.udp.send(to, data);
    }

    fn send_tcp(&mut self, to: SocketAddr, data: &[u8]) {
        if let Some(framed) = framing::frame(data) {
            self.tcp.push((to, framed));
        }
    }
}
