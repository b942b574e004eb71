//! WHIP publisher to WHEP viewers through a real node: every viewer decrypts the
//! publisher's packets byte for byte, on the layer it asked for, with continuous
//! numbering across a layer switch and a publisher restart.

use std::time::Duration;

use crate::peer::{histogram, pump, Peer};
use crate::server::Server;
use crate::synth::{assert_continuous, Synth};

/// The publisher lists its high layer first: layers are ranked by measured bitrate.
const LAYERS: [(&str, usize); 3] = [("h", 4), ("m", 2), ("l", 1)];
const HIGH: u8 = 0;
const MID: u8 = 1;
const LOW: u8 = 2;

fn run(synth: &mut Synth, publ: &mut Peer, viewers: &mut [Peer], dur: Duration) {
    let end = std::time::Instant::now() + dur;
    while std::time::Instant::now() < end {
        synth.tick(publ);
        publ.poll();
        for v in viewers.iter_mut() {
            v.poll();
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn layers_since(v: &Peer, from: usize) -> std::collections::HashMap<u8, usize> {
    let video = assert_continuous(v);
    let skip = video.len().saturating_sub(
        v.received
            .iter()
            .skip(from)
            .filter(|r| r.kind == str0m::media::MediaKind::Video)
            .count(),
    );
    histogram(video[skip..].iter().map(|p| p.layer))
}

#[test]
fn publisher_to_viewers_with_layer_switch_and_restart() {
    let server = Server::start(&[]);
    let http = server.http();

    let (mut publ, offer, pending) = Peer::publisher(&["h", "m", "l"]);
    publ.connect(&http, &server.url("/whip/live"), offer, pending);

    let mut viewers = Vec::new();
    for q in ["", "?layer=low", "?layer=mid"] {
        let (mut v, offer, pending) = Peer::viewer();
        v.connect(
            &http,
            &server.url(&format!("/whep/live{q}")),
            offer,
            pending,
        );
        viewers.push(v);
    }
    {
        let mut all: Vec<&mut Peer> = std::iter::once(&mut publ)
            .chain(viewers.iter_mut())
            .collect();
        assert!(
            pump(&mut all, Duration::from_secs(10), |p| p
                .iter()
                .all(|p| p.connected)),
            "all peers connect"
        );
    }

    let mut synth = Synth::new(&LAYERS, 1);
    run(&mut synth, &mut publ, &mut viewers, Duration::from_secs(3));

    // Each viewer is on the layer it asked for, and got plenty of it.
    for (v, want) in viewers.iter().zip([HIGH, LOW, MID]) {
        let h = layers_since(v, 0);
        let on_want = h.get(&want).copied().unwrap_or(0);
        let total: usize = h.values().sum();
        assert!(on_want >= 40, "viewer wanting layer {want} got {h:?}");
        assert!(on_want * 10 >= total * 8, "mostly on layer {want}: {h:?}");
    }
    let audio = viewers[0]
        .received
        .iter()
        .filter(|r| r.kind == str0m::media::MediaKind::Audio)
        .count();
    assert!(audio >= 100, "audio flows: {audio} packets in 3 s");

    // The auto viewer switches to the low layer through the layer extension.
    let loc = viewers[0].location.clone().unwrap();
    let resp = http
        .post(server.url(&format!("{loc}/layer")))
        .header("content-type", "application/json")
        .body(r#"{"layer":"low"}"#)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 204);
    let mark = viewers[0].received.len();
    run(&mut synth, &mut publ, &mut viewers, Duration::from_secs(2));
    let after = layers_since(&viewers[0], mark);
    assert!(
        after.get(&LOW).copied().unwrap_or(0) >= 30,
        "switched to low: {after:?}"
    );

    // The publisher leaves and comes back; viewers keep their sessions.
    let resp = http
        .delete(server.url(publ.location.as_ref().unwrap()))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    {
        let mut vs: Vec<&mut Peer> = viewers.iter_mut().collect();
        pump(&mut vs, Duration::from_millis(300), |_| false);
    }
    let marks: Vec<usize> = viewers.iter().map(|v| v.received.len()).collect();
    let (mut publ2, offer, pending) = Peer::publisher(&["h", "m", "l"]);
    publ2.connect(&http, &server.url("/whip/live"), offer, pending);
    {
        let mut all: Vec<&mut Peer> = std::iter::once(&mut publ2)
            .chain(viewers.iter_mut())
            .collect();
        assert!(
            pump(&mut all, Duration::from_secs(10), |p| p[0].connected),
            "publisher reconnects"
        );
    }
    let mut synth2 = Synth::new(&LAYERS, 2);
    run(
        &mut synth2,
        &mut publ2,
        &mut viewers,
        Duration::from_secs(3),
    );
    for (i, v) in viewers.iter().enumerate() {
        let video = assert_continuous(v);
        let new_src = video.iter().filter(|p| p.src == 2).count();
        assert!(
            new_src >= 30,
            "viewer {i} resumed on the new publisher ({new_src} packets)"
        );
        assert!(v.received.len() > marks[i]);
    }

    // Metrics reflect what happened.
    assert!(server.metric("cascade_layer_switches_total") >= 6.0);
    assert_eq!(server.metric("cascade_sessions{role=\"viewer\"}"), 3.0);
    assert!(server.metric("cascade_rtp_packets_out_total") > 1000.0);

    // DELETE frees the viewer's session.
    let resp = http
        .delete(server.url(viewers[2].location.as_ref().unwrap()))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(server.metric("cascade_sessions{role=\"viewer\"}"), 2.0);
    let resp = http
        .delete(server.url(viewers[2].location.as_ref().unwrap()))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 404, "a deleted session is gone");
    // Told goodbye (DTLS close_notify) within a round trip, not left to time out.
    {
        let mut vs: Vec<&mut Peer> = viewers.iter_mut().collect();
        assert!(
            pump(&mut vs, Duration::from_millis(300), |v| !v[2]
                .rtc
                .is_alive()),
            "the deleted viewer was told goodbye"
        );
    }

    assert!(server.terminate(), "SIGTERM shuts the node down cleanly");
    let mut vs: Vec<&mut Peer> = viewers.iter_mut().take(2).collect();
    assert!(
        pump(&mut vs, Duration::from_millis(300), |v| v
            .iter()
            .all(|v| !v.rtc.is_alive())),
        "on shutdown every viewer was told goodbye"
    );
}
