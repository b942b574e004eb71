//! Tips: a one-off payment to a channel with a message. The request makes the gateway's
//! payment (paid at once with a payment method, or confirmed by the browser with the
//! client secret); when the gateway says it succeeded (`apply.rs`) the tip is recorded in
//! the ledger and announced in the channel's chat room as a `tip` event, once.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::gateway::NewPayment;
use super::idempotency_key;
use super::ledger::Currency;
use crate::channels::{by_slug, may_watch};
use crate::chat::event::Author;
use crate::chat::Event;
use crate::db::{duplicate, now_ms};
use crate::error::{ApiResult, Problem};
use crate::extract::{Caller, Json, Path};
use crate::model;
use crate::tokens::hash_secret;
use crate::{ControlPlane, Error};

/// Smallest and largest tip, minor units.
pub const TIP_RANGE: (i64, i64) = (50, 1_000_000);
/// Longest message, characters.
pub const MAX_MESSAGE: usize = 200;

/// A tip.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Tip {
    /// Opaque id.
    pub id: String,
    /// Who tipped (`null`: an account since deleted).
    pub user: Option<Author>,
    /// Minor units.
    pub amount: i64,
    /// Lowercase ISO 4217 code.
    pub currency: String,
    /// Plain text (render it as text, never as HTML).
    pub message: String,
    /// `pending` until the gateway says the payment succeeded, then `succeeded`.
    pub status: String,
    /// Finish the payment in the browser with the gateway's script (only in the answer
    /// to the request, when not paid at once).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// `POST /channels/{slug}/tips`
#[derive(Debug, Deserialize, ToSchema)]
pub struct TipRequest {
    /// Minor units, 50 to 1 000 000.
    #[schema(minimum = 50, maximum = 1000000)]
    pub amount: i64,
    /// ISO 4217 code, e.g. `usd`.
    #[schema(min_length = 3, max_length = 3)]
    pub currency: String,
    /// Shown with the alert, up to 200 characters.
    #[schema(max_length = 200)]
    #[serde(default)]
    pub message: String,
    /// Pay at once with this payment method (`pm_…`, made by the gateway's card form);
    /// without it the answer's client secret confirms the payment in the browser.
    #[schema(max_length = 255)]
    pub payment_method: Option<String>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    username: Option<String>,
    display_name: Option<String>,
    amount: i64,
    currency: String,
    message: String,
    status: String,
    created_at: i64,
}

const SELECT: &str = "SELECT t.id, u.username, u.display_name, t.amount, t.currency, t.message, \
    t.status, t.created_at FROM tips t LEFT JOIN users u ON u.id = t.user_id";

impl From<Row> for Tip {
    fn from(r: Row) -> Tip {
        Tip {
            id: r.id,
            user: r.username.map(|username| Author {
                display_name: r.display_name.unwrap_or_else(|| username.clone()),
                username,
            }),
            amount: r.amount,
            currency: r.currency,
            message: r.message,
            status: r.status,
            client_secret: None,
            created_at: r.created_at,
        }
    }
}

async fn find(cp: &ControlPlane, id: &str) -> ApiResult<Option<Tip>> {
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} WHERE t.id = $1")))
        .bind(id)
        .fetch_optional(cp.pool())
        .await?;
    Ok(row.map(Tip::from))
}

/// Tip a channel. Send an `Idempotency-Key`: a repeat answers with the first tip and
/// charges nothing.
#[utoipa::path(post, path = "/api/v1/channels/{slug}/tips", tag = "money", security(("access_token" = [])),
    params(("slug" = String, Path), ("Idempotency-Key" = Option<String>, Header)), request_body = TipRequest,
    responses((status = 201, body = Tip), (status = 200, body = Tip, description = "a repeat of the same Idempotency-Key"),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn tip(
    State(cp): State<ControlPlane>,
    caller: Caller,
    headers: HeaderMap,
    Path(slug): Path<String>,
    Json(req): Json<TipRequest>,
) -> ApiResult<(StatusCode, axum::Json<Tip>)> {
    let key = idempotency_key(&headers)?;
    let user = &caller.0.id;
    // The id follows from (user, key): a repeat finds the first tip, and a retry after a
    // crash reaches the gateway with the same idempotency key.
    let id = hash_secret(&format!("tip:{user}:{key}"))[..24].to_owned();
    if let Some(first) = find(&cp, &id).await? {
        return Ok((StatusCode::OK, axum::Json(first)));
    }
    let ch = by_slug(&cp, &slug).await?.ok_or(Error::NotFound)?;
    if !may_watch(&cp, &ch, Some(&caller)).await? {
        return Err(Error::NotFound);
    }
    if !(TIP_RANGE.0..=TIP_RANGE.1).contains(&req.amount) {
        return Err(Error::Invalid(
            "amount must be 50 to 1000000 minor units".into(),
        ));
    }
    let currency = Currency::parse(&req.currency).map_err(|e| Error::Invalid(e.to_string()))?;
    let message = model::text("message", req.message.trim(), MAX_MESSAGE)?;
    if let Some(pm) = &req.payment_method {
        if pm.is_empty()
            || pm.len() > 255
            || !pm.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(Error::Invalid(
                "payment_method must be a gateway id such as pm_…".into(),
            ));
        }
    }
    let gateway = cp.gateway()?.clone();
    // A saved card (the card form's) belongs to the payer's customer.
    let customer = match req.payment_method {
        Some(_) => Some(super::subscriptions::customer(&cp, &caller).await?),
        None => None,
    };
    // The row exists before the gateway's event can arrive.
    let inserted = sqlx::query(
        "INSERT INTO tips (id, channel_id, user_id, amount, currency, message, gateway_intent, \
         status, idempotency_key, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9)",
    )
    .bind(&id)
    .bind(&ch.id)
    .bind(user)
    .bind(req.amount)
    .bind(currency.as_str())
    .bind(&message)
    .bind(format!("pending:{id}"))
    .bind(&key)
    .bind(now_ms())
    .execute(cp.pool())
    .await;
    match inserted {
        Err(e) if duplicate(&e) => {
            let first = find(&cp, &id)
                .await?
                .ok_or(Error::Conflict("the same Idempotency-Key is in use"))?;
            return Ok((StatusCode::OK, axum::Json(first)));
        }
        r => r?,
    };
    let made = gateway
        .pay(NewPayment {
            amount: req.amount,
            currency: currency.as_str(),
            payment_method: req.payment_method.as_deref(),
            customer: customer.as_deref(),
            metadata: vec![
                ("tip_id", id.as_str()),
                ("channel_id", ch.id.as_str()),
                ("user_id", user.as_str()),
                ("message", message.as_str()),
            ],
            idempotency_key: &format!("tip-{id}"),
        })
        .await;
    let made = super::settle(
        &cp,
        made,
        "DELETE FROM tips WHERE id = $1 AND status = 'pending'",
        "UPDATE tips SET gateway_intent = $1 WHERE id = $2",
        &id,
    )
    .await?;
    let mut tip = find(&cp, &id).await?.ok_or(Error::NotFound)?;
    tip.client_secret = made.client_secret;
    Ok((StatusCode::CREATED, axum::Json(tip)))
}

/// The channel a tip is for, if `tip` is ours.
pub(crate) async fn channel_of(
    cp: &ControlPlane,
    tip: &str,
    payment: &str,
) -> Result<Option<String>, sqlx::Error> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT channel_id FROM tips WHERE id = $1 AND (gateway_intent = $2 OR gateway_intent = $3)",
    )
    .bind(tip)
    .bind(payment)
    .bind(format!("pending:{tip}"))
    .fetch_optional(cp.pool())
    .await?;
    Ok(row.map(|(c,)| c))
}

/// Marks a tip succeeded and announces it in the channel's room, once.
pub(crate) async fn succeeded(cp: &ControlPlane, id: &str) -> ApiResult<()> {
    let changed = sqlx::query(
        "UPDATE tips SET status = 'succeeded', succeeded_at = $1 WHERE id = $2 AND status = 'pending'",
    )
    .bind(now_ms())
    .bind(id)
    .execute(cp.pool())
    .await?
    .rows_affected();
    if changed == 0 {
        return Ok(());
    }
    let row: Option<(String,)> = sqlx::query_as("SELECT channel_id FROM tips WHERE id = $1")
        .bind(id)
        .fetch_optional(cp.pool())
        .await?;
    if let (Some((channel,)), Some(tip)) = (row, find(cp, id).await?) {
        let data = serde_json::to_value(&tip).unwrap_or_default();
        cp.chat().publish(&channel, &Event::Tip { tip }).await;
        cp.webhooks()
            .emit(
                Some(&channel),
                crate::webhooks::Event::Other(crate::webhooks::EventType::TipReceived, data),
            )
            .await;
    }
    Ok(())
}
