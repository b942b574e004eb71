//! Money: channels' subscription tiers, viewers' subscriptions and tips through a
//! payment gateway, and the double-entry ledger that records every cent
//! (`docs/MONETIZATION.md`).
//!
//! - `ledger.rs`: the pure core (accounts, postings that balance by construction, the
//!   platform fee and its rounding); `book.rs` stores it (an idempotency key per fact),
//!   balances and the payouts report. `iso4217.rs`: the currency codes a metric's label
//!   may be.
//! - `gateway.rs`: the [`PaymentGateway`] trait and the typed events; `stripe/` is Stripe
//!   (HTTP client, `Stripe-Signature` verification, event parsing).
//! - `access.rs`: subscriptions' states as the gateway's events set them (ordered by the
//!   events' time, `canceled` final), entitlements and paywalls, asked by the gate;
//!   `this_stream.rs`: one live marked subscribers-only, read against the broadcasts.
//! - `apply.rs`: one verified event → its effects, once per event id.
//! - `checkout.rs`: the browser's side (the gateway's script and publishable key, a
//!   card saved through the gateway's card form) and the subscriber badges of chat.
//! - HTTP: `tiers.rs`, `subscriptions.rs`, `tips.rs`, `webhook.rs`, `reports.rs`.

pub mod access;
mod apply;
pub mod book;
pub mod checkout;
pub mod gateway;
mod iso4217;
pub mod ledger;
pub mod reports;
pub mod stripe;
pub mod subscriptions;
pub mod this_stream;
pub mod tiers;
pub mod tips;
pub mod webhook;

use std::sync::Arc;

pub use gateway::PaymentGateway;
pub(crate) use iso4217::label as currency_label;

use crate::error::Error;
use crate::ControlPlane;

/// Settings of money.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The platform's fee, percent of every payment (0 to 100).
    pub fee_percent: u8,
    /// The payment gateway; `None`: money endpoints answer 503 and nothing is paywalled
    /// by subscription (a paywalled channel admits its owner and admins only).
    pub gateway: Option<Arc<dyn PaymentGateway>>,
    /// The gateway's publishable key, given to the pages (not a secret).
    pub publishable_key: Option<String>,
    /// Where the pages load the gateway's script from ([`stripe::DEFAULT_JS`], or a
    /// stand-in such as localstripe's in tests).
    pub js_url: String,
    /// A publisher back within this after its live ended continues that live for a
    /// "this stream" paywall ([`this_stream`]); 30 s, the recordings' default grace.
    pub stream_grace: std::time::Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            fee_percent: 10,
            gateway: None,
            publishable_key: None,
            js_url: stripe::DEFAULT_JS.to_owned(),
            stream_grace: std::time::Duration::from_secs(30),
        }
    }
}

/// Finishes a gateway call made after its row was written (so that an early webhook finds
/// the row): on failure `undo` deletes the row and the error is returned; on success
/// `record` stores the gateway's id. `undo` binds the row's `id`; `record` binds the
/// gateway's id, then the row's.
pub(crate) async fn settle(
    cp: &ControlPlane,
    made: Result<gateway::Created, gateway::GatewayError>,
    undo: &'static str,
    record: &'static str,
    id: &str,
) -> Result<gateway::Created, Error> {
    let made = match made {
        Ok(m) => m,
        Err(e) => {
            sqlx::query(undo).bind(id).execute(cp.pool()).await?;
            return Err(e.into());
        }
    };
    sqlx::query(record)
        .bind(&made.id)
        .bind(id)
        .execute(cp.pool())
        .await?;
    Ok(made)
}

/// Largest `Idempotency-Key` a client may send.
const MAX_IDEMPOTENCY_KEY: usize = 255;

impl ControlPlane {
    /// The gateway; 404 when none is configured (payments are off on this server, which is
    /// not a passing state to retry).
    pub(crate) fn gateway(&self) -> Result<&Arc<dyn PaymentGateway>, Error> {
        self.config().money.gateway.as_ref().ok_or(Error::Missing(
            "payments are not enabled on this server (no payment gateway is configured)",
        ))
    }
}

/// The client's `Idempotency-Key` header (checked), or a fresh one: a request without
/// one is not deduplicated.
pub(crate) fn idempotency_key(headers: &axum::http::HeaderMap) -> Result<String, Error> {
    match headers.get("idempotency-key") {
        None => Ok(crate::tokens::random_id()),
        Some(v) => {
            let k = v
                .to_str()
                .ok()
                .map(str::trim)
                .filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY)
                .filter(|k| k.bytes().all(|b| b.is_ascii_graphic()))
                .ok_or_else(|| {
                    Error::BadRequest(
                        "Idempotency-Key must be 1 to 255 visible ASCII characters".into(),
                    )
                })?;
            Ok(k.to_owned())
        }
    }
}
