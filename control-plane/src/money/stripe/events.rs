//! Stripe's events reduced to the facts the control plane acts on. Pure.
//!
//! Read: `customer.subscription.created|updated|deleted` (the subscription's `status`),
//! `invoice.paid` and `invoice.payment_succeeded` (both mean a paid invoice; localstripe
//! sends only the second, Stripe both: the ledger's key is the invoice, so it counts once),
//! `payment_intent.succeeded` (a tip when its metadata has our `tip_id`). Everything else
//! is acknowledged and ignored.

use serde_json::Value;

use crate::money::gateway::{Event, Fact, SubStatus, WebhookError};

/// Parses a verified event body.
pub(crate) fn parse(body: &[u8]) -> Result<Event, WebhookError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
    let bad = |what: &str| WebhookError::Malformed(format!("no {what}"));
    let id = v["id"].as_str().ok_or_else(|| bad("id"))?;
    let kind = v["type"].as_str().ok_or_else(|| bad("type"))?;
    let created = v["created"].as_i64().ok_or_else(|| bad("created"))?;
    if id.len() > 255 || kind.len() > 100 {
        return Err(WebhookError::Malformed("id or type too long".into()));
    }
    let obj = &v["data"]["object"];
    let text = |k: &str| obj[k].as_str().map(str::to_owned);
    let fact = match kind {
        "customer.subscription.created"
        | "customer.subscription.updated"
        | "customer.subscription.deleted" => {
            match (
                text("id"),
                obj["status"].as_str().and_then(SubStatus::parse),
            ) {
                (Some(id), Some(status)) => Fact::Subscription {
                    id,
                    status,
                    ours: obj["metadata"]["subscription_id"]
                        .as_str()
                        .map(str::to_owned),
                },
                _ => return Err(bad("subscription id or status")),
            }
        }
        "invoice.paid" | "invoice.payment_succeeded" => {
            // Before API 2025-03-31 the invoice names its subscription at the top; since,
            // under `parent.subscription_details`.
            let sub = text("subscription").or_else(|| {
                obj["parent"]["subscription_details"]["subscription"]
                    .as_str()
                    .map(str::to_owned)
            });
            match (
                text("id"),
                sub,
                obj["amount_paid"].as_i64(),
                text("currency"),
            ) {
                (Some(invoice), Some(subscription), Some(amount), Some(currency)) if amount > 0 => {
                    Fact::InvoicePaid {
                        invoice,
                        subscription,
                        amount,
                        currency,
                    }
                }
                // A 0 invoice (a trial) or one of no subscription of ours.
                _ => Fact::Ignored,
            }
        }
        "payment_intent.succeeded" => {
            let amount = obj["amount_received"]
                .as_i64()
                .or_else(|| obj["amount"].as_i64());
            match (text("id"), amount, text("currency")) {
                (Some(id), Some(amount), Some(currency)) => Fact::PaymentSucceeded {
                    id,
                    amount,
                    currency,
                    tip: obj["metadata"]["tip_id"].as_str().map(str::to_owned),
                },
                _ => return Err(bad("payment intent fields")),
            }
        }
        _ => Fact::Ignored,
    };
    Ok(Event {
        id: id.to_owned(),
        kind: kind.to_owned(),
        created,
        fact,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(kind: &str, obj: Value) -> Vec<u8> {
        json!({"id": "evt_1", "type": kind, "created": 7, "data": {"object": obj}})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn subscription_states_invoices_and_tips_are_read() {
        let e = parse(&event(
            "customer.subscription.deleted",
            json!({"id": "sub_1", "status": "canceled"}),
        ))
        .unwrap();
        assert_eq!(e.created, 7);
        assert_eq!(
            e.fact,
            Fact::Subscription {
                id: "sub_1".into(),
                status: SubStatus::Canceled,
                ours: None,
            }
        );
        let e = parse(&event(
            "invoice.payment_succeeded",
            json!({"id": "in_1", "subscription": "sub_1", "amount_paid": 500, "currency": "usd"}),
        ))
        .unwrap();
        assert!(matches!(e.fact, Fact::InvoicePaid { amount: 500, .. }));
        let e = parse(&event(
            "invoice.paid",
            json!({"id": "in_1", "parent": {"subscription_details": {"subscription": "sub_1"}},
                   "amount_paid": 500, "currency": "usd"}),
        ))
        .unwrap();
        assert!(matches!(e.fact, Fact::InvoicePaid { .. }));
        let e = parse(&event(
            "payment_intent.succeeded",
            json!({"id": "pi_1", "amount": 300, "currency": "usd", "metadata": {"tip_id": "t1"}}),
        ))
        .unwrap();
        assert!(matches!(
            e.fact,
            Fact::PaymentSucceeded { tip: Some(_), .. }
        ));
    }

    #[test]
    fn others_are_ignored_and_garbage_refused() {
        let e = parse(&event("product.created", json!({"id": "prod_1"}))).unwrap();
        assert_eq!(e.fact, Fact::Ignored);
        let e = parse(&event(
            "invoice.paid",
            json!({"id": "in_1", "amount_paid": 0, "currency": "usd", "subscription": "s"}),
        ))
        .unwrap();
        assert_eq!(e.fact, Fact::Ignored);
        assert!(parse(b"not json").is_err());
        assert!(parse(br#"{"id":"evt_1"}"#).is_err());
        assert!(parse(&event("customer.subscription.updated", json!({"id": "s"}))).is_err());
    }
}
