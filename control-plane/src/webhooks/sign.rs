//! Signatures as the Standard Webhooks specification defines them: the secret is
//! `whsec_` + base64 of random bytes; a message is signed as
//! `base64(HMAC-SHA256(secret bytes, "{webhook-id}.{webhook-timestamp}.{body}"))` and sent
//! as `webhook-signature: v1,<signature>`, several space-separated while a rotated secret
//! still signs.

use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

/// Random bytes in a new secret (the specification asks for 24 to 64).
const SECRET_BYTES: usize = 32;

/// The prefix of a secret's text form.
pub const PREFIX: &str = "whsec_";

/// A signing secret. Its `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Secret {
    /// A fresh random secret.
    pub fn random() -> Secret {
        let mut bytes = vec![0u8; SECRET_BYTES];
        // The system generator only fails if the OS has no randomness at all.
        SystemRandom::new()
            .fill(&mut bytes)
            .expect("operating system randomness");
        Secret(bytes)
    }

    /// Its raw bytes (what is sealed in the database).
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// From raw bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Secret {
        Secret(bytes)
    }

    /// `whsec_` and base64: what the endpoint's owner is shown once.
    pub fn to_text(&self) -> String {
        format!("{PREFIX}{}", B64.encode(&self.0))
    }

    /// Parses the text form (with or without `whsec_`).
    pub fn parse(text: &str) -> Option<Secret> {
        let b64 = text.strip_prefix(PREFIX).unwrap_or(text);
        B64.decode(b64).ok().filter(|b| !b.is_empty()).map(Secret)
    }

    /// `v1,<base64 signature>` of one message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &str) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.0);
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(id.as_bytes());
        ctx.update(b".");
        ctx.update(timestamp.to_string().as_bytes());
        ctx.update(b".");
        ctx.update(body.as_bytes());
        format!("v1,{}", B64.encode(ctx.sign().as_ref()))
    }
}

/// The `webhook-signature` value: one `v1,` signature per secret, space-separated (the
/// current secret first).
pub fn header(secrets: &[Secret], id: &str, timestamp: i64, body: &str) -> String {
    secrets
        .iter()
        .map(|s| s.sign(id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks reference libraries.
    #[test]
    fn matches_the_reference_example() {
        let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            secret.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                r#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn secrets_round_trip_and_two_sign_during_rotation() {
        let (a, b) = (Secret::random(), Secret::random());
        assert!(a.to_text().starts_with("whsec_"));
        assert_eq!(Secret::parse(&a.to_text()), Some(a.clone()));
        let h = header(&[a.clone(), b.clone()], "msg_1", 5, "{}");
        let parts: Vec<&str> = h.split(' ').collect();
        assert_eq!(parts, [a.sign("msg_1", 5, "{}"), b.sign("msg_1", 5, "{}")]);
        assert_ne!(parts[0], parts[1]);
        assert_eq!(format!("{a:?}"), "Secret(<redacted>)");
    }
}
