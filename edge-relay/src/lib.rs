//! The link between two Cascade nodes: a child subscribes to a stream on its parent.
//!
//! The crate is split as quinn-proto is from quinn. The protocol core ([`wire`], [`queue`],
//! [`link`]) has no sockets, no tokio and no clock: time is an argument (`now: Instant`), and
//! it depends on nothing but `bytes`, `thiserror` and `tracing`. The driver ([`net`], over
//! quinn, with certificates from [`tls`]) owns the sockets, tasks and timers: one QUIC
//! connection per node pair feeds bytes into the core and sends what comes out.
//!
//! # Run loop
//!
//! ```text
//! loop {
//!     link.handle_*(now, ...);            // control bytes, datagrams, local wants, timeouts
//!     while let Some(out) = link.poll_output() {
//!         match out {
//!             Output::Transmit(t) => /* control bytes on the subscription's stream,
//!                                       or a datagram into the connection's SendQueue */,
//!             Output::Event(e) => /* to the node's router */,
//!             Output::Timeout(t) => { /* wake at t */ break }
//!         }
//!     }
//! }
//! ```
//!
//! As with str0m: after every `handle_*`, drain `poll_output` until it returns a `Timeout`.
//!
//! # Parts
//! - [`wire`]: control messages (length-prefixed, versioned, bounded) and the media datagram
//!   header. Decoding remote bytes returns a [`WireError`], never panics.
//! - [`queue`]: the connection's datagram send queue: about 150 ms of the link's rate, drop
//!   oldest first, audio before the base layer before higher layers.
//! - [`link`]: one subscription's state machine, [`ChildLink`] on the child and [`ParentLink`]
//!   on the parent.
//! - [`tls`] (driver): the cluster CA, node certificates, [`tls::NodeIdentity`] and the
//!   mutual-TLS configurations; a peer whose certificate the CA did not sign is refused at
//!   the handshake.
//! - [`net`] (driver): [`net::RelayEndpoint`] (one UDP socket: children in, parents out),
//!   [`net::Connection`] and [`net::Subscription`] on the child, [`net::SubscribeRequest`]
//!   and [`net::PublishHandle`] on the parent; a task per subscription runs its link.
//!   Nothing in the core modules may use them.
#![warn(missing_docs, unreachable_pub)]

pub mod link;
pub mod net;
pub mod queue;
pub mod tls;
pub mod wire;

pub use link::{ChildLink, Event, LinkConfig, Output, ParentLink, Transmit};
pub use queue::{Class, SendQueue};
pub use wire::{Layer, LayerSet, Message, NodeId, SubId, WireError};
