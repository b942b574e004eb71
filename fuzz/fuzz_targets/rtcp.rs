//! RTCP from a peer: str0m's compound-packet parser and its conversion to feedback
//! (what a viewer's NACK, PLI, FIR and receiver reports go through before the session
//! sees them as events), then the same bytes as a datagram into a viewer session.
//!
//! The session holds SRTP keys, but the bytes are not protected (str0m exports no SRTCP
//! sender), so there they reach only SRTCP's authentication check; the parser is fuzzed
//! directly through str0m's exported entry point.
#![no_main]

use std::time::{Duration, Instant};

use cascade_fuzz::{viewer, Discard, LOCAL, REMOTE};
use libfuzzer_sys::fuzz_target;
use str0m::net::{Protocol, Receive};
use str0m::Input;

fuzz_target!(|data: &[u8]| {
    str0m::_internal_test_exports::fuzz::rtcp(data);

    let now = Instant::now();
    let mut session = viewer(now);
    let (from, to) = (REMOTE.parse().unwrap(), LOCAL.parse().unwrap());
    let mut effects = Vec::new();
    if let Ok(r) = Receive::new(Protocol::Udp, from, to, data) {
        let at = now + Duration::from_millis(10);
        session.handle_input(Input::Receive(at, r), &mut Discard, &mut effects);
    }
});
