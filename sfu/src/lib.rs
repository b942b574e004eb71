//! Cascade's media engine.
//!
//! # Shape
//!
//! A [`Node`] runs one worker thread per core. Each worker owns a UDP socket (its own
//! port), optionally an ICE-TCP listener ([`tcp`]: passive candidates for clients that
//! cannot use UDP), and every [`session::Session`] placed on it: one str0m `Rtc` in RTP
//! mode with ICE-lite, publisher (WHIP) or viewer (WHEP). The hot path takes no lock.
//!
//! # Run loop (per worker)
//!
//! 1. Wait for a command, a datagram, or the earliest session timeout.
//! 2. Feed it to the one session it concerns and drain that session's `poll_output`
//!    until `Timeout` (str0m's single-mutation invariant: every mutation, including each
//!    `write_rtp`, is followed by a full drain).
//! 3. Act on the [`session::Effect`]s: a publisher's packet is parsed once into a
//!    [`forward::MediaPacket`] and given to the worker's [`router::Router`], which fans it
//!    out to its local sinks and names the other workers that have sinks of the stream;
//!    the worker applies its [`router::Outputs`] (writes, keyframe requests, interest)
//!    and queues the packet (as `Arc`) for those workers.
//! 4. Flush the per-worker media batches.
//!
//! # Invariants
//!
//! - [`forward`] and [`router`] do no I/O and read no clock: time is passed in.
//! - Deciding the layer ([`forward::layers`]), selecting packets ([`forward::selector`])
//!   and rewriting them ([`forward::rewrite`], [`forward::vp8`]) are separate parts.
//! - Each viewer sees one continuous stream per kind: sequence numbers, timestamps and
//!   VP8 picture ids never jump or repeat across layer switches or publisher restarts.
//! - A viewer switches layer only at a keyframe of the new layer.
//! - Every queue and cache is bounded; no remote input panics.
//! - This crate knows nothing of HTTP, QUIC or databases: a relay link's driver moves
//!   [`relay::RelayPacket`]s through the handles of [`relay`]. Nor of chat: a session's
//!   `chat` data channel is text in and out ([`chat`]).

#![warn(missing_docs, unreachable_pub)]

pub mod budget;
pub mod chat;
pub mod codec;
pub mod config;
pub mod directory;
pub mod dtls;
pub mod egress;
pub mod error;
pub mod forward;
mod heap;
pub mod ids;
pub mod level;
pub mod metrics;
pub mod node;
pub mod process;
pub mod record;
pub mod red;
pub mod relay;
pub mod router;
pub mod session;
mod socket_drops;
pub mod stun;
pub mod tcp;
pub mod trickle;
pub mod udp;
mod worker;

pub use chat::{ChatChannel, ChatHook, ChatPump};
pub use config::NodeConfig;
pub use directory::{Client, Role, StreamStatus, ViewerStatus};
pub use error::SfuError;
pub use forward::LayerPref;
pub use ids::SessionId;
pub use metrics::Metrics;
pub use node::{Node, Opened};
