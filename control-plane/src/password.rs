//! Password hashing with Argon2id, off the async threads and bounded in concurrency:
//! each hash takes ~19 MiB and tens of milliseconds, so a burst of sign-ins waits in line
//! instead of exhausting memory.

use std::sync::{Arc, OnceLock};

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use tokio::sync::Semaphore;

use crate::Error;

/// Shortest and longest password accepted.
pub const MIN_LEN: usize = 8;
/// Longest password accepted (bytes): bounds the hashing work per request.
pub const MAX_LEN: usize = 256;

/// Runs Argon2id hashes and checks, a few at a time.
#[derive(Debug, Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
}

impl Default for Hasher {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Hasher {
            permits: Arc::new(Semaphore::new(cores)),
        }
    }
}

/// Checks a new password's length.
pub fn validate(password: &str) -> Result<(), Error> {
    if password.chars().count() < MIN_LEN {
        return Err(Error::Invalid(format!(
            "password must have at least {MIN_LEN} characters"
        )));
    }
    if password.len() > MAX_LEN {
        return Err(Error::Invalid(format!(
            "password must have at most {MAX_LEN} bytes"
        )));
    }
    Ok(())
}

/// A hash of a password nobody has, checked when the account does not exist so that
/// "no such user" and "wrong password" take the same time.
fn decoy() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        Argon2::default()
            .hash_password(b"decoy password that is never used")
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

impl Hasher {
    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Error> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| Error::Internal("password hasher closed".into()))?;
        tokio::task::spawn_blocking(job)
            .await
            .map_err(|e| Error::Internal(format!("password hashing task: {e}")))
    }

    /// The PHC string of an Argon2id hash with a random salt.
    pub async fn hash(&self, password: String) -> Result<String, Error> {
        self.run(move || {
            Argon2::default()
                .hash_password(password.as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| Error::Internal(format!("hashing a password: {e}")))
        })
        .await?
    }

    /// Whether `password` matches `hash`; with no hash (unknown account) a decoy is
    /// checked and the answer is no.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, Error> {
        self.run(move || {
            let (stored, real) = match &hash {
                Some(h) => (h.as_str(), true),
                None => (decoy(), false),
            };
            let ok = PasswordHash::new(stored)
                .map(|parsed| {
                    Argon2::default()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok()
                })
                .unwrap_or(false);
            ok && real
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_decoy_never_matches() {
        let h = Hasher::default();
        let stored = h.hash("correct horse".into()).await.unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert!(h
            .verify("correct horse".into(), Some(stored.clone()))
            .await
            .unwrap());
        assert!(!h.verify("wrong horse".into(), Some(stored)).await.unwrap());
        assert!(!h
            .verify("decoy password that is never used".into(), None)
            .await
            .unwrap());
        assert!(validate("short").is_err());
        assert!(validate(&"x".repeat(300)).is_err());
        assert!(validate("long enough").is_ok());
    }
}
