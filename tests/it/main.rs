//! Integration tests: a real `cascade serve` process on loopback.

mod access;
mod accounts;
mod admission;
mod bad_input;
mod budget;
mod cluster;
mod cluster_control;
mod cluster_up;
mod codecs;
mod disclosure;
mod forwarding;
mod gstreamer;
mod hostile;
mod http_limits;
mod joins;
mod listing;
mod loadtest;
mod pages;
mod peer;
mod qos;
mod red;
mod revocation;
mod server;
mod synth;
mod tcp;
mod turn;
