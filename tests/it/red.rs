//! Audio redundancy (issue 10, QoS): a viewer whose offer has RED for Opus gets each audio
//! packet with the one before it, so a packet its path loses is in the next one; a viewer
//! without RED gets plain Opus.

use std::time::Duration;

use str0m::format::Codec;
use str0m::media::MediaKind;
use str0m::rtp::RedDecoder;

use crate::peer::{pump, Peer, Received};
use crate::server::Server;
use crate::synth::Synth;

/// The publisher's audio sequence number the synthetic source writes into each payload.
fn audio_index(payload: &[u8]) -> u64 {
    u64::from_be_bytes(payload[1..9].try_into().unwrap())
}

fn audio(v: &Peer) -> Vec<&Received> {
    v.received
        .iter()
        .filter(|r| r.kind == MediaKind::Audio)
        .collect()
}

#[test]
fn viewers_that_offer_red_get_each_audio_packet_twice() {
    let server = Server::start(&[]);
    let http = server.http();
    let (mut publ, offer, pending) = Peer::publisher(&["h", "l"]);
    publ.connect(&http, &server.url("/whip/red"), offer, pending);
    let (mut red, offer, pending) = Peer::viewer_with_red();
    red.connect(&http, &server.url("/whep/red"), offer, pending);
    let (mut plain, offer, pending) = Peer::viewer();
    plain.connect(&http, &server.url("/whep/red"), offer, pending);
    assert!(
        pump(
            &mut [&mut publ, &mut red, &mut plain],
            Duration::from_secs(10),
            |p| p.iter().all(|p| p.connected)
        ),
        "all connect"
    );
    // The RED viewer's path loses a tenth of what it is sent.
    red.loss = Some((0.1, 7));
    let mut synth = Synth::new(&[("h", 2), ("l", 1)], 3);
    let end = std::time::Instant::now() + Duration::from_secs(4);
    while std::time::Instant::now() < end {
        synth.tick(&mut publ);
        for p in [&mut publ, &mut red, &mut plain] {
            p.poll();
        }
        std::thread::sleep(Duration::from_millis(1));
    }

    // Plain Opus for the viewer that did not offer RED.
    let opus = *plain.pt(Codec::Opus);
    let got = audio(&plain);
    assert!(got.len() >= 150, "audio flows: {}", got.len());
    assert!(got.iter().all(|r| r.pt == opus), "plain Opus");

    let red_pt = *red.red_pt().expect("the viewer offered RED");
    let got = audio(&red);
    assert!(got.len() >= 100, "audio flows: {}", got.len());
    assert!(red.dropped > 10, "the path lost packets: {}", red.dropped);
    let mut carried = std::collections::HashSet::new();
    let mut with_block = 0;
    for r in &got {
        assert_eq!(r.pt, red_pt, "RED for the viewer that offered it");
        let blocks = RedDecoder::decode(&r.payload).expect("a RED payload");
        let primary = blocks.last().unwrap();
        assert!(primary.is_primary);
        let index = audio_index(primary.payload);
        carried.insert(index);
        if let [block, _] = &blocks[..] {
            with_block += 1;
            assert_eq!(block.timestamp_offset, 960, "the packet 20 ms before");
            assert_eq!(audio_index(block.payload), index - 1, "the one before");
            carried.insert(index - 1);
        }
    }
    assert!(
        with_block * 10 >= got.len() * 9,
        "{with_block} of {}",
        got.len()
    );
    // What the path lost, RED carried: every packet between the first and the last
    // received whose next one arrived. Only a loss of two in a row leaves a hole (how many
    // depends on how the seeded losses fall on audio among the video: not counted).
    let primaries: std::collections::HashSet<u64> = got
        .iter()
        .map(|r| {
            audio_index(
                RedDecoder::decode(&r.payload)
                    .unwrap()
                    .last()
                    .unwrap()
                    .payload,
            )
        })
        .collect();
    let (first, last) = (
        *primaries.iter().min().unwrap(),
        *primaries.iter().max().unwrap(),
    );
    let holes: Vec<u64> = (first..=last).filter(|i| !carried.contains(i)).collect();
    let lost = (first..=last).filter(|i| !primaries.contains(i)).count();
    assert!(lost > 10, "the path lost {lost} of {}", last - first + 1);
    assert!(
        holes.iter().all(|i| !primaries.contains(&(i + 1))),
        "lost {lost}; not recovered {holes:?}, though the packet after came"
    );
    assert!(
        holes.len() * 2 < lost,
        "lost {lost}, not recovered {holes:?}"
    );
}
