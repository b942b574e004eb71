//! The ledger in the database: a [`Journal`] stored as one transaction under a unique
//! idempotency key (a repeat returns the first and moves nothing), balances per channel,
//! and the sums the property test checks.

use serde::Serialize;
use utoipa::ToSchema;

use super::ledger::{Account, Journal};
use crate::db::{now_ms, unique_violation};
use crate::tokens::random_id;
use crate::ControlPlane;

/// What storing a journal did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    /// The ledger transaction's id (the first one's, on a repeat).
    pub id: String,
    /// False when the key was already used: nothing moved.
    pub fresh: bool,
}

/// What a fact is, as the ledger names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A paid subscription invoice.
    Subscription,
    /// A tip.
    Tip,
    /// Money paid out to a channel.
    Payout,
}

impl Kind {
    /// The ledger's name for it (and the revenue metric's `kind`).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Subscription => "subscription",
            Kind::Tip => "tip",
            Kind::Payout => "payout",
        }
    }
}

/// Stores `journal` under `key`, atomically.
pub async fn post(
    cp: &ControlPlane,
    key: &str,
    kind: Kind,
    channel: Option<&str>,
    reference: &str,
    journal: &Journal,
) -> Result<Posted, sqlx::Error> {
    let mut tx = cp.pool().begin().await?;
    let posted = post_in(&mut tx, cp, key, kind, channel, reference, journal).await?;
    if posted.fresh {
        tx.commit().await?;
    }
    Ok(posted)
}

/// [`post`] inside the caller's transaction, which the caller commits when the result is
/// `fresh` (after a repeat the transaction may be aborted: drop it).
pub async fn post_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    cp: &ControlPlane,
    key: &str,
    kind: Kind,
    channel: Option<&str>,
    reference: &str,
    journal: &Journal,
) -> Result<Posted, sqlx::Error> {
    let id = random_id();
    let inserted = sqlx::query(
        "INSERT INTO ledger_transactions (id, idempotency_key, kind, channel_id, reference, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&id)
    .bind(key)
    .bind(kind.as_str())
    .bind(channel)
    .bind(reference)
    .bind(now_ms())
    .execute(&mut **tx)
    .await;
    match inserted {
        Ok(_) => {}
        Err(e) if unique_violation(&e, "idempotency_key") => {
            let (first,): (String,) =
                sqlx::query_as("SELECT id FROM ledger_transactions WHERE idempotency_key = $1")
                    .bind(key)
                    .fetch_one(cp.pool())
                    .await?;
            return Ok(Posted {
                id: first,
                fresh: false,
            });
        }
        Err(e) => return Err(e),
    }
    for (seq, p) in journal.postings.iter().enumerate() {
        sqlx::query(
            "INSERT INTO ledger_postings (txn_id, seq, debit_account, credit_account, amount, \
             currency) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(seq as i64)
        .bind(p.debit.to_string())
        .bind(p.credit.to_string())
        .bind(p.amount.minor)
        .bind(p.amount.currency.as_str())
        .execute(&mut **tx)
        .await?;
    }
    Ok(Posted { id, fresh: true })
}

/// A channel's money in one currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Balance {
    /// Lowercase ISO 4217 code.
    pub currency: String,
    /// Paid by viewers, minor units.
    pub gross: i64,
    /// The platform's fees.
    pub fees: i64,
    /// Paid out to the channel.
    pub payouts: i64,
    /// Owed to the channel now: `gross - fees - payouts`.
    pub balance: i64,
}

/// A channel's balances, one per currency it has money in.
pub async fn balances(cp: &ControlPlane, channel_id: &str) -> Result<Vec<Balance>, sqlx::Error> {
    balances_in(cp.pool(), channel_id).await
}

/// [`balances`] read through `db` (a pool, or a transaction's connection).
pub async fn balances_in<'c>(
    db: impl sqlx::Executor<'c, Database = sqlx::Any>,
    channel_id: &str,
) -> Result<Vec<Balance>, sqlx::Error> {
    let earnings = Account::Earnings(channel_id.to_owned()).to_string();
    let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        "SELECT p.currency, \
         CAST(COALESCE(SUM(CASE WHEN p.credit_account = $1 THEN p.amount ELSE 0 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN p.credit_account = 'platform:fees' THEN p.amount ELSE 0 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN p.debit_account = $1 THEN p.amount ELSE 0 END), 0) AS BIGINT) \
         FROM ledger_postings p JOIN ledger_transactions t ON t.id = p.txn_id \
         WHERE t.channel_id = $2 GROUP BY p.currency ORDER BY p.currency",
    )
    .bind(&earnings)
    .bind(channel_id)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(currency, net, fees, payouts)| Balance {
            currency,
            gross: net + fees,
            fees,
            payouts,
            balance: net - payouts,
        })
        .collect())
}

/// Per account and currency, debits minus credits over the whole ledger (the property
/// test's view: the values of each currency sum to zero).
pub async fn trial_balance(cp: &ControlPlane) -> Result<Vec<(String, String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT account, currency, CAST(SUM(amount) AS BIGINT) FROM ( \
           SELECT debit_account AS account, currency, amount FROM ledger_postings \
           UNION ALL \
           SELECT credit_account AS account, currency, -amount FROM ledger_postings \
         ) x GROUP BY account, currency ORDER BY account, currency",
    )
    .fetch_all(cp.pool())
    .await
}
