//! What the node says about itself: a refused offer is explained in words (no heap
//! addresses or debug output), and the debug log never shows a peer's ICE password.

use std::process::Stdio;
use std::time::Duration;

use crate::peer::{pump, Peer};
use crate::server::{temp_dir, Server};

#[test]
fn a_malformed_offer_is_refused_in_words() {
    let server = Server::start(&[]);
    let offer = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=zero\r\n";
    let resp = server.post_sdp("/whep/s", offer, None);
    assert_eq!(resp.status(), 400);
    let body = resp.text().unwrap();
    assert!(!body.contains("0x") && !body.contains("Pointer"), "{body}");
    assert!(
        body.starts_with("bad SDP offer: malformed SDP at line 4: unexpected"),
        "a sentence naming the line: {body}"
    );
}

#[test]
fn the_debug_log_holds_no_ice_password() {
    let dir = temp_dir("icelog");
    let log = dir.join("stderr.log");
    let server = Server::launch(
        &[],
        &dir.join("data"),
        Stdio::from(std::fs::File::create(&log).unwrap()),
        "debug",
    );
    let http = server.http();
    let (mut p, offer, pending) = Peer::publisher(&["a"]);
    let pwd = offer
        .lines()
        .find_map(|l| l.trim().strip_prefix("a=ice-pwd:"))
        .expect("the offer has a password")
        .to_owned();
    p.connect(&http, &server.url("/whip/logged"), offer, pending);
    assert!(pump(&mut [&mut p], Duration::from_secs(10), |p| p[0].connected));
    assert!(server.terminate());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("remote credentials"),
        "str0m's ICE debug lines are there: {}",
        &text[..text.len().min(2000)]
    );
    assert!(
        !text.contains(&pwd),
        "the remote ICE password reached the log"
    );
}
