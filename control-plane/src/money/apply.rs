//! One verified gateway event → its effects, each idempotent on its own (a subscription's
//! state only moves forward, a ledger posting has the gateway object's id as its key, a
//! tip succeeds once), and the event id recorded so a repeat is answered at once.

use super::book::{self, Kind};
use super::gateway::{Event, Fact};
use super::ledger::{self, Amount, Currency};
use super::{access, tips};
use crate::db::{duplicate, now_ms};
use crate::error::Error;
use crate::revocation::watch_tag;
use crate::webhooks::{Event as Hook, EventType};
use crate::ControlPlane;

/// What an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    /// Seen before: nothing done.
    Duplicate,
    /// Applied (possibly to no effect: an older state, an unknown object).
    Done,
}

pub(crate) async fn apply(cp: &ControlPlane, gateway: &str, ev: &Event) -> Result<Applied, Error> {
    let seen: Option<(String,)> = sqlx::query_as("SELECT id FROM gateway_events WHERE id = $1")
        .bind(&ev.id)
        .fetch_optional(cp.pool())
        .await?;
    if seen.is_some() {
        return Ok(Applied::Duplicate);
    }
    match &ev.fact {
        Fact::Subscription { id, status, ours } => {
            if let Some(ours) = ours {
                sqlx::query(
                    "UPDATE subscriptions SET gateway_subscription = $1 \
                     WHERE id = $2 AND gateway_subscription = $3",
                )
                .bind(id)
                .bind(ours)
                .bind(format!("pending:{ours}"))
                .execute(cp.pool())
                .await?;
            }
            if let Some((channel, user, before)) =
                access::report(cp, id, *status, ev.created).await?
            {
                if status.entitles() && !before.entitles() {
                    subscribed(cp, &channel, &user, id).await;
                }
                let paywalled = access::paywall(cp, &channel).await?.closed(now_ms());
                if !status.entitles() && paywalled {
                    // Their sessions and viewer tokens end now, here and on every node.
                    cp.revoke(watch_tag(&channel, &user), 0, true).await?;
                }
            }
        }
        Fact::InvoicePaid {
            invoice,
            subscription,
            amount,
            currency,
        } => {
            let row: Option<(String,)> = sqlx::query_as(
                "SELECT channel_id FROM subscriptions WHERE gateway_subscription = $1",
            )
            .bind(subscription)
            .fetch_optional(cp.pool())
            .await?;
            if let Some((channel,)) = row {
                revenue(
                    cp,
                    gateway,
                    Kind::Subscription,
                    &channel,
                    invoice,
                    *amount,
                    currency,
                )
                .await?;
            }
        }
        Fact::PaymentSucceeded {
            id,
            amount,
            currency,
            tip: Some(tip),
        } => {
            if let Some(channel) = tips::channel_of(cp, tip, id).await? {
                revenue(cp, gateway, Kind::Tip, &channel, id, *amount, currency).await?;
                tips::succeeded(cp, tip).await?;
            }
        }
        Fact::PaymentSucceeded { tip: None, .. } | Fact::Ignored => {}
    }
    let recorded = sqlx::query(
        "INSERT INTO gateway_events (id, gateway, type, created, received_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&ev.id)
    .bind(gateway)
    .bind(&ev.kind)
    .bind(ev.created)
    .bind(now_ms())
    .execute(cp.pool())
    .await;
    match recorded {
        // Delivered twice at once: both applied idempotent effects.
        Err(e) if duplicate(&e) => Ok(Applied::Duplicate),
        Err(e) => Err(e.into()),
        Ok(_) => Ok(Applied::Done),
    }
}

/// Tells the channel's webhooks that a viewer's subscription started (the first time it
/// entitles them: `subscription.created`).
async fn subscribed(cp: &ControlPlane, channel: &str, user: &str, gateway_subscription: &str) {
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT s.id, t.name FROM subscriptions s JOIN tiers t ON t.id = s.tier_id \
         WHERE s.gateway_subscription = $1",
    )
    .bind(gateway_subscription)
    .fetch_optional(cp.pool())
    .await
    .ok()
    .flatten();
    let (id, tier) = row.unwrap_or_default();
    let data = serde_json::json!({"subscription_id": id, "user_id": user, "tier": tier});
    cp.webhooks()
        .emit(
            Some(channel),
            Hook::Other(EventType::SubscriptionCreated, data),
        )
        .await;
}

/// Posts a payment for a channel under the gateway object's id.
async fn revenue(
    cp: &ControlPlane,
    gateway: &str,
    kind: Kind,
    channel: &str,
    object: &str,
    amount: i64,
    currency: &str,
) -> Result<(), Error> {
    let bad = |e: ledger::LedgerError| Error::Internal(format!("gateway amount: {e}"));
    let gross = Amount::new(amount, Currency::parse(currency).map_err(bad)?).map_err(bad)?;
    let journal =
        ledger::revenue(gateway, channel, &gross, cp.config().money.fee_percent).map_err(bad)?;
    let key = format!("{gateway}:{object}");
    if book::post(cp, &key, kind, Some(channel), object, &journal)
        .await?
        .fresh
    {
        let m = &cp.analytics().metrics;
        m.revenue(gross.currency.as_str(), kind.as_str(), gross.minor);
    }
    Ok(())
}
