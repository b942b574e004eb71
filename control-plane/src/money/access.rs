//! Who may watch a paywalled channel: subscriptions' states as the gateway's events set
//! them, entitlements, and the paywall itself (a channel always, one live until it ends:
//! [`super::this_stream`], or its current stream until a time).

use super::gateway::{supersedes, SubStatus};
use super::this_stream::{self, StreamPaywall};
use crate::db::now_ms;
use crate::ControlPlane;

/// Sets a subscription's state from a report made at `at` (Unix seconds) when it is
/// newer than what is held ([`supersedes`]): duplicated and out-of-order events change
/// nothing. Returns the subscription's (channel, user, status before) when it changed.
pub async fn report(
    cp: &ControlPlane,
    gateway_subscription: &str,
    status: SubStatus,
    at: i64,
) -> Result<Option<(String, String, SubStatus)>, sqlx::Error> {
    // Compare-and-set, retried when another report lands in between.
    for _ in 0..5 {
        let row: Option<(String, i64, String, String)> = sqlx::query_as(
            "SELECT status, status_at, channel_id, user_id FROM subscriptions \
             WHERE gateway_subscription = $1",
        )
        .bind(gateway_subscription)
        .fetch_optional(cp.pool())
        .await?;
        let Some((old, old_at, channel, user)) = row else {
            // Not one of ours (made elsewhere on the same account).
            return Ok(None);
        };
        let old_status = SubStatus::parse(&old).unwrap_or(SubStatus::Incomplete);
        if !supersedes(old_status, old_at, status, at) {
            return Ok(None);
        }
        let done = sqlx::query(
            "UPDATE subscriptions SET status = $1, status_at = $2, updated_at = $3 \
             WHERE gateway_subscription = $4 AND status = $5 AND status_at = $6",
        )
        .bind(status.as_str())
        .bind(at)
        .bind(now_ms())
        .bind(gateway_subscription)
        .bind(&old)
        .bind(old_at)
        .execute(cp.pool())
        .await?;
        if done.rows_affected() == 1 {
            // The chat's badges follow at once here (other processes within their 30 s).
            cp.badges().forget(&channel);
            return Ok(Some((channel, user, old_status)));
        }
    }
    Ok(None)
}

/// Whether `user_id` holds a subscription to the channel that entitles them now.
pub async fn entitled(
    cp: &ControlPlane,
    channel_id: &str,
    user_id: &str,
) -> Result<bool, sqlx::Error> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM subscriptions WHERE channel_id = $1 AND user_id = $2 \
         AND status IN ('active', 'trialing') LIMIT 1",
    )
    .bind(channel_id)
    .bind(user_id)
    .fetch_optional(cp.pool())
    .await?;
    Ok(row.is_some())
}

/// A channel's paywall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Paywall {
    /// Every stream is for subscribers.
    pub subscribers_only: bool,
    /// The current stream is for subscribers until then (Unix ms): the time-boxed form
    /// of older clients.
    pub stream_until: Option<i64>,
    /// One live is for subscribers until it ends.
    pub this_stream: Option<StreamPaywall>,
}

impl Paywall {
    /// Whether it holds at `now` (Unix ms).
    pub fn closed(&self, now: i64) -> bool {
        self.subscribers_only
            || self.stream_until.is_some_and(|t| t > now)
            || self.this_stream.is_some_and(|s| s.holds(now))
    }
}

/// The channel's paywall (none: open).
pub async fn paywall(cp: &ControlPlane, channel_id: &str) -> Result<Paywall, sqlx::Error> {
    let row: Option<(i64, Option<i64>, Option<i64>)> = sqlx::query_as(
        "SELECT subscribers_only, stream_until, stream_marked_at FROM channel_paywalls \
         WHERE channel_id = $1",
    )
    .bind(channel_id)
    .fetch_optional(cp.pool())
    .await?;
    let Some((subscribers_only, stream_until, marked)) = row else {
        return Ok(Paywall::default());
    };
    let this_stream = match marked {
        Some(at) => Some(this_stream::read(cp, channel_id, at).await?),
        None => None,
    };
    Ok(Paywall {
        subscribers_only: subscribers_only != 0,
        stream_until,
        this_stream,
    })
}

/// Whether the channel's paywall held at any moment from `since` (Unix ms) to now: closed
/// now, a stream paywall that ran past `since` (a marked live that ended after it, or a
/// time-boxed one), or a closing since then (each closing write records its time). What
/// a recording begun at `since` showed only to subscribers stays theirs.
pub async fn closed_since(
    cp: &ControlPlane,
    channel_id: &str,
    since: i64,
) -> Result<bool, sqlx::Error> {
    let p = paywall(cp, channel_id).await?;
    if p.closed(now_ms())
        || p.stream_until.is_some_and(|t| t > since)
        || p.this_stream.is_some_and(|s| s.held_since(since))
    {
        return Ok(true);
    }
    let closing: Option<(Option<i64>,)> =
        sqlx::query_as("SELECT last_closed_at FROM channel_paywalls WHERE channel_id = $1")
            .bind(channel_id)
            .fetch_optional(cp.pool())
            .await?;
    Ok(closing.and_then(|(at,)| at).is_some_and(|at| at >= since))
}

/// What the owner sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PaywallChange {
    pub subscribers_only: bool,
    pub stream_until: Option<i64>,
    /// The live running now, or the next one, is for subscribers; false lifts it.
    pub this_stream: bool,
}

/// Sets the channel's paywall; returns it as it is now. Marking "this stream" again
/// while a marked live holds keeps that live (the same live, not the next).
pub(crate) async fn set_paywall(
    cp: &ControlPlane,
    channel_id: &str,
    change: PaywallChange,
) -> Result<Paywall, sqlx::Error> {
    let now = now_ms();
    let marked = if change.this_stream {
        let held = paywall(cp, channel_id)
            .await?
            .this_stream
            .filter(|s| s.holds(now));
        Some(held.map_or(now, |s| s.marked_at))
    } else {
        None
    };
    let closed = change.subscribers_only
        || change.this_stream
        || change.stream_until.is_some_and(|t| t > now);
    sqlx::query(
        "INSERT INTO channel_paywalls (channel_id, subscribers_only, stream_until, updated_at, \
         last_closed_at, stream_marked_at) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (channel_id) DO UPDATE SET \
         subscribers_only = excluded.subscribers_only, stream_until = excluded.stream_until, \
         updated_at = excluded.updated_at, \
         last_closed_at = COALESCE(excluded.last_closed_at, channel_paywalls.last_closed_at), \
         stream_marked_at = excluded.stream_marked_at",
    )
    .bind(channel_id)
    .bind(i64::from(change.subscribers_only))
    .bind(change.stream_until)
    .bind(now)
    .bind(closed.then_some(now))
    .bind(marked)
    .execute(cp.pool())
    .await?;
    paywall(cp, channel_id).await
}

/// How a channel's paywall admits a viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// The paywall is closed to them.
    Refused,
    /// Only because the paywall is open now: closing it ends their session
    /// ([`crate::revocation::paywall_tag`]).
    WhileOpen,
    /// Whatever the paywall: the owner, an admin or an entitled subscriber.
    Always,
}

/// How the channel's paywall admits `user` (None: anonymous) now: owners and admins
/// always pass, others with an entitling subscription, the rest while it is open.
pub(crate) async fn admission(
    cp: &ControlPlane,
    channel_id: &str,
    owner_id: &str,
    user: Option<&crate::model::UserRow>,
) -> Result<Admission, sqlx::Error> {
    if user.is_some_and(|u| u.id == owner_id || u.role() == crate::model::Role::Admin) {
        return Ok(Admission::Always);
    }
    let closed = paywall(cp, channel_id).await?.closed(now_ms());
    let entitled = match user {
        Some(u) => entitled(cp, channel_id, &u.id).await?,
        None => false,
    };
    Ok(match (entitled, closed) {
        (true, _) => Admission::Always,
        (false, false) => Admission::WhileOpen,
        (false, true) => Admission::Refused,
    })
}
