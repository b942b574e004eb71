//! What each synthetic packet carries after its codec header: which stream it belongs to,
//! its own sequence number and when it was sent, so a viewer can count loss and one-way
//! delay on one clock (the load generator's) whatever the server rewrites.

/// Marks a stamped payload.
pub const MAGIC: [u8; 4] = *b"CSLT";
/// Bytes of a stamp.
pub const LEN: usize = 16;
/// Stream id of the Opus audio (video layers are 0, 1, 2 from low to high).
pub const AUDIO: u8 = 3;

/// One packet's stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// 0..=2 video layers (low to high), [`AUDIO`].
    pub stream: u8,
    /// Per-stream sequence number, from 0.
    pub seq: u32,
    /// Send time, microseconds since the load generator's epoch.
    pub sent_us: u64,
}

impl Stamp {
    /// Appends the stamp's 16 bytes.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&MAGIC);
        out.push(self.stream);
        out.extend_from_slice(&self.seq.to_be_bytes());
        // 56 bits of microseconds: 2,284 years.
        out.extend_from_slice(&self.sent_us.to_be_bytes()[1..]);
    }

    /// Reads a stamp at the start of `b`.
    pub fn read(b: &[u8]) -> Option<Stamp> {
        if b.len() < LEN || b[..4] != MAGIC {
            return None;
        }
        let seq = u32::from_be_bytes([b[5], b[6], b[7], b[8]]);
        let mut t = [0u8; 8];
        t[1..].copy_from_slice(&b[9..16]);
        Some(Stamp {
            stream: b[4],
            seq,
            sent_us: u64::from_be_bytes(t),
        })
    }
}

/// Bytes of the VP8 payload descriptor the publisher writes (X, I with a 15-bit picture
/// id, L, T/K), then one byte of VP8 payload header, before the stamp.
pub const VP8_HEADER: usize = 7;

/// A 6-byte VP8 payload descriptor (RFC 7741): X=1, S on a frame's first packet,
/// partition 0; a 15-bit picture id, TL0PICIDX, and TID 0.
pub fn vp8_descriptor(first: bool, picture_id: u16, tl0: u8) -> Vec<u8> {
    vec![
        if first { 0x90 } else { 0x80 },
        0xe0,
        0x80 | (picture_id >> 8) as u8 & 0x7f,
        picture_id as u8,
        tl0,
        0x00,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_foreign_bytes() {
        let s = Stamp {
            stream: 2,
            seq: 0x0102_0304,
            sent_us: 0x00aa_bbcc_ddee_ff11,
        };
        let mut b = Vec::new();
        s.write(&mut b);
        assert_eq!(b.len(), LEN);
        assert_eq!(Stamp::read(&b), Some(s));
        b[0] = b'X';
        assert_eq!(Stamp::read(&b), None);
        assert_eq!(Stamp::read(&b[..10]), None);
    }
}
