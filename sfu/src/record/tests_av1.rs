//! AV1 through the recorder's core: temporal units `av1enc` (libaom) made
//! (testdata/ball-320x240.av1.obu: 320×240, a keyframe every 10 frames; each temporal unit
//! after its 4-byte big-endian length, in the low-overhead format with its temporal
//! delimiter) are packetized here as the AV1 RTP specification (§4) says, with OBUs split
//! over packets, and come out as the encoder's temporal units without their delimiters.
//! Made with:
//!
//! ```text
//! gst-launch-1.0 videotestsrc num-buffers=20 pattern=ball
//!   ! video/x-raw,format=I420,width=320,height=240,framerate=30/1
//!   ! av1enc usage-profile=realtime cpu-used=10 keyframe-max-dist=10 target-bitrate=300
//!     lag-in-frames=0 ! av1parse ! video/x-av1,stream-format=obu-stream,alignment=tu
//!   ! multifilesink location=t%04d
//! ```
//! (then each file after its length).

use bytes::Bytes;

use super::assemble::RecPacket;
use super::av1;
use super::tests_vp9::video_frames;
use crate::codec::Codec;

const TUS: &[u8] = include_bytes!("testdata/ball-320x240.av1.obu");

fn temporal_units() -> Vec<&'static [u8]> {
    let mut out = Vec::new();
    let mut rest = TUS;
    while rest.len() >= 4 {
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        out.push(&rest[4..4 + len]);
        rest = &rest[4 + len..];
    }
    out
}

/// A temporal unit's OBUs (whole, with their size fields) but its temporal delimiter.
fn obus(tu: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = tu;
    while let Some(&b0) = rest.first() {
        assert!(b0 & 0x02 != 0, "the encoder's OBUs carry their size");
        let header = if b0 & 0x04 != 0 { 2 } else { 1 };
        let (mut len, mut n) = (0usize, 0);
        while rest[header + n] & 0x80 != 0 {
            len |= usize::from(rest[header + n] & 0x7f) << (7 * n);
            n += 1;
        }
        len |= usize::from(rest[header + n]) << (7 * n);
        let end = header + n + 1 + len;
        if b0 >> 3 & 0x0f != 2 {
            out.push(&rest[..end]);
        }
        rest = &rest[end..];
    }
    out
}

fn leb128(mut v: usize, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The RTP payloads of a temporal unit, at most `mtu` bytes each: its OBUs without their
/// size fields as elements, each after its length (`W` = 0) or, when `count`, the last
/// without one (`W` = the element count, at most 3); an OBU that does not fit goes on in
/// the next packet (`Y`, then `Z`). `N` on the first packet of a keyframe.
fn packetize(tu: &[u8], mtu: usize, count: bool, key: bool) -> Vec<Vec<u8>> {
    let elements: Vec<Vec<u8>> = obus(tu)
        .iter()
        .map(|o| {
            let header = if o[0] & 0x04 != 0 { 2 } else { 1 };
            let mut n = header;
            while o[n] & 0x80 != 0 {
                n += 1;
            }
            let mut e = vec![o[0] & !0x02];
            e.extend_from_slice(&o[1..header]);
            e.extend_from_slice(&o[n + 1..]);
            e
        })
        .collect();
    let mut packets = Vec::new();
    let mut cur: Vec<Vec<u8>> = Vec::new();
    let flush = |cur: &mut Vec<Vec<u8>>, z: bool, y: bool, packets: &mut Vec<Vec<u8>>| {
        let w = if count && cur.len() <= 3 {
            cur.len()
        } else {
            0
        };
        let n = u8::from(key && packets.is_empty());
        let mut p = vec![u8::from(z) << 7 | u8::from(y) << 6 | (w as u8) << 4 | n << 3];
        for (i, e) in cur.iter().enumerate() {
            if w == 0 || i + 1 < w {
                leb128(e.len(), &mut p);
            }
            p.extend_from_slice(e);
        }
        packets.push(p);
        cur.clear();
    };
    // `z`: the packet being filled begins with the rest of an OBU; `used`: its bytes so
    // far, an element's length counted as two.
    let (mut z, mut used) = (false, 1);
    for e in elements {
        let mut rest = &e[..];
        loop {
            let room = mtu.saturating_sub(used + 2);
            if room == 0 {
                flush(&mut cur, z, false, &mut packets);
                (z, used) = (false, 1);
                continue;
            }
            let take = rest.len().min(room);
            cur.push(rest[..take].to_vec());
            used += take + 2;
            rest = &rest[take..];
            if rest.is_empty() {
                break;
            }
            flush(&mut cur, z, true, &mut packets);
            (z, used) = (true, 1);
        }
    }
    flush(&mut cur, z, false, &mut packets);
    packets
}

fn rtp(tus: &[&[u8]], mtu: usize, count: bool) -> Vec<RecPacket> {
    let mut out = Vec::new();
    let mut seq = 65_530u16;
    for (i, tu) in tus.iter().enumerate() {
        let key = av1::sequence_header(tu).is_some();
        let payloads = packetize(tu, mtu, count, key);
        let n = payloads.len();
        for (j, p) in payloads.into_iter().enumerate() {
            let payload = Bytes::from(p);
            out.push(RecPacket {
                codec: Codec::Av1,
                generation: 1,
                encoding: 0,
                seq,
                ts: 1000 + 3000 * i as u32,
                marker: j + 1 == n,
                keyframe: Codec::Av1.starts_keyframe(&payload),
                payload,
            });
            seq = seq.wrapping_add(1);
        }
    }
    out
}

#[test]
fn libaom_temporal_units_come_back_whole_from_their_packets() {
    let tus = temporal_units();
    assert_eq!(tus.len(), 20);
    for (mtu, count) in [(1200, false), (1200, true), (120, false), (97, true)] {
        let packets = rtp(&tus, mtu, count);
        let (frames, core) = video_frames(&packets);
        assert_eq!(frames.len(), 20, "mtu {mtu}, W {count}");
        for (f, tu) in frames.iter().zip(&tus) {
            assert_eq!(
                f.data,
                obus(tu).concat(),
                "mtu {mtu}: the delimiter dropped"
            );
        }
        let keys: Vec<usize> = (0..20).filter(|&i| frames[i].keyframe).collect();
        assert_eq!(keys, [0, 10]);
        assert_eq!(frames[0].size, Some((320, 240)));
        assert_eq!(core.stats().lost_frames, 0);
    }
    // Small packets: OBUs over several packets.
    assert!(rtp(&tus, 97, false).len() > 2 * tus.len());
}

#[test]
fn a_keyframe_gives_its_codec_configuration() {
    let tus = temporal_units();
    let key: Vec<u8> = obus(tus[0]).concat();
    let config = av1::codec_config(&key).unwrap();
    let seq = av1::sequence_header(&key).unwrap();
    // Version 1, main profile (4:2:0, 8 bits), level and tier of the first operating point.
    assert_eq!(config[0], 0x81);
    assert_eq!(config[1] >> 5, 0, "profile 0");
    assert_eq!(config[2] & 0x7c, 0x0c, "8 bits, not mono, 4:2:0");
    assert_eq!(&config[4..], seq, "then the sequence header OBU");
    assert_eq!(av1::frame_size(&key), Some((320, 240)));
    assert_eq!(
        av1::frame_size(&obus(tus[1]).concat()),
        None,
        "no sequence header"
    );
}

#[test]
fn a_lost_packet_stops_the_video_until_the_next_keyframe() {
    let tus = temporal_units();
    let mut packets = rtp(&tus, 120, false);
    // A packet in the middle of the third temporal unit.
    let third: Vec<usize> = (0..packets.len())
        .filter(|&i| packets[i].ts == 1000 + 6000)
        .collect();
    packets.remove(third[third.len() / 2]);
    let (frames, core) = video_frames(&packets);
    assert_eq!(frames.len(), 2 + 10, "two, then from the second keyframe");
    assert!(frames[2].keyframe);
    assert_eq!(core.stats().lost_frames, 1);
}

#[test]
fn fragments_without_their_other_part_are_refused() {
    // Y set on the last packet: the OBU never ends.
    assert!(av1::depacketize([&[0x40, 0x02, 0x30, 0x01][..]], &mut Vec::new()).is_err());
    // Z set on the first: its beginning is missing.
    assert!(av1::depacketize([&[0x80, 0x01, 0x00][..]], &mut Vec::new()).is_err());
    // A length past the packet.
    assert!(av1::depacketize([&[0x00, 0x05, 0x30][..]], &mut Vec::new()).is_err());
    // A frame OBU split over two packets comes back with its size field.
    let mut out = Vec::new();
    av1::depacketize([&[0x50, 0x30, 0xaa][..], &[0x90, 0xbb]], &mut out).unwrap();
    assert_eq!(out, [0x32, 0x02, 0xaa, 0xbb]);
}

#[test]
fn any_bytes_are_parsed_without_a_panic() {
    let mut x: u32 = 0x9e37_79b9;
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let len = (x % 48) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|i| (x >> (i % 24)) as u8 ^ (i * 7) as u8)
            .collect();
        let _ = av1::depacketize([&bytes[..], &bytes], &mut Vec::new());
        let _ = av1::payload_size(&bytes);
        let _ = av1::frame_size(&bytes);
        let _ = av1::codec_config(&bytes);
        let _ = av1::parse_sequence_header(&bytes);
    }
}
