//! Publishing keys through the real HTTP handlers, ICE servers in Link headers, and a
//! viewer who arrives before the broadcaster.

use std::time::Duration;

use str0m::media::MediaKind;

use crate::peer::{pump, Peer};
use crate::server::Server;
use crate::synth::{assert_continuous, Synth};

#[test]
fn publishing_needs_the_streams_key() {
    let server = Server::start(&[
        "--publish-key",
        "live=s3cret",
        "--ice-server",
        "stun:stun.example.net:3478",
    ]);
    let (_p, offer, _) = Peer::publisher(&["a"]);
    let post =
        |key: Option<&str>, stream: &str| server.post_sdp(&format!("/whip/{stream}"), &offer, key);
    let none = post(None, "live");
    assert_eq!(none.status(), 401);
    assert_eq!(none.headers()["www-authenticate"], "Bearer");
    assert_eq!(post(Some("wrong"), "live").status(), 403);
    assert_eq!(
        post(Some("s3cret"), "other").status(),
        403,
        "a key is for its stream only"
    );
    let ok = post(Some("s3cret"), "live");
    assert_eq!(ok.status(), 201);
    let links: Vec<_> = ok
        .headers()
        .get_all("link")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert!(
        links
            .iter()
            .any(|l| l == "<stun:stun.example.net:3478>; rel=\"ice-server\""),
        "{links:?}"
    );
    // Watching needs no key.
    let (_v, offer, _) = Peer::viewer();
    let view = server.post_sdp("/whep/live", &offer, None);
    assert_eq!(view.status(), 201);
    let links: Vec<_> = view
        .headers()
        .get_all("link")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert!(links
        .iter()
        .any(|l| l.contains("urn:ietf:params:whep:ext:core:server-sent-events")));
    assert!(links
        .iter()
        .any(|l| l.contains("urn:ietf:params:whep:ext:core:layer")));
}

#[test]
fn viewer_who_arrives_first_gets_media_when_the_broadcast_starts() {
    let server = Server::start(&[]);
    let http = server.http();
    let (mut v, offer, pending) = Peer::viewer();
    v.connect(&http, &server.url("/whep/early"), offer, pending);
    {
        let mut all = [&mut v];
        assert!(pump(&mut all, Duration::from_secs(10), |p| p[0].connected));
    }
    // Nothing to watch yet; the session stays up.
    {
        let mut all = [&mut v];
        pump(&mut all, Duration::from_secs(1), |_| false);
    }
    assert!(v.received.is_empty());
    assert_eq!(server.metric("cascade_sessions{role=\"viewer\"}"), 1.0);

    let (mut p, offer, pending) = Peer::publisher(&["a"]);
    p.connect(&http, &server.url("/whip/early"), offer, pending);
    {
        let mut all = [&mut p, &mut v];
        assert!(pump(&mut all, Duration::from_secs(10), |p| p[0].connected));
    }
    let mut synth = Synth::new(&[("a", 2)], 9);
    let end = std::time::Instant::now() + Duration::from_secs(2);
    while std::time::Instant::now() < end {
        synth.tick(&mut p);
        p.poll();
        v.poll();
        std::thread::sleep(Duration::from_millis(1));
    }
    let video = assert_continuous(&v);
    assert!(
        video.len() >= 60,
        "the early viewer gets the broadcast: {}",
        video.len()
    );
    assert!(v.received.iter().any(|r| r.kind == MediaKind::Audio));
}

#[test]
fn a_lossy_viewer_is_repaired_from_the_retransmission_cache() {
    let server = Server::start(&[]);
    let http = server.http();
    let (mut p, offer, pending) = Peer::publisher(&["a"]);
    p.connect(&http, &server.url("/whip/lossy"), offer, pending);
    let (mut v, offer, pending) = Peer::viewer();
    v.loss = Some((0.05, 0x9e37_79b9_7f4a_7c15));
    v.connect(&http, &server.url("/whep/lossy"), offer, pending);
    {
        let mut all = [&mut p, &mut v];
        assert!(pump(&mut all, Duration::from_secs(10), |p| p
            .iter()
            .all(|p| p.connected)));
    }
    let mut synth = Synth::new(&[("a", 3)], 5);
    let end = std::time::Instant::now() + Duration::from_secs(4);
    while std::time::Instant::now() < end {
        synth.tick(&mut p);
        p.poll();
        v.poll();
        std::thread::sleep(Duration::from_millis(1));
    }
    // Let the last repairs arrive.
    {
        let mut all = [&mut p, &mut v];
        pump(&mut all, Duration::from_millis(500), |_| false);
    }
    assert!(v.dropped > 20, "the link lost packets: {}", v.dropped);
    let mut seqs: Vec<u64> = v
        .received
        .iter()
        .filter(|r| r.kind == MediaKind::Video)
        .map(|r| r.seq)
        .collect();
    seqs.sort_unstable();
    seqs.dedup();
    let span = (seqs[seqs.len() - 1] - seqs[0] + 1) as usize;
    let missing = span - seqs.len();
    assert!(
        missing * 100 <= span,
        "retransmissions repaired the losses: {missing} of {span} still missing after {} dropped",
        v.dropped
    );
    // Stats arrive once a second; give the node a moment to count them.
    std::thread::sleep(Duration::from_millis(1200));
    {
        let mut all = [&mut p, &mut v];
        pump(&mut all, Duration::from_millis(1200), |_| false);
    }
    assert!(server.metric("cascade_nacks_total{direction=\"from_viewer\"}") > 0.0);
    assert!(server.metric("cascade_retransmissions_total") > 0.0);
}

/// Viewers' answers negotiate transport-wide congestion control: its feedback feeds each
/// viewer's bandwidth estimate, which picks the layer its path carries. With
/// `--viewer-bwe 0` they leave it out (1,000 viewers' feedback once cost the node a fifth
/// of its CPU); publishers keep it either way, since the browser sizes its encoder by the
/// node's feedback.
#[test]
fn transport_wide_feedback_for_viewers_only_with_estimation() {
    const TWCC: &str = "transport-wide-cc";
    for (flags, viewer_twcc) in [(&[][..], true), (&["--viewer-bwe", "0"][..], false)] {
        let server = Server::start(flags);
        let (_p, offer, _) = Peer::publisher(&["a"]);
        assert!(offer.contains(TWCC), "the str0m offer asks for it");
        let answer = server.post_sdp("/whip/twcc", &offer, None).text().unwrap();
        assert!(answer.contains(TWCC), "publisher answer: {answer}");
        let (_v, offer, _) = Peer::viewer();
        assert!(offer.contains(TWCC));
        let answer = server.post_sdp("/whep/twcc", &offer, None).text().unwrap();
        assert_eq!(answer.contains(TWCC), viewer_twcc, "{flags:?}: {answer}");
        assert!(
            answer.contains("urn:ietf:params:rtp-hdrext:sdes:mid"),
            "other extensions stay"
        );
    }
}
