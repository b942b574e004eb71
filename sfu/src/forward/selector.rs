//! Which packets a viewer gets: the current layer's, until a keyframe of the target layer
//! arrives and the viewer moves onto it. Only answers "forward this packet?"; the rewriting
//! lives in [`super::rewrite`] and the choice of target in [`super::layers`].

use super::{DropReason, SourceKey};

/// Outcome for one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selected {
    /// Forward it; `switched` when it is the first packet of a newly current source.
    Forward {
        /// The viewer just moved onto this packet's source.
        switched: bool,
    },
    /// Drop it.
    Drop(DropReason),
}

/// Keyframe-gated simulcast layer selection for one viewer.
#[derive(Debug, Clone, Default)]
pub struct LayerSelector {
    current: Option<SourceKey>,
    target: Option<SourceKey>,
    /// Drop the current layer while the switch to the target waits for its keyframe.
    shed: bool,
}

impl LayerSelector {
    /// The source the viewer should end up on. The same target again (a refreshed layer
    /// table) changes nothing; another one while the current layer is being shed leaves
    /// nothing current, since what flowed before has a hole: the next source starts at a
    /// keyframe.
    pub fn set_target(&mut self, target: Option<SourceKey>) {
        if target == self.target {
            return;
        }
        if self.shed {
            self.current = None;
            self.shed = false;
        }
        self.target = target;
    }

    /// The same, and the current layer stops at once rather than at the target's keyframe:
    /// a path that cannot carry it would only queue more of it ahead of that keyframe.
    pub fn set_target_shedding(&mut self, target: Option<SourceKey>) {
        self.set_target(target);
        self.shed = target.is_some() && target != self.current;
    }

    /// The source the viewer should end up on.
    pub fn target(&self) -> Option<SourceKey> {
        self.target
    }

    /// The source now flowing to the viewer.
    pub fn current(&self) -> Option<SourceKey> {
        self.current
    }

    /// Stops the video: nothing is current, nothing targeted; the next target starts as a
    /// switch at its keyframe.
    pub fn pause(&mut self) {
        self.current = None;
        self.target = None;
    }

    /// The source whose keyframe the viewer waits for, if a switch is pending.
    pub fn waiting_for(&self) -> Option<SourceKey> {
        self.target.filter(|t| Some(*t) != self.current)
    }

    /// Decides for one packet from `source`; `keyframe` when it starts a keyframe.
    pub fn select(&mut self, source: SourceKey, keyframe: bool) -> Selected {
        if Some(source) == self.target && Some(source) != self.current {
            if keyframe {
                self.current = Some(source);
                self.shed = false;
                return Selected::Forward { switched: true };
            }
            // Keep the old layer flowing (if it still is) until the keyframe comes.
            return Selected::Drop(DropReason::AwaitingKeyframe);
        }
        if Some(source) == self.current {
            if self.shed {
                return Selected::Drop(DropReason::AwaitingKeyframe);
            }
            return Selected::Forward { switched: false };
        }
        Selected::Drop(DropReason::OtherLayer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOW: SourceKey = SourceKey {
        generation: 1,
        encoding: 0,
    };
    const HIGH: SourceKey = SourceKey {
        generation: 1,
        encoding: 2,
    };

    #[test]
    fn nothing_before_the_first_keyframe() {
        let mut s = LayerSelector::default();
        s.set_target(Some(LOW));
        assert_eq!(
            s.select(LOW, false),
            Selected::Drop(DropReason::AwaitingKeyframe)
        );
        assert_eq!(s.select(HIGH, true), Selected::Drop(DropReason::OtherLayer));
        assert_eq!(s.waiting_for(), Some(LOW));
        assert_eq!(s.select(LOW, true), Selected::Forward { switched: true });
        assert_eq!(s.select(LOW, false), Selected::Forward { switched: false });
        assert_eq!(s.waiting_for(), None);
    }

    #[test]
    fn switch_keeps_old_layer_until_new_keyframe() {
        let mut s = LayerSelector::default();
        s.set_target(Some(LOW));
        s.select(LOW, true);
        s.set_target(Some(HIGH));
        // Deltas of the new layer are never forwarded before its keyframe.
        for _ in 0..5 {
            assert_eq!(
                s.select(HIGH, false),
                Selected::Drop(DropReason::AwaitingKeyframe)
            );
            assert_eq!(s.select(LOW, false), Selected::Forward { switched: false });
        }
        assert_eq!(s.select(HIGH, true), Selected::Forward { switched: true });
        assert_eq!(s.select(LOW, false), Selected::Drop(DropReason::OtherLayer));
        assert_eq!(s.current(), Some(HIGH));
    }

    #[test]
    fn shedding_stops_the_old_layer_before_the_new_keyframe() {
        let mut s = LayerSelector::default();
        s.set_target(Some(HIGH));
        s.select(HIGH, true);
        s.set_target_shedding(Some(LOW));
        assert_eq!(
            s.select(HIGH, false),
            Selected::Drop(DropReason::AwaitingKeyframe)
        );
        assert_eq!(
            s.select(LOW, false),
            Selected::Drop(DropReason::AwaitingKeyframe)
        );
        assert_eq!(s.select(LOW, true), Selected::Forward { switched: true });
        assert_eq!(s.select(LOW, false), Selected::Forward { switched: false });
        // Shedding towards the current layer is no shedding.
        s.set_target_shedding(Some(LOW));
        assert_eq!(s.select(LOW, false), Selected::Forward { switched: false });
    }

    #[test]
    fn a_refreshed_table_keeps_the_shedding_and_another_target_restarts_at_a_keyframe() {
        let mut s = LayerSelector::default();
        s.set_target(Some(HIGH));
        s.select(HIGH, true);
        s.set_target_shedding(Some(LOW));
        // The same target again (the publisher's table re-ranked): HIGH stays shed.
        s.set_target(Some(LOW));
        assert_eq!(
            s.select(HIGH, false),
            Selected::Drop(DropReason::AwaitingKeyframe)
        );
        // Back to HIGH before LOW's keyframe: HIGH has a hole, so it restarts at a keyframe.
        s.set_target(Some(HIGH));
        assert_eq!(
            s.select(HIGH, false),
            Selected::Drop(DropReason::AwaitingKeyframe)
        );
        assert_eq!(s.select(HIGH, true), Selected::Forward { switched: true });
    }

    #[test]
    fn a_new_publisher_generation_is_a_switch() {
        let mut s = LayerSelector::default();
        s.set_target(Some(LOW));
        s.select(LOW, true);
        let reborn = SourceKey {
            generation: 2,
            encoding: 0,
        };
        s.set_target(Some(reborn));
        assert_eq!(
            s.select(reborn, false),
            Selected::Drop(DropReason::AwaitingKeyframe)
        );
        assert_eq!(s.select(reborn, true), Selected::Forward { switched: true });
    }
}
