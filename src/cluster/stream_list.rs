//! The node's stream list as its stats send it: numbered, and sent only while the control
//! plane does not hold its current number (`control_plane::cluster::registry`, the
//! `streams_rev` of the report and of its answer). A changed list gets the next number; an
//! answer naming another number than the current one (the node registered again, the
//! control plane's database was restored, an older control plane that names none) has the
//! list sent again with the next report; a lost answer changes nothing, so the list goes
//! again until an answer names its number.

use control_plane::cluster::registry::{StreamStat, MAX_STREAMS_PER_NODE};

/// The list last numbered and what the control plane said it holds.
#[derive(Debug, Default)]
pub struct StreamList {
    /// The current list's number (0: none numbered yet). Never goes back, across
    /// registrations too.
    rev: u64,
    last: Option<Vec<StreamStat>>,
    /// The number the control plane's last answer named.
    held: Option<u64>,
}

impl StreamList {
    /// Takes the list carried now (in any order: it is sorted by name, so the same streams
    /// found in another order are the same list): its number, and the list itself when it
    /// must be sent.
    pub fn report(&mut self, mut now: Vec<StreamStat>) -> (u64, Option<Vec<StreamStat>>) {
        now.sort_by(|a, b| a.name.cmp(&b.name));
        // Cut after the sort: the same streams found in another order keep the same list.
        now.truncate(MAX_STREAMS_PER_NODE);
        if self.last.as_ref() != Some(&now) {
            self.rev += 1;
            self.last = Some(now);
        }
        let send = (self.held != Some(self.rev)).then(|| self.last.clone().unwrap_or_default());
        (self.rev, send)
    }

    /// The control plane answered a report: it holds the list numbered `held`.
    pub fn answered(&mut self, held: Option<u64>) {
        self.held = held;
    }

    /// A new registration: its row holds no list yet.
    pub fn registered(&mut self) {
        self.held = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(name: &str, parent: Option<&str>) -> StreamStat {
        StreamStat {
            name: name.into(),
            publishing: None,
            parent: parent.map(Into::into),
            backup: None,
        }
    }

    #[test]
    fn a_list_goes_once_held_and_again_when_it_changes() {
        let mut l = StreamList::default();
        let a = vec![stream("a", Some("p1"))];
        assert_eq!(l.report(a.clone()), (1, Some(a.clone())));
        l.answered(Some(1));
        for _ in 0..3 {
            assert_eq!(l.report(a.clone()), (1, None), "unchanged and held");
            l.answered(Some(1));
        }
        let b = vec![stream("a", Some("p2")), stream("b", None)];
        assert_eq!(l.report(b.clone()), (2, Some(b.clone())), "a new parent");
        l.answered(Some(2));
        let shuffled = vec![b[1].clone(), b[0].clone()];
        assert_eq!(
            l.report(shuffled),
            (2, None),
            "the same streams in another order"
        );
    }

    #[test]
    fn more_streams_than_a_report_holds_keep_their_number_in_any_order() {
        let mut l = StreamList::default();
        let names: Vec<String> = (0..=MAX_STREAMS_PER_NODE)
            .map(|i| format!("s{i:05}"))
            .collect();
        let all: Vec<StreamStat> = names.iter().map(|n| stream(n, None)).collect();
        let (rev, sent) = l.report(all.clone());
        assert_eq!(sent.map(|s| s.len()), Some(MAX_STREAMS_PER_NODE));
        l.answered(Some(rev));
        let mut reversed = all;
        reversed.reverse();
        assert_eq!(
            l.report(reversed),
            (rev, None),
            "the same streams, another order"
        );
    }

    #[test]
    fn a_list_goes_again_when_the_answer_is_lost_or_names_another_number() {
        let mut l = StreamList::default();
        let a = vec![stream("a", None)];
        assert_eq!(l.report(a.clone()), (1, Some(a.clone())));
        // No answer (a timeout): sent again, same number.
        assert_eq!(l.report(a.clone()), (1, Some(a.clone())));
        l.answered(Some(1));
        assert_eq!(l.report(a.clone()), (1, None));
        // The control plane's row was made again (a restore): it holds none.
        l.answered(None);
        assert_eq!(l.report(a.clone()), (1, Some(a.clone())));
        // ... or an older number.
        l.answered(Some(0));
        assert_eq!(l.report(a.clone()), (1, Some(a.clone())));
        l.answered(Some(1));
        // A registration: the new row holds nothing; the number does not go back.
        l.registered();
        assert_eq!(l.report(a.clone()), (1, Some(a.clone())));
        l.answered(Some(1));
        assert_eq!(l.report(Vec::new()), (2, Some(Vec::new())), "all gone");
    }
}
