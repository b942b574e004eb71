//! The cues of a viewer's event stream (docs/ADS.md): ad breaks and sponsors' slots, each
//! told once, `"skip": true` for a viewer the cue exempts, and an ad break's start named in
//! the viewer's own video RTP timestamps (`"rtp_timestamp"`), so that every player starts
//! it on the same frame whatever its delay.
//!
//! The timestamp is the viewer's video timeline ([`Timeline`], its worker's estimate) at
//! the break's `starts_at`. A timeline that moves before the break is over (a layer switch,
//! a restarted publisher: the viewer's timestamps were spliced onto another source) gets
//! the break told again with the new timestamp; a player moves its start to it.

use std::collections::VecDeque;
use std::sync::Arc;

use axum::response::sse::Event;
use serde_json::Value;
use sfu::directory::Cue;
use sfu::forward::timeline::Timeline;
use sfu::StreamStatus;

/// A break told again once its timestamp moved by more than this (a sixth of a frame at
/// 30 fps): a timeline re-estimated within its tolerance is not worth an event.
pub const RETELL_TICKS: u32 = 500;
/// Breaks a feed follows at once (a stream keeps 8 cues, one break runs at a time).
const MAX_PENDING: usize = 8;

/// A break told that has not ended.
#[derive(Debug, Clone)]
struct Pending {
    cue: Arc<Cue>,
    starts_at: u64,
    skip: bool,
    rtp: Option<u32>,
}

/// What one viewer's feed has told of its stream's cues.
#[derive(Debug, Default)]
pub struct CueFeed {
    /// The newest cue told.
    told: Option<u64>,
    pending: Vec<Pending>,
}

impl CueFeed {
    /// The newest cue told.
    pub fn newest(&self) -> Option<u64> {
        self.told
    }

    /// Tells the cues of `cur` not told yet (those after the newest told); a new feed is
    /// told only those still running at `now_ms` (a sponsor's slot, a break to come or
    /// under way). `viewer` (a user id) skips a cue that exempts it; `timeline` names a
    /// break's start in the viewer's timestamps.
    pub fn diff(
        &mut self,
        cur: &StreamStatus,
        viewer: Option<&str>,
        timeline: Option<&Timeline>,
        now_ms: u64,
        out: &mut VecDeque<Event>,
    ) {
        let told = self.told;
        for cue in &cur.cues {
            let fresh = match told {
                Some(t) => cue.seq > t,
                None => cue.until_ms > now_ms,
            };
            self.told = self.told.max(Some(cue.seq));
            if !fresh {
                continue;
            }
            let skip = viewer.is_some_and(|v| cue.exempt.contains(v));
            let starts_at = (cue.event == "adbreak")
                .then(|| serde_json::from_str::<Value>(&cue.data).ok())
                .flatten()
                .and_then(|d| d.get("starts_at")?.as_u64());
            let rtp = starts_at.zip(timeline).map(|(s, t)| t.ts_at(s));
            out.push_back(event(cue, skip, rtp));
            if let (Some(starts_at), false) = (starts_at, skip) {
                if self.pending.len() == MAX_PENDING {
                    self.pending.remove(0);
                }
                self.pending.push(Pending {
                    cue: cue.clone(),
                    starts_at,
                    skip,
                    rtp,
                });
            }
        }
        self.pending.retain(|p| p.cue.until_ms > now_ms);
    }

    /// The viewer's timeline moved: the breaks not over whose start it moves by more than
    /// [`RETELL_TICKS`] (or that were told without one) are told again.
    pub fn retime(&mut self, timeline: &Timeline, now_ms: u64, out: &mut VecDeque<Event>) {
        self.pending.retain(|p| p.cue.until_ms > now_ms);
        for p in &mut self.pending {
            let ts = timeline.ts_at(p.starts_at);
            let moved = p.rtp.is_none_or(|old| {
                let d = ts.wrapping_sub(old) as i32;
                d.unsigned_abs() > RETELL_TICKS
            });
            if moved {
                p.rtp = Some(ts);
                out.push_back(event(&p.cue, p.skip, p.rtp));
            }
        }
    }
}

/// A cue's event: its data with `"skip"` and, for a break, `"rtp_timestamp"`.
fn event(cue: &Cue, skip: bool, rtp: Option<u32>) -> Event {
    let data = match serde_json::from_str::<Value>(&cue.data) {
        Ok(Value::Object(mut m)) => {
            if skip {
                m.insert("skip".into(), Value::Bool(true));
            }
            if let Some(ts) = rtp {
                m.insert("rtp_timestamp".into(), Value::from(ts));
            }
            Value::Object(m).to_string()
        }
        _ => cue.data.clone(),
    };
    Event::default().event(&cue.event).data(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cue(seq: u64, event: &str, until_ms: u64, exempt: &[&str]) -> Arc<Cue> {
        Arc::new(Cue {
            seq,
            event: event.into(),
            data: r#"{"id":"b","starts_at":10000,"skip":false}"#.into(),
            until_ms,
            exempt: Arc::new(exempt.iter().map(|s| s.to_string()).collect()),
        })
    }

    fn text(q: &VecDeque<Event>) -> String {
        format!("{q:?}")
    }

    #[test]
    fn cues_are_told_once_and_exempt_viewers_skip() {
        let mut st = StreamStatus {
            cues: vec![
                cue(1, "adbreak", 1_000, &[]),
                cue(2, "adbreak", 5_000, &["u1"]),
            ],
            ..Default::default()
        };
        let mut q = VecDeque::new();
        let mut f = CueFeed::default();
        // A new feed at t = 2 s: only the running cue.
        f.diff(&st, Some("u1"), None, 2_000, &mut q);
        assert_eq!(f.newest(), Some(2));
        assert_eq!(q.len(), 1);
        assert!(text(&q).contains(r#"\"skip\":true"#), "{q:?}");
        q.clear();
        f.diff(&st, Some("u1"), None, 2_000, &mut q);
        assert!(q.is_empty(), "told once");
        st.cues.push(cue(3, "sponsor", 9_000, &["u1"]));
        let mut g = CueFeed {
            told: Some(2),
            ..Default::default()
        };
        g.diff(&st, Some("u2"), None, 2_000, &mut q);
        assert_eq!(q.len(), 1);
        assert!(text(&q).contains(r#"\"skip\":false"#), "{q:?}");
        q.clear();
        CueFeed::default().diff(&StreamStatus::default(), None, None, 0, &mut q);
        assert!(q.is_empty());
    }

    #[test]
    fn a_break_carries_its_start_in_the_viewers_timestamps_and_follows_a_splice() {
        let st = StreamStatus {
            cues: vec![cue(1, "adbreak", 40_000, &[])],
            ..Default::default()
        };
        // The viewer's timestamp 4,000,000,000 reached the node at t = 9.5 s.
        let tl = Timeline {
            at_us: 9_500_000,
            ts: 4_000_000_000,
            clock_rate: 90_000,
        };
        let mut q = VecDeque::new();
        let mut f = CueFeed::default();
        f.diff(&st, None, Some(&tl), 8_000, &mut q);
        let want = 4_000_000_000u32.wrapping_add(45_000);
        assert!(
            text(&q).contains(&format!(r#"\"rtp_timestamp\":{want}"#)),
            "{q:?}"
        );
        q.clear();
        // Re-estimated within the tolerance: nothing to tell.
        let near = Timeline {
            ts: tl.ts.wrapping_add(100),
            ..tl
        };
        f.retime(&near, 9_000, &mut q);
        assert!(q.is_empty());
        // A layer switch moved the viewer's timestamps past the wrap: told again.
        let spliced = Timeline {
            ts: 294_967_296 + 3_000,
            ..tl
        };
        f.retime(&spliced, 9_000, &mut q);
        assert_eq!(q.len(), 1);
        let want = (294_967_296u32 + 3_000).wrapping_add(45_000);
        assert!(
            text(&q).contains(&format!(r#"\"rtp_timestamp\":{want}"#)),
            "{q:?}"
        );
        q.clear();
        // Over: no longer followed.
        f.retime(&tl, 40_000, &mut q);
        assert!(q.is_empty());
    }

    #[test]
    fn a_break_told_before_any_video_is_told_again_once_the_timeline_is_known() {
        let st = StreamStatus {
            cues: vec![cue(1, "adbreak", 40_000, &[])],
            ..Default::default()
        };
        let mut q = VecDeque::new();
        let mut f = CueFeed::default();
        f.diff(&st, None, None, 8_000, &mut q);
        assert!(!text(&q).contains("rtp_timestamp"), "{q:?}");
        q.clear();
        let tl = Timeline {
            at_us: 10_000_000,
            ts: 7,
            clock_rate: 90_000,
        };
        f.retime(&tl, 8_500, &mut q);
        assert!(text(&q).contains(r#"\"rtp_timestamp\":7"#), "{q:?}");
        // A sponsor's slot has no start to place; an exempt viewer's break none either.
        let mut g = CueFeed::default();
        let st = StreamStatus {
            cues: vec![
                cue(1, "sponsor", 40_000, &[]),
                cue(2, "adbreak", 40_000, &["u"]),
            ],
            ..Default::default()
        };
        q.clear();
        g.diff(&st, Some("u"), None, 8_000, &mut q);
        g.retime(&tl, 8_500, &mut q);
        assert_eq!(q.len(), 2, "each told once: {q:?}");
        assert!(!text(&q).contains("rtp_timestamp"), "{q:?}");
    }
}
