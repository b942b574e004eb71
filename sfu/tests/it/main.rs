//! Tests of the forwarding core on a virtual clock with a seeded lossy link, and of a
//! session's `chat` data channel through a real node over loopback UDP.

mod chat;
mod link;
mod simulcast;
mod temporal;
