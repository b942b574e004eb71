//! The relay link over real QUIC on 127.0.0.1: certificates, subscriptions, media, failures.

mod common;
mod failures;
mod media;
