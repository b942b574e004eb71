//! VP8 picture id and TL0PICIDX continuity across source switches (RFC 7741 §4.2).
//!
//! Each simulcast layer numbers its pictures on its own. When a viewer moves to another
//! layer, the decoder must see picture ids go on by one, or it assumes lost frames and
//! asks for a keyframe again. The munger keeps an offset per field, reset at each splice,
//! and hands str0m a [`Vp8Patch`] that rewrites the descriptor while it serialises.
//!
//! A picture a viewer does not get (a temporal layer above what its path carries) is
//! taken out with [`Vp8Munger::skip`]: the picture ids after it close up, since a decoder
//! waits for a missing picture id before it decodes what follows. TL0PICIDX needs no
//! closing up: the base layer is never skipped.

use std::collections::VecDeque;

use str0m::rtp::{Vp8Descriptor, Vp8Patch};

const PID_MOD_15: u16 = 0x8000;
const PID_MOD_7: u16 = 0x80;
/// Skipped picture ids remembered for late packets (about two seconds at 30 fps).
const MAX_SKIPS: usize = 64;

/// The modulus of a payload's picture id field: 15 bits with the M bit, else 7.
fn field_modulus(payload: &[u8]) -> u16 {
    match (payload.first(), payload.get(1), payload.get(2)) {
        (Some(b0), Some(x), Some(id)) if b0 & 0x80 != 0 && x & 0x80 != 0 && id & 0x80 != 0 => {
            PID_MOD_15
        }
        _ => PID_MOD_7,
    }
}

/// Whether picture id `a` comes after `b` (serial number arithmetic in `modulus`, the
/// field's: 7 or 15 bits).
fn newer(a: u16, b: u16, modulus: u16) -> bool {
    let d = a.wrapping_sub(b) % modulus;
    d != 0 && d < modulus / 2
}

/// The rewrite of one packet's descriptor: the patch for str0m and the ids it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp8Rewrite {
    /// Applied by str0m while serialising.
    pub patch: Vp8Patch,
    /// The outgoing picture id, if the descriptor has one.
    pub picture_id: Option<u16>,
    /// The outgoing TL0PICIDX, if the descriptor has one.
    pub tl0_pic_idx: Option<u8>,
}

/// Picture id / TL0PICIDX offsets for one outgoing VP8 stream.
#[derive(Debug, Clone, Default)]
pub struct Vp8Munger {
    pid_offset: u16,
    tl0_offset: u8,
    last_pid: Option<u16>,
    last_tl0: Option<u8>,
    /// The newest incoming picture id of the current source, forwarded or skipped.
    last_in: Option<u16>,
    /// Incoming picture ids skipped since the splice, oldest first.
    skipped: VecDeque<u16>,
    /// Set by a splice: the next packet's fields define the offsets.
    resync: bool,
}

impl Vp8Munger {
    /// Marks a splice: the next packet (a keyframe of the new source) continues the ids.
    pub fn switch_source(&mut self) {
        self.resync = true;
        self.last_in = None;
        self.skipped.clear();
    }

    /// Takes the picture of this packet out of the outgoing stream: the picture ids after
    /// it close up. Only a picture newer than any seen counts (its other packets, and
    /// late pictures, change nothing).
    pub fn skip(&mut self, payload: &[u8]) {
        let Some(pid) = Vp8Descriptor::parse(payload)
            .ok()
            .and_then(|d| d.picture_id())
        else {
            return;
        };
        let m = field_modulus(payload);
        if self.resync || self.last_in.is_some_and(|l| !newer(pid, l, m)) {
            return;
        }
        if self.skipped.len() == MAX_SKIPS {
            self.skipped.pop_front();
        }
        self.skipped.push_back(pid);
        self.pid_offset = self.pid_offset.wrapping_sub(1);
        self.last_in = Some(pid);
    }

    /// Whether this packet's picture was taken out with [`Vp8Munger::skip`] (a late
    /// packet of it stays out too).
    pub fn was_skipped(&self, payload: &[u8]) -> bool {
        Vp8Descriptor::parse(payload)
            .ok()
            .and_then(|d| d.picture_id())
            .is_some_and(|pid| self.skipped.contains(&pid))
    }

    /// Returns the patch that makes this packet's ids continuous, or `None` when the
    /// descriptor carries no ids (or is malformed, in which case it is sent unchanged).
    pub fn munge(&mut self, payload: &[u8]) -> Option<Vp8Rewrite> {
        let desc = Vp8Descriptor::parse(payload).ok()?;
        let mut patch = desc.patch();
        let (mut picture_id, mut tl0_pic_idx) = (None, None);
        if let Some(pid) = desc.picture_id() {
            let modulus = field_modulus(payload);
            if self.resync {
                let next = self.last_pid.map_or(pid, |p| (p + 1) % modulus);
                self.pid_offset = next.wrapping_sub(pid);
            }
            // A late picture: the skips after it had not happened when it was due.
            let later = match self.last_in {
                Some(l) if newer(l, pid, modulus) => self
                    .skipped
                    .iter()
                    .filter(|&&s| newer(s, pid, modulus) && !newer(s, l, modulus))
                    .count() as u16,
                _ => {
                    self.last_in = Some(pid);
                    0
                }
            };
            // A 7-bit field can only carry 7 bits; the decoder wraps it the same way.
            let out = pid.wrapping_add(self.pid_offset).wrapping_add(later) % modulus;
            self.last_pid = Some(out);
            picture_id = Some(out);
            patch = patch.picture_id(out);
        }
        if let Some(tl0) = desc.tl0_pic_idx() {
            if self.resync {
                let next = self.last_tl0.map_or(tl0, |t| t.wrapping_add(1));
                self.tl0_offset = next.wrapping_sub(tl0);
            }
            let out = tl0.wrapping_add(self.tl0_offset);
            self.last_tl0 = Some(out);
            tl0_pic_idx = Some(out);
            patch = patch.tl0_pic_idx(out);
        }
        self.resync = false;
        // Only fails when a field is missing, which the checks above rule out.
        let patch = patch.build().ok()?;
        Some(Vp8Rewrite {
            patch,
            picture_id,
            tl0_pic_idx,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A VP8 descriptor with a 15-bit picture id and TL0PICIDX, then one payload byte.
    fn vp8(pid: u16, tl0: u8, key: bool) -> Vec<u8> {
        let s_bit = 0x10;
        vec![
            0x80 | s_bit,
            0x80 | 0x40 | 0x20, // I, L and T
            0x80 | (pid >> 8) as u8,
            pid as u8,
            tl0,
            0x00, // TID 0
            if key { 0x00 } else { 0x01 },
        ]
    }

    /// The ids written, checked against the patch those ids would make.
    fn apply(payload: &[u8], rw: Option<Vp8Rewrite>) -> (u16, u8) {
        let rw = rw.expect("a rewrite");
        let (pid, tl0) = (rw.picture_id.unwrap(), rw.tl0_pic_idx.unwrap());
        let d = Vp8Descriptor::parse(payload).unwrap();
        let want = d.patch().picture_id(pid).tl0_pic_idx(tl0).build().unwrap();
        assert_eq!(want, rw.patch, "the patch writes the reported ids");
        (pid, tl0)
    }

    #[test]
    fn ids_continue_across_switch() {
        let mut m = Vp8Munger::default();
        m.switch_source();
        assert_eq!(
            apply(&vp8(100, 7, true), m.munge(&vp8(100, 7, true))),
            (100, 7)
        );
        assert_eq!(
            apply(&vp8(101, 8, false), m.munge(&vp8(101, 8, false))),
            (101, 8)
        );
        // Switch to a layer whose ids are far away and about to wrap.
        m.switch_source();
        let k = vp8(0x7fff, 250, true);
        assert_eq!(apply(&k, m.munge(&k)), (102, 9));
        let d = vp8(0, 251, false);
        assert_eq!(apply(&d, m.munge(&d)), (103, 10));
    }

    #[test]
    fn output_wraps_at_fifteen_bits() {
        let mut m = Vp8Munger::default();
        m.switch_source();
        let a = vp8(0x7ffe, 0, true);
        assert_eq!(apply(&a, m.munge(&a)).0, 0x7ffe);
        m.switch_source();
        let b = vp8(5, 0, true);
        assert_eq!(apply(&b, m.munge(&b)).0, 0x7fff);
        let c = vp8(6, 0, false);
        assert_eq!(apply(&c, m.munge(&c)).0, 0);
    }

    #[test]
    fn skipped_pictures_close_up_and_late_packets_keep_their_ids() {
        let mut m = Vp8Munger::default();
        m.switch_source();
        assert_eq!(apply(&vp8(10, 1, true), m.munge(&vp8(10, 1, true))).0, 10);
        // Picture 11 is skipped (two packets of it), 12 follows 10 directly.
        m.skip(&vp8(11, 1, false));
        m.skip(&vp8(11, 1, false));
        assert_eq!(apply(&vp8(12, 2, false), m.munge(&vp8(12, 2, false))).0, 11);
        // A late packet of picture 10 keeps its id.
        assert_eq!(apply(&vp8(10, 1, false), m.munge(&vp8(10, 1, false))).0, 10);
        m.skip(&vp8(13, 2, false));
        assert_eq!(apply(&vp8(14, 3, false), m.munge(&vp8(14, 3, false))).0, 12);
        // Across the 15-bit wrap.
        m.switch_source();
        let k = vp8(0x7ffe, 9, true);
        assert_eq!(apply(&k, m.munge(&k)).0, 13);
        m.skip(&vp8(0x7fff, 9, false));
        let d = vp8(0, 10, false);
        assert_eq!(apply(&d, m.munge(&d)).0, 14);
    }

    /// A VP8 descriptor with a 7-bit picture id.
    fn vp8_short(pid: u8, key: bool) -> Vec<u8> {
        vec![0x90, 0x80, pid & 0x7f, if key { 0x00 } else { 0x01 }]
    }

    #[test]
    fn seven_bit_ids_close_up_across_their_wrap() {
        let mut m = Vp8Munger::default();
        m.switch_source();
        let id = |m: &mut Vp8Munger, p: &[u8]| m.munge(p).unwrap().picture_id.unwrap();
        assert_eq!(id(&mut m, &vp8_short(125, true)), 125);
        m.skip(&vp8_short(126, false));
        assert_eq!(id(&mut m, &vp8_short(127, false)), 126);
        m.skip(&vp8_short(0, false));
        // After the 7-bit wrap, still one a picture.
        assert_eq!(id(&mut m, &vp8_short(1, false)), 127);
        assert_eq!(id(&mut m, &vp8_short(2, false)), 0);
        assert!(m.was_skipped(&vp8_short(0, false)));
        assert!(!m.was_skipped(&vp8_short(1, false)));
    }

    #[test]
    fn malformed_descriptor_is_left_alone() {
        let mut m = Vp8Munger::default();
        assert!(m.munge(&[]).is_none());
        assert!(m.munge(&[0x80]).is_none());
    }
}
