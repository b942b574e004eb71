//! A viewer subscribes to a tier, lists and cancels their subscriptions. The state comes
//! from the gateway's events (`apply.rs`); a cancel is also applied from the gateway's
//! answer at once (`canceled` is final, so order cannot undo it).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::gateway::{NewSubscription, SubStatus};
use super::{access, idempotency_key, tiers};
use crate::channels::{by_slug, may_watch};
use crate::db::{duplicate, now_ms};
use crate::error::{ApiResult, Problem};
use crate::extract::{Caller, Json, Path};
use crate::revocation::watch_tag;
use crate::tokens::{hash_secret, now_secs};
use crate::{ControlPlane, Error};

/// A viewer's subscription.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Subscription {
    /// Opaque id.
    pub id: String,
    /// The channel's slug.
    pub channel: String,
    /// The tier.
    pub tier: String,
    /// `incomplete`, `active`, `past_due`, `canceled`, … as the gateway's events say.
    pub status: String,
    /// Whether it lets the viewer watch the channel's subscribers-only streams now.
    pub entitled: bool,
    /// The gateway's subscription id.
    pub gateway_subscription: String,
    /// Finish a payment that needs the customer (3-D Secure) with the gateway's script;
    /// only in the answer to the subscribe request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// `POST /channels/{slug}/tiers/{id}/subscribe`
#[derive(Debug, Deserialize, ToSchema)]
pub struct SubscribeRequest {
    /// A payment method made by the gateway's card form in the browser (`pm_…`).
    #[schema(max_length = 255)]
    pub payment_method: Option<String>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    slug: String,
    tier_id: String,
    status: String,
    gateway_subscription: String,
    created_at: i64,
}

const SELECT: &str = "SELECT s.id, c.slug, s.tier_id, s.status, s.gateway_subscription, \
    s.created_at FROM subscriptions s JOIN channels c ON c.id = s.channel_id";

impl From<Row> for Subscription {
    fn from(r: Row) -> Subscription {
        Subscription {
            entitled: SubStatus::parse(&r.status).is_some_and(SubStatus::entitles),
            id: r.id,
            channel: r.slug,
            tier: r.tier_id,
            status: r.status,
            gateway_subscription: r.gateway_subscription,
            client_secret: None,
            created_at: r.created_at,
        }
    }
}

async fn find(
    cp: &ControlPlane,
    clause: &str,
    a: &str,
    b: &str,
) -> ApiResult<Option<Subscription>> {
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} WHERE {clause}")))
        .bind(a)
        .bind(b)
        .fetch_optional(cp.pool())
        .await?;
    Ok(row.map(Subscription::from))
}

/// The gateway customer of a user, made on first need.
pub(crate) async fn customer(cp: &ControlPlane, caller: &Caller) -> ApiResult<String> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT gateway_customer FROM payment_customers WHERE user_id = $1")
            .bind(&caller.0.id)
            .fetch_optional(cp.pool())
            .await?;
    if let Some((c,)) = row {
        return Ok(c);
    }
    let made = cp
        .gateway()?
        .create_customer(&caller.0.id, &caller.0.email)
        .await?;
    // Two first subscriptions at once: the first row wins (the gateway's idempotency key
    // made it the same customer anyway).
    sqlx::query(
        "INSERT INTO payment_customers (user_id, gateway_customer, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (user_id) DO NOTHING",
    )
    .bind(&caller.0.id)
    .bind(&made)
    .bind(now_ms())
    .execute(cp.pool())
    .await?;
    let (c,): (String,) =
        sqlx::query_as("SELECT gateway_customer FROM payment_customers WHERE user_id = $1")
            .bind(&caller.0.id)
            .fetch_one(cp.pool())
            .await?;
    Ok(c)
}

/// Subscribe to a channel's tier. Send an `Idempotency-Key`: a repeat answers with the
/// first subscription and charges nothing. The subscription is `incomplete` until the
/// gateway's event says it is active.
#[utoipa::path(post, path = "/api/v1/channels/{slug}/tiers/{id}/subscribe", tag = "money", security(("access_token" = [])),
    params(("slug" = String, Path), ("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)), request_body = SubscribeRequest,
    responses((status = 201, body = Subscription), (status = 200, body = Subscription, description = "a repeat of the same Idempotency-Key"),
        (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn subscribe(
    State(cp): State<ControlPlane>,
    caller: Caller,
    headers: HeaderMap,
    Path((slug, tier_id)): Path<(String, String)>,
    Json(req): Json<SubscribeRequest>,
) -> ApiResult<(StatusCode, axum::Json<Subscription>)> {
    let key = idempotency_key(&headers)?;
    let user = &caller.0.id;
    if let Some(first) = find(&cp, "s.user_id = $1 AND s.idempotency_key = $2", user, &key).await? {
        return Ok((StatusCode::OK, axum::Json(first)));
    }
    let ch = by_slug(&cp, &slug).await?.ok_or(Error::NotFound)?;
    if !may_watch(&cp, &ch, Some(&caller)).await? {
        return Err(Error::NotFound);
    }
    let tier = tiers::tier(&cp, &ch.id, &tier_id).await?;
    if tier.active == 0 {
        return Err(Error::Conflict("this tier is retired"));
    }
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
    if access::entitled(&cp, &ch.id, user).await? {
        return Err(Error::Conflict("you already subscribe to this channel"));
    }
    let gateway = cp.gateway()?.clone();
    let customer = customer(&cp, &caller).await?;
    // The id follows from (user, key): a retry after a crash reaches the gateway with the
    // same idempotency key and finds the same subscription.
    let id = hash_secret(&format!("sub:{user}:{key}"))[..24].to_owned();
    let now = now_ms();
    // The row exists before the gateway's events can arrive.
    let inserted = sqlx::query(
        "INSERT INTO subscriptions (id, user_id, channel_id, tier_id, gateway_subscription, \
         status, status_at, idempotency_key, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, 'incomplete', 0, $6, $7, $7)",
    )
    .bind(&id)
    .bind(user)
    .bind(&ch.id)
    .bind(&tier.id)
    .bind(format!("pending:{id}"))
    .bind(&key)
    .bind(now)
    .execute(cp.pool())
    .await;
    match inserted {
        Err(e) if duplicate(&e) => {
            // The same key at the same time: the first one answers.
            let first = find(&cp, "s.user_id = $1 AND s.idempotency_key = $2", user, &key).await?;
            return first
                .map(|s| (StatusCode::OK, axum::Json(s)))
                .ok_or(Error::Conflict("the same Idempotency-Key is in use"));
        }
        r => r?,
    };
    let made = gateway
        .subscribe(NewSubscription {
            customer: &customer,
            price: &tier.gateway_price,
            payment_method: req.payment_method.as_deref(),
            metadata: vec![
                ("subscription_id", id.as_str()),
                ("channel_id", ch.id.as_str()),
                ("user_id", user.as_str()),
                ("tier_id", tier.id.as_str()),
            ],
            idempotency_key: &format!("sub-{id}"),
        })
        .await;
    let made = super::settle(
        &cp,
        made,
        "DELETE FROM subscriptions WHERE id = $1",
        "UPDATE subscriptions SET gateway_subscription = $1 WHERE id = $2",
        &id,
    )
    .await?;
    let mut sub = find(&cp, "s.id = $1 AND s.user_id = $2", &id, user)
        .await?
        .ok_or(Error::NotFound)?;
    sub.client_secret = made.client_secret;
    Ok((StatusCode::CREATED, axum::Json(sub)))
}

/// The caller's subscriptions, newest first.
#[utoipa::path(get, path = "/api/v1/me/subscriptions", tag = "money", security(("access_token" = [])),
    responses((status = 200, body = [Subscription]), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn mine(
    State(cp): State<ControlPlane>,
    caller: Caller,
) -> ApiResult<axum::Json<Vec<Subscription>>> {
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE s.user_id = $1 ORDER BY s.created_at DESC LIMIT 100"
    )))
    .bind(&caller.0.id)
    .fetch_all(cp.pool())
    .await?;
    Ok(axum::Json(
        rows.into_iter().map(Subscription::from).collect(),
    ))
}

/// Cancel a subscription now: the channel's subscribers-only streams refuse the caller
/// from the next request, and their sessions of them end.
#[utoipa::path(delete, path = "/api/v1/me/subscriptions/{id}", tag = "money", security(("access_token" = [])), params(("id" = String, Path)),
    responses((status = 200, body = Subscription), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn cancel(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Subscription>> {
    let sub = find(&cp, "s.id = $1 AND s.user_id = $2", &id, &caller.0.id)
        .await?
        .ok_or(Error::NotFound)?;
    if sub.status == SubStatus::Canceled.as_str() {
        return Ok(axum::Json(sub));
    }
    if sub.gateway_subscription.starts_with("pending:") {
        return Err(Error::Conflict("this subscription is still being created"));
    }
    let state = cp.gateway()?.cancel(&sub.gateway_subscription).await?;
    if state.status == SubStatus::Canceled.as_str() {
        if let Some((channel, user, _)) = access::report(
            &cp,
            &sub.gateway_subscription,
            SubStatus::Canceled,
            now_secs(),
        )
        .await?
        {
            cp.revoke(watch_tag(&channel, &user), 0, true).await?;
        }
    }
    let sub = find(&cp, "s.id = $1 AND s.user_id = $2", &id, &caller.0.id)
        .await?
        .ok_or(Error::NotFound)?;
    Ok(axum::Json(sub))
}
