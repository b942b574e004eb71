//! The ledger's pure core: accounts, amounts, the platform fee and the postings each
//! money-moving fact makes. No I/O: `book.rs` stores what this builds.
//!
//! **Invariant:** a [`Posting`] moves a positive amount of one currency from one account
//! to another, so every [`Journal`] balances by construction (per currency, the sum of
//! debits equals the sum of credits), and so does the whole ledger. The schema has the
//! same shape (`ledger_postings`: one debit and one credit account per row).

use std::collections::BTreeMap;
use std::fmt;

/// Largest amount one fact may move, in minor units (10 million in major units): far
/// beyond any tip or tier, small enough that fee arithmetic never overflows.
pub const MAX_AMOUNT: i64 = 1_000_000_000;

/// Why a journal was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// Zero, negative or above [`MAX_AMOUNT`].
    #[error("amount must be 1 to {MAX_AMOUNT} minor units")]
    Amount,
    /// Not three ASCII letters.
    #[error("currency must be an ISO 4217 code such as usd")]
    Currency,
    /// The same account on both sides.
    #[error("a posting must move money between two accounts")]
    SameAccount,
    /// A payout larger than what the channel holds in that currency.
    #[error("the payout is more than the channel's balance")]
    Overdrawn,
    /// A fee percentage above 100.
    #[error("the platform fee is a percentage from 0 to 100")]
    Fee,
}

/// A lowercase ISO 4217 code (`usd`, `eur`), as the gateway writes it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Currency(String);

impl Currency {
    /// Checks and lowercases `s`.
    pub fn parse(s: &str) -> Result<Currency, LedgerError> {
        if s.len() == 3 && s.bytes().all(|b| b.is_ascii_alphabetic()) {
            Ok(Currency(s.to_ascii_lowercase()))
        } else {
            Err(LedgerError::Currency)
        }
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A positive amount of one currency, in minor units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Amount {
    /// Minor units, 1 to [`MAX_AMOUNT`].
    pub minor: i64,
    /// Its currency.
    pub currency: Currency,
}

impl Amount {
    /// Checks the bounds.
    pub fn new(minor: i64, currency: Currency) -> Result<Amount, LedgerError> {
        if (1..=MAX_AMOUNT).contains(&minor) {
            Ok(Amount { minor, currency })
        } else {
            Err(LedgerError::Amount)
        }
    }
}

/// An account of the ledger.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Account {
    /// Cash the gateway holds for us (`gateway:stripe`): debited when money comes in.
    Gateway(String),
    /// What the platform owes a channel (`channel:<id>:earnings`): credited by its net
    /// revenue, debited by payouts.
    Earnings(String),
    /// What has been paid out to a channel (`channel:<id>:payouts`).
    Payouts(String),
    /// The platform's fees (`platform:fees`).
    Fees,
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Account::Gateway(g) => write!(f, "gateway:{g}"),
            Account::Earnings(c) => write!(f, "channel:{c}:earnings"),
            Account::Payouts(c) => write!(f, "channel:{c}:payouts"),
            Account::Fees => f.write_str("platform:fees"),
        }
    }
}

/// One movement: `amount` from `credit` to `debit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    /// The account debited.
    pub debit: Account,
    /// The account credited.
    pub credit: Account,
    /// How much.
    pub amount: Amount,
}

impl Posting {
    fn new(debit: Account, credit: Account, amount: Amount) -> Result<Posting, LedgerError> {
        if debit == credit {
            return Err(LedgerError::SameAccount);
        }
        Ok(Posting {
            debit,
            credit,
            amount,
        })
    }
}

/// The postings of one fact, stored together under one idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Journal {
    /// In order.
    pub postings: Vec<Posting>,
}

impl Journal {
    /// Per currency, (sum of debits, sum of credits): always equal.
    pub fn totals(&self) -> BTreeMap<Currency, (i64, i64)> {
        let mut t: BTreeMap<Currency, (i64, i64)> = BTreeMap::new();
        for p in &self.postings {
            let e = t.entry(p.amount.currency.clone()).or_default();
            e.0 += p.amount.minor;
            e.1 += p.amount.minor;
        }
        t
    }
}

/// A gross amount split between the platform's fee and the channel's net.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    /// The platform's share.
    pub fee: i64,
    /// The channel's share: `gross - fee`.
    pub net: i64,
}

/// The platform's fee on `gross` at `percent`, **rounded half up to the minor unit**
/// (`fee = (gross × percent + 50) div 100`): 10 % of 5 cents is 1 cent (0.5 rounds up), of
/// 4 cents 0 (0.4 rounds down). Integer arithmetic only; `net = gross - fee`, so the two
/// always add up to the gross.
pub fn split(gross: i64, percent: u8) -> Result<Split, LedgerError> {
    if percent > 100 {
        return Err(LedgerError::Fee);
    }
    if !(1..=MAX_AMOUNT).contains(&gross) {
        return Err(LedgerError::Amount);
    }
    // Bounded: MAX_AMOUNT × 100 + 50 fits in an i64 many times over.
    let fee = (gross * i64::from(percent) + 50) / 100;
    Ok(Split {
        fee,
        net: gross - fee,
    })
}

/// A payment received for a channel (a subscription invoice or a tip): the gross comes in
/// at the gateway, the fee goes to the platform and the rest to the channel's earnings.
pub fn revenue(
    gateway: &str,
    channel: &str,
    gross: &Amount,
    percent: u8,
) -> Result<Journal, LedgerError> {
    let s = split(gross.minor, percent)?;
    let cash = Account::Gateway(gateway.to_owned());
    let mut postings = Vec::with_capacity(2);
    if s.net > 0 {
        postings.push(Posting::new(
            cash.clone(),
            Account::Earnings(channel.to_owned()),
            Amount::new(s.net, gross.currency.clone())?,
        )?);
    }
    if s.fee > 0 {
        postings.push(Posting::new(
            cash,
            Account::Fees,
            Amount::new(s.fee, gross.currency.clone())?,
        )?);
    }
    Ok(Journal { postings })
}

/// A payout to a channel of at most what it holds (`balance`, in the same currency).
pub fn payout(channel: &str, amount: &Amount, balance: i64) -> Result<Journal, LedgerError> {
    if amount.minor > balance {
        return Err(LedgerError::Overdrawn);
    }
    Ok(Journal {
        postings: vec![Posting::new(
            Account::Earnings(channel.to_owned()),
            Account::Payouts(channel.to_owned()),
            amount.clone(),
        )?],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(m: i64) -> Amount {
        Amount::new(m, Currency::parse("USD").unwrap()).unwrap()
    }

    #[test]
    fn the_fee_rounds_half_up_and_the_parts_add_up() {
        assert_eq!(split(5, 10).unwrap(), Split { fee: 1, net: 4 });
        assert_eq!(split(4, 10).unwrap(), Split { fee: 0, net: 4 });
        assert_eq!(split(499, 10).unwrap(), Split { fee: 50, net: 449 });
        assert_eq!(split(1000, 0).unwrap(), Split { fee: 0, net: 1000 });
        assert_eq!(split(1000, 100).unwrap(), Split { fee: 1000, net: 0 });
        assert_eq!(split(1, 101), Err(LedgerError::Fee));
        assert_eq!(split(0, 10), Err(LedgerError::Amount));
        for g in 1..2000 {
            let s = split(g, 7).unwrap();
            assert_eq!(s.fee + s.net, g);
        }
    }

    #[test]
    fn revenue_balances_and_skips_empty_legs() {
        let j = revenue("stripe", "c1", &usd(500), 10).unwrap();
        assert_eq!(j.postings.len(), 2);
        assert_eq!(j.postings[0].credit.to_string(), "channel:c1:earnings");
        assert_eq!(j.postings[0].amount.minor, 450);
        assert_eq!(j.postings[1].credit.to_string(), "platform:fees");
        assert_eq!(j.postings[1].amount.minor, 50);
        let (d, c) = j.totals()[&Currency::parse("usd").unwrap()];
        assert_eq!((d, c), (500, 500));
        assert_eq!(
            revenue("stripe", "c1", &usd(4), 10).unwrap().postings.len(),
            1
        );
    }

    #[test]
    fn payouts_cannot_overdraw() {
        assert_eq!(payout("c1", &usd(10), 9), Err(LedgerError::Overdrawn));
        let j = payout("c1", &usd(9), 9).unwrap();
        assert_eq!(j.postings[0].debit.to_string(), "channel:c1:earnings");
        assert_eq!(j.postings[0].credit.to_string(), "channel:c1:payouts");
    }

    #[test]
    fn currencies_and_amounts_are_checked() {
        assert!(Currency::parse("us").is_err());
        assert!(Currency::parse("u$d").is_err());
        assert_eq!(Currency::parse("EUR").unwrap().as_str(), "eur");
        assert!(Amount::new(0, Currency::parse("eur").unwrap()).is_err());
        assert!(Amount::new(MAX_AMOUNT + 1, Currency::parse("eur").unwrap()).is_err());
    }
}
