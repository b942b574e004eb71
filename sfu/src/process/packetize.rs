//! Encoded frames back into RTP payloads, one outgoing stream per layer: VP8 (RFC 7741,
//! [`Vp8Payloader`]) and H.264 (RFC 6184, [`H264Payloader`]).
//!
//! str0m 0.25 exposes a `Vp8Packetizer`, but with no way to turn on the picture id (its
//! field is private and `Default` leaves it off). The router's VP8 rewrite
//! ([`crate::forward::vp8`]) keeps picture ids continuous across layer switches, and a
//! browser's decoder uses them to notice loss, so each transcoded layer carries a 15-bit
//! picture id, as Chromium's own simulcast layers do. The descriptor is 4 bytes:
//! `X|S|PID=0`, `I`, `M|picture id`.

/// Largest RTP payload written (descriptor included): under a 1280-byte MTU with room for
/// the RTP header, extensions and SRTP's tag.
pub const MAX_PAYLOAD: usize = 1100;
const DESCRIPTOR: usize = 4;

/// The packetizer of one H.264 layer: str0m's `H264Packetizer` (RFC 6184 packetization
/// mode 1: a NAL unit that fits goes alone, a larger one in FU-A fragments, and the SPS and
/// PPS before an IDR picture together in one STAP-A, the first packet of the keyframe, as
/// libwebrtc sends them), and the layer's sequence numbers. H.264 has no picture id to
/// carry across layer switches, so str0m's packetizer is used as it is.
#[derive(Debug, Clone)]
pub struct H264Payloader {
    seq: u16,
    inner: str0m::unversioned::H264Packetizer,
}

impl H264Payloader {
    /// Starting at `seq`.
    pub fn new(seq: u16) -> Self {
        H264Payloader {
            seq,
            inner: Default::default(),
        }
    }

    /// The packets of one access unit in Annex B, appended to `out`.
    pub fn packetize(&mut self, au: &[u8], ts: u32, keyframe: bool, out: &mut Vec<LayerPacket>) {
        use str0m::unversioned::Packetizer;
        let Ok(payloads) = self.inner.packetize(MAX_PAYLOAD, au) else {
            return;
        };
        number(&mut self.seq, ts, keyframe, payloads, out);
    }
}

/// The payloads of one frame as a layer's packets, numbered from `seq` on: the last one
/// marked, the first one flagged when the frame is a keyframe.
fn number(
    seq: &mut u16,
    ts: u32,
    keyframe: bool,
    payloads: Vec<Vec<u8>>,
    out: &mut Vec<LayerPacket>,
) {
    let count = payloads.len();
    for (i, payload) in payloads.into_iter().enumerate() {
        out.push(LayerPacket {
            seq: *seq,
            ts,
            marker: i + 1 == count,
            keyframe: keyframe && i == 0,
            payload,
        });
        *seq = seq.wrapping_add(1);
    }
}

/// One packet of a transcoded layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerPacket {
    /// The layer's own sequence number.
    pub seq: u16,
    /// The source frame's RTP timestamp (the layers share the source's clock).
    pub ts: u32,
    /// Last packet of the frame.
    pub marker: bool,
    /// First packet of a keyframe.
    pub keyframe: bool,
    /// The RTP payload (VP8: descriptor and data; H.264: a NAL unit, STAP-A or FU-A).
    pub payload: Vec<u8>,
}

impl LayerPacket {
    /// This packet as one of a `codec` stream the recorder's (and the ladder's) assembly
    /// takes: what a viewer of the layer reassembles.
    pub fn into_rec(self, codec: crate::codec::Codec) -> crate::record::assemble::RecPacket {
        crate::record::assemble::RecPacket {
            codec,
            generation: 1,
            encoding: 0,
            seq: self.seq,
            ts: self.ts,
            marker: self.marker,
            keyframe: self.keyframe,
            payload: self.payload.into(),
        }
    }
}

/// The packetizer of one layer: its sequence numbers and picture ids.
#[derive(Debug, Clone)]
pub struct Vp8Payloader {
    seq: u16,
    picture_id: u16,
}

impl Vp8Payloader {
    /// Starting at `seq` and picture id `picture_id` (random starts are the caller's).
    pub fn new(seq: u16, picture_id: u16) -> Self {
        Vp8Payloader {
            seq,
            picture_id: picture_id & 0x7fff,
        }
    }

    /// The packets of one frame, appended to `out`.
    pub fn packetize(&mut self, frame: &[u8], ts: u32, keyframe: bool, out: &mut Vec<LayerPacket>) {
        if frame.is_empty() {
            return;
        }
        let chunk = MAX_PAYLOAD - DESCRIPTOR;
        let pid = self.picture_id;
        let payloads = frame.chunks(chunk).enumerate().map(|(i, part)| {
            let mut payload = Vec::with_capacity(DESCRIPTOR + part.len());
            let start = if i == 0 { 0x10 } else { 0 };
            payload.push(0x80 | start);
            payload.push(0x80);
            payload.push(0x80 | (pid >> 8) as u8);
            payload.push(pid as u8);
            payload.extend_from_slice(part);
            payload
        });
        number(&mut self.seq, ts, keyframe, payloads.collect(), out);
        self.picture_id = (pid + 1) & 0x7fff;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Codec;
    use crate::record::assemble::Assembler;

    fn frame(len: usize, key: bool) -> Vec<u8> {
        // A VP8 frame tag: bit 0 of the first byte is 0 for a keyframe.
        let mut f: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        f[0] = if key { 0x10 } else { 0x11 };
        f
    }

    #[test]
    fn splits_marks_and_numbers_a_frame() {
        let mut p = Vp8Payloader::new(65534, 0x7ffe);
        let mut out = Vec::new();
        p.packetize(&frame(2500, true), 9000, true, &mut out);
        assert_eq!(out.len(), 3);
        assert_eq!(
            out.iter().map(|p| p.seq).collect::<Vec<_>>(),
            vec![65534, 65535, 0]
        );
        assert_eq!(
            out.iter().map(|p| p.marker).collect::<Vec<_>>(),
            [false, false, true]
        );
        assert!(out
            .iter()
            .all(|p| p.payload.len() <= MAX_PAYLOAD && p.ts == 9000));
        assert_eq!(&out[0].payload[..4], &[0x90, 0x80, 0xff, 0xfe]);
        assert_eq!(&out[1].payload[..4], &[0x80, 0x80, 0xff, 0xfe]);
        // What the router checks to gate a layer switch.
        assert!(Codec::Vp8.starts_keyframe(&out[0].payload));
        assert!(!Codec::Vp8.starts_keyframe(&out[1].payload));
        out.clear();
        p.packetize(&frame(10, false), 12000, false, &mut out);
        // The picture id wraps in 15 bits.
        assert_eq!(&out[0].payload[..4], &[0x90, 0x80, 0xff, 0xff]);
        p.packetize(&frame(10, false), 15000, false, &mut out);
        assert_eq!(&out[1].payload[..4], &[0x90, 0x80, 0x80, 0x00]);
        assert!(!Codec::Vp8.starts_keyframe(&out[1].payload));
    }

    /// What it writes, str0m's depacketizer (the recorder's assembly) reads back whole.
    #[test]
    fn the_assembler_gets_the_frames_back() {
        let mut p = Vp8Payloader::new(100, 5);
        let mut pkts = Vec::new();
        let frames = [frame(3000, true), frame(500, false), frame(1096, false)];
        for (i, f) in frames.iter().enumerate() {
            p.packetize(f, i as u32 * 3000, i == 0, &mut pkts);
        }
        let mut asm = Assembler::new(Codec::Vp8);
        let now = std::time::Instant::now();
        let mut got = Vec::new();
        for pk in &pkts {
            asm.push(&pk.clone().into_rec(Codec::Vp8), now, &mut got);
        }
        assert_eq!(
            got.iter().map(|f| &f.data).collect::<Vec<_>>(),
            frames.iter().collect::<Vec<_>>()
        );
        assert!(got[0].keyframe && !got[1].keyframe);
    }
}
