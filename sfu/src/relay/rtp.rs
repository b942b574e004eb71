//! The RTP packets a relay link carries: the publisher's payload behind a plain 12-byte
//! header (no CSRC, no extension, no padding). The payload type names the codec
//! ([`Codec::relay_pt`]), the SSRC is the upstream publisher's generation (a new one tells
//! the far side the publisher restarted), and sequence number and timestamp are the
//! publisher's own: a pipe forwards unrewritten.

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::Codec;
use crate::forward::Forward;

/// Bytes of the header.
pub const HEADER: usize = 12;

/// Builds the relay RTP packet of a pipe's forward.
pub fn encode(fwd: &Forward) -> Bytes {
    let mut b = BytesMut::with_capacity(HEADER + fwd.payload.len());
    b.put_u8(0x80);
    b.put_u8(u8::from(fwd.marker) << 7 | fwd.codec.relay_pt());
    b.put_u16(fwd.seq as u16);
    b.put_u32(fwd.ts);
    b.put_u32(fwd.source.generation);
    b.put_slice(&fwd.payload);
    b.freeze()
}

/// A relay RTP packet, read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The codec its payload type names.
    pub codec: Codec,
    /// Marker bit.
    pub marker: bool,
    /// The publisher's sequence number (16 bits).
    pub seq: u16,
    /// The publisher's timestamp.
    pub ts: u32,
    /// The upstream publisher's generation.
    pub generation: u32,
}

/// Reads the header of a relay RTP packet; `None` for anything that is not one (a peer's
/// bytes: never a panic). The payload starts at [`HEADER`].
pub fn decode(rtp: &[u8]) -> Option<Header> {
    // Version 2, no padding, no extension, no CSRC: only what `encode` writes.
    if rtp.len() < HEADER || rtp[0] != 0x80 {
        return None;
    }
    Some(Header {
        codec: Codec::from_relay_pt(rtp[1] & 0x7f)?,
        marker: rtp[1] & 0x80 != 0,
        seq: u16::from_be_bytes([rtp[2], rtp[3]]),
        ts: u32::from_be_bytes([rtp[4], rtp[5], rtp[6], rtp[7]]),
        generation: u32::from_be_bytes([rtp[8], rtp[9], rtp[10], rtp[11]]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::{Kind, SourceKey};
    use std::sync::Arc;

    #[test]
    fn a_forward_survives_the_link() {
        for codec in [Codec::Vp8, Codec::Vp9, Codec::H264, Codec::Av1, Codec::Opus] {
            let fwd = Forward {
                kind: if codec.is_video() {
                    Kind::Video
                } else {
                    Kind::Audio
                },
                codec,
                seq: 0x1_2345,
                ts: 0xdead_beef,
                marker: true,
                payload: Arc::from(vec![9u8; 30]),
                vp8: None,
                switched: false,
                source: SourceKey {
                    generation: 77,
                    encoding: 2,
                },
                keyframe: true,
            };
            let rtp = encode(&fwd);
            let h = decode(&rtp).unwrap();
            assert_eq!(
                h,
                Header {
                    codec,
                    marker: true,
                    seq: 0x2345,
                    ts: 0xdead_beef,
                    generation: 77
                }
            );
            assert_eq!(&rtp[HEADER..], &[9u8; 30][..]);
        }
    }

    #[test]
    fn anything_else_is_refused() {
        assert!(decode(&[0x80; 11]).is_none(), "short");
        let mut rtp = vec![0x80, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1];
        assert!(decode(&rtp).is_some());
        rtp[0] = 0x90; // an extension
        assert!(decode(&rtp).is_none());
        rtp[0] = 0x80;
        rtp[1] = 13; // no codec
        assert!(decode(&rtp).is_none());
    }
}
