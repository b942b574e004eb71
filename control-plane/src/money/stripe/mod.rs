//! Stripe over its HTTP API: form-encoded requests with the secret key as the bearer, a
//! pinned `Stripe-Version`, an `Idempotency-Key` on every request that creates or moves
//! something. Products and Plans (a Plan is a Price to Stripe; localstripe has only
//! Plans), Customers, Subscriptions, PaymentIntents; webhooks verified by
//! `signature.rs` and read by `events.rs`.
//!
//! The secret key and the webhook secret never reach a log: `Debug` shows the base URL
//! alone.

mod events;
mod signature;

use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::Value;

pub use signature::{SignatureError, WebhookSecret, TOLERANCE_SECS};

use super::gateway::{
    Created, Event, GatewayError, NewPayment, NewSubscription, NewTier, PaymentGateway, TierRefs,
    WebhookError,
};

/// The API version the requests and the parsing are written for (set the webhook
/// endpoint to the same in Stripe's dashboard).
pub const API_VERSION: &str = "2024-06-20";

/// Stripe's API.
pub const DEFAULT_BASE: &str = "https://api.stripe.com";

/// Stripe.js, the card form the pages load.
pub const DEFAULT_JS: &str = "https://js.stripe.com/v3/";

/// Largest answer read from Stripe.
const MAX_ANSWER: usize = 1024 * 1024;

/// A Stripe account.
pub struct Stripe {
    http: reqwest::Client,
    base: String,
    key: String,
    webhook: WebhookSecret,
}

impl std::fmt::Debug for Stripe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stripe")
            .field("base", &self.base)
            .field("key", &"<redacted>")
            .field("webhook", &self.webhook)
            .finish()
    }
}

type Form<'a> = Vec<(String, &'a str)>;

impl Stripe {
    /// Stripe at `base` (`https://api.stripe.com`, or a localstripe) with the account's
    /// secret key and the webhook endpoint's signing secret.
    pub fn new(base: &str, secret_key: &str, webhook_secret: &str) -> Result<Stripe, GatewayError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(20))
            .build()
            .map_err(|e| GatewayError::Unavailable(e.to_string()))?;
        Ok(Stripe {
            http,
            base: base.trim_end_matches('/').to_owned(),
            key: secret_key.trim().to_owned(),
            webhook: WebhookSecret::new(webhook_secret),
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        form: &Form<'_>,
        idempotency: Option<&str>,
    ) -> Result<Value, GatewayError> {
        let mut req = self
            .http
            .request(method, format!("{}/v1/{path}", self.base))
            .bearer_auth(&self.key)
            .header("Stripe-Version", API_VERSION);
        if let Some(k) = idempotency {
            req = req.header("Idempotency-Key", k);
        }
        if !form.is_empty() {
            req = req.form(form);
        }
        let mut resp = req
            .send()
            .await
            .map_err(|e| GatewayError::Unavailable(e.without_url().to_string()))?;
        let status = resp.status();
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| GatewayError::Unavailable(e.without_url().to_string()))?
        {
            if body.len() + chunk.len() > MAX_ANSWER {
                return Err(GatewayError::Protocol("answer too large".into()));
            }
            body.extend_from_slice(&chunk);
        }
        let v: Value = serde_json::from_slice(&body)
            .map_err(|_| GatewayError::Protocol(format!("{status}: not JSON")))?;
        if status.is_success() {
            return Ok(v);
        }
        let msg = v["error"]["message"]
            .as_str()
            .unwrap_or("no message")
            .chars()
            .take(300)
            .collect::<String>();
        if status.is_client_error() {
            Err(GatewayError::Refused(msg))
        } else {
            Err(GatewayError::Unavailable(format!("{status}: {msg}")))
        }
    }

    async fn post(
        &self,
        path: &str,
        form: Form<'_>,
        key: Option<&str>,
    ) -> Result<Value, GatewayError> {
        self.call(reqwest::Method::POST, path, &form, key).await
    }
}

fn id_of(v: &Value) -> Result<String, GatewayError> {
    v["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| GatewayError::Protocol("no id".into()))
}

fn created(v: &Value, secret: Option<&Value>) -> Result<Created, GatewayError> {
    Ok(Created {
        id: id_of(v)?,
        status: v["status"].as_str().unwrap_or_default().to_owned(),
        client_secret: secret
            .and_then(|s| s["client_secret"].as_str())
            .map(str::to_owned),
    })
}

fn metadata<'a>(form: &mut Form<'a>, list: &[(&'static str, &'a str)]) {
    for (k, v) in list {
        form.push((format!("metadata[{k}]"), v));
    }
}

impl PaymentGateway for Stripe {
    fn name(&self) -> &'static str {
        "stripe"
    }

    fn create_customer<'a>(
        &'a self,
        user_id: &'a str,
        email: &'a str,
    ) -> BoxFuture<'a, Result<String, GatewayError>> {
        Box::pin(async move {
            let form = vec![
                ("email".to_owned(), email),
                ("metadata[user_id]".to_owned(), user_id),
            ];
            let key = format!("customer-{user_id}");
            id_of(&self.post("customers", form, Some(&key)).await?)
        })
    }

    fn create_tier<'a>(&'a self, t: NewTier<'a>) -> BoxFuture<'a, Result<TierRefs, GatewayError>> {
        Box::pin(async move {
            let mut form = vec![("name".to_owned(), t.name)];
            metadata(&mut form, &[("channel_id", t.channel_id)]);
            let product = id_of(&self.post("products", form, None).await?)?;
            let amount = t.amount.to_string();
            let mut form = vec![
                ("product".to_owned(), product.as_str()),
                ("amount".to_owned(), amount.as_str()),
                ("currency".to_owned(), t.currency),
                ("interval".to_owned(), t.period),
            ];
            metadata(&mut form, &[("channel_id", t.channel_id)]);
            let price = id_of(&self.post("plans", form, None).await?)?;
            Ok(TierRefs { product, price })
        })
    }

    fn archive_tier<'a>(&'a self, refs: &'a TierRefs) -> BoxFuture<'a, Result<(), GatewayError>> {
        Box::pin(async move {
            let path = format!("plans/{}", refs.price);
            self.post(&path, vec![("active".to_owned(), "false")], None)
                .await
                .map(drop)
        })
    }

    fn subscribe<'a>(
        &'a self,
        r: NewSubscription<'a>,
    ) -> BoxFuture<'a, Result<Created, GatewayError>> {
        Box::pin(async move {
            if let Some(pm) = r.payment_method {
                // Attached, the method gets its own id (a test token such as
                // `pm_card_visa` becomes a real one); that one becomes the default.
                let path = format!("payment_methods/{pm}/attach");
                let key = format!("{}-attach", r.idempotency_key);
                let attached = id_of(
                    &self
                        .post(&path, vec![("customer".to_owned(), r.customer)], Some(&key))
                        .await?,
                )?;
                let path = format!("customers/{}", r.customer);
                let form = vec![(
                    "invoice_settings[default_payment_method]".to_owned(),
                    attached.as_str(),
                )];
                let key = format!("{}-default", r.idempotency_key);
                self.post(&path, form, Some(&key)).await?;
            }
            let mut form = vec![
                ("customer".to_owned(), r.customer),
                ("items[0][plan]".to_owned(), r.price),
                ("expand[]".to_owned(), "latest_invoice.payment_intent"),
            ];
            metadata(&mut form, &r.metadata);
            let v = self
                .post("subscriptions", form, Some(r.idempotency_key))
                .await?;
            created(&v, Some(&v["latest_invoice"]["payment_intent"]))
        })
    }

    fn cancel<'a>(&'a self, subscription: &'a str) -> BoxFuture<'a, Result<Created, GatewayError>> {
        Box::pin(async move {
            let path = format!("subscriptions/{subscription}");
            let v = self
                .call(reqwest::Method::DELETE, &path, &Vec::new(), None)
                .await?;
            created(&v, None)
        })
    }

    fn setup_card<'a>(&'a self, customer: &'a str) -> BoxFuture<'a, Result<Created, GatewayError>> {
        Box::pin(async move {
            let form = vec![
                ("customer".to_owned(), customer),
                ("payment_method_types[]".to_owned(), "card"),
                ("usage".to_owned(), "off_session"),
            ];
            // Nothing moves until the browser confirms it: no idempotency key needed.
            let v = self.post("setup_intents", form, None).await?;
            created(&v, Some(&v))
        })
    }

    fn pay<'a>(&'a self, r: NewPayment<'a>) -> BoxFuture<'a, Result<Created, GatewayError>> {
        Box::pin(async move {
            let amount = r.amount.to_string();
            let mut form = vec![
                ("amount".to_owned(), amount.as_str()),
                ("currency".to_owned(), r.currency),
                ("payment_method_types[]".to_owned(), "card"),
            ];
            if let Some(c) = r.customer {
                form.push(("customer".to_owned(), c));
            }
            if let Some(pm) = r.payment_method {
                form.push(("payment_method".to_owned(), pm));
                form.push(("confirm".to_owned(), "true"));
            }
            metadata(&mut form, &r.metadata);
            let v = self
                .post("payment_intents", form, Some(r.idempotency_key))
                .await?;
            created(&v, Some(&v))
        })
    }

    fn event(&self, signature: Option<&str>, body: &[u8], now: i64) -> Result<Event, WebhookError> {
        self.webhook.verify(signature, body, now)?;
        events::parse(body)
    }
}
