//! The node's changes into the database: a broadcast row per live period, a row per
//! viewer session (opened, joined, closed), and concurrency samples folded per minute
//! (one row per channel and minute: samples, their sum, the peak). Called every second
//! by the node's sampler; a failed write is logged and the next look goes on.

use super::track::{Change, LiveSample, SessionSample};
use crate::db::now_ms;
use crate::tokens::random_id;
use crate::ControlPlane;

/// What an anonymous viewer is counted as: the session alone (no address is kept).
pub fn anonymous(session: &str) -> String {
    format!("anon:{session}")
}

impl ControlPlane {
    /// Records what the node has now: every stream with a publisher here and every
    /// connected viewer session. Cheap when nothing changed.
    pub async fn observe_viewers(&self, streams: &[LiveSample], sessions: &[SessionSample]) {
        let a = self.analytics();
        let now = now_ms();
        let every = i64::try_from(a.every.as_millis()).unwrap_or(i64::MAX);
        let (changes, sweep) = {
            let mut st = a.state();
            let sweep = !std::mem::replace(&mut st.swept, true);
            (st.tracker.observe(now, every, streams, sessions), sweep)
        };
        let watching = u64::try_from(sessions.len()).unwrap_or(0);
        a.metrics.viewer_seconds.inc_by(watching);
        if sweep {
            if let Err(e) = self.sweep(now).await {
                tracing::warn!("closing sessions left open: {e}");
            }
        }
        let mut concurrent = None;
        for c in changes {
            if let Change::Sample(_, n) = &c {
                *concurrent.get_or_insert(0) += i64::from(*n);
            }
            if let Err(e) = self.record(now, c).await {
                tracing::warn!("recording analytics: {e}");
            }
        }
        if let Some(n) = concurrent {
            a.metrics.concurrent.set(n);
        }
    }

    /// Sessions and broadcasts an earlier run left open end where they were last seen
    /// (one `serve` per database records analytics).
    async fn sweep(&self, now: i64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE viewer_sessions SET closed_at = COALESCE(reported_at, opened_at) \
             WHERE closed_at IS NULL",
        )
        .execute(self.pool())
        .await?;
        sqlx::query("UPDATE broadcasts SET ended_at = $1 WHERE ended_at IS NULL")
            .bind(now)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn channel_id(&self, slug: &str) -> Result<Option<String>, sqlx::Error> {
        let row: Option<(String,)> = sqlx::query_as("SELECT id FROM channels WHERE slug = $1")
            .bind(slug)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(|(id,)| id))
    }

    fn broadcast_of(&self, stream: &str) -> Option<(String, String)> {
        self.analytics().state().broadcasts.get(stream).cloned()
    }

    async fn record(&self, now: i64, change: Change) -> Result<(), sqlx::Error> {
        match change {
            Change::Started(stream) => {
                // Streams of no channel (an open node's) are not recorded.
                let Some(channel) = self.channel_id(&stream).await? else {
                    return Ok(());
                };
                let id = random_id();
                sqlx::query(
                    "INSERT INTO broadcasts (id, channel_id, started_at) VALUES ($1, $2, $3)",
                )
                .bind(&id)
                .bind(&channel)
                .bind(now)
                .execute(self.pool())
                .await?;
                self.analytics()
                    .state()
                    .broadcasts
                    .insert(stream, (channel, id));
            }
            Change::Ended(stream) => {
                let gone = self.analytics().state().broadcasts.remove(&stream);
                if let Some((_, id)) = gone {
                    sqlx::query("UPDATE broadcasts SET ended_at = $1 WHERE id = $2")
                        .bind(now)
                        .bind(&id)
                        .execute(self.pool())
                        .await?;
                }
            }
            Change::Opened(s) => self.opened(now, s).await?,
            Change::Joined(id, ms) => {
                sqlx::query("UPDATE viewer_sessions SET join_ms = $1 WHERE id = $2")
                    .bind(ms)
                    .bind(&id)
                    .execute(self.pool())
                    .await?;
            }
            Change::Closed(id) => {
                sqlx::query(
                    "UPDATE viewer_sessions SET closed_at = $1 WHERE id = $2 AND closed_at IS NULL",
                )
                .bind(now)
                .bind(&id)
                .execute(self.pool())
                .await?;
            }
            Change::Sample(stream, viewers) => {
                let Some((channel, broadcast)) = self.broadcast_of(&stream) else {
                    return Ok(());
                };
                let n = i64::from(viewers);
                sqlx::query(
                    "INSERT INTO analytics_minutes (channel_id, minute, broadcast_id, samples, \
                     viewer_sum, peak) VALUES ($1, $2, $3, 1, $4, $4) \
                     ON CONFLICT (channel_id, minute) DO UPDATE SET \
                     samples = analytics_minutes.samples + 1, \
                     viewer_sum = analytics_minutes.viewer_sum + excluded.viewer_sum, \
                     peak = CASE WHEN excluded.peak > analytics_minutes.peak \
                     THEN excluded.peak ELSE analytics_minutes.peak END, \
                     broadcast_id = excluded.broadcast_id",
                )
                .bind(&channel)
                .bind(now - now.rem_euclid(60_000))
                .bind(&broadcast)
                .bind(n)
                .execute(self.pool())
                .await?;
            }
        }
        Ok(())
    }

    async fn opened(&self, now: i64, s: SessionSample) -> Result<(), sqlx::Error> {
        let (channel, broadcast) = match self.broadcast_of(&s.stream) {
            Some((c, b)) => (Some(c), Some(b)),
            None => (self.channel_id(&s.stream).await?, None),
        };
        let Some(channel) = channel else {
            return Ok(());
        };
        self.analytics().metrics.sessions.inc();
        let viewer = s.viewer.unwrap_or_else(|| anonymous(&s.id));
        sqlx::query(
            "INSERT INTO viewer_sessions (id, channel_id, broadcast_id, viewer, opened_at, join_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&s.id)
        .bind(&channel)
        .bind(&broadcast)
        .bind(&viewer)
        .bind(now)
        .bind(s.join_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
