//! The trending score (docs/DISCOVERY.md): pure, time passed in. A [`Trend`] keeps each
//! live stream's viewer counts over the sliding [`WINDOW`]; [`score`] combines the
//! viewers now, their growth over the window and the chat messages posted in it.
//!
//! ```text
//! score = ln(1 + viewers) + growth + 0.5 × ln(1 + chat)
//! growth = min((viewers − viewers_then) / (viewers_then + 10), 2)     (always > −1)
//! ```
//! `viewers_then` is the oldest count still inside the window (the stream's first if it
//! is younger). The logarithms keep a giant from owning the list for ever; the +10 keeps
//! a stream that goes from 1 to 3 viewers from looking like a rocket.

use std::collections::{HashMap, VecDeque};

/// How far back growth and chat activity look.
pub const WINDOW_MS: i64 = 10 * 60 * 1000;
/// The window, for documentation.
pub const WINDOW: std::time::Duration = std::time::Duration::from_millis(WINDOW_MS as u64);
/// Counts are kept at most this often per stream (a sample a second would be 600).
const KEEP_EVERY_MS: i64 = 10_000;

/// One stream's inputs at a moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Inputs {
    /// Concurrent viewers now.
    pub viewers: u32,
    /// Viewers at the start of the window.
    pub viewers_then: u32,
    /// Chat messages posted in the window.
    pub chat: u32,
}

/// The score of `i` (see the module's formula).
pub fn score(i: Inputs) -> f64 {
    let now = f64::from(i.viewers);
    let then = f64::from(i.viewers_then);
    let growth = ((now - then) / (then + 10.0)).min(2.0);
    (1.0 + now).ln() + growth + 0.5 * (1.0 + f64::from(i.chat)).ln()
}

/// Viewer counts of every live stream over the window.
#[derive(Debug, Default)]
pub struct Trend {
    streams: HashMap<String, VecDeque<(i64, u32)>>,
}

impl Trend {
    /// Records what is live at `now`: streams absent from `live` have ended and are
    /// forgotten.
    pub fn observe(&mut self, now: i64, live: &[(String, u32)]) {
        self.streams
            .retain(|k, _| live.iter().any(|(name, _)| name == k));
        for (name, viewers) in live {
            let q = self.streams.entry(name.clone()).or_default();
            let kept = q.len();
            match q.back_mut() {
                // Within KEEP_EVERY of the last kept count: the newest replaces it.
                Some(last) if now - last.0 < KEEP_EVERY_MS && kept > 1 => {
                    last.1 = *viewers;
                }
                _ => q.push_back((now, *viewers)),
            }
            while q.len() > 1 && q.front().is_some_and(|(t, _)| now - t > WINDOW_MS) {
                q.pop_front();
            }
        }
    }

    /// The scores of every stream at `now`, given the chat messages of each in the window
    /// (`chat(name)`).
    pub fn scores(&self, chat: impl Fn(&str) -> u32) -> Vec<(String, f64)> {
        self.streams
            .iter()
            .filter_map(|(name, q)| {
                let (_, then) = *q.front()?;
                let (_, now) = *q.back()?;
                Some((
                    name.clone(),
                    score(Inputs {
                        viewers: now,
                        viewers_then: then,
                        chat: chat(name),
                    }),
                ))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranked(t: &Trend, chat: &[(&str, u32)]) -> Vec<String> {
        let mut s = t.scores(|n| chat.iter().find(|(c, _)| *c == n).map_or(0, |c| c.1));
        s.sort_by(|a, b| b.1.total_cmp(&a.1));
        s.into_iter().map(|(n, _)| n).collect()
    }

    #[test]
    fn formula() {
        let s = score(Inputs {
            viewers: 0,
            viewers_then: 0,
            chat: 0,
        });
        assert_eq!(s, 0.0);
        // 100 steady viewers, no chat: ln(101).
        let s = score(Inputs {
            viewers: 100,
            viewers_then: 100,
            chat: 0,
        });
        assert!((s - 101f64.ln()).abs() < 1e-12);
        // Growth is capped at 2; a fall costs less than 1.
        let s = score(Inputs {
            viewers: 1000,
            viewers_then: 0,
            chat: 0,
        });
        assert!((s - (1001f64.ln() + 2.0)).abs() < 1e-12);
        let s = score(Inputs {
            viewers: 0,
            viewers_then: 1000,
            chat: 0,
        });
        assert!((s + 1000.0 / 1010.0).abs() < 1e-12);
    }

    #[test]
    fn a_growing_chatty_stream_passes_a_bigger_quiet_one() {
        let mut t = Trend::default();
        // Over ten minutes of a virtual clock: "big" holds 200, "rising" goes from 20 to
        // 120, "fading" falls from 300 to 100.
        for s in 0..=600 {
            let now = s * 1000;
            let rising = 20 + u32::try_from(s / 6).unwrap();
            let fading = 300 - u32::try_from(s / 3).unwrap();
            t.observe(
                now,
                &[
                    ("big".into(), 200),
                    ("rising".into(), rising),
                    ("fading".into(), fading),
                ],
            );
        }
        // Without chat: big (ln 201 = 5.30) > rising (ln 121 + 100/30 capped 2 = 6.80)?
        // No: rising's growth lifts it above big; fading (ln 101 − 200/310 = 3.97) last.
        assert_eq!(ranked(&t, &[]), ["rising", "big", "fading"]);
        // A lively chat on "fading" (5000 messages: +4.26) puts it first.
        assert_eq!(ranked(&t, &[("fading", 5000)]), ["fading", "rising", "big"]);
    }

    #[test]
    fn the_window_slides_and_ended_streams_go() {
        let mut t = Trend::default();
        t.observe(0, &[("a".into(), 10)]);
        t.observe(1000, &[("a".into(), 10)]);
        // Twenty minutes later at 50: the count of ten minutes ago is the baseline.
        for s in 2..=1200 {
            t.observe(s * 1000, &[("a".into(), if s < 600 { 10 } else { 50 })]);
        }
        let (_, s) = t.scores(|_| 0)[0].clone();
        assert!((s - 51f64.ln()).abs() < 1e-9, "{s}");
        // Kept counts stay bounded: one per KEEP_EVERY over the window.
        assert!(t.streams["a"].len() <= (WINDOW_MS / KEEP_EVERY_MS) as usize + 2);
        t.observe(1_300_000, &[]);
        assert!(t.scores(|_| 0).is_empty());
    }
}
