//! What a browser needs to pay: which gateway script to load with which publishable key,
//! a card saved through the gateway's card form (Stripe: a SetupIntent the page confirms
//! with `stripe.confirmCardSetup`, whose payment method the subscribe and tip requests
//! then name), and the subscriber badges the channel page shows in chat.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::subscriptions::customer;
use crate::channels::{by_slug, may_watch};
use crate::error::{ApiResult, Problem};
use crate::extract::{Caller, MaybeCaller, Path};
use crate::{ControlPlane, Error};

/// How long a channel's badges are served from memory: a chat of thousands asks once.
pub const BADGES_TTL: Duration = Duration::from_secs(30);
/// Most badges listed per channel.
const MAX_BADGES: i64 = 2000;

/// The browser's side of the payment gateway.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentsConfig {
    /// `stripe`, or `null` when no gateway is configured (nothing can be paid).
    pub gateway: Option<&'static str>,
    /// The gateway's publishable key (not a secret).
    pub publishable_key: Option<String>,
    /// Where the gateway's script is loaded from (Stripe.js: `https://js.stripe.com/v3/`).
    pub js_url: Option<String>,
}

/// A card to confirm in the browser.
#[derive(Debug, Serialize, ToSchema)]
pub struct CardSetup {
    /// Give it to the gateway's script (`stripe.confirmCardSetup`).
    pub client_secret: String,
}

/// A subscriber's badge.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Badge {
    /// The subscriber.
    pub username: String,
    /// Their tier's name.
    pub tier: String,
}

/// A channel's badges and when they were read.
type Read = (Instant, Arc<Vec<Badge>>);

/// Each channel's badges, by channel id.
#[derive(Debug, Default)]
pub(crate) struct BadgeCache(Mutex<HashMap<String, Read>>);

impl BadgeCache {
    fn get(&self, channel: &str, now: Instant) -> Option<Arc<Vec<Badge>>> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(channel)
            .filter(|(at, _)| now.duration_since(*at) < BADGES_TTL)
            .map(|(_, b)| b.clone())
    }

    /// Drops a channel's badges (a subscription of it changed state).
    pub(crate) fn forget(&self, channel: &str) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(channel);
    }

    fn put(&self, channel: &str, now: Instant, badges: Arc<Vec<Badge>>) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // Old entries go when the map grows, so it holds the channels asked lately.
        if map.len() > 10_000 {
            map.retain(|_, (at, _)| now.duration_since(*at) < BADGES_TTL);
        }
        map.insert(channel.to_owned(), (now, badges));
    }
}

/// The gateway the pages pay through.
#[utoipa::path(get, path = "/api/v1/payments/config", tag = "money",
    responses((status = 200, body = PaymentsConfig)))]
pub(crate) async fn config(State(cp): State<ControlPlane>) -> axum::Json<PaymentsConfig> {
    let money = &cp.config().money;
    let on = money.gateway.is_some();
    axum::Json(PaymentsConfig {
        gateway: money.gateway.as_ref().map(|g| g.name()),
        publishable_key: money.publishable_key.clone().filter(|_| on),
        js_url: on.then(|| money.js_url.clone()),
    })
}

/// Starts saving a card for the caller: confirm the answer's client secret with the
/// gateway's card form, then name the payment method it made in a subscribe or tip
/// request.
#[utoipa::path(post, path = "/api/v1/me/payment-methods/setup", tag = "money", security(("access_token" = [])),
    responses((status = 201, body = CardSetup), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn setup(
    State(cp): State<ControlPlane>,
    caller: Caller,
) -> ApiResult<(StatusCode, axum::Json<CardSetup>)> {
    let gateway = cp.gateway()?.clone();
    let customer = customer(&cp, &caller).await?;
    let made = gateway.setup_card(&customer).await?;
    let client_secret = made
        .client_secret
        .ok_or(Error::Busy("the payment gateway gave no client secret", 5))?;
    Ok((StatusCode::CREATED, axum::Json(CardSetup { client_secret })))
}

/// The channel's subscribers now, each with their tier's name: the badges shown beside
/// their chat messages (public, as the badges are). Read at most every 30 s.
#[utoipa::path(get, path = "/api/v1/channels/{slug}/badges", tag = "money", params(("slug" = String, Path)),
    responses((status = 200, body = [Badge]), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn badges(
    State(cp): State<ControlPlane>,
    caller: MaybeCaller,
    Path(slug): Path<String>,
) -> ApiResult<axum::Json<Arc<Vec<Badge>>>> {
    let ch = by_slug(&cp, &slug).await?.ok_or(Error::NotFound)?;
    if !may_watch(&cp, &ch, caller.0.as_ref()).await? {
        return Err(Error::NotFound);
    }
    let now = Instant::now();
    if let Some(b) = cp.badges().get(&ch.id, now) {
        return Ok(axum::Json(b));
    }
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT u.username, t.name FROM subscriptions s JOIN users u ON u.id = s.user_id \
         JOIN tiers t ON t.id = s.tier_id WHERE s.channel_id = $1 \
         AND s.status IN ('active', 'trialing') ORDER BY s.created_at LIMIT $2",
    )
    .bind(&ch.id)
    .bind(MAX_BADGES)
    .fetch_all(cp.pool())
    .await?;
    let badges = Arc::new(
        rows.into_iter()
            .map(|(username, tier)| Badge { username, tier })
            .collect::<Vec<_>>(),
    );
    cp.badges().put(&ch.id, now, badges.clone());
    Ok(axum::Json(badges))
}
