//! A WHIP/WHEP PATCH body (`application/trickle-ice-sdpfrag`): our fragment parser, then,
//! when it accepts the fragment, what the worker does with it on a live session (str0m's
//! remote candidates, an ICE restart).
#![no_main]

use std::time::Instant;

use cascade_fuzz::{open, Discard, CHROMIUM_WHEP};
use libfuzzer_sys::fuzz_target;
use sfu::directory::Role;
use sfu::trickle;

fuzz_target!(|data: &[u8]| {
    // The HTTP front refuses a body that is not UTF-8 before the node sees it.
    let Ok(frag) = std::str::from_utf8(data) else {
        return;
    };
    // The session's remote ufrag is the offer's; a session is opened only for fragments
    // the parser accepts with something to apply.
    let current = sfu::session::sdp_attr(CHROMIUM_WHEP, "ice-ufrag").unwrap_or_default();
    let Ok(parsed) = trickle::parse(frag, current) else {
        return;
    };
    if parsed.candidates.is_empty() && parsed.restart.is_none() {
        return;
    }
    let Some(mut session) = open(Role::Viewer, CHROMIUM_WHEP, Instant::now()) else {
        return;
    };
    for c in parsed.candidates {
        session.add_remote_candidate(c, &mut Discard);
    }
    if let Some(remote) = parsed.restart {
        session.restart_ice(remote, &mut Discard);
    }
});
