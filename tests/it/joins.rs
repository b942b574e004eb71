//! A viewer's first picture: one who joins between two keyframes starts at once, from the
//! node's cached group of pictures, instead of waiting for the publisher's next keyframe.

use std::time::{Duration, Instant};

use str0m::media::MediaKind;

use crate::peer::{pump, Peer};
use crate::server::Server;
use crate::synth::{assert_continuous, parse_video, run, Synth};

const LAYERS: [(&str, usize); 3] = [("h", 4), ("m", 2), ("l", 1)];

fn first_video(v: &Peer) -> Option<Instant> {
    v.received
        .iter()
        .find(|r| r.kind == MediaKind::Video)
        .map(|r| r.at)
}

fn join(server: &Server, http: &reqwest::blocking::Client) -> Peer {
    let (mut v, offer, pending) = Peer::viewer();
    v.connect(http, &server.url("/whep/joins?layer=low"), offer, pending);
    v
}

#[test]
fn a_viewer_joining_between_keyframes_gets_a_decodable_picture_at_once() {
    let server = Server::start(&[]);
    let http = server.http();
    let (mut publ, offer, pending) = Peer::publisher(&["h", "m", "l"]);
    publ.connect(&http, &server.url("/whip/joins"), offer, pending);
    assert!(
        pump(&mut [&mut publ], Duration::from_secs(10), |p| p[0]
            .connected),
        "publisher connects"
    );
    // An encoder that ignores keyframe requests: a keyframe every 2 s, nothing between.
    let mut synth = Synth::new(&LAYERS, 1);
    synth.answers_requests = false;

    // The publisher's keyframe leaves before anyone watches, and its layers are ranked
    // (a viewer's layer is chosen from a ranking, 250 ms after the first packet).
    run(
        &mut synth,
        &mut publ,
        &mut [],
        |_| false,
        Duration::from_millis(600),
    );
    let keyframe_at = Instant::now() - Duration::from_millis(600);

    // A first viewer (on the worker without the publisher, as the node places each session
    // on the least loaded), then two more (one per worker).
    let mut a = join(&server, &http);
    let mut connected_a = None;
    run(
        &mut synth,
        &mut publ,
        &mut [&mut a],
        |v| {
            if connected_a.is_none() && v[0].connected {
                connected_a = Some(Instant::now());
            }
            first_video(v[0]).is_some()
        },
        Duration::from_secs(3),
    );
    run(
        &mut synth,
        &mut publ,
        &mut [&mut a],
        |_| false,
        Duration::from_millis(200),
    );
    let (mut b, mut c) = (join(&server, &http), join(&server, &http));
    let mut connected = [None, None];
    run(
        &mut synth,
        &mut publ,
        &mut [&mut a, &mut b, &mut c],
        |v| {
            for (at, v) in connected.iter_mut().zip(&v[1..]) {
                if at.is_none() && v.connected {
                    *at = Some(Instant::now());
                }
            }
            v[1..].iter().all(|v| first_video(v).is_some())
        },
        Duration::from_secs(3),
    );
    let joined = [(connected_a, &a), (connected[0], &b), (connected[1], &c)];
    for (i, (at, v)) in joined.into_iter().enumerate() {
        let connected = at.expect("the viewer connects");
        let first = first_video(v).expect("the viewer gets video before the next keyframe");
        let wait = first.saturating_duration_since(connected);
        assert!(
            wait < Duration::from_millis(300),
            "viewer {i} waited {wait:?} after connecting for its first picture \
             (the last keyframe was {:?} before it connected)",
            connected.saturating_duration_since(keyframe_at)
        );
    }
    run(
        &mut synth,
        &mut publ,
        &mut [&mut a, &mut b, &mut c],
        |_| false,
        Duration::from_millis(500),
    );
    for v in [&a, &b, &c] {
        // Decodable from its first packet: the cached keyframe, every packet since, then
        // live, numbered without a gap (checked by `assert_continuous`).
        let video = assert_continuous(v);
        assert_eq!(
            video[0].frame, 0,
            "it starts at the keyframe sent before anyone watched"
        );
        let frames = video.iter().filter(|p| p.starts_frame).count();
        assert!(frames >= 20, "and goes on live: {frames} frames");
        // The frames from before it connected come with their timestamps squeezed
        // together, so the player shows the newest at once rather than replaying them.
        let replayed: Vec<_> = v
            .received
            .iter()
            .filter(|r| r.kind == MediaKind::Video)
            .map(parse_video)
            .take_while(|p| p.frame < video[0].frame + 8)
            .filter(|p| p.starts_frame)
            .collect();
        let spread = replayed
            .last()
            .map(|l| l.ts.wrapping_sub(replayed[0].ts))
            .unwrap_or(0);
        assert!(
            spread < 90,
            "the first 8 frames span {spread} ticks, not 8 × 3000"
        );
    }
    // Each one's join, POST to first video packet, is in the node's histogram.
    assert_eq!(server.metric("cascade_viewer_join_seconds_count"), 3.0);
    let under_a_second = server.metric(r#"cascade_viewer_join_seconds_bucket{le="1"}"#);
    assert_eq!(
        under_a_second, 3.0,
        "all three within a second of their POST"
    );
}
