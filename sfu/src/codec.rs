//! Codecs the engine forwards, and how to spot the first packet of a keyframe in each.
//!
//! The selector only switches a viewer onto a layer at a packet that starts a keyframe,
//! so these checks decide when a viewer's picture can begin. They look at the RTP payload
//! only (no header) and never panic on short or hostile input.

/// A codec as the router sees it. Payload types differ per session; codecs do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// VP8 (RFC 7741), with picture id rewriting.
    Vp8,
    /// VP9 (RFC 9628).
    Vp9,
    /// H.264 (RFC 6184).
    H264,
    /// AV1 (AOM RTP spec).
    Av1,
    /// Opus audio.
    Opus,
}

impl Codec {
    /// Maps str0m's codec name; `None` for codecs Cascade does not forward.
    pub fn from_str0m(codec: str0m::format::Codec) -> Option<Self> {
        use str0m::format::Codec as C;
        Some(match codec {
            C::Vp8 => Codec::Vp8,
            C::Vp9 => Codec::Vp9,
            C::H264 => Codec::H264,
            C::Av1 => Codec::Av1,
            C::Opus => Codec::Opus,
            _ => return None,
        })
    }

    /// Its name as the content library and the still maker write it (`vp8`, `h264`, …).
    pub fn name(self) -> &'static str {
        match self {
            Codec::Vp8 => "vp8",
            Codec::Vp9 => "vp9",
            Codec::H264 => "h264",
            Codec::Av1 => "av1",
            Codec::Opus => "opus",
        }
    }

    /// The payload type that names this codec on a relay link (fixed, not negotiated).
    pub fn relay_pt(self) -> u8 {
        match self {
            Codec::Vp8 => 96,
            Codec::Vp9 => 98,
            Codec::H264 => 102,
            Codec::Av1 => 45,
            Codec::Opus => 111,
        }
    }

    /// The codec a relay link's payload type names.
    pub fn from_relay_pt(pt: u8) -> Option<Self> {
        [Codec::Vp8, Codec::Vp9, Codec::H264, Codec::Av1, Codec::Opus]
            .into_iter()
            .find(|c| c.relay_pt() == pt)
    }

    /// RTP clock rate.
    pub fn clock_rate(self) -> u32 {
        match self {
            Codec::Opus => 48_000,
            _ => 90_000,
        }
    }

    /// Whether this is a video codec.
    pub fn is_video(self) -> bool {
        !matches!(self, Codec::Opus)
    }

    /// Whether `payload` is the first packet of a keyframe, where a decoder can start.
    pub fn starts_keyframe(self, payload: &[u8]) -> bool {
        match self {
            Codec::Vp8 => str0m::rtp::Vp8Descriptor::parse(payload)
                .map(|d| d.starts_keyframe(payload))
                .unwrap_or(false),
            Codec::Vp9 => vp9_starts_keyframe(payload),
            Codec::H264 => h264_starts_keyframe(payload),
            Codec::Av1 => av1_starts_keyframe(payload),
            Codec::Opus => true,
        }
    }
}

/// Flags a keyframe's start once per picture, on one source's packets in arrival order.
///
/// An H.264 keyframe parses as a start twice (its SPS, sent alone or in a STAP-A, then its
/// IDR slice's first fragment): only the first packet of a timestamp that starts one is
/// the keyframe's start, so a switch, a group of pictures or a keyframe count begins at
/// the parameter sets and never between them and the picture.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyframeStarts {
    last: Option<u32>,
}

impl KeyframeStarts {
    /// Whether this packet (RTP timestamp `ts`) is the first of a keyframe.
    pub fn first(&mut self, codec: Codec, ts: u32, payload: &[u8]) -> bool {
        if self.last == Some(ts) || !codec.starts_keyframe(payload) {
            return false;
        }
        self.last = Some(ts);
        true
    }
}

/// A video packet's place in a temporally scalable stream (VP8 with L1T2 or L1T3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Temporal {
    /// The temporal layer (0 is the base, which every other layer builds on).
    pub tid: u8,
    /// Layer sync: the frame refers only to the base layer, so a viewer can start
    /// receiving its layer here.
    pub sync: bool,
    /// The packet starts a frame.
    pub frame_start: bool,
}

impl Codec {
    /// The temporal layer of a video packet, when the codec's descriptor carries one
    /// (VP8's T bit; VP9, H.264 and AV1 are not parsed for it).
    pub fn temporal(self, payload: &[u8]) -> Option<Temporal> {
        match self {
            Codec::Vp8 => vp8_temporal(payload),
            _ => None,
        }
    }
}

/// RFC 7741 §4.2: `X|R|N|S|R|PID` then, with X, `I|L|T|K|RSV`, the picture id (one or two
/// bytes), TL0PICIDX with L, and with T or K the byte `TID(2)|Y|KEYIDX(5)`.
fn vp8_temporal(payload: &[u8]) -> Option<Temporal> {
    let b0 = *payload.first()?;
    if b0 & 0x80 == 0 {
        return None;
    }
    let x = *payload.get(1)?;
    if x & 0x20 == 0 {
        return None;
    }
    let mut at = 2;
    if x & 0x80 != 0 {
        at += if *payload.get(at)? & 0x80 != 0 { 2 } else { 1 };
    }
    if x & 0x40 != 0 {
        at += 1;
    }
    let t = *payload.get(at)?;
    Some(Temporal {
        tid: t >> 6,
        sync: t & 0x20 != 0,
        frame_start: b0 & 0x10 != 0 && b0 & 0x07 == 0,
    })
}

/// VP9 descriptor byte 0 is `I|P|L|F|B|E|V|Z`: a keyframe starts where P=0 and B=1,
/// on spatial layer 0 when the L byte is present.
fn vp9_starts_keyframe(payload: &[u8]) -> bool {
    let Some(&b0) = payload.first() else {
        return false;
    };
    let not_predicted = b0 & 0x40 == 0;
    let begins_frame = b0 & 0x08 != 0;
    if !(not_predicted && begins_frame) {
        return false;
    }
    if b0 & 0x20 == 0 {
        return true; // no layer indices: a single spatial layer
    }
    // Skip the picture id (1 or 2 bytes) to the layer indices byte; SID is its bits 3..1.
    let mut at = 1;
    if b0 & 0x80 != 0 {
        let Some(&pid) = payload.get(1) else {
            return false;
        };
        at += if pid & 0x80 != 0 { 2 } else { 1 };
    }
    payload.get(at).is_some_and(|l| (l >> 1) & 0x07 == 0)
}

const H264_IDR: u8 = 5;
const H264_SPS: u8 = 7;
const H264_STAP_A: u8 = 24;
const H264_FU_A: u8 = 28;

/// An H.264 keyframe starts at its SPS (alone or in a STAP-A), or at the first fragment
/// of an IDR slice when the encoder sends no SPS in band.
fn h264_starts_keyframe(payload: &[u8]) -> bool {
    let Some(&b0) = payload.first() else {
        return false;
    };
    match b0 & 0x1f {
        H264_SPS | H264_IDR => true,
        H264_STAP_A => {
            let mut at = 1;
            while let (Some(&hi), Some(&lo)) = (payload.get(at), payload.get(at + 1)) {
                let len = usize::from(u16::from_be_bytes([hi, lo]));
                match payload.get(at + 2) {
                    Some(&nal) if matches!(nal & 0x1f, H264_SPS | H264_IDR) => return true,
                    Some(_) => at += 2 + len,
                    None => return false,
                }
            }
            false
        }
        H264_FU_A => payload
            .get(1)
            .is_some_and(|fu| fu & 0x80 != 0 && fu & 0x1f == H264_IDR),
        _ => false,
    }
}

/// AV1 aggregation header `Z|Y|W W|N|-|-|-`: N=1 starts a coded video sequence, and Z=0
/// says the packet does not continue an OBU from the previous one.
fn av1_starts_keyframe(payload: &[u8]) -> bool {
    payload
        .first()
        .is_some_and(|b| b & 0x08 != 0 && b & 0x80 == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_keyframe_start_needs_s_bit_pid0_and_p_bit_clear() {
        // X=1, S=1, PID=0; I=1 with a 15-bit picture id; VP8 header byte with P=0.
        let key = [0x90, 0x80, 0x81, 0x23, 0x10];
        assert!(Codec::Vp8.starts_keyframe(&key));
        let delta = [0x90, 0x80, 0x81, 0x23, 0x11];
        assert!(!Codec::Vp8.starts_keyframe(&delta));
        let continuation = [0x80, 0x80, 0x81, 0x23, 0x10];
        assert!(!Codec::Vp8.starts_keyframe(&continuation));
        assert!(!Codec::Vp8.starts_keyframe(&[]));
        assert!(!Codec::Vp8.starts_keyframe(&[0x90, 0x80]));
    }

    #[test]
    fn vp8_temporal_layer_and_sync_bit() {
        // X, S, PID 0; I with a 15-bit picture id, L, T; TL0PICIDX; TID 2 with Y.
        let p = [0x90, 0xe0, 0x81, 0x23, 0x07, 0xa0, 0x11];
        let t = Codec::Vp8.temporal(&p).unwrap();
        assert_eq!((t.tid, t.sync, t.frame_start), (2, true, true));
        // A 7-bit picture id, no TL0PICIDX, TID 1 without Y, a continuation packet.
        let p = [0x80, 0xa0, 0x05, 0x40, 0x11];
        let t = Codec::Vp8.temporal(&p).unwrap();
        assert_eq!((t.tid, t.sync, t.frame_start), (1, false, false));
        // No T bit, no extension, truncated: no temporal layer.
        assert_eq!(Codec::Vp8.temporal(&[0x90, 0x80, 0x81, 0x23, 0x10]), None);
        assert_eq!(Codec::Vp8.temporal(&[0x10, 0x10]), None);
        assert_eq!(Codec::Vp8.temporal(&[0x90, 0xe0, 0x81]), None);
        assert_eq!(Codec::Vp9.temporal(&p), None);
    }

    #[test]
    fn h264_keyframe_in_single_stap_a_and_fu_a() {
        assert!(Codec::H264.starts_keyframe(&[0x67, 0x42]));
        // STAP-A with an SPS of length 2 then a PPS.
        assert!(Codec::H264.starts_keyframe(&[0x18, 0x00, 0x02, 0x67, 0x42, 0x00, 0x01, 0x68]));
        // STAP-A with only non-IDR slices.
        assert!(!Codec::H264.starts_keyframe(&[0x18, 0x00, 0x01, 0x41]));
        // FU-A start of an IDR, then a middle fragment.
        assert!(Codec::H264.starts_keyframe(&[0x7c, 0x85]));
        assert!(!Codec::H264.starts_keyframe(&[0x7c, 0x05]));
        // Truncated STAP-A length does not run off the end.
        assert!(!Codec::H264.starts_keyframe(&[0x18, 0xff, 0xff]));
        assert!(!Codec::H264.starts_keyframe(&[0x41, 0x9a]));
    }

    /// GStreamer's `rtph264pay` (and OBS) send the SPS and PPS alone before the IDR
    /// picture's fragments: the keyframe starts at the SPS only.
    #[test]
    fn an_h264_keyframe_starts_once_at_its_parameter_sets() {
        let mut k = KeyframeStarts::default();
        let (sps, pps, idr_first, idr_last) =
            ([0x67, 0x42], [0x68, 0xce], [0x7c, 0x85], [0x7c, 0x45]);
        let flags: Vec<bool> = [&sps, &pps, &idr_first, &idr_last]
            .into_iter()
            .map(|p| k.first(Codec::H264, 9000, p))
            .collect();
        assert_eq!(flags, [true, false, false, false]);
        // A delta picture, then the next keyframe (no SPS in band: its IDR fragment).
        assert!(!k.first(Codec::H264, 12000, &[0x41, 0x9a]));
        assert!(k.first(Codec::H264, 15000, &idr_first));
        assert!(
            !k.first(Codec::H264, 15000, &idr_first),
            "a duplicate is not a new start"
        );
        // VP8: one start per picture anyway.
        assert!(k.first(Codec::Vp8, 18000, &[0x90, 0x80, 0x81, 0x23, 0x10]));
    }

    #[test]
    fn vp9_and_av1_keyframe_starts() {
        assert!(Codec::Vp9.starts_keyframe(&[0x08]));
        assert!(!Codec::Vp9.starts_keyframe(&[0x48]));
        assert!(!Codec::Vp9.starts_keyframe(&[0x00]));
        // I=1 with 15-bit picture id, L=1, SID=1: not the base spatial layer.
        assert!(!Codec::Vp9.starts_keyframe(&[0xa8, 0x80, 0x01, 0x02]));
        assert!(Codec::Vp9.starts_keyframe(&[0xa8, 0x80, 0x01, 0x00]));
        assert!(Codec::Av1.starts_keyframe(&[0x08]));
        assert!(!Codec::Av1.starts_keyframe(&[0x88]));
        assert!(!Codec::Av1.starts_keyframe(&[]));
    }
}
