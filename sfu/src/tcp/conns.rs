//! A worker's ICE-TCP connections: which session each belongs to (once its first STUN
//! request named one), which one a session's packets to an address leave on, and those
//! that never named a session in time. No I/O: time is passed in, and a connection is
//! closed by dropping its [`Writer`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::net::{ConnId, Queued, Writer};
use crate::ids::SessionId;

struct Conn {
    from: SocketAddr,
    out: Writer,
    session: Option<SessionId>,
    opened: Instant,
}

/// The connections of one worker.
#[derive(Default)]
pub(crate) struct Conns {
    conns: HashMap<ConnId, Conn>,
    /// A connection's remote address is its own (one TCP connection per address pair).
    by_addr: HashMap<SocketAddr, ConnId>,
}

impl Conns {
    /// Connections open.
    pub(crate) fn len(&self) -> usize {
        self.conns.len()
    }

    /// A new connection, not yet bound to a session.
    pub(crate) fn open(&mut self, conn: ConnId, from: SocketAddr, out: Writer, now: Instant) {
        if let Some(old) = self.by_addr.insert(from, conn) {
            // The address was reused: its old connection is over.
            self.conns.remove(&old);
        }
        self.conns.insert(
            conn,
            Conn {
                from,
                out,
                session: None,
                opened: now,
            },
        );
    }

    /// The connection's remote address and session, if it is open.
    pub(crate) fn get(&self, conn: ConnId) -> Option<(SocketAddr, Option<SessionId>)> {
        self.conns.get(&conn).map(|c| (c.from, c.session))
    }

    /// Binds the connection to `session`: what it reads goes there.
    pub(crate) fn bind(&mut self, conn: ConnId, session: SessionId) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.session = Some(session);
        }
    }

    /// Queues a framed packet for the connection from `to`. A connection whose writer
    /// stopped is removed.
    pub(crate) fn send(&mut self, to: SocketAddr, framed: Vec<u8>) -> Queued {
        let Some(conn) = self.by_addr.get(&to).copied() else {
            return Queued::Gone;
        };
        let q = self
            .conns
            .get(&conn)
            .map_or(Queued::Gone, |c| c.out.send(framed));
        if q == Queued::Gone {
            self.close(conn);
        }
        q
    }

    /// Forgets (and so closes) a connection.
    pub(crate) fn close(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.remove(&conn) {
            if self.by_addr.get(&c.from) == Some(&conn) {
                self.by_addr.remove(&c.from);
            }
        }
    }

    /// Closes every connection of a session that ended.
    pub(crate) fn close_session(&mut self, session: SessionId) {
        let ids: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.session == Some(session))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.close(id);
        }
    }

    /// Closes connections that named no session within `bind_timeout`; returns how many.
    pub(crate) fn expire(&mut self, now: Instant, bind_timeout: Duration) -> usize {
        let late: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                c.session.is_none() && now.saturating_duration_since(c.opened) > bind_timeout
            })
            .map(|(id, _)| *id)
            .collect();
        for id in &late {
            self.close(*id);
        }
        late.len()
    }

    /// Gives back what the maps grew to.
    pub(crate) fn shrink_to_fit(&mut self) {
        self.conns.shrink_to_fit();
        self.by_addr.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    fn writer(queue: usize) -> (Writer, mpsc::Receiver<Vec<u8>>) {
        super::super::net::test_writer(queue)
    }

    #[test]
    fn packets_leave_on_the_connection_of_their_address_and_a_full_queue_drops() {
        let t0 = Instant::now();
        let mut c = Conns::default();
        let (a, b) = (
            SocketAddr::from(([10, 0, 0, 1], 1000)),
            SocketAddr::from(([10, 0, 0, 1], 1001)),
        );
        let (wa, mut ra) = writer(2);
        let (wb, rb) = writer(2);
        c.open(ConnId(1), a, wa, t0);
        c.open(ConnId(2), b, wb, t0);
        c.bind(ConnId(1), SessionId(7));
        assert_eq!(c.send(a, vec![1]), Queued::Yes);
        assert_eq!(c.send(a, vec![2]), Queued::Yes);
        assert_eq!(c.send(a, vec![3]), Queued::Full, "bounded");
        assert_eq!(ra.try_recv().unwrap(), vec![1]);
        drop(rb); // b's writer stopped
        assert_eq!(c.send(b, vec![9]), Queued::Gone);
        assert_eq!(
            c.get(ConnId(2)),
            None,
            "a stopped writer's connection is forgotten"
        );
        assert_eq!(c.get(ConnId(1)), Some((a, Some(SessionId(7)))));
        c.close_session(SessionId(7));
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn connections_that_name_no_session_in_time_are_closed() {
        let t0 = Instant::now();
        let mut c = Conns::default();
        let (w1, _r1) = writer(1);
        let (w2, _r2) = writer(1);
        c.open(ConnId(1), SocketAddr::from(([10, 0, 0, 1], 1)), w1, t0);
        c.open(ConnId(2), SocketAddr::from(([10, 0, 0, 1], 2)), w2, t0);
        c.bind(ConnId(2), SessionId(1));
        assert_eq!(
            c.expire(t0 + Duration::from_secs(1), Duration::from_secs(5)),
            0
        );
        assert_eq!(
            c.expire(t0 + Duration::from_secs(6), Duration::from_secs(5)),
            1
        );
        assert_eq!(c.len(), 1, "the bound one stays");
    }
}
