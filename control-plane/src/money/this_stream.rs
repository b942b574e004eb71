//! "This stream" subscribers-only: the owner marks the live running now, or the next one
//! when the channel is offline, and it is for subscribers until that live ends; the next
//! live is open again. A live is what analytics records as broadcasts (`broadcasts`,
//! written by the node's sampler: `analytics/record.rs`); it ends for good when its
//! broadcast ended and no other began within the grace ([`super::Settings::stream_grace`]:
//! a publisher's reload or network change continues the live, as it continues a
//! recording's file).

use crate::ControlPlane;

/// Most broadcasts read to find where a marked live ended (one live is a few: a
/// publisher that came back within the grace, each time).
const MAX_LIVES: i64 = 64;

/// A live marked subscribers-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamPaywall {
    /// When the owner marked it (Unix ms).
    pub marked_at: i64,
    /// When it stopped holding (Unix ms): that live's end plus the grace. `None`: not
    /// yet (the live runs, the channel waits for it, or a publisher may still come back).
    pub until: Option<i64>,
}

impl StreamPaywall {
    /// Whether it holds at `now` (Unix ms).
    pub fn holds(&self, now: i64) -> bool {
        self.until.is_none_or(|u| u > now)
    }

    /// Whether it held at any moment from `since` to now.
    pub fn held_since(&self, since: i64) -> bool {
        self.until.is_none_or(|u| u > since)
    }
}

/// When a marked live stops being for subscribers: `lives` are the channel's broadcasts
/// (start, end; `None`: running) that were running at the marking or began after it, by
/// start. The first that ended with none beginning within `grace` of its end was the
/// marked live; it stops holding `grace` after that end. `None`: it has not ended, or
/// `cut` (the read stopped at its bound) and the last broadcast read may have gone on in
/// one not read: held, never opened early.
pub fn lapse(lives: &[(i64, Option<i64>)], grace: i64, cut: bool) -> Option<i64> {
    for (i, (_, end)) in lives.iter().enumerate() {
        let end = (*end)?;
        let resumed = match lives.get(i + 1) {
            Some((next, _)) => *next <= end.saturating_add(grace),
            None => cut,
        };
        if !resumed {
            return Some(end.saturating_add(grace));
        }
    }
    None
}

/// The live marked at `marked_at` on `channel_id`, read against its broadcasts.
pub(crate) async fn read(
    cp: &ControlPlane,
    channel_id: &str,
    marked_at: i64,
) -> Result<StreamPaywall, sqlx::Error> {
    // From the last broadcast begun by the marking (a channel's broadcasts do not
    // overlap), along the (channel, start) index: asked at every admission, this reads a
    // few rows however many lives the channel had before.
    let lives: Vec<(i64, Option<i64>)> = sqlx::query_as(
        "SELECT started_at, ended_at FROM broadcasts WHERE channel_id = $1 \
         AND started_at >= COALESCE((SELECT MAX(started_at) FROM broadcasts \
         WHERE channel_id = $1 AND started_at <= $2), $2) \
         AND (ended_at IS NULL OR ended_at >= $2) ORDER BY started_at LIMIT $3",
    )
    .bind(channel_id)
    .bind(marked_at)
    .bind(MAX_LIVES)
    .fetch_all(cp.pool())
    .await?;
    let grace = i64::try_from(cp.config().money.stream_grace.as_millis()).unwrap_or(i64::MAX);
    Ok(StreamPaywall {
        marked_at,
        until: lapse(&lives, grace, lives.len() as i64 >= MAX_LIVES),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marked_live_holds_until_it_ends_for_good() {
        // Marked offline: nothing yet, or the next live running.
        assert_eq!(lapse(&[], 30, false), None);
        // A read cut at its bound whose last broadcast ended: the live may go on in one
        // not read, so it holds (a publisher that came back 64 times stays paywalled).
        assert_eq!(lapse(&[(100, Some(500)), (520, Some(900))], 30, true), None);
        assert_eq!(
            lapse(&[(100, Some(500)), (2000, Some(2100))], 30, true),
            Some(530)
        );
        assert_eq!(lapse(&[(100, None)], 30, false), None);
        // It ended: held through the grace, then open.
        assert_eq!(lapse(&[(100, Some(500))], 30, false), Some(530));
        let p = StreamPaywall {
            marked_at: 50,
            until: Some(530),
        };
        assert!(p.holds(529) && !p.holds(530));
        assert!(p.held_since(529) && !p.held_since(530));
        // A publisher back within the grace continues it; one back later starts another.
        assert_eq!(lapse(&[(100, Some(500)), (520, None)], 30, false), None);
        assert_eq!(
            lapse(
                &[(100, Some(500)), (520, Some(900)), (2000, None)],
                30,
                false
            ),
            Some(930)
        );
        assert_eq!(
            lapse(&[(100, Some(500)), (531, None)], 30, false),
            Some(530)
        );
        assert_eq!(lapse(&[(100, Some(i64::MAX))], 30, false), Some(i64::MAX));
    }
}
