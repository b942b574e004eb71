//! Discovery (docs/DISCOVERY.md): what is live and how many watch it, categories and tags,
//! search, trending, follows and their notifications, recommendations, thumbnails.
//!
//! Fed by the node's sampler (`src/webhooks.rs`) through [`ControlPlane::observe_streams`]:
//! the webhooks' `StreamWatch` says when a stream starts and ends (one detection for
//! both), and every second's counts update `live_streams` and the [`trending::Trend`],
//! whose scores are written every [`SCORE_EVERY`]. A row of `live_streams` not touched
//! for [`LIVE_FRESH_MS`] is no longer live (its process died).

pub mod cards;
pub mod follows;
pub mod live;
pub mod recommend;
pub mod search;
pub mod thumbs;
pub mod trending;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::db::now_ms;
use crate::webhooks::{Event, EventType, StreamSample};
use crate::ControlPlane;

/// How often trending scores are written (and live rows touched).
pub const SCORE_EVERY: Duration = Duration::from_secs(5);
/// A live row older than this is a stream whose process stopped telling.
pub const LIVE_FRESH_MS: i64 = 20_000;
/// Notifications of a channel going live are not repeated within this (a publisher that
/// reconnects).
const RENOTIFY_MS: i64 = 10 * 60 * 1000;

/// This process's discovery state.
#[derive(Debug)]
pub struct Discovery {
    state: Mutex<State>,
    /// Users with a new notification (wakes their open event streams).
    notified: tokio::sync::broadcast::Sender<String>,
}

#[derive(Debug, Default)]
struct State {
    trend: trending::Trend,
    /// Viewers last written, by stream.
    written: HashMap<String, u32>,
    last_scores: i64,
}

impl Default for Discovery {
    fn default() -> Self {
        Discovery {
            state: Mutex::default(),
            notified: tokio::sync::broadcast::channel(256).0,
        }
    }
}

impl Discovery {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets the viewer counts written: another replica wrote the live lists since, so
    /// the next sample writes every count again.
    pub(crate) fn forget_written(&self) {
        self.state().written.clear();
    }

    /// Wakes on notifications for anyone (filtered by the subscriber).
    pub(crate) fn subscribe(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.notified.subscribe()
    }
}

impl ControlPlane {
    /// What this process's node carries now (every stream with a local publisher, each
    /// second): the webhooks' events, then the live list, search, trending and followers'
    /// notifications from the same detection.
    pub async fn observe_streams(&self, samples: &[StreamSample]) {
        let events = self.webhooks().observe_streams(samples).await;
        for (channel_id, event) in events {
            let r = match event {
                Event::StreamStarted { stream } => self.went_live(&channel_id, &stream).await,
                Event::StreamEnded { .. } => self.went_offline(&channel_id).await,
                _ => Ok(()),
            };
            if let Err(e) = r {
                tracing::warn!("discovery: {e}");
            }
        }
        if let Err(e) = self.count_viewers(samples).await {
            tracing::warn!("discovery: counting viewers: {e}");
        }
    }

    async fn went_live(&self, channel_id: &str, stream: &str) -> Result<(), sqlx::Error> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO live_streams (channel_id, started_at, viewers, score, updated_at) \
             VALUES ($1, $2, 0, 0, $2) ON CONFLICT (channel_id) DO UPDATE SET \
             started_at = excluded.started_at, viewers = 0, score = 0, \
             updated_at = excluded.updated_at",
        )
        .bind(channel_id)
        .bind(now)
        .execute(self.pool())
        .await?;
        self.discovery().state().written.remove(stream);
        search::index_stream(self, channel_id).await?;
        let told = follows::notify_followers(self, channel_id, stream, now).await?;
        if told > 0 {
            self.webhooks()
                .emit(
                    Some(channel_id),
                    Event::Other(
                        EventType::FollowersNotified,
                        serde_json::json!({ "stream": stream, "followers": told }),
                    ),
                )
                .await;
        }
        Ok(())
    }

    async fn went_offline(&self, channel_id: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM live_streams WHERE channel_id = $1")
            .bind(channel_id)
            .execute(self.pool())
            .await?;
        search::remove(
            self.pool(),
            self.db().backend(),
            search::Kind::Stream,
            channel_id,
        )
        .await
    }

    /// Viewers of each live stream (written when they change) and, every
    /// [`SCORE_EVERY`], the trending scores.
    async fn count_viewers(&self, samples: &[StreamSample]) -> Result<(), sqlx::Error> {
        let now = now_ms();
        let live: Vec<(String, u32)> = samples
            .iter()
            .filter(|s| s.active)
            .map(|s| (s.stream.clone(), s.viewers))
            .collect();
        let (changed, due) = {
            let mut st = self.discovery().state();
            st.trend.observe(now, &live);
            st.written.retain(|k, _| live.iter().any(|(s, _)| s == k));
            let changed: Vec<(String, u32)> = live
                .iter()
                .filter(|(s, v)| st.written.get(s) != Some(v))
                .cloned()
                .collect();
            for (s, v) in &changed {
                st.written.insert(s.clone(), *v);
            }
            let due = now - st.last_scores >= i64::try_from(SCORE_EVERY.as_millis()).unwrap_or(0);
            if due {
                st.last_scores = now;
            }
            (changed, due)
        };
        for (stream, viewers) in changed {
            sqlx::query(
                "UPDATE live_streams SET viewers = $1, updated_at = $2 \
                 WHERE channel_id = (SELECT id FROM channels WHERE slug = $3)",
            )
            .bind(i64::from(viewers))
            .bind(now)
            .bind(&stream)
            .execute(self.pool())
            .await?;
        }
        if due {
            self.write_scores(now).await?;
        }
        Ok(())
    }

    async fn write_scores(&self, now: i64) -> Result<(), sqlx::Error> {
        let chat: Vec<(String, i64)> = sqlx::query_as(
            "SELECT c.slug, COUNT(*) FROM chat_messages m JOIN channels c ON c.id = m.channel_id \
             JOIN live_streams l ON l.channel_id = m.channel_id \
             WHERE m.created_at > $1 AND m.deleted_at IS NULL GROUP BY c.slug",
        )
        .bind(now - trending::WINDOW_MS)
        .fetch_all(self.pool())
        .await?;
        let scores = self.discovery().state().trend.scores(|stream| {
            chat.iter()
                .find(|(s, _)| s == stream)
                .map_or(0, |(_, n)| u32::try_from(*n).unwrap_or(u32::MAX))
        });
        for (stream, score) in scores {
            sqlx::query(
                "UPDATE live_streams SET score = $1, updated_at = $2 \
                 WHERE channel_id = (SELECT id FROM channels WHERE slug = $3)",
            )
            .bind(score)
            .bind(now)
            .bind(&stream)
            .execute(self.pool())
            .await?;
        }
        // Rows a dead process left.
        sqlx::query("DELETE FROM live_streams WHERE updated_at < $1")
            .bind(now - 3 * LIVE_FRESH_MS)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
