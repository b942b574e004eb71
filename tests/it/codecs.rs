//! Every forwarded video codec reaches the viewer byte for byte, starting at a keyframe,
//! and a WHEP offer with a data channel is accepted.

use std::time::{Duration, Instant};

use str0m::format::Codec;
use str0m::media::MediaKind;
use str0m::rtp::RtpWrite;

use crate::peer::{pump, Peer};
use crate::server::Server;

/// The first payload byte(s) that start a keyframe, and a delta, for each codec.
fn shapes(codec: Codec) -> (Vec<u8>, Vec<u8>) {
    match codec {
        Codec::H264 => (vec![0x67, 0x42, 0x00, 0x1f], vec![0x41, 0x9a]), // SPS / non-IDR slice
        Codec::Vp9 => (vec![0x08], vec![0x48]),                          // P=0,B=1 / P=1,B=1
        Codec::Av1 => (vec![0x08], vec![0x00]),                          // N=1 / N=0
        _ => unreachable!(),
    }
}

#[test]
fn h264_vp9_and_av1_are_forwarded() {
    let server = Server::start(&[]);
    let http = server.http();
    for (n, codec) in [Codec::H264, Codec::Vp9, Codec::Av1]
        .into_iter()
        .enumerate()
    {
        let stream = format!("/whip/codec{n}");
        let (mut p, offer, pending) = Peer::publisher(&["a"]);
        p.connect(&http, &server.url(&stream), offer, pending);
        let (mut v, offer, pending) = Peer::viewer();
        v.connect(
            &http,
            &server.url(&stream.replace("whip", "whep")),
            offer,
            pending,
        );
        {
            let mut all = [&mut p, &mut v];
            assert!(pump(&mut all, Duration::from_secs(10), |p| p
                .iter()
                .all(|p| p.connected)));
        }
        let (key, delta) = shapes(codec);
        let pt = p.pt(codec);
        let mid = p.mid(MediaKind::Video);
        let mut sent = Vec::new();
        let end = Instant::now() + Duration::from_millis(1500);
        let mut seq = 500u64;
        let mut next = Instant::now();
        while Instant::now() < end {
            if Instant::now() >= next {
                next += Duration::from_millis(33);
                let frame = seq - 500;
                // Keyframes only when the node asks: the viewer's picture must start there.
                let is_key = !p.keyframe_requests.is_empty();
                p.keyframe_requests.clear();
                let mut payload = if is_key { key.clone() } else { delta.clone() };
                payload.extend_from_slice(&frame.to_be_bytes());
                payload.resize(400, n as u8);
                let w = RtpWrite::new(
                    pt,
                    seq.into(),
                    (frame as u32) * 3000,
                    Instant::now(),
                    payload.clone(),
                )
                .marker(true);
                p.send(mid, Some("a"), w);
                sent.push(payload);
                seq += 1;
            }
            p.poll();
            v.poll();
            std::thread::sleep(Duration::from_millis(1));
        }
        let got: Vec<&Vec<u8>> = v
            .received
            .iter()
            .filter(|r| r.kind == MediaKind::Video)
            .map(|r| &r.payload)
            .collect();
        assert!(
            got.len() >= 20,
            "{codec:?}: viewer got {} packets",
            got.len()
        );
        assert!(got[0].starts_with(&key), "{codec:?}: starts on a keyframe");
        for g in &got {
            assert!(sent.contains(g), "{codec:?}: payload arrives unchanged");
        }
    }
}

#[test]
fn whep_offer_with_a_data_channel_connects() {
    let server = Server::start(&[]);
    let http = server.http();
    let (mut v, offer, pending) = Peer::viewer_with_channel();
    assert!(
        offer.contains("m=application"),
        "the offer carries a data channel"
    );
    v.connect(&http, &server.url("/whep/chat"), offer, pending);
    let mut all = [&mut v];
    assert!(pump(&mut all, Duration::from_secs(10), |p| p[0].connected));
}
