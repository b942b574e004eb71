//! The worker's side of ICE-TCP: what the driver's events do to sessions, and the
//! sessions' TCP packets out to their connections. See [`crate::tcp`].

use std::net::SocketAddr;
use std::time::Instant;

use str0m::net::{Protocol, Receive};
use str0m::Input;
use tokio::sync::mpsc;

use super::Worker;
use crate::ids::SessionId;
use crate::tcp::{ConnId, Conns, Queued, TcpIn, BIND_TIMEOUT};

/// A worker's ICE-TCP connections and the driver's events about them.
pub(crate) struct TcpSide {
    /// The announced address (the sessions' passive candidate).
    pub(crate) local: SocketAddr,
    rx: mpsc::Receiver<TcpIn>,
    pub(crate) conns: Conns,
    /// The connection count last added to the node-wide gauge.
    reported: usize,
}

impl TcpSide {
    pub(crate) fn new(local: SocketAddr, rx: mpsc::Receiver<TcpIn>) -> Self {
        TcpSide {
            local,
            rx,
            conns: Conns::default(),
            reported: 0,
        }
    }
}

/// The driver's next event; never, for a worker without TCP.
pub(super) async fn recv(tcp: &mut Option<TcpSide>) -> TcpIn {
    if let Some(t) = tcp.as_mut() {
        if let Some(ev) = t.rx.recv().await {
            return ev;
        }
    }
    std::future::pending().await
}

impl Worker {
    pub(super) fn on_tcp(&mut self, ev: TcpIn) {
        let Some(tcp) = self.tcp.as_mut() else {
            return;
        };
        match ev {
            TcpIn::Opened { conn, from, out } => tcp.conns.open(conn, from, out, Instant::now()),
            TcpIn::Frame { conn, data } => self.on_tcp_frame(conn, &data),
            TcpIn::Closed { conn, reason } => self.close_tcp(conn, reason),
        }
        self.report_tcp();
    }

    /// A packet read from a connection: for the session it is bound to, or, first, a
    /// STUN request naming one. Anything else closes the connection.
    fn on_tcp_frame(&mut self, conn: ConnId, data: &[u8]) {
        let Some(tcp) = self.tcp.as_ref() else {
            return;
        };
        let Some((from, bound)) = tcp.conns.get(conn) else {
            return; // closed by this worker already
        };
        let Ok(recv) = Receive::new(Protocol::Tcp, from, tcp.local, data) else {
            return self.close_tcp(conn, "garbage");
        };
        let input = Input::Receive(Instant::now(), recv);
        let id = match bound {
            Some(id) => id,
            None => match self.session_for_stun(data, &input) {
                Some(id) => {
                    if let Some(t) = self.tcp.as_mut() {
                        t.conns.bind(conn, id);
                    }
                    id
                }
                None => return self.close_tcp(conn, "unknown_session"),
            },
        };
        match self.sessions.get_mut(&id) {
            Some(s) => s.handle_input(input, &mut self.batch, &mut self.effects),
            None => self.close_tcp(conn, "session_gone"),
        }
    }

    fn close_tcp(&mut self, conn: ConnId, reason: &'static str) {
        if let Some(t) = self.tcp.as_mut() {
            if t.conns.get(conn).is_some() {
                t.conns.close(conn);
                self.shared
                    .metrics
                    .tcp_closed
                    .with_label_values(&[reason])
                    .inc();
            }
        }
    }

    /// Closes the connections of an ended session.
    pub(super) fn close_tcp_of(&mut self, id: SessionId) {
        if let Some(t) = self.tcp.as_mut() {
            t.conns.close_session(id);
        }
        self.report_tcp();
    }

    /// Closes connections that named no session in time.
    pub(super) fn expire_tcp(&mut self, now: Instant) {
        if let Some(t) = self.tcp.as_mut() {
            let n = t.conns.expire(now, BIND_TIMEOUT);
            if n > 0 {
                self.shared
                    .metrics
                    .tcp_closed
                    .with_label_values(&["bind_timeout"])
                    .inc_by(n as u64);
            }
        }
        self.report_tcp();
    }

    /// Queues this turn's TCP packets on their connections.
    pub(super) fn flush_tcp(&mut self) {
        if self.batch.tcp.is_empty() {
            return;
        }
        let Some(t) = self.tcp.as_mut() else {
            self.batch.tcp.clear();
            return;
        };
        let (mut ok, mut full, mut gone) = (0u64, 0u64, 0u64);
        for (to, framed) in self.batch.tcp.drain(..) {
            match t.conns.send(to, framed) {
                Queued::Yes => ok += 1,
                Queued::Full => full += 1,
                Queued::Gone => gone += 1,
            }
        }
        let m = &self.shared.metrics;
        if ok > 0 {
            m.tcp_frames_out.with_label_values(&["ok"]).inc_by(ok);
        }
        if full > 0 {
            m.tcp_frames_out
                .with_label_values(&["queue_full"])
                .inc_by(full);
        }
        if gone > 0 {
            m.tcp_frames_out
                .with_label_values(&["no_connection"])
                .inc_by(gone);
        }
        self.report_tcp();
    }

    /// Brings the node-wide connection gauge up to date with this worker's count.
    fn report_tcp(&mut self) {
        if let Some(t) = self.tcp.as_mut() {
            let now = t.conns.len();
            if now != t.reported {
                let delta = now as i64 - t.reported as i64;
                self.shared.metrics.tcp_connections.add(delta);
                t.reported = now;
            }
        }
    }
}
