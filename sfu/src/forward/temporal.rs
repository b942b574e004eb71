//! Which temporal layers of the current source a viewer gets: the select step for frame
//! rate, beside [`super::selector`] for resolution.
//!
//! A temporally scalable stream (VP8 L1T2, L1T3) sends frames of several layers; a frame
//! refers only to frames of its own layer or lower, so dropping every frame above a layer
//! leaves a decodable stream at a lower frame rate. Down takes effect at the next frame
//! start (a frame is never cut); up only at a frame marked layer sync (it refers to the
//! base layer alone), or at a keyframe of a new source. Only answers "forward this packet?";
//! closing up the numbering of what is dropped lives in [`super::rewrite`] and
//! [`super::vp8`].

use crate::codec::Temporal;

/// All temporal layers.
pub const ALL: u8 = u8::MAX;

/// One viewer's temporal layer selection.
#[derive(Debug, Clone)]
pub struct TemporalFilter {
    /// The highest layer the viewer should get.
    target: u8,
    /// The highest layer it gets now.
    current: u8,
}

impl Default for TemporalFilter {
    fn default() -> Self {
        TemporalFilter {
            target: ALL,
            current: ALL,
        }
    }
}

impl TemporalFilter {
    /// The highest layer the viewer should get ([`ALL`] for every one).
    pub fn set_target(&mut self, target: u8) {
        self.target = target;
    }

    /// The highest layer it should get.
    pub fn target(&self) -> u8 {
        self.target
    }

    /// The highest layer it gets now.
    pub fn current(&self) -> u8 {
        self.current
    }

    /// A new source starts at a keyframe, which every later frame can build on: the target
    /// holds from there.
    pub fn splice(&mut self) {
        self.current = self.target;
    }

    /// Decides for one packet of the current source (the newest so far: a late one was
    /// decided with its frame), `keyframe` when it starts one: forward it or not.
    pub fn select(&mut self, temporal: Option<Temporal>, keyframe: bool) -> bool {
        let Some(t) = temporal else {
            return true;
        };
        if keyframe {
            // Every later frame can build on it: the target holds from here.
            self.current = self.target;
        }
        if t.frame_start && self.target < self.current {
            self.current = self.target;
        }
        if t.tid <= self.current {
            return true;
        }
        if t.frame_start && t.sync && t.tid <= self.target {
            self.current = t.tid.max(self.current);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(tid: u8, sync: bool) -> Temporal {
        Temporal {
            tid,
            sync,
            frame_start: true,
        }
    }

    fn rest(tid: u8) -> Temporal {
        Temporal {
            tid,
            sync: false,
            frame_start: false,
        }
    }

    /// L1T3's pattern: 0 2 1 2, the first frame of layers 1 and 2 after a base frame
    /// marked sync.
    fn pattern(i: usize) -> Temporal {
        match i % 4 {
            0 => frame(0, false),
            1 => frame(2, true),
            2 => frame(1, true),
            _ => frame(2, false),
        }
    }

    #[test]
    fn everything_by_default_and_without_temporal_layers() {
        let mut f = TemporalFilter::default();
        assert!((0..8).all(|i| f.select(Some(pattern(i)), false)));
        f.set_target(0);
        assert!(
            f.select(None, false),
            "a stream without layers is not filtered"
        );
    }

    #[test]
    fn down_at_the_next_frame_never_inside_one() {
        let mut f = TemporalFilter::default();
        assert!(f.select(Some(frame(2, false)), false));
        f.set_target(0);
        // The rest of the layer-2 frame in flight still goes.
        assert!(f.select(Some(rest(2)), false));
        let kept: Vec<bool> = (0..8).map(|i| f.select(Some(pattern(i)), false)).collect();
        assert_eq!(kept, [true, false, false, false, true, false, false, false]);
        assert_eq!(f.current(), 0);
    }

    #[test]
    fn up_only_at_a_sync_frame() {
        let mut f = TemporalFilter::default();
        f.set_target(0);
        f.splice();
        f.set_target(1);
        // Layer 1 without sync: not yet; the base goes on.
        assert!(!f.select(Some(frame(1, false)), false));
        assert!(!f.select(Some(rest(1)), false));
        assert!(f.select(Some(frame(0, false)), false));
        // Layer 2 is above the target even when it syncs.
        assert!(!f.select(Some(frame(2, true)), false));
        assert!(f.select(Some(frame(1, true)), false));
        assert!(f.select(Some(rest(1)), false));
        assert!(
            f.select(Some(frame(1, false)), false),
            "layer 1 flows from its sync"
        );
        assert_eq!(f.current(), 1);
    }

    #[test]
    fn a_keyframe_is_an_up_point_too() {
        let mut f = TemporalFilter::default();
        f.set_target(0);
        f.splice();
        f.set_target(ALL);
        assert!(!f.select(Some(frame(2, false)), false));
        assert!(f.select(Some(frame(0, false)), true));
        assert!(
            f.select(Some(frame(2, false)), false),
            "from the keyframe on"
        );
    }

    #[test]
    fn a_splice_takes_the_target_at_once() {
        let mut f = TemporalFilter::default();
        f.set_target(1);
        f.splice();
        assert!(!f.select(Some(frame(2, true)), false));
        assert!(f.select(Some(frame(1, false)), false));
        f.set_target(ALL);
        f.splice();
        assert!(f.select(Some(frame(2, false)), false));
    }
}
