//! The cluster's audience into webhooks and analytics: every second, the reports of the
//! nodes alive ([`super::audience`]), folded into one look ([`super::merge`]), go to
//! `observe_streams` (stream started/ended, milestones, discovery) and `observe_viewers`
//! (broadcasts, sessions, concurrency), as `serve` feeds its own node's.
//!
//! Several replicas share the database, and each event must be told once: only the
//! replica holding the `audience` lease (a row of `cluster_leases`, renewed every second,
//! [`LEASE_MS`] long) feeds them. A replica that takes the lease over from one that
//! stopped holding it less than [`STALE_MS`] ago takes up the open broadcasts and
//! sessions from the database (no start told again, no broadcast split); after a longer
//! gap it starts over as `serve` does after a restart (open rows closed where they were
//! last seen, live streams told started again).

use std::time::Duration;

use super::audience::{self, Audience};
use super::merge::merge;
use crate::db::now_ms;
use crate::tokens::random_id;
use crate::webhooks::streams::StreamWatch;
use crate::ControlPlane;

/// How long a replica's hold on the lease lasts without renewal.
pub(crate) const LEASE_MS: i64 = 3_000;
/// A lease that ran out longer ago than this was nobody's: the next holder starts over.
pub(crate) const STALE_MS: i64 = 30_000;
/// How often the audience is looked at.
const EVERY: Duration = Duration::from_secs(1);
const LEASE: &str = "audience";

impl ControlPlane {
    /// One look at the audience: this process's node (`serve`), if any, and with a
    /// cluster token the nodes alive that report here, merged, into webhooks and
    /// analytics. A look whose reports cannot be read is skipped (not taken for an
    /// empty cluster, which would end every broadcast).
    pub async fn observe_audience(&self, local: Option<Audience>) {
        let mut reports = Vec::new();
        if self.config().cluster_token.is_some() {
            match audience::alive(self).await {
                Ok(r) => reports = r,
                Err(e) => {
                    tracing::warn!("reading the nodes' audience: {e}");
                    return;
                }
            }
        }
        reports.extend(local);
        let merged = merge(&reports);
        self.observe_streams(&merged.streams).await;
        self.observe_viewers(&merged.live(), &merged.sessions).await;
    }

    /// Claims or renews the lease for `holder`: whether it holds it now, and when the
    /// previous hold ran out (`None`: never held, or held by `holder`).
    async fn claim(&self, holder: &str, now: i64) -> Result<(bool, Option<i64>), sqlx::Error> {
        let before: Option<(String, i64)> =
            sqlx::query_as("SELECT holder, expires_at FROM cluster_leases WHERE name = $1")
                .bind(LEASE)
                .fetch_optional(self.pool())
                .await?;
        let done = sqlx::query(
            "INSERT INTO cluster_leases (name, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
             expires_at = excluded.expires_at \
             WHERE cluster_leases.holder = excluded.holder OR cluster_leases.expires_at < $4",
        )
        .bind(LEASE)
        .bind(holder)
        .bind(now + LEASE_MS)
        .bind(now)
        .execute(self.pool())
        .await?
        .rows_affected();
        let previous = before.filter(|(h, _)| h != holder).map(|(_, e)| e);
        Ok((done == 1, previous))
    }

    /// Takes up the open broadcasts and sessions the database holds.
    async fn take_up(&self) -> Result<(), sqlx::Error> {
        let open: Vec<(String, String, String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT b.id, b.channel_id, c.slug, b.started_at, \
             (SELECT MAX(m.peak) FROM analytics_minutes m WHERE m.broadcast_id = b.id) \
             FROM broadcasts b JOIN channels c ON c.id = b.channel_id WHERE b.ended_at IS NULL",
        )
        .fetch_all(self.pool())
        .await?;
        let sessions: Vec<(String, Option<i64>)> =
            sqlx::query_as("SELECT id, join_ms FROM viewer_sessions WHERE closed_at IS NULL")
                .fetch_all(self.pool())
                .await?;
        let mut watch = StreamWatch::default();
        for (_, _, stream, since, peak) in &open {
            let peak = peak.map_or(0, |p| u32::try_from(p).unwrap_or(u32::MAX));
            watch.resume(stream, *since, peak);
        }
        self.webhooks().resume_streams(watch);
        self.analytics().resume(
            open.into_iter()
                .map(|(id, channel, stream, _, _)| (stream, channel, id))
                .collect(),
            sessions
                .into_iter()
                .map(|(id, join)| (id, join.is_some()))
                .collect(),
        );
        Ok(())
    }

    /// Lets go of what this replica tracked: another holds the lease now.
    fn let_go(&self) {
        self.webhooks().resume_streams(StreamWatch::default());
        self.analytics().restart();
        // What the other holder writes to the live lists is not what this one wrote.
        self.discovery().forget_written();
    }

    /// Starts the look every second on a `cascade control` replica; it ends with the
    /// control plane.
    pub(crate) fn spawn_cluster_observer(&self) {
        let weak = std::sync::Arc::downgrade(&self.0);
        let me = random_id();
        tokio::spawn(async move {
            let mut held = false;
            let mut tick = tokio::time::interval(EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let cp = ControlPlane(inner);
                let now = now_ms();
                let (holds, previous) = match cp.claim(&me, now).await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!("the audience lease: {e}");
                        continue;
                    }
                };
                if !holds {
                    if std::mem::take(&mut held) {
                        cp.let_go();
                    }
                    continue;
                }
                if held && previous.is_some() {
                    // Another replica held it in between (this one stalled past the
                    // lease): what this one tracked is stale; take up the database's.
                    cp.let_go();
                    held = false;
                }
                if !held {
                    // Taken over from a replica that just stopped: go on where it was.
                    // Otherwise (first start, or nobody for a while) as `serve` starts:
                    // `observe_viewers` sweeps what was left open.
                    let fresh = previous.is_some_and(|e| now - e < STALE_MS);
                    if fresh {
                        if let Err(e) = cp.take_up().await {
                            tracing::warn!("taking up the audience: {e}");
                            continue;
                        }
                    }
                    tracing::info!(fresh, "this replica feeds the cluster's audience");
                    held = true;
                }
                cp.observe_audience(None).await;
            }
        });
    }
}
