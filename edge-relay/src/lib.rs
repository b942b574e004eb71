//! The link between two Cascade nodes: a child subscribes to a stream on its parent.
//!
//! This crate is the sans-I/O protocol core, split as quinn-proto is from quinn: no sockets,
//! no tokio, no clock. Time is an argument (`now: Instant`); the driver (a quinn connection
//! per node pair, not written yet) feeds bytes in and sends what comes out.
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
#![warn(missing_docs, unreachable_pub)]

pub mod link;
pub mod net;
pub mod queue;
pub mod tls;
pub mod wire;

pub use link::{ChildLink, Event, LinkConfig, Output, ParentLink, Transmit};
pub use queue::{Class, SendQueue};
pub use wire::{Layer, LayerSet, Message, NodeId, SubId, WireError};
