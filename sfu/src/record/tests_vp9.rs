//! VP9 through the recorder's core: RTP packets GStreamer's `rtpvp9pay` made of
//! `vp9enc`'s frames (testdata/ball-320x240.vp9.rtp: 320×240, a keyframe every 10
//! frames, keyframes over two packets; each packet after its 2-byte length, RFC 4571
//! framing from `rtpstreampay`) come out as the encoder's frames, which libvpx decodes.
//! Made with:
//!
//! ```text
//! gst-launch-1.0 videotestsrc num-buffers=30 pattern=ball
//!   ! video/x-raw,format=I420,width=320,height=240,framerate=30/1
//!   ! vp9enc deadline=1 keyframe-max-dist=10 target-bitrate=400000
//!   ! rtpvp9pay mtu=300 picture-id-mode=15-bit ! rtpstreampay
//!   ! filesink location=ball-320x240.vp9.rtp
//! ```

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::assemble::RecPacket;
use super::core::{Layers, MuxFrame, Output, RecorderCore};
use super::vp9;
use crate::codec::Codec;
use crate::process::vpx::Decoder;

const CAPTURE: &[u8] = include_bytes!("testdata/ball-320x240.vp9.rtp");

/// An RFC 4571 capture's RTP packets as the recorder takes them (`codec`'s).
pub(crate) fn rtp_packets(capture: &[u8], codec: Codec) -> Vec<RecPacket> {
    let mut out = Vec::new();
    let mut rest = capture;
    while let Some(len) = rest
        .get(..2)
        .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])))
    {
        let p = &rest[2..2 + len];
        rest = &rest[2 + len..];
        let csrc = usize::from(p[0] & 0x0f) * 4;
        let mut at = 12 + csrc;
        if p[0] & 0x10 != 0 {
            let words = usize::from(u16::from_be_bytes([p[at + 2], p[at + 3]]));
            at += 4 + words * 4;
        }
        let payload = Bytes::copy_from_slice(&p[at..]);
        out.push(RecPacket {
            codec,
            generation: 1,
            encoding: 0,
            seq: u16::from_be_bytes([p[2], p[3]]),
            ts: u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
            marker: p[1] & 0x80 != 0,
            keyframe: codec.starts_keyframe(&payload),
            payload,
        });
    }
    out
}

/// The video frames the core makes of `packets` (33 ms apart in arrival).
pub(super) fn video_frames(packets: &[RecPacket]) -> (Vec<MuxFrame>, RecorderCore) {
    let mut core = RecorderCore::new(Layers::Top);
    let t0 = Instant::now();
    let mut out = Vec::new();
    let mut last_ts = None;
    let mut t = t0;
    for p in packets {
        if last_ts.is_some_and(|ts| ts != p.ts) {
            t += Duration::from_millis(33);
        }
        last_ts = Some(p.ts);
        core.push(p, t, &mut out);
    }
    core.tick(t + Duration::from_secs(1), &mut out);
    core.finish(&mut out);
    let frames = out
        .into_iter()
        .filter_map(|o| match o {
            Output::Frame(f) if f.video => Some(f),
            _ => None,
        })
        .collect();
    (frames, core)
}

fn decoded(frames: &[MuxFrame]) -> usize {
    let mut dec = Decoder::vp9().unwrap();
    frames
        .iter()
        .filter(|f| {
            let pic = dec.decode(&f.data).expect("libvpx decodes the frame");
            pic.is_some_and(|p| (p.width, p.height) == (320, 240))
        })
        .count()
}

#[test]
fn gstreamer_vp9_packets_come_out_as_frames_libvpx_decodes() {
    let packets = rtp_packets(CAPTURE, Codec::Vp9);
    assert_eq!(
        packets.len(),
        39,
        "keyframes (and a few more) over two packets"
    );
    let (frames, core) = video_frames(&packets);
    assert_eq!(frames.len(), 30, "every frame");
    let keys: Vec<usize> = (0..30).filter(|&i| frames[i].keyframe).collect();
    assert_eq!(keys, [0, 10, 20]);
    assert_eq!(frames[0].size, Some((320, 240)));
    assert!(frames[1..].iter().all(|f| f.codec == Codec::Vp9));
    let times: Vec<u64> = frames.iter().map(|f| f.ns / 1_000_000).collect();
    assert_eq!(times[..4], [0, 33, 66, 100], "frames at their RTP times");
    assert_eq!(decoded(&frames), 30, "every frame decodes at 320×240");
    assert_eq!(core.stats().lost_frames, 0);
}

#[test]
fn a_keyframe_missing_a_packet_waits_for_the_next_one() {
    let mut packets = rtp_packets(CAPTURE, Codec::Vp9);
    packets.remove(1); // the first keyframe's second packet
    let (frames, core) = video_frames(&packets);
    assert_eq!(frames.len(), 20, "from the second keyframe on");
    assert!(frames[0].keyframe);
    assert_eq!(decoded(&frames), 20);
    assert_eq!(core.stats().lost_frames, 1);
}

/// A descriptor: `b0`, then the given bytes, then the frame's.
fn payload(b0: u8, fields: &[u8], frame: &[u8]) -> Vec<u8> {
    let mut p = vec![b0];
    p.extend_from_slice(fields);
    p.extend_from_slice(frame);
    p
}

#[test]
fn descriptors_in_flexible_mode_with_layers_and_a_scalability_structure() {
    // I, P, L, F, B: 15-bit picture id, layer byte (SID 1), two reference indices.
    let p = payload(0xf8, &[0x81, 0x23, 0x02, 0x03, 0x04], &[0xaa]);
    let d = vp9::descriptor(&p).unwrap();
    assert_eq!(
        (d.predicted, d.begins, d.ends, d.spatial, d.len),
        (true, true, false, 1, 6)
    );
    // I, L, B, E, V (non-flexible): 7-bit picture id, layer byte and TL0PICIDX, then a
    // structure of two spatial layers with sizes and one group with two references.
    let ss = [
        0x38, 0x00, 0xa0, 0x00, 0x78, 0x01, 0x40, 0x00, 0xf0, 0x01, 0x08, 0x01, 0x02,
    ];
    let mut fields = vec![0x05, 0x00, 0x07];
    fields.extend_from_slice(&ss);
    let p = payload(0xae, &fields, &[0x82]);
    let d = vp9::descriptor(&p).unwrap();
    assert_eq!(d.sizes, [(160, 120), (320, 240)]);
    assert_eq!((d.spatial, d.len, p[d.len]), (0, 17, 0x82));
    assert_eq!(vp9::payload_size(&p), Some((160, 120)), "the base layer's");
    // Cut anywhere, it is an error, never a panic.
    for n in 0..d.len {
        assert!(vp9::descriptor(&p[..n]).is_err(), "{n}");
    }
}

#[test]
fn a_spatially_scalable_picture_is_recorded_at_its_base_layer() {
    // One picture: the base layer's frame over two packets, then spatial layer 1's.
    let base0 = payload(0x28, &[0x00, 0x00], &[1, 2]); // L, B; SID 0, TL0PICIDX
    let base1 = payload(0x24, &[0x00, 0x00], &[3]); // L, E
    let upper = payload(0x2c, &[0x02, 0x00], &[9, 9]); // L, B, E; SID 1
    let mut out = Vec::new();
    vp9::depacketize([&base0[..], &base1, &upper], &mut out).unwrap();
    assert_eq!(out, [1, 2, 3]);
    assert!(vp9::is_head(&base0) && !vp9::is_head(&base1) && !vp9::is_head(&upper));
    // Without its end, or with its beginning missing, the base frame is no frame.
    assert!(vp9::depacketize([&base0[..], &upper], &mut Vec::new()).is_err());
    assert!(vp9::depacketize([&base1[..], &upper], &mut Vec::new()).is_err());
}

#[test]
fn any_bytes_are_parsed_without_a_panic() {
    let mut x: u32 = 0x1234_5678;
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let len = (x % 40) as usize;
        let bytes: Vec<u8> = (0..len).map(|i| (x >> (i % 24)) as u8 ^ i as u8).collect();
        let _ = vp9::descriptor(&bytes);
        let _ = vp9::payload_size(&bytes);
        let _ = vp9::keyframe_size(&bytes);
        let _ = vp9::depacketize([&bytes[..], &bytes], &mut Vec::new());
    }
}
