//! A WHIP/WHEP POST body: the offer goes through `Session::open` (str0m's SDP parser,
//! `accept_offer`, and our checks of directions and codecs) as a publisher and as a
//! viewer, then one timeout and a close, as a worker would run them.
#![no_main]

use std::time::{Duration, Instant};

use cascade_fuzz::{open, Discard};
use libfuzzer_sys::fuzz_target;
use sfu::directory::Role;
use str0m::Input;

fuzz_target!(|data: &[u8]| {
    // The HTTP front refuses a body that is not UTF-8 before the node sees it.
    let Ok(offer) = std::str::from_utf8(data) else {
        return;
    };
    let now = Instant::now();
    for role in [Role::Publisher, Role::Viewer] {
        if let Some(mut session) = open(role, offer, now) {
            let mut effects = Vec::new();
            let later = Input::Timeout(now + Duration::from_millis(50));
            session.handle_input(later, &mut Discard, &mut effects);
            session.close(&mut Discard);
        }
    }
});
