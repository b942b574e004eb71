//! Rate limits on sign-in and sign-up, per client address and per account name, with
//! `governor`'s keyed GCRA limiters. Their key tables are swept when they grow past a
//! bound, so a flood of distinct addresses cannot grow memory without limit.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::Error;

/// Attempts allowed per minute (bursts up to the same number).
#[derive(Debug, Clone, Copy)]
pub struct RateLimits {
    /// Sign-in attempts per client address.
    pub signin_per_ip: u32,
    /// Sign-in attempts per account name (email or username), from anywhere.
    pub signin_per_account: u32,
    /// Sign-ups per client address.
    pub signup_per_ip: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            signin_per_ip: 20,
            signin_per_account: 10,
            signup_per_ip: 5,
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

/// The limiters one control plane shares.
pub struct Limiter {
    signin_ip: Keyed<IpAddr>,
    signin_account: Keyed<String>,
    signup_ip: Keyed<IpAddr>,
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
            signin_account: Keyed::new(l.signin_per_account),
            signup_ip: Keyed::new(l.signup_per_ip),
        }
    }

    /// One sign-in attempt from `ip` for the account named `login` (whether or not it
    /// exists, so the answer says nothing about that).
    pub fn signin(&self, ip: IpAddr, login: &str) -> Result<(), Error> {
        self.signin_ip.check(&ip)?;
        self.signin_account.check(&login.to_lowercase())
    }

    /// One sign-up from `ip`.
    pub fn signup(&self, ip: IpAddr) -> Result<(), Error> {
        self.signup_ip.check(&ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_address_and_per_account() {
        let l = Limiter::new(RateLimits {
            signin_per_ip: 3,
            signin_per_account: 2,
            signup_per_ip: 1,
        });
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(l.signin(a, "Ann").is_ok());
        assert!(l.signin(b, "ann").is_ok());
        // A third try on the same account from anywhere is refused, with a wait.
        match l.signin(b, "ANN") {
            Err(Error::RateLimited(secs)) => assert!((1..=61).contains(&secs)),
            other => panic!("expected a rate limit, got {other:?}"),
        }
        // Address b has used 2 of its 3 (the refused try counted against it).
        assert!(l.signin(b, "carl").is_ok());
        assert!(l.signin(b, "dan").is_err());
        assert!(l.signin(a, "dan").is_ok());
        assert!(l.signup(a).is_ok());
        assert!(l.signup(a).is_err());
        assert!(l.signup(b).is_ok());
    }
}
