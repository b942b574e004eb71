//! `Stripe-Signature` verification, done as Stripe documents it: the header is
//! `t=<unix seconds>,v1=<hex>,v1=<hex>,…`; a `v1` is HMAC-SHA256 under the endpoint's
//! secret of `{t}.{raw body}`. A request holds when any `v1` matches (several are sent
//! while a secret is rolled) and `t` is within the tolerance of now. Comparison is
//! constant-time (`aws_lc_rs::hmac::verify`, the HMAC the crate already uses for its
//! keys; no HMAC of our own). Pure: the time is passed in.

use aws_lc_rs::hmac;

/// Stripe's default tolerance: a signature older (or newer) than this is refused, so a
/// captured request cannot be replayed later.
pub const TOLERANCE_SECS: i64 = 300;

/// Most `v1` values looked at (Stripe sends one, two while rolling a secret).
const MAX_SIGNATURES: usize = 8;

/// Why a webhook was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// No header, or not `t=…,v1=…`.
    #[error("missing or malformed Stripe-Signature header")]
    Malformed,
    /// `t` is further from now than the tolerance.
    #[error("the signature's timestamp is outside the tolerance")]
    Stale,
    /// No `v1` matches.
    #[error("no signature matches")]
    Mismatch,
}

/// The endpoint's signing secret (`whsec_…`); its Debug never shows it.
#[derive(Clone)]
pub struct WebhookSecret(hmac::Key);

impl WebhookSecret {
    /// The secret as Stripe shows it (the whole `whsec_…` string is the key).
    pub fn new(secret: &str) -> WebhookSecret {
        WebhookSecret(hmac::Key::new(hmac::HMAC_SHA256, secret.trim().as_bytes()))
    }

    /// A `Stripe-Signature` value for `body` at `t` (what Stripe sends; for tests and
    /// tools).
    pub fn sign(&self, t: i64, body: &[u8]) -> String {
        let tag = hmac::sign(&self.0, &signed_payload(t, body));
        let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        format!("t={t},v1={hex}")
    }

    /// Checks `header` against `body` at `now` (Unix seconds).
    pub fn verify(
        &self,
        header: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<(), SignatureError> {
        let header = header.ok_or(SignatureError::Malformed)?;
        let mut t = None;
        let mut sigs = Vec::new();
        for part in header.split(',').take(32) {
            match part.trim().split_once('=') {
                Some(("t", v)) => t = v.parse::<i64>().ok(),
                Some(("v1", v)) if sigs.len() < MAX_SIGNATURES => {
                    // A value that is not hex cannot match; it is skipped, not an error.
                    if let Some(bytes) = unhex(v) {
                        sigs.push(bytes);
                    }
                }
                _ => {}
            }
        }
        let t = t.ok_or(SignatureError::Malformed)?;
        if sigs.is_empty() {
            return Err(SignatureError::Malformed);
        }
        if (now - t).abs() > TOLERANCE_SECS {
            return Err(SignatureError::Stale);
        }
        let payload = signed_payload(t, body);
        if sigs
            .iter()
            .any(|s| hmac::verify(&self.0, &payload, s).is_ok())
        {
            Ok(())
        } else {
            Err(SignatureError::Mismatch)
        }
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

fn signed_payload(t: i64, body: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(body.len() + 24);
    p.extend_from_slice(t.to_string().as_bytes());
    p.push(b'.');
    p.extend_from_slice(body);
    p
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 128 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"id":"evt_1","type":"invoice.paid"}"#;

    #[test]
    fn a_signature_made_as_stripe_does_verifies() {
        let s = WebhookSecret::new("whsec_test");
        let h = s.sign(1_000, BODY);
        assert_eq!(s.verify(Some(&h), BODY, 1_000), Ok(()));
        assert_eq!(s.verify(Some(&h), BODY, 1_300), Ok(()));
    }

    #[test]
    fn a_known_vector_verifies() {
        // HMAC-SHA256("whsec_test", "1000.{body}"), computed with Python's hmac module.
        let h = "t=1000,v1=cefbf189176141727340b43883960c56b72fc2e170edf407065ef2d469fa7191";
        let s = WebhookSecret::new("whsec_test");
        assert_eq!(s.sign(1000, BODY), h);
        assert_eq!(s.verify(Some(h), BODY, 1000), Ok(()));
    }

    #[test]
    fn any_of_several_v1_values_may_match() {
        let s = WebhookSecret::new("whsec_new");
        let old = WebhookSecret::new("whsec_old").sign(50, BODY);
        let new = s.sign(50, BODY);
        let both = format!("{old},{}", new.trim_start_matches("t=50,"));
        assert_eq!(s.verify(Some(&both), BODY, 60), Ok(()));
    }

    #[test]
    fn wrong_secret_body_or_time_is_refused() {
        let s = WebhookSecret::new("whsec_test");
        let h = s.sign(1_000, BODY);
        let other = WebhookSecret::new("whsec_other");
        assert_eq!(
            other.verify(Some(&h), BODY, 1_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            s.verify(Some(&h), b"{}", 1_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(s.verify(Some(&h), BODY, 1_301), Err(SignatureError::Stale));
        assert_eq!(s.verify(Some(&h), BODY, 699), Err(SignatureError::Stale));
        assert_eq!(s.verify(None, BODY, 1_000), Err(SignatureError::Malformed));
        assert_eq!(
            s.verify(Some("v1=00"), BODY, 1_000),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            s.verify(Some("t=1000"), BODY, 1_000),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            s.verify(Some("t=1000,v1=zz"), BODY, 1_000),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn debug_redacts() {
        assert!(!format!("{:?}", WebhookSecret::new("whsec_x")).contains("whsec"));
    }
}
