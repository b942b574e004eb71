//! Rate limits on sign-in and sign-up with `governor`'s keyed GCRA limiters. Their key
//! tables are swept when they grow past a bound, so a flood of distinct addresses cannot
//! grow memory without limit.
//!
//! Sign-in is limited per account, not per login string: an email address and a username
//! that name one account share one budget, and a login that names no account is limited
//! under its own name (so the limits behave the same whether or not it exists). The tight
//! limit is per (account, address): a stranger hammering `alice` from one address uses up
//! that address's tries, not alice's from hers. A looser limit per account, from every
//! address, slows a distributed attack; addresses that signed in to the account before
//! are exempt from it, so even a botnet does not lock the owner out of her usual places.

use std::collections::HashSet;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::Error;

/// Attempts allowed per minute (bursts up to the same number), unless said otherwise.
#[derive(Debug, Clone, Copy)]
pub struct RateLimits {
    /// Sign-in attempts per client address.
    pub signin_per_ip: u32,
    /// Sign-in attempts per account from one address.
    pub signin_per_account: u32,
    /// Sign-in attempts per account from every address it was never signed in from.
    pub signin_per_account_total: u32,
    /// Sign-ups per client address.
    pub signup_per_ip: u32,
    /// Email address changes per account, per hour.
    pub email_changes_per_hour: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            signin_per_ip: 20,
            signin_per_account: 10,
            signin_per_account_total: 60,
            signup_per_ip: 5,
            email_changes_per_hour: 5,
        }
    }
}

/// Most keys a limiter tracks before it sweeps out the idle ones.
const MAX_KEYS: usize = 100_000;

struct Keyed<K: std::hash::Hash + Eq + Clone>(DefaultKeyedRateLimiter<K>);

impl<K: std::hash::Hash + Eq + Clone> Keyed<K> {
    fn new(per_minute: u32) -> Self {
        let n = NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        Keyed(RateLimiter::keyed(Quota::per_minute(n)))
    }

    fn per_hour(n: u32) -> Self {
        let n = NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN);
        Keyed(RateLimiter::keyed(Quota::per_hour(n)))
    }

    fn check(&self, key: &K) -> Result<(), Error> {
        if self.0.len() > MAX_KEYS {
            self.0.retain_recent();
        }
        self.0.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            Error::RateLimited(wait.as_secs() + 1)
        })
    }
}

/// Whom a sign-in attempt is for: an account's id, or a login that names none.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// An existing account.
    Account(String),
    /// A login (normalized) that names no account.
    Unknown(String),
}

/// The limiters one control plane shares.
pub struct Limiter {
    signin_ip: Keyed<IpAddr>,
    signin_pair: Keyed<(Target, IpAddr)>,
    signin_account: Keyed<Target>,
    signup_ip: Keyed<IpAddr>,
    email_change: Keyed<String>,
    /// (account, address) pairs that signed in: exempt from the account-wide limit.
    known: Mutex<HashSet<(String, IpAddr)>>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Limiter")
    }
}

impl Limiter {
    /// Limiters with these quotas.
    pub fn new(l: RateLimits) -> Self {
        Limiter {
            signin_ip: Keyed::new(l.signin_per_ip),
            signin_pair: Keyed::new(l.signin_per_account),
            signin_account: Keyed::new(l.signin_per_account_total),
            signup_ip: Keyed::new(l.signup_per_ip),
            email_change: Keyed::per_hour(l.email_changes_per_hour),
            known: Mutex::new(HashSet::new()),
        }
    }

    fn is_known(&self, target: &Target, ip: IpAddr) -> bool {
        let Target::Account(id) = target else {
            return false;
        };
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known.contains(&(id.clone(), ip))
    }

    /// One sign-in attempt (or password confirmation) from `ip` for `target`.
    pub fn signin(&self, ip: IpAddr, target: &Target) -> Result<(), Error> {
        self.signin_ip.check(&ip)?;
        self.signin_pair.check(&(target.clone(), ip))?;
        if self.is_known(target, ip) {
            return Ok(());
        }
        self.signin_account.check(target)
    }

    /// `account` signed in from `ip`: later attempts from there skip the account-wide limit.
    pub fn signed_in(&self, ip: IpAddr, account: &str) {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if known.len() >= MAX_KEYS {
            // Forgetting only makes the limits stricter again.
            known.clear();
        }
        known.insert((account.to_owned(), ip));
    }

    /// One sign-up from `ip`.
    pub fn signup(&self, ip: IpAddr) -> Result<(), Error> {
        self.signup_ip.check(&ip)
    }

    /// One email change by `account`.
    pub fn email_change(&self, account: &str) -> Result<(), Error> {
        self.email_change.check(&account.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> RateLimits {
        RateLimits {
            signin_per_ip: 3,
            signin_per_account: 2,
            signin_per_account_total: 4,
            signup_per_ip: 1,
            email_changes_per_hour: 1,
        }
    }

    fn ann() -> Target {
        Target::Account("id-of-ann".into())
    }

    #[test]
    fn limits_per_address_and_per_account_at_an_address() {
        let l = Limiter::new(limits());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(l.signin(a, &ann()).is_ok());
        assert!(l.signin(a, &ann()).is_ok());
        // A third try on the account from the same address is refused, with a wait.
        match l.signin(a, &ann()) {
            Err(Error::RateLimited(secs)) => assert!((1..=61).contains(&secs)),
            other => panic!("expected a rate limit, got {other:?}"),
        }
        // From another address the account still has tries.
        assert!(l.signin(b, &ann()).is_ok());
        // Address a has used its 3 (the refused try counted against it).
        assert!(l.signin(a, &Target::Unknown("carl".into())).is_err());
        assert!(l.signup(a).is_ok());
        assert!(l.signup(a).is_err());
        assert!(l.signup(b).is_ok());
        assert!(l.email_change("x").is_ok());
        assert!(l.email_change("x").is_err());
        assert!(l.email_change("y").is_ok());
    }

    #[test]
    fn many_addresses_meet_the_account_limit_but_a_known_address_does_not() {
        let l = Limiter::new(limits());
        let home: IpAddr = "10.0.0.9".parse().unwrap();
        l.signed_in(home, "id-of-ann");
        for i in 0..4u8 {
            assert!(l.signin(IpAddr::from([10, 1, 0, i]), &ann()).is_ok());
        }
        assert!(l.signin(IpAddr::from([10, 1, 0, 7]), &ann()).is_err());
        assert!(l.signin(home, &ann()).is_ok(), "the owner's usual address");
        // Unknown logins are limited the same way, under their own name.
        let ghost = Target::Unknown("ghost".into());
        for i in 0..4u8 {
            assert!(l.signin(IpAddr::from([10, 2, 0, i]), &ghost).is_ok());
        }
        assert!(l.signin(IpAddr::from([10, 2, 0, 9]), &ghost).is_err());
    }
}
