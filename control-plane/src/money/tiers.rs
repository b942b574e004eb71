//! A channel's subscription tiers (a price per month or year, mirrored at the gateway as a
//! product and a price) and its paywall. The owner (or an admin) manages them; anyone
//! who may see the channel lists the active tiers.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::access::{self, Paywall, PaywallChange};
use super::gateway::{NewTier, TierRefs};
use super::ledger::Currency;
use crate::channels::{by_slug, may_watch, owned};
use crate::db::now_ms;
use crate::error::{ApiResult, Problem};
use crate::extract::{Caller, Json, MaybeCaller, Path};
use crate::model;
use crate::revocation::paywall_tag;
use crate::tokens::random_id;
use crate::{ControlPlane, Error};

/// Tiers per channel.
pub const MAX_TIERS: i64 = 10;
/// Smallest and largest price, minor units.
pub const PRICE_RANGE: (i64, i64) = (50, 1_000_000);

/// A tier.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Tier {
    /// Opaque id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Price per period, minor units.
    pub amount: i64,
    /// Lowercase ISO 4217 code.
    pub currency: String,
    /// `month` or `year`.
    pub period: String,
    /// Offered to new subscribers.
    pub active: bool,
    /// Its subscribers skip ad breaks (`docs/ADS.md`).
    pub ad_free: bool,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// `POST /channels/{slug}/tiers`
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewTierRequest {
    /// 1 to 50 characters.
    #[schema(min_length = 1, max_length = 50)]
    pub name: String,
    /// Price per period, minor units (50 to 1 000 000).
    #[schema(minimum = 50, maximum = 1000000)]
    pub amount: i64,
    /// ISO 4217 code, e.g. `usd`.
    #[schema(min_length = 3, max_length = 3)]
    pub currency: String,
    /// `month` or `year`.
    pub period: Period,
    /// Its subscribers skip ad breaks.
    #[serde(default)]
    pub ad_free: bool,
}

/// A tier's billing period.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    /// Monthly.
    Month,
    /// Yearly.
    Year,
}

/// `PATCH /channels/{slug}/tiers/{id}`
#[derive(Debug, Deserialize, ToSchema)]
pub struct TierEdit {
    /// A new name (the price of a tier never changes: make another).
    #[schema(min_length = 1, max_length = 50)]
    pub name: String,
    /// Whether its subscribers skip ad breaks (unchanged when absent).
    #[serde(default)]
    pub ad_free: Option<bool>,
}

/// A channel's paywall.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct PaywallView {
    /// Every stream of the channel is for subscribers.
    pub subscribers_only: bool,
    /// This stream only: the live running now, or the next one when the channel is
    /// offline, is for subscribers until it ends; the next live is open again. Read: it
    /// holds now (that live has not ended). `false` lifts it.
    #[serde(default)]
    pub this_stream: bool,
    /// The current stream is for subscribers until then (Unix ms), whatever lives begin
    /// and end; `null` (or absent): no such limit. Kept for older clients: `this_stream`
    /// follows the live itself.
    #[serde(default)]
    pub stream_until: Option<i64>,
}

impl PaywallView {
    fn of(p: Paywall) -> PaywallView {
        PaywallView {
            subscribers_only: p.subscribers_only,
            this_stream: p.this_stream.is_some_and(|s| s.holds(now_ms())),
            stream_until: p.stream_until,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct TierRow {
    pub id: String,
    pub channel_id: String,
    pub name: String,
    pub amount: i64,
    pub currency: String,
    pub period: String,
    pub gateway_product: String,
    pub gateway_price: String,
    pub active: i64,
    pub ad_free: i64,
    pub created_at: i64,
}

const TIER_SELECT: &str = "SELECT id, channel_id, name, amount, currency, period, \
    gateway_product, gateway_price, active, ad_free, created_at FROM tiers";

impl From<TierRow> for Tier {
    fn from(r: TierRow) -> Tier {
        Tier {
            id: r.id,
            name: r.name,
            amount: r.amount,
            currency: r.currency,
            period: r.period,
            active: r.active != 0,
            ad_free: r.ad_free != 0,
            created_at: r.created_at,
        }
    }
}

pub(crate) async fn tier(cp: &ControlPlane, channel_id: &str, id: &str) -> ApiResult<TierRow> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{TIER_SELECT} WHERE id = $1 AND channel_id = $2"
    )))
    .bind(id)
    .bind(channel_id)
    .fetch_optional(cp.pool())
    .await?
    .ok_or(Error::Missing("no such tier"))
}

fn name(s: &str) -> Result<String, Error> {
    let n = model::text("name", s.trim(), 50)?;
    if n.is_empty() {
        return Err(Error::Invalid("name must not be empty".into()));
    }
    Ok(n)
}

/// Add a tier to a channel (its owner); it is created at the payment gateway too.
#[utoipa::path(post, path = "/api/v1/channels/{slug}/tiers", tag = "money", security(("access_token" = [])), params(("slug" = String, Path)), request_body = NewTierRequest,
    responses((status = 201, body = Tier), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn create(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(slug): Path<String>,
    Json(req): Json<NewTierRequest>,
) -> ApiResult<(StatusCode, axum::Json<Tier>)> {
    let ch = owned(&cp, &caller, &slug).await?;
    let name = name(&req.name)?;
    if !(PRICE_RANGE.0..=PRICE_RANGE.1).contains(&req.amount) {
        return Err(Error::Invalid(
            "amount must be 50 to 1000000 minor units".into(),
        ));
    }
    let currency = Currency::parse(&req.currency).map_err(|e| Error::Invalid(e.to_string()))?;
    let period = match req.period {
        Period::Month => "month",
        Period::Year => "year",
    };
    let (count,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM tiers WHERE channel_id = $1 AND active = 1")
            .bind(&ch.id)
            .fetch_one(cp.pool())
            .await?;
    if count >= MAX_TIERS {
        return Err(Error::Conflict("a channel offers at most 10 tiers"));
    }
    let refs = cp
        .gateway()?
        .create_tier(NewTier {
            channel_id: &ch.id,
            name: &name,
            amount: req.amount,
            currency: currency.as_str(),
            period,
        })
        .await?;
    let now = now_ms();
    let row = TierRow {
        id: random_id(),
        channel_id: ch.id,
        name,
        amount: req.amount,
        currency: currency.as_str().to_owned(),
        period: period.to_owned(),
        gateway_product: refs.product,
        gateway_price: refs.price,
        active: 1,
        ad_free: i64::from(req.ad_free),
        created_at: now,
    };
    sqlx::query(
        "INSERT INTO tiers (id, channel_id, name, amount, currency, period, gateway_product, \
         gateway_price, active, ad_free, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $10, $9, $9)",
    )
    .bind(&row.id)
    .bind(&row.channel_id)
    .bind(&row.name)
    .bind(row.amount)
    .bind(&row.currency)
    .bind(&row.period)
    .bind(&row.gateway_product)
    .bind(&row.gateway_price)
    .bind(now)
    .bind(row.ad_free)
    .execute(cp.pool())
    .await?;
    Ok((StatusCode::CREATED, axum::Json(row.into())))
}

/// A channel's tiers: the active ones (the owner sees retired ones too).
#[utoipa::path(get, path = "/api/v1/channels/{slug}/tiers", tag = "money", params(("slug" = String, Path)),
    responses((status = 200, body = [Tier]), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn list(
    State(cp): State<ControlPlane>,
    caller: MaybeCaller,
    Path(slug): Path<String>,
) -> ApiResult<axum::Json<Vec<Tier>>> {
    let ch = by_slug(&cp, &slug).await?.ok_or(Error::NotFound)?;
    if !may_watch(&cp, &ch, caller.0.as_ref()).await? {
        return Err(Error::NotFound);
    }
    let owner = caller
        .0
        .as_ref()
        .is_some_and(|c| c.0.id == ch.owner_id || c.0.role() == model::Role::Admin);
    let rows: Vec<TierRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{TIER_SELECT} WHERE channel_id = $1 AND (active = 1 OR $2 = 1) \
         ORDER BY amount, created_at LIMIT 100"
    )))
    .bind(&ch.id)
    .bind(i64::from(owner))
    .fetch_all(cp.pool())
    .await?;
    Ok(axum::Json(rows.into_iter().map(Tier::from).collect()))
}

/// Rename a tier (its owner).
#[utoipa::path(patch, path = "/api/v1/channels/{slug}/tiers/{id}", tag = "money", security(("access_token" = [])), params(("slug" = String, Path), ("id" = String, Path)), request_body = TierEdit,
    responses((status = 200, body = Tier), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn edit(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path((slug, id)): Path<(String, String)>,
    Json(req): Json<TierEdit>,
) -> ApiResult<axum::Json<Tier>> {
    let ch = owned(&cp, &caller, &slug).await?;
    let mut row = tier(&cp, &ch.id, &id).await?;
    row.name = name(&req.name)?;
    if let Some(ad_free) = req.ad_free {
        row.ad_free = i64::from(ad_free);
    }
    sqlx::query("UPDATE tiers SET name = $1, ad_free = $4, updated_at = $2 WHERE id = $3")
        .bind(&row.name)
        .bind(now_ms())
        .bind(&row.id)
        .bind(row.ad_free)
        .execute(cp.pool())
        .await?;
    Ok(axum::Json(row.into()))
}

/// Retire a tier (its owner): no new subscribers; those it has keep it until they cancel.
#[utoipa::path(delete, path = "/api/v1/channels/{slug}/tiers/{id}", tag = "money", security(("access_token" = [])), params(("slug" = String, Path), ("id" = String, Path)),
    responses((status = 204), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn retire(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path((slug, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let ch = owned(&cp, &caller, &slug).await?;
    let row = tier(&cp, &ch.id, &id).await?;
    if row.active != 0 {
        let refs = TierRefs {
            product: row.gateway_product,
            price: row.gateway_price,
        };
        cp.gateway()?.archive_tier(&refs).await?;
        sqlx::query("UPDATE tiers SET active = 0, updated_at = $1 WHERE id = $2")
            .bind(now_ms())
            .bind(&row.id)
            .execute(cp.pool())
            .await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A channel's paywall (its owner).
#[utoipa::path(get, path = "/api/v1/channels/{slug}/paywall", tag = "money", security(("access_token" = [])), params(("slug" = String, Path)),
    responses((status = 200, body = PaywallView), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn paywall(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(slug): Path<String>,
) -> ApiResult<axum::Json<PaywallView>> {
    let ch = owned(&cp, &caller, &slug).await?;
    let p = access::paywall(&cp, &ch.id).await?;
    Ok(axum::Json(PaywallView::of(p)))
}

/// Make the channel, this stream (the live now, or the next one), or its current stream
/// until a time, subscribers-only (its owner). WHEP then admits the owner, admins and
/// viewers with an active subscription.
#[utoipa::path(put, path = "/api/v1/channels/{slug}/paywall", tag = "money", security(("access_token" = [])), params(("slug" = String, Path)), request_body = PaywallView,
    responses((status = 200, body = PaywallView), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn set_paywall(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(slug): Path<String>,
    Json(req): Json<PaywallView>,
) -> ApiResult<axum::Json<PaywallView>> {
    let ch = owned(&cp, &caller, &slug).await?;
    // A stream lasts at most a week; older ends are history, not a paywall.
    if let Some(t) = req.stream_until {
        if !(0..=now_ms() + 7 * 24 * 3600 * 1000).contains(&t) {
            return Err(Error::Invalid(
                "stream_until must be a Unix time in ms within a week".into(),
            ));
        }
    }
    let change = PaywallChange {
        subscribers_only: req.subscribers_only,
        stream_until: req.stream_until,
        this_stream: req.this_stream,
    };
    let after = access::set_paywall(&cp, &ch.id, change).await?;
    if after.closed(now_ms()) {
        // Those it let through while open leave now, here and on every node; the owner,
        // admins and subscribers watch on. Done on every closing write (a retry after a
        // failed revocation, or one racing an opening write, must not skip it).
        cp.revoke(paywall_tag(&ch.id), 0, true).await?;
    }
    Ok(axum::Json(PaywallView::of(after)))
}
