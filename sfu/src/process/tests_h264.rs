//! The ladder end to end for an H.264 source, on real OpenH264: a single-layer H.264
//! publisher made here (OpenH264's encoder, str0m's packetizer), its packets through a
//! [`Ladder`], the rungs' H.264 packets reassembled and decoded as a viewer would (the
//! source and viewer of `tests.rs`, of either codec).

use std::time::Instant;

use super::ladder::{Ladder, LadderConfig, MAX_SOURCE_PIXELS};
use super::tests::{
    corrupt_frame_waits_for_the_next_keyframe, feed, resolution_change_rebuilds_the_rungs,
    source_720p_gets_two_rungs, Source, Viewer,
};
use crate::codec::Codec;
use crate::record::assemble::REORDER_WAIT;
use crate::record::h264::{is_idr, nal_units, parameter_sets, sps_size};

fn ladder(seed: u32) -> Ladder {
    Ladder::new(Codec::H264, LadderConfig::default(), seed)
}

/// Whether every IDR access unit a viewer got on `rung` carries its SPS and PPS before the
/// picture, and each SPS is constrained baseline (profile 66 with `constraint_set1`) at a
/// level within the 3.1 of the `42e01f` browsers offer.
fn idrs_are_whole_and_constrained_baseline(viewer: &Viewer, rung: u8) -> usize {
    let mut idrs = 0;
    for au in &viewer.data[&rung] {
        if !is_idr(au) {
            continue;
        }
        idrs += 1;
        let (sps, _) = parameter_sets(au).expect("SPS and PPS with the IDR picture");
        let types: Vec<u8> = nal_units(au).map(|n| n[0] & 0x1f).collect();
        let idr_at = types.iter().position(|t| *t == 5).unwrap();
        assert!(
            types[..idr_at].contains(&7) && types[..idr_at].contains(&8),
            "{types:?}"
        );
        assert_eq!(sps[1], 66, "baseline profile");
        assert!(sps[2] & 0x40 != 0, "constraint_set1: constrained baseline");
        assert!(sps[3] <= 31, "level {} over 3.1", sps[3]);
    }
    idrs
}

#[test]
fn a_720p_h264_source_gets_640_and_320_wide_h264_layers() {
    let (ladder, viewer, out) = source_720p_gets_two_rungs(Codec::H264);
    for rung in [0, 1] {
        // The first packet starts a keyframe as the router sees it (a STAP-A with the SPS
        // and PPS), and the IDR picture is constrained baseline.
        let first = out.iter().find(|p| p.rung == rung).unwrap();
        assert!(first.packet.keyframe && Codec::H264.starts_keyframe(&first.packet.payload));
        assert_eq!(idrs_are_whole_and_constrained_baseline(&viewer, rung), 1);
    }
    assert_eq!(ladder.stats().decoded, 6);
}

#[test]
fn a_viewers_keyframe_request_is_the_h264_encoders() {
    let mut src = Source::of(Codec::H264, 640, 360);
    let mut ladder = ladder(1);
    let mut viewer = Viewer::default();
    for i in 0..4 {
        feed(&mut ladder, &src.next(i == 0), &mut viewer);
    }
    let _ = ladder.take_source_keyframe_request();
    ladder.request_keyframe(1);
    feed(&mut ladder, &src.next(false), &mut viewer);
    assert!(
        viewer.frames[&1][4].1,
        "the rung asked for sends an IDR picture"
    );
    assert!(!viewer.frames[&0][4].1, "the other does not");
    assert!(
        !ladder.take_source_keyframe_request(),
        "the publisher is not asked"
    );
    assert_eq!(idrs_are_whole_and_constrained_baseline(&viewer, 1), 2);
    assert_eq!(viewer.sizes(0), vec![(320, 180)]);
    assert_eq!(viewer.sizes(1), vec![(160, 90)]);
}

/// An IDR access unit whose SPS declares more than 1080p is not decoded (OpenH264 would
/// allocate for it): a real 1440p keyframe here. The ladder waits for one that fits.
#[test]
fn an_oversized_h264_keyframe_is_not_decoded() {
    let mut big = Source::of(Codec::H264, 2560, 1440);
    let pkts = big.next(true);
    let mut ladder = ladder(2);
    let mut viewer = Viewer::default();
    feed(&mut ladder, &pkts, &mut viewer);
    assert_eq!(ladder.stats().oversize, 1);
    assert_eq!(ladder.stats().decoded, 0);
    assert!(ladder.rung_sizes().is_empty(), "no rung built for it");
    // Its SPS said so, before any decoding.
    let mut asm = crate::record::assemble::Assembler::new(Codec::H264);
    let mut frames = Vec::new();
    for p in &pkts {
        asm.push(p, Instant::now(), &mut frames);
    }
    let (sps, _) = parameter_sets(&frames[0].data).unwrap();
    let (w, h) = sps_size(sps).unwrap();
    assert!(w as usize * h as usize > MAX_SOURCE_PIXELS, "{w}×{h}");
    big.resize(640, 360);
    feed(&mut ladder, &big.next(true), &mut viewer);
    assert_eq!(ladder.stats().decoded, 1, "the next keyframe that fits is");
    assert_eq!(viewer.sizes(0), vec![(320, 180)]);
}

#[test]
fn a_corrupt_h264_frame_waits_for_the_next_keyframe_and_goes_on() {
    corrupt_frame_waits_for_the_next_keyframe(Codec::H264);
}

#[test]
fn a_hole_in_the_h264_source_waits_for_the_next_keyframe() {
    let mut src = Source::of(Codec::H264, 640, 360);
    let mut ladder = ladder(5);
    let mut viewer = Viewer::default();
    let mut at = Instant::now();
    let mut out = Vec::new();
    let mut step = |ladder: &mut Ladder, pkts: &[crate::record::assemble::RecPacket]| {
        for p in pkts {
            ladder.push(p, at, &mut out);
        }
        at += 2 * REORDER_WAIT;
        ladder.tick(at, &mut out);
    };
    step(&mut ladder, &src.next(true));
    step(&mut ladder, &src.next(false));
    let _ = ladder.take_source_keyframe_request();
    // A delta frame's first packet never comes.
    let mut lost = src.next(false);
    lost.remove(0);
    step(&mut ladder, &lost);
    assert!(ladder.take_source_keyframe_request(), "asks for a keyframe");
    step(&mut ladder, &src.next(false));
    step(&mut ladder, &src.next(true));
    step(&mut ladder, &src.next(false));
    viewer.take(&out);
    assert_eq!(
        ladder.stats().decode_errors,
        0,
        "nothing broken was decoded"
    );
    assert_eq!(
        viewer.frames[&0].len(),
        4,
        "two before, two from the keyframe"
    );
    assert_eq!(ladder.stats().skipped, 1, "the delta frame after the hole");
    assert_eq!(viewer.gaps, 0, "the rungs' streams ran on unbroken");
}

#[test]
fn an_h264_resolution_change_rebuilds_the_rungs_at_the_new_halves() {
    resolution_change_rebuilds_the_rungs(Codec::H264);
}

/// A VP8 packet reaching an H.264 ladder (a publisher's codec switch) is ignored.
#[test]
fn an_h264_ladder_ignores_another_codec() {
    let mut vp8 = Source::of(Codec::Vp8, 640, 360);
    let mut ladder = ladder(4);
    let mut viewer = Viewer::default();
    feed(&mut ladder, &vp8.next(true), &mut viewer);
    assert_eq!(ladder.stats().decoded + ladder.stats().decode_errors, 0);
}
