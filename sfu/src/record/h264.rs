//! H.264 for the recorder: access units as str0m's depacketizer gives them in AVC form
//! (each NAL unit after its 4-byte big-endian length, what an MP4 sample holds), what they
//! hold (an IDR picture, parameter sets) and the picture size of a sequence parameter set
//! (read with `h264-reader`).
//!
//! Parameter sets: a WebRTC encoder (libwebrtc, OBS, GStreamer's `rtph264pay` with
//! `config-interval=-1`) sends its SPS and PPS before every IDR picture. The MP4 file's
//! `avcC` takes those of the recording's first keyframe, and the samples keep theirs in
//! band: a publisher that restarts with other parameters (another picture size, another
//! profile) goes on in the same file, decoded with the parameter sets that precede its own
//! IDR pictures (as H.264 decoders, Chromium's included, take them).

use h264_reader::nal::sps::SeqParameterSet;
use h264_reader::nal::{Nal, RefNal};
use str0m::format::CodecExtra;
use str0m::unversioned::{Depacketizer, H264Depacketizer};

/// NAL unit types (ITU-T H.264 table 7-1).
const IDR: u8 = 5;
const SPS: u8 = 7;
const PPS: u8 = 8;

/// The NAL units of an access unit in AVC form (a length that runs past the end stops the
/// walk).
pub fn nal_units(au: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = au;
    std::iter::from_fn(move || {
        let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let nal = rest.get(4..4usize.checked_add(len)?)?;
        rest = &rest[4 + len..];
        Some(nal)
    })
}

fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| b & 0x1f)
}

/// Whether the access unit holds an IDR picture (a keyframe: what follows decodes from it).
pub fn is_idr(au: &[u8]) -> bool {
    nal_units(au).any(|n| nal_type(n) == IDR)
}

/// The first SPS and PPS of an access unit (NAL units with their header byte).
pub fn parameter_sets(au: &[u8]) -> Option<(&[u8], &[u8])> {
    let sps = nal_units(au).find(|n| nal_type(n) == SPS)?;
    let pps = nal_units(au).find(|n| nal_type(n) == PPS)?;
    Some((sps, pps))
}

/// The largest picture side taken (H.264's own levels stop at 8192 × 4320): a publisher's
/// SPS may declare up to about 2³² a side, which no product of sizes nor the 16-bit
/// sizes of an MP4 track would survive.
pub const MAX_SIDE: u32 = 8192;

/// The picture size (cropped) a sequence parameter set declares, if within [`MAX_SIDE`].
pub fn sps_size(sps: &[u8]) -> Option<(u32, u32)> {
    let nal = RefNal::new(sps, &[], true);
    let sps = SeqParameterSet::from_bits(nal.rbsp_bits()).ok()?;
    let (w, h) = sps.pixel_dimensions().ok()?;
    (w > 0 && h > 0 && w <= MAX_SIDE && h <= MAX_SIDE).then_some((w, h))
}

/// The picture size of a keyframe access unit (from its SPS).
pub fn frame_size(au: &[u8]) -> Option<(u32, u32)> {
    is_idr(au)
        .then(|| parameter_sets(au))
        .flatten()
        .and_then(|(sps, _)| sps_size(sps))
}

/// str0m's H.264 depacketizer giving AVC form.
pub fn depacketizer() -> H264Depacketizer {
    let mut d = H264Depacketizer::default();
    d.is_avc = true;
    d
}

/// The picture size an RTP payload declares, when it carries an SPS (a keyframe's first
/// packet, in a STAP-A or on its own).
pub fn payload_size(payload: &[u8]) -> Option<(u32, u32)> {
    let mut data = Vec::with_capacity(payload.len() + 8);
    depacketizer()
        .depacketize(payload, &mut data, &mut CodecExtra::None)
        .ok()?;
    let sps = nal_units(&data).find(|n| nal_type(n) == SPS)?;
    sps_size(sps)
}

/// NAL units in AVC form (for tests).
#[cfg(test)]
pub(crate) fn avc(nals: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for n in nals {
        out.extend_from_slice(&(n.len() as u32).to_be_bytes());
        out.extend_from_slice(n);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A constrained-baseline SPS of 160×120 (openh264's, from testdata/ball-160x120.h264).
    const SPS: [u8; 15] = [
        0x67, 0x42, 0xc0, 0x0b, 0x8c, 0x8d, 0x41, 0x42, 0x2f, 0x2c, 0x03, 0xc2, 0x21, 0x1a, 0x80,
    ];

    #[test]
    fn an_idr_access_unit_gives_its_parameter_sets_and_size() {
        let pps: &[u8] = &[0x68, 0xce, 0x3c, 0x80];
        let au = avc(&[&SPS, pps, &[0x65, 0x88, 0x84, 0x00]]);
        assert!(is_idr(&au));
        assert_eq!(parameter_sets(&au), Some((&SPS[..], pps)));
        assert_eq!(frame_size(&au), Some((160, 120)));
        let delta = avc(&[&[0x41, 0x9a, 0x00]]);
        assert!(!is_idr(&delta));
        assert_eq!(frame_size(&delta), None);
        // A length past the end stops the walk.
        let mut cut = au.clone();
        cut.truncate(au.len() - 2);
        assert_eq!(nal_units(&cut).count(), 2);
    }

    /// A baseline SPS declaring `mbs_w` × `mbs_h` macroblocks (written bit by bit: fields
    /// in order, unsigned Exp-Golomb where the standard says ue(v)).
    fn sps_of(mbs_w: u32, mbs_h: u32) -> Vec<u8> {
        let mut bits: Vec<bool> = Vec::new();
        let mut u = |v: u32, n: u32, bits: &mut Vec<bool>| {
            bits.extend((0..n).rev().map(|i| v >> i & 1 == 1));
        };
        let ue = |v: u32, bits: &mut Vec<bool>, u: &mut dyn FnMut(u32, u32, &mut Vec<bool>)| {
            let n = 32 - (v + 1).leading_zeros();
            u(0, n - 1, bits);
            u(v + 1, n, bits);
        };
        u(66, 8, &mut bits); // profile_idc: baseline
        u(0xc0, 8, &mut bits); // constraint flags
        u(40, 8, &mut bits); // level_idc
        ue(0, &mut bits, &mut u); // seq_parameter_set_id
        ue(0, &mut bits, &mut u); // log2_max_frame_num_minus4
        ue(2, &mut bits, &mut u); // pic_order_cnt_type
        ue(1, &mut bits, &mut u); // max_num_ref_frames
        u(0, 1, &mut bits); // gaps_in_frame_num_value_allowed_flag
        ue(mbs_w - 1, &mut bits, &mut u);
        ue(mbs_h - 1, &mut bits, &mut u);
        u(0b1100, 4, &mut bits); // frame_mbs_only, direct_8x8, no cropping, no VUI
        u(1, 1, &mut bits); // rbsp_stop_one_bit
        let mut out = vec![0x67];
        out.extend(bits.chunks(8).map(|c| {
            c.iter()
                .enumerate()
                .fold(0u8, |b, (i, &on)| b | (u8::from(on) << (7 - i)))
        }));
        out
    }

    #[test]
    fn a_declared_side_over_the_largest_is_not_taken() {
        // H.264's levels stop at 8192 a side (h264-reader bounds the area on its own).
        assert_eq!(sps_size(&sps_of(512, 2)), Some((8192, 32)));
        assert_eq!(sps_size(&sps_of(513, 2)), None);
        assert_eq!(sps_size(&sps_of(2, 513)), None);
        assert_eq!(sps_size(&sps_of(1 << 20, 1)), None);
        assert_eq!(sps_size(&sps_of(10, 8)), Some((160, 128)));
    }

    #[test]
    fn a_stap_a_payload_with_an_sps_gives_the_size() {
        let mut payload = vec![0x78];
        payload.extend_from_slice(&(SPS.len() as u16).to_be_bytes());
        payload.extend_from_slice(&SPS);
        payload.extend_from_slice(&[0, 4, 0x68, 0xce, 0x3c, 0x80]);
        assert_eq!(payload_size(&payload), Some((160, 120)));
        assert_eq!(payload_size(&[0x41, 0x9a, 0x00]), None);
    }
}
