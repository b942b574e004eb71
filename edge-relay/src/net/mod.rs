//! The I/O driver of the link: quinn connections running the sans-I/O cores, as quinn drives
//! quinn-proto.
//!
//! One [`RelayEndpoint`] per node both accepts links from its children and opens links to
//! its parents, over one UDP socket, with mutual TLS against the cluster CA ([`crate::tls`]).
//! A connection has a role fixed by who opened it: the node that connected is the child (it
//! opens one bidirectional stream per subscription and receives media), the node that
//! accepted is the parent (it answers subscriptions and sends media).
//!
//! # Tasks
//! - Per subscription, one task owns its [`ChildLink`](crate::ChildLink) or
//!   [`ParentLink`](crate::ParentLink): it feeds control bytes, datagrams, commands from the
//!   node and timeouts in, drains `poll_output` and sleeps until the link's `Timeout`.
//! - Per child connection, one task reads datagrams and dispatches them by [`SubId`](crate::SubId)
//!   (the subscription's QUIC stream index, which both sides know without saying it) to the
//!   subscription tasks; full channels drop and count.
//! - Per parent connection, one task sends what the connection's [`SendQueue`](crate::SendQueue)
//!   holds (audio before base before higher layers, oldest dropped first) as fast as quinn
//!   accepts datagrams; quinn's own datagram buffer is kept small so that the decisions about
//!   what to drop are ours.
//!
//! # Packets larger than a datagram
//! The transport starts at a UDP payload of [`NetConfig::initial_mtu`] (1300 bytes: a
//! 1200-byte RTP packet and its header fit from the first packet) and MTU discovery raises
//! it where the path allows. A packet that still does not fit `max_datagram_size()` is not
//! dropped: it is sent, header and all, on its own short unidirectional stream, which the
//! child reads to its end (at most [`MAX_OVERSIZED`] bytes) and dispatches as if it were a
//! datagram. It is reliable and may arrive after later packets; the child link takes it as a
//! late packet. At most [`MAX_OVERSIZED_IN_FLIGHT`] such streams are open per connection;
//! past that the packet is dropped and counted.
//!
//! # Ends
//! A parent gone (closed, or silent for [`NetConfig::idle_timeout`], 1 s by default, with
//! keep-alives every 250 ms) ends every subscription on it with
//! [`EndReason::ParentLost`]. A control frame that does not decode ends only its
//! subscription: the side that received it resets the stream with [`CODE_PROTOCOL`].
//! Dropping a [`Subscription`] finishes its stream; dropping a [`PublishHandle`] finishes it
//! from the parent's side.

use std::time::Duration;

use thiserror::Error;

use crate::link::LinkConfig;
use crate::tls::TlsError;

mod child;
mod conn;
mod endpoint;
mod parent;

pub use child::{ChildEvent, EndReason, Subscription};
pub use conn::{ConnStats, Connection};
pub use endpoint::RelayEndpoint;
pub use parent::{MediaOut, ParentEvent, PublishHandle, SubscribeRequest};

/// Stream error code: the subscription ended normally.
pub const CODE_DONE: u32 = 0;
/// Stream error code: the peer sent bytes that are not the protocol.
pub const CODE_PROTOCOL: u32 = 1;
/// Largest packet (header included) accepted on an oversized-packet stream.
pub const MAX_OVERSIZED: usize = 64 * 1024;
/// Oversized-packet streams open at once per connection.
pub const MAX_OVERSIZED_IN_FLIGHT: usize = 32;

/// Settings of a [`RelayEndpoint`].
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// The subscriptions' timings and bounds.
    pub link: LinkConfig,
    /// Rate of a parent connection's send queue, bits per second (its budget is 150 ms of it).
    pub rate_bps: u64,
    /// UDP payload size used from the start (at least 1200).
    pub initial_mtu: u16,
    /// Whether MTU discovery may raise it (up to 1452).
    pub mtu_discovery: bool,
    /// QUIC keep-alive interval.
    pub keep_alive: Duration,
    /// A connection silent this long is lost.
    pub idle_timeout: Duration,
    /// Subscriptions (bidirectional streams) a child may have open at once on a connection.
    pub max_subscriptions: u32,
    /// Capacity of each subscription's media channels: child events (packets), and the
    /// publish handle's batches ([`PublishHandle::send_batch`]).
    pub media_buffer: usize,
    /// Capacity of the channel of incoming [`SubscribeRequest`]s; when full, new requests are
    /// refused as `Full`.
    pub pending_requests: usize,
    /// Test hook: the parent drops one media datagram in this many (first sends, not
    /// repairs) before it reaches the send queue; 0 drops none.
    #[doc(hidden)]
    pub drop_one_in: u32,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            link: LinkConfig::default(),
            rate_bps: 50_000_000,
            initial_mtu: 1300,
            mtu_discovery: true,
            keep_alive: Duration::from_millis(250),
            idle_timeout: Duration::from_secs(1),
            max_subscriptions: 256,
            media_buffer: 1024,
            pending_requests: 64,
            drop_one_in: 0,
        }
    }
}

/// What went wrong on the link.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RelayError {
    /// Binding the UDP socket.
    #[error("bind: {0}")]
    Bind(#[source] std::io::Error),
    /// Building the TLS configuration.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The connection could not be started (bad name, endpoint closed).
    #[error("connect: {0}")]
    Connect(#[from] quinn::ConnectError),
    /// The connection failed or ended (handshake refused, timed out, closed).
    #[error("connection: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// Writing the subscription's first frame.
    #[error("stream: {0}")]
    Write(#[from] quinn::WriteError),
}
