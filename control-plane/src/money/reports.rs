//! A channel's balance and statement (its owner and admins), payouts recorded by an
//! admin, and the payouts report: what every channel is owed, as CSV.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::ToSchema;

use super::book::{self, Balance, Kind};
use super::idempotency_key;
use super::ledger::{self, Account, Amount, Currency};
use crate::channels::owned;
use crate::error::{ApiResult, Problem};
use crate::extract::{Caller, Json, Path};
use crate::model::Role;
use crate::{ControlPlane, Error};

/// Most rows in a CSV report.
const MAX_ROWS: i64 = 100_000;

/// `POST /channels/{slug}/payouts`
#[derive(Debug, Deserialize, ToSchema)]
pub struct PayoutRequest {
    /// Minor units paid out (at most the balance).
    #[schema(minimum = 1)]
    pub amount: i64,
    /// ISO 4217 code.
    #[schema(min_length = 3, max_length = 3)]
    pub currency: String,
    /// The transfer's reference (bank, gateway payout id), up to 200 characters.
    #[schema(max_length = 200)]
    #[serde(default)]
    pub note: String,
}

/// A channel's balances, one per currency (its owner and admins).
#[utoipa::path(get, path = "/api/v1/channels/{slug}/balance", tag = "money", security(("access_token" = [])), params(("slug" = String, Path)),
    responses((status = 200, body = [Balance]), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn balance(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(slug): Path<String>,
) -> ApiResult<axum::Json<Vec<Balance>>> {
    let ch = owned(&cp, &caller, &slug).await?;
    Ok(axum::Json(book::balances(&cp, &ch.id).await?))
}

/// Record a payout to a channel (admins). Send an `Idempotency-Key`: a repeat records
/// nothing more.
#[utoipa::path(post, path = "/api/v1/channels/{slug}/payouts", tag = "money", security(("access_token" = [])),
    params(("slug" = String, Path), ("Idempotency-Key" = Option<String>, Header)), request_body = PayoutRequest,
    responses((status = 200, body = [Balance]), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn payout(
    State(cp): State<ControlPlane>,
    caller: Caller,
    headers: HeaderMap,
    Path(slug): Path<String>,
    Json(req): Json<PayoutRequest>,
) -> ApiResult<axum::Json<Vec<Balance>>> {
    caller.require(Role::Admin)?;
    let key = idempotency_key(&headers)?;
    let ch = owned(&cp, &caller, &slug).await?;
    let invalid = |e: ledger::LedgerError| Error::Invalid(e.to_string());
    let amount = Amount::new(req.amount, Currency::parse(&req.currency).map_err(invalid)?)
        .map_err(invalid)?;
    let note = crate::model::text("note", req.note.trim(), 200)?;
    // Payouts of one channel one at a time, on every replica: the transaction starts by
    // writing the channel's row (a row lock on PostgreSQL, the write lock on SQLite), so a
    // second payout reads the balance only after the first has committed.
    let mut tx = cp.pool().begin().await?;
    sqlx::query("UPDATE channels SET id = id WHERE id = $1")
        .bind(&ch.id)
        .execute(&mut *tx)
        .await?;
    let held = book::balances_in(&mut *tx, &ch.id)
        .await?
        .into_iter()
        .find(|b| b.currency == amount.currency.as_str())
        .map_or(0, |b| b.balance);
    // A repeat must not be refused for the balance its first run spent.
    let key = format!("payout:{}:{key}", caller.0.id);
    let journal = match ledger::payout(&ch.id, &amount, held) {
        Ok(j) => j,
        Err(ledger::LedgerError::Overdrawn) => {
            drop(tx);
            let seen: Option<(String,)> =
                sqlx::query_as("SELECT id FROM ledger_transactions WHERE idempotency_key = $1")
                    .bind(&key)
                    .fetch_optional(cp.pool())
                    .await?;
            if seen.is_none() {
                return Err(Error::Conflict(
                    "the payout is more than the channel's balance",
                ));
            }
            return Ok(axum::Json(book::balances(&cp, &ch.id).await?));
        }
        Err(e) => return Err(invalid(e)),
    };
    if book::post_in(
        &mut tx,
        &cp,
        &key,
        Kind::Payout,
        Some(&ch.id),
        &note,
        &journal,
    )
    .await?
    .fresh
    {
        tx.commit().await?;
    }
    Ok(axum::Json(book::balances(&cp, &ch.id).await?))
}

fn csv_response(name: &str, rows: Vec<Vec<String>>) -> ApiResult<Response> {
    let internal = |e: csv::Error| Error::Internal(e.to_string());
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.write_record(&r).map_err(internal)?;
    }
    let body = w.into_inner().map_err(|e| Error::Internal(e.to_string()))?;
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}.csv\""),
            ),
        ],
        body,
    )
        .into_response())
}

/// Text a spreadsheet would read as a formula gets a leading quote.
fn defuse(s: String) -> String {
    if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s
    }
}

/// A channel's statement as CSV, oldest first (its owner and admins): every payment and
/// payout with the fee and the running balance per currency.
#[utoipa::path(get, path = "/api/v1/channels/{slug}/payouts.csv", tag = "money", security(("access_token" = [])), params(("slug" = String, Path)),
    responses((status = 200, content_type = "text/csv", body = String), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn statement(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(slug): Path<String>,
) -> ApiResult<Response> {
    let ch = owned(&cp, &caller, &slug).await?;
    let earnings = Account::Earnings(ch.id.clone()).to_string();
    let rows: Vec<(i64, String, String, String, i64, i64, i64)> = sqlx::query_as(
        "SELECT t.created_at, t.kind, t.reference, p.currency, \
         CAST(SUM(CASE WHEN p.credit_account = $1 THEN p.amount ELSE 0 END) AS BIGINT), \
         CAST(SUM(CASE WHEN p.credit_account = 'platform:fees' THEN p.amount ELSE 0 END) AS BIGINT), \
         CAST(SUM(CASE WHEN p.debit_account = $1 THEN p.amount ELSE 0 END) AS BIGINT) \
         FROM ledger_transactions t JOIN ledger_postings p ON p.txn_id = t.id \
         WHERE t.channel_id = $2 \
         GROUP BY t.id, t.created_at, t.kind, t.reference, p.currency \
         ORDER BY t.created_at, t.id LIMIT $3",
    )
    .bind(&earnings)
    .bind(&ch.id)
    .bind(MAX_ROWS)
    .fetch_all(cp.pool())
    .await?;
    let mut out = vec![[
        "created_at_ms",
        "kind",
        "reference",
        "currency",
        "gross",
        "fee",
        "net",
        "payout",
        "balance",
    ]
    .map(str::to_owned)
    .to_vec()];
    let mut running = std::collections::HashMap::<String, i64>::new();
    for (at, kind, reference, currency, net, fee, paid) in rows {
        let b = running.entry(currency.clone()).or_default();
        *b += net - paid;
        out.push(vec![
            at.to_string(),
            kind,
            defuse(reference),
            currency,
            (net + fee).to_string(),
            fee.to_string(),
            net.to_string(),
            paid.to_string(),
            b.to_string(),
        ]);
    }
    csv_response(&format!("statement-{}", ch.slug), out)
}

/// The payouts report as CSV (admins): per channel and currency, gross, fees, paid out
/// and the balance owed.
#[utoipa::path(get, path = "/api/v1/admin/payouts.csv", tag = "money", security(("access_token" = [])),
    responses((status = 200, content_type = "text/csv", body = String), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn report(State(cp): State<ControlPlane>, caller: Caller) -> ApiResult<Response> {
    caller.require(Role::Admin)?;
    let rows: Vec<(String, Option<String>, String, i64, i64, i64)> = sqlx::query_as(
        "SELECT t.channel_id, c.slug, p.currency, \
         CAST(SUM(CASE WHEN p.credit_account = 'channel:' || t.channel_id || ':earnings' \
              THEN p.amount ELSE 0 END) AS BIGINT), \
         CAST(SUM(CASE WHEN p.credit_account = 'platform:fees' THEN p.amount ELSE 0 END) AS BIGINT), \
         CAST(SUM(CASE WHEN p.debit_account = 'channel:' || t.channel_id || ':earnings' \
              THEN p.amount ELSE 0 END) AS BIGINT) \
         FROM ledger_transactions t JOIN ledger_postings p ON p.txn_id = t.id \
         LEFT JOIN channels c ON c.id = t.channel_id \
         WHERE t.channel_id IS NOT NULL \
         GROUP BY t.channel_id, c.slug, p.currency ORDER BY t.channel_id, p.currency LIMIT $1",
    )
    .bind(MAX_ROWS)
    .fetch_all(cp.pool())
    .await?;
    let mut out = vec![[
        "channel_id",
        "channel",
        "currency",
        "gross",
        "fees",
        "payouts",
        "balance_owed",
    ]
    .map(str::to_owned)
    .to_vec()];
    for (id, slug, currency, net, fees, paid) in rows {
        out.push(vec![
            id,
            slug.unwrap_or_default(),
            currency,
            (net + fees).to_string(),
            fees.to_string(),
            paid.to_string(),
            (net - paid).to_string(),
        ]);
    }
    csv_response("payouts", out)
}
