//! Sequence numbers extended to 64 bits: a relay link's layers, a ladder's rungs.

/// Extends a 16-bit sequence number to 64 bits, closest to the last one seen.
#[derive(Debug, Default, Clone, Copy)]
pub struct SeqExtender {
    last: Option<u64>,
}

impl SeqExtender {
    /// `seq` extended; the last one seen moves only forward.
    pub fn extend(&mut self, seq: u16) -> u64 {
        let ext = match self.last {
            None => u64::from(seq) + (1 << 16),
            Some(last) => {
                let delta = i64::from(seq.wrapping_sub(last as u16) as i16);
                last.saturating_add_signed(delta).max(1)
            }
        };
        if self.last.is_none_or(|l| ext > l) {
            self.last = Some(ext);
        }
        ext
    }
}
