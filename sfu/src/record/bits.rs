//! A bit reader for the codec headers the recorder reads (VP9's uncompressed header, AV1's
//! sequence header): bits most significant first, `None` past the end.

/// Reads `data` bit by bit.
#[derive(Debug)]
pub(crate) struct Bits<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Bits<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Bits { data, at: 0 }
    }

    /// The next `n` bits (at most 32) as a number.
    pub(crate) fn read(&mut self, n: usize) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let b = self.data.get(self.at / 8)?;
            v = v << 1 | u32::from(b >> (7 - self.at % 8) & 1);
            self.at += 1;
        }
        Some(v)
    }

    /// The next bit as a flag.
    pub(crate) fn flag(&mut self) -> Option<bool> {
        Some(self.read(1)? == 1)
    }
}
