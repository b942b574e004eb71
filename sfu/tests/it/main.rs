//! Tests of the forwarding core on a virtual clock with a seeded lossy link.

mod link;
mod simulcast;
mod temporal;
