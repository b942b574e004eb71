//! Which video frames a viewer could decode: a frame counts when every packet of it
//! arrived (repairs included), from the one that starts it to the one with the marker.
//!
//! Frames are told apart by the VP8 picture id the viewer receives: the server keeps it
//! continuous across layer switches, so a missing id is a frame lost whole. Only the last
//! [`OPEN`] frames are kept open for late packets and repairs; older ones are judged.

use std::collections::BTreeMap;

/// Frames kept open behind the newest (about a second at 30 fps): a repair arrives within
/// a few round trips.
const OPEN: u64 = 32;
/// Packets remembered per frame; a frame of more is judged on its count alone.
const PACKETS_KEPT: usize = 64;

#[derive(Debug, Clone, Default)]
struct Frame {
    /// The stamp sequence numbers of its first packet and of its marker packet.
    first: Option<u32>,
    last: Option<u32>,
    /// The stamp sequence numbers received (no duplicates), the first [`PACKETS_KEPT`].
    got: Vec<u32>,
    /// Packets received beyond those, counted without looking for duplicates.
    extra: usize,
}

impl Frame {
    fn whole(&self) -> bool {
        match (self.first, self.last) {
            (Some(f), Some(l)) => l.wrapping_sub(f) as usize + 1 == self.got.len() + self.extra,
            _ => false,
        }
    }
}

/// One viewer's frames since [`Frames::reset`].
#[derive(Debug, Clone, Default)]
pub struct Frames {
    open: BTreeMap<u64, Frame>,
    /// The newest picture id, unwrapped.
    newest: Option<u64>,
    /// The first picture id counted since the reset, unwrapped.
    from: Option<u64>,
    /// Frames judged whole.
    whole: u64,
}

impl Frames {
    /// Counts a video packet: its frame's 15-bit picture id, whether it starts the frame
    /// or ends it (the marker), and its stamp's sequence number.
    pub fn packet(&mut self, picture_id: u16, start: bool, marker: bool, seq: u32) {
        let id = self.unwrap(picture_id);
        if self.from.is_some_and(|f| id < f) {
            return;
        }
        self.from.get_or_insert(id);
        let f = self.open.entry(id).or_default();
        if start {
            f.first = Some(seq);
        }
        if marker {
            f.last = Some(seq);
        }
        if f.got.len() == PACKETS_KEPT {
            f.extra += 1;
        } else if !f.got.contains(&seq) {
            f.got.push(seq);
        }
        if self.newest.is_none_or(|n| id > n) {
            self.newest = Some(id);
        }
        while let Some((&oldest, _)) = self.open.first_key_value() {
            if oldest + OPEN > id {
                break;
            }
            self.judge(oldest);
        }
    }

    /// The nearest unwrapped id to the newest for a 15-bit one.
    fn unwrap(&self, pid: u16) -> u64 {
        let Some(n) = self.newest else {
            return u64::from(pid) + (1 << 15);
        };
        let base = n & !0x7fff;
        [base.wrapping_sub(1 << 15), base, base + (1 << 15)]
            .into_iter()
            .map(|b| b + u64::from(pid))
            .min_by_key(|&c| c.abs_diff(n))
            .unwrap_or(n)
    }

    fn judge(&mut self, id: u64) {
        if let Some(f) = self.open.remove(&id) {
            self.whole += u64::from(f.whole());
        }
    }

    /// (whole frames, frames sent), the ones still open judged as they stand: every id
    /// from the first to the newest was a frame, so one that never arrived counts as sent.
    pub fn totals(&self) -> (u64, u64) {
        let (Some(from), Some(newest)) = (self.from, self.newest) else {
            return (0, 0);
        };
        let open_whole = self.open.values().filter(|f| f.whole()).count() as u64;
        (self.whole + open_whole, newest - from + 1)
    }

    /// Starts counting anew from the next frame.
    pub fn reset(&mut self) {
        self.open.clear();
        self.from = None;
        self.whole = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_frames_lost_ones_and_repairs() {
        let mut f = Frames::default();
        // Frame 10: three packets. Frame 11: lost whole. Frame 12: its middle repaired late.
        f.packet(10, true, false, 0);
        f.packet(10, false, false, 1);
        f.packet(10, false, true, 2);
        f.packet(12, true, false, 3);
        f.packet(12, false, true, 5);
        assert_eq!(f.totals(), (1, 3));
        f.packet(12, false, false, 4);
        f.packet(12, false, false, 4);
        assert_eq!(
            f.totals(),
            (2, 3),
            "repaired, a duplicate not counted twice"
        );
        // A frame without its first packet is not whole.
        f.packet(13, false, true, 6);
        assert_eq!(f.totals(), (2, 4));
    }

    #[test]
    fn ids_wrap_and_old_frames_are_judged() {
        let mut f = Frames::default();
        let mut seq = 0;
        for i in 0..100u16 {
            let pid = (0x7fd0 + i) & 0x7fff;
            f.packet(pid, true, true, seq);
            seq += 1;
        }
        assert_eq!(f.totals(), (100, 100));
        assert!(f.open.len() as u64 <= OPEN);
        f.reset();
        f.packet(0x7fd0 + 100 - 0x8000 + 1, true, true, seq);
        assert_eq!(f.totals(), (1, 1));
    }
}
