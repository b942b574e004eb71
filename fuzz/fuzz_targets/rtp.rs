//! RTP from a connected publisher, through everything that touches it on the node:
//! str0m's header parse (with the session's negotiated extensions) and SRTP receive, the
//! session's own parse (track, encoding, codec, keyframe start), a viewer's `Consumer`
//! (layer selection, sequence/timestamp and VP8 picture id rewriting) and the viewer
//! session that serialises the result with str0m's VP8 patch. Every codec's keyframe
//! check and the VP8 munger also see each payload directly, whatever its payload type.
//!
//! Input: packets, each a big-endian u16 length then that many bytes of plaintext RTP
//! (header and payload). 100 ms pass between packets, and the publisher's layers are
//! re-ranked after each, as the worker's timer does.
#![no_main]

use std::time::Duration;

use cascade_fuzz::{viewer, Discard, Publisher};
use libfuzzer_sys::fuzz_target;
use sfu::codec::Codec;
use sfu::forward::vp8::Vp8Munger;
use sfu::forward::{Consumer, LayerPref};
use sfu::session::Effect;
use str0m::Input;

const CODECS: [Codec; 5] = [Codec::Vp8, Codec::Vp9, Codec::H264, Codec::Av1, Codec::Opus];

fuzz_target!(|data: &[u8]| {
    let mut publisher = Publisher::new();
    let start = publisher.start;
    // Opened on the first packet forwarded: most inputs never get that far.
    let mut view = None;
    let mut consumer = Consumer::new(LayerPref::Auto, [1000, 2000], [3000, 4000]);
    let mut munger = Vp8Munger::default();
    let mut rest = data;
    let mut at = start;
    let mut sink = Vec::new();
    while let [hi, lo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let (packet, next) = tail.split_at(len);
        rest = next;
        at += Duration::from_millis(100);

        for codec in CODECS {
            codec.starts_keyframe(packet);
        }
        if packet.first().is_some_and(|b| b & 1 == 1) {
            munger.switch_source();
        }
        munger.munge(packet);

        for effect in publisher.receive(packet, at) {
            if let Effect::Media(_, _, pkt) = effect {
                if let Ok(fwd) = consumer.forward(&pkt, at) {
                    let view = view.get_or_insert_with(|| viewer(start));
                    view.write(&fwd, at, at, &mut sink);
                    view.flush(at, &mut Discard, &mut sink);
                }
            }
        }
        sink.clear();
        publisher.session.poll_layers(at);
    }
    // A second later: layer ranking and statistics run on what arrived.
    let later = at + Duration::from_secs(1);
    publisher.session.poll_layers(later);
    let mut effects = Vec::new();
    publisher
        .session
        .handle_input(Input::Timeout(later), &mut Discard, &mut effects);
});
