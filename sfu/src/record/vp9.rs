//! VP9 for the recorder: the RTP payload descriptor (RFC 9628 §4.2) stripped from a
//! picture's packets, and what a frame's uncompressed header says (VP9 bitstream spec
//! §6.2: a keyframe, its picture size).
//!
//! str0m 0.25 keeps its VP9 depacketizer private, hence this one. A picture is the packets
//! of one RTP timestamp up to the marker; a spatially scalable stream (one RTP stream
//! carrying several spatial layers, `L` set with a layer index above 0) is recorded at its
//! base spatial layer, the one frame of the picture that decodes alone: the others are
//! left out. A browser's VP9 (Chromium's L1T1, L1T3, or simulcast) has one spatial layer
//! per RTP stream, so nothing is left out of it; temporal layers are all kept.

use super::bits::Bits;

/// A payload descriptor, as far as the recorder needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// `P`: the frame refers to an earlier one (inter-picture predicted).
    pub predicted: bool,
    /// `B`: the packet begins a frame.
    pub begins: bool,
    /// `E`: the packet ends a frame.
    pub ends: bool,
    /// The spatial layer (0 without layer indices).
    pub spatial: u8,
    /// The picture size of each spatial layer, from a scalability structure with `Y`.
    pub sizes: Vec<(u32, u32)>,
    /// Bytes of descriptor before the frame's bytes.
    pub len: usize,
}

/// Why a payload is not VP9.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Vp9Error {
    /// The descriptor runs past the payload.
    #[error("VP9 payload descriptor cut short")]
    Short,
    /// A picture's base layer frame does not run from a packet with `B` to one with `E`.
    #[error("VP9 frame incomplete")]
    Incomplete,
}

fn byte(p: &[u8], at: usize) -> Result<u8, Vp9Error> {
    p.get(at).copied().ok_or(Vp9Error::Short)
}

/// Parses the descriptor `I|P|L|F|B|E|V|Z` and what its bits announce: the picture id (7
/// or 15 bits), the layer indices (with `TL0PICIDX` in non-flexible mode), up to three
/// reference indices (flexible mode, predicted frames), and the scalability structure.
pub fn descriptor(p: &[u8]) -> Result<Descriptor, Vp9Error> {
    let b0 = byte(p, 0)?;
    let (i, predicted, l, f) = (b0 & 0x80 != 0, b0 & 0x40 != 0, b0 & 0x20 != 0, b0 & 0x10);
    let (begins, ends, v) = (b0 & 0x08 != 0, b0 & 0x04 != 0, b0 & 0x02 != 0);
    let flexible = f != 0;
    let mut at = 1;
    if i {
        at += if byte(p, at)? & 0x80 != 0 { 2 } else { 1 };
    }
    let mut spatial = 0;
    if l {
        spatial = (byte(p, at)? >> 1) & 0x07;
        at += if flexible { 1 } else { 2 };
    }
    if flexible && predicted {
        // P_DIFF(7)|N: N says another follows; three at most.
        for _ in 0..3 {
            let r = byte(p, at)?;
            at += 1;
            if r & 1 == 0 {
                break;
            }
        }
    }
    let mut sizes = Vec::new();
    if v {
        let ss = byte(p, at)?;
        at += 1;
        let layers = usize::from(ss >> 5) + 1;
        if ss & 0x10 != 0 {
            for _ in 0..layers {
                let w = u16::from_be_bytes([byte(p, at)?, byte(p, at + 1)?]);
                let h = u16::from_be_bytes([byte(p, at + 2)?, byte(p, at + 3)?]);
                sizes.push((u32::from(w), u32::from(h)));
                at += 4;
            }
        }
        if ss & 0x08 != 0 {
            let groups = byte(p, at)?;
            at += 1;
            for _ in 0..groups {
                // TID(3)|U|R(2)|-(2), then R reference differences.
                let refs = usize::from((byte(p, at)? >> 2) & 0x03);
                at += 1 + refs;
            }
        }
    }
    if at > p.len() {
        return Err(Vp9Error::Short);
    }
    Ok(Descriptor {
        predicted,
        begins,
        ends,
        spatial,
        sizes,
        len: at,
    })
}

/// Whether a packet starts a picture the recorder takes: the beginning of the base spatial
/// layer's frame.
pub fn is_head(payload: &[u8]) -> bool {
    descriptor(payload).is_ok_and(|d| d.begins && d.spatial == 0)
}

/// A picture's packets (payloads, in order) into its base spatial layer's frame, appended
/// to `out`; `Err` when that frame's packets do not run from its beginning to its end.
pub fn depacketize<'a>(
    payloads: impl IntoIterator<Item = &'a [u8]>,
    out: &mut Vec<u8>,
) -> Result<(), Vp9Error> {
    let mut state = None; // Some(ended) once the frame began.
    for p in payloads {
        let d = descriptor(p)?;
        if d.spatial != 0 {
            continue;
        }
        match state {
            None if !d.begins => return Err(Vp9Error::Incomplete),
            Some(true) => return Err(Vp9Error::Incomplete),
            _ => {}
        }
        out.extend_from_slice(&p[d.len..]);
        state = Some(d.ends);
    }
    match state {
        Some(true) => Ok(()),
        _ => Err(Vp9Error::Incomplete),
    }
}

/// The picture size of a VP9 keyframe (its uncompressed header, §6.2: frame marker,
/// profile, `frame_type` 0, the sync code, the colour config, then the size), `None` for
/// another frame.
pub fn keyframe_size(frame: &[u8]) -> Option<(u32, u32)> {
    let mut b = Bits::new(frame);
    if b.read(2)? != 2 {
        return None;
    }
    let low = b.read(1)?;
    let profile = b.read(1)? << 1 | low;
    if profile == 3 {
        b.read(1)?; // reserved_zero
    }
    if b.read(1)? == 1 {
        return None; // show_existing_frame
    }
    if b.read(1)? != 0 {
        return None; // not a keyframe
    }
    b.read(2)?; // show_frame, error_resilient_mode
    if b.read(24)? != 0x49_83_42 {
        return None;
    }
    if profile >= 2 {
        b.read(1)?; // ten_or_twelve_bit
    }
    let color_space = b.read(3)?;
    const CS_RGB: u32 = 7;
    if color_space != CS_RGB {
        b.read(1)?; // color_range
        if profile == 1 || profile == 3 {
            b.read(3)?; // subsampling_x, subsampling_y, reserved_zero
        }
    } else if profile == 1 || profile == 3 {
        b.read(1)?; // reserved_zero
    }
    let w = b.read(16)? + 1;
    let h = b.read(16)? + 1;
    Some((w, h))
}

/// Whether a VP9 frame is a keyframe.
pub fn is_keyframe(frame: &[u8]) -> bool {
    keyframe_size(frame).is_some()
}

/// The picture size a keyframe's first packet declares: the base layer's in its
/// scalability structure, else its frame's header.
pub fn payload_size(payload: &[u8]) -> Option<(u32, u32)> {
    let d = descriptor(payload).ok()?;
    if let Some(&size) = d.sizes.first() {
        return Some(size);
    }
    keyframe_size(payload.get(d.len..)?)
}
