//! What the node tells operators about its viewers' links and its publishers: loss, jitter
//! and round-trip time from the viewers' RTCP receiver reports (histograms over all
//! viewers, no series per viewer), the publishers' keyframe interval, and viewers left
//! waiting for a publisher.

use std::time::Duration;

use crate::peer::{pump, Peer};
use crate::server::Server;
use crate::synth::{run, Synth};

#[test]
fn receiver_reports_keyframe_intervals_and_waiting_viewers_reach_the_metrics() {
    let server = Server::start(&[]);
    let http = server.http();
    // A viewer who comes before the broadcaster waits.
    let (mut v, offer, pending) = Peer::viewer();
    v.connect(&http, &server.url("/whep/quality"), offer, pending);
    assert!(pump(&mut [&mut v], Duration::from_secs(10), |p| p[0].connected));
    let waiting =
        |s: &str, p: &str| server.metric(&format!(r#"cascade_{s}_waiting{{publisher="{p}"}}"#));
    assert_eq!(waiting("streams", "not_yet_live"), 1.0);
    assert_eq!(waiting("viewers", "not_yet_live"), 1.0);
    assert_eq!(waiting("viewers", "gone"), 0.0);

    let (mut publ, offer, pending) = Peer::publisher(&["h", "l"]);
    publ.connect(&http, &server.url("/whip/quality"), offer, pending);
    assert!(pump(
        &mut [&mut publ, &mut v],
        Duration::from_secs(10),
        |p| p[0].connected
    ));
    // Keyframes every 2 s (requests ignored), so the interval is the encoder's.
    let mut synth = Synth::new(&[("h", 2), ("l", 1)], 3);
    synth.answers_requests = false;
    run(
        &mut synth,
        &mut publ,
        &mut [&mut v],
        |_| false,
        Duration::from_millis(4500),
    );
    assert_eq!(server.metric("cascade_viewers_waiting"), 0.0, "it is live");
    assert_eq!(waiting("viewers", "gone"), 0.0);

    // The viewer's receiver reports, on loopback: no loss, some round trip.
    let reports = server.metric("cascade_viewer_loss_ratio_count");
    assert!(reports >= 1.0, "{reports} reports");
    assert_eq!(
        server.metric(r#"cascade_viewer_loss_ratio_bucket{le="0"}"#),
        reports,
        "nothing is lost on loopback"
    );
    assert!(server.metric("cascade_viewer_rtt_seconds_count") >= 1.0);
    assert!(server.metric("cascade_viewer_jitter_seconds_count") >= 1.0);
    assert_eq!(server.metric("cascade_viewer_packets_lost_total"), 0.0);

    // Keyframes at frames 0, 60 and 120 of a 33 ms clock: two intervals of about 2 s.
    let intervals = server.metric("cascade_keyframe_interval_seconds_count");
    assert!(intervals >= 1.0, "{intervals}");
    let under_3s = server.metric(r#"cascade_keyframe_interval_seconds_bucket{le="3"}"#);
    let under_1s = server.metric(r#"cascade_keyframe_interval_seconds_bucket{le="1"}"#);
    assert_eq!((under_1s, under_3s), (0.0, intervals));
    let last = server.metric(r#"cascade_stream_keyframe_interval_seconds{stream="quality"}"#);
    assert!((1.5..2.5).contains(&last), "last interval {last}");

    // The publisher goes; its viewer stays and waits again.
    publ.hang_up();
    let gone = pump(&mut [&mut v], Duration::from_secs(5), |_| {
        waiting("viewers", "gone") == 1.0
    });
    assert!(
        gone,
        "the viewer is counted waiting once the publisher is gone"
    );
    assert_eq!(waiting("streams", "gone"), 1.0);
    assert_eq!(waiting("viewers", "not_yet_live"), 0.0);
}
