//! RFC 4571 framing, as ICE-TCP (RFC 6544 §3) carries STUN, DTLS and SRTP: each packet
//! preceded by its length as two big-endian bytes. Sans-I/O: bytes in, packets out.

/// Largest packet taken from a peer. WebRTC stacks keep packets under the path MTU (str0m
/// and browsers stay near 1200 bytes), so anything bigger is not theirs.
pub const MAX_FRAME: usize = 1600;

/// Why a connection's bytes cannot be framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// A length of zero: no packet is empty.
    Empty,
    /// A length over [`MAX_FRAME`].
    Oversized(usize),
}

/// Splits a byte stream into packets. Holds at most one partial frame (under
/// `2 + MAX_FRAME` bytes) between calls.
#[derive(Debug, Default)]
pub struct Deframer {
    buf: Vec<u8>,
}

impl Deframer {
    /// Appends bytes read from the connection.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next whole packet, `Ok(None)` when more bytes are needed, or an error after
    /// which the connection must be closed (the stream has lost its framing).
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        if self.buf.len() < 2 {
            return Ok(None);
        }
        let len = usize::from(u16::from_be_bytes([self.buf[0], self.buf[1]]));
        if len == 0 {
            return Err(FrameError::Empty);
        }
        if len > MAX_FRAME {
            return Err(FrameError::Oversized(len));
        }
        if self.buf.len() < 2 + len {
            return Ok(None);
        }
        let frame = self.buf[2..2 + len].to_vec();
        self.buf.drain(..2 + len);
        Ok(Some(frame))
    }

    /// Bytes held waiting for the rest of a frame.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// `data` with its length prefix, ready to write; `None` if it cannot be framed (longer
/// than a u16 length, or empty).
pub fn frame(data: &[u8]) -> Option<Vec<u8>> {
    let len = u16::try_from(data.len()).ok().filter(|l| *l > 0)?;
    let mut out = Vec::with_capacity(2 + data.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(data);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_anywhere_come_out_whole_and_in_order() {
        let packets: Vec<Vec<u8>> = (1..=40u8).map(|i| vec![i; usize::from(i) * 30]).collect();
        let stream: Vec<u8> = packets.iter().flat_map(|p| frame(p).unwrap()).collect();
        for chunk in [1, 2, 3, 7, 500, stream.len()] {
            let mut d = Deframer::default();
            let mut out = Vec::new();
            for piece in stream.chunks(chunk) {
                d.push(piece);
                while let Some(f) = d.next_frame().unwrap() {
                    out.push(f);
                }
            }
            assert_eq!(out, packets, "read {chunk} bytes at a time");
            assert_eq!(d.pending(), 0);
        }
    }

    #[test]
    fn an_oversized_or_empty_length_is_an_error_before_its_body_arrives() {
        let mut d = Deframer::default();
        d.push(&[0x06, 0x41]); // 1601
        assert_eq!(d.next_frame(), Err(FrameError::Oversized(1601)));
        let mut d = Deframer::default();
        d.push(&[0, 0, 1]);
        assert_eq!(d.next_frame(), Err(FrameError::Empty));
        let mut d = Deframer::default();
        d.push(&[0x06, 0x40]); // exactly MAX_FRAME: waits for its body
        assert_eq!(d.next_frame(), Ok(None));
    }

    #[test]
    fn framing_refuses_what_a_length_cannot_say() {
        assert_eq!(frame(&[]), None);
        assert_eq!(frame(&vec![0; 70_000]), None);
        assert_eq!(frame(&[9, 9]), Some(vec![0, 2, 9, 9]));
    }
}
