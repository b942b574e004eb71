//! What a publisher controls in a recording: RTP payloads of every codec through the
//! recorder's core (reassembly, VP9's and AV1's depacketizers, keyframe sizes, the
//! timeline), and the VP9 and AV1 header parsers on the raw bytes. Nothing may panic.
//!
//! Input: packets, each a flags byte (codec in bits 0-2, marker in bit 3, a new publisher
//! generation in bit 4, the encoding in bits 5-6), a sequence step byte, a timestamp step
//! byte, a length byte, then that many payload bytes.
#![no_main]

use std::time::{Duration, Instant};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sfu::codec::Codec;
use sfu::record::assemble::RecPacket;
use sfu::record::{av1, vp9, Layers, RecorderCore};

const CODECS: [Codec; 5] = [Codec::Vp8, Codec::Vp9, Codec::H264, Codec::Av1, Codec::Opus];

fuzz_target!(|data: &[u8]| {
    let _ = vp9::descriptor(data);
    let _ = vp9::payload_size(data);
    let _ = vp9::keyframe_size(data);
    let _ = av1::payload_size(data);
    let _ = av1::frame_size(data);
    let _ = av1::codec_config(data);
    let _ = av1::parse_sequence_header(data);
    let _ = av1::depacketize(data.chunks(7), &mut Vec::new());

    let mut core = RecorderCore::new(Layers::Top);
    let mut out = Vec::new();
    let mut now = Instant::now();
    let (mut seq, mut ts, mut generation) = (0u16, 0u32, 1u32);
    let mut rest = data;
    while let [flags, step, tstep, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (payload, next) = tail.split_at(len);
        rest = next;
        let codec = CODECS[usize::from(flags & 7) % CODECS.len()];
        generation += u32::from(flags >> 4 & 1);
        seq = seq.wrapping_add(u16::from(*step).wrapping_sub(2));
        ts = ts.wrapping_add(u32::from(*tstep) * 300);
        now += Duration::from_millis(u64::from(*tstep));
        let payload = Bytes::copy_from_slice(payload);
        let pkt = RecPacket {
            codec,
            generation,
            encoding: flags >> 5 & 3,
            seq,
            ts,
            marker: flags & 8 != 0,
            keyframe: codec.starts_keyframe(&payload),
            payload,
        };
        core.push(&pkt, now, &mut out);
        out.clear();
    }
    core.tick(now + Duration::from_secs(1), &mut out);
    core.finish(&mut out);
});
