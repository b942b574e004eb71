//! Money against a real localstripe (PyPI `localstripe`, a stateful fake Stripe): tiers,
//! subscribe → localstripe's own signed webhooks → entitlement → a subscribers-only
//! stream admits the subscriber and refuses others (403 `subscription_required`);
//! cancel → refused; a tip → ledger postings and a `tip` chat event; replayed, duplicated
//! and badly signed webhooks; and a seeded property test of the ledger.
//!
//! localstripe comes from `CASCADE_TEST_STRIPE` (a running one) or is started here on a
//! free port; when neither works the localstripe scenarios say SKIPPED loudly.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use control_plane::gate::{Refusal, Want};
use control_plane::money::stripe::{Stripe, WebhookSecret};
use control_plane::money::{book, Settings};
use rand::{Rng, SeedableRng};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both;
use crate::chat::say;
use crate::chat_live::Live;
use crate::harness::{roomy, Api, Backend};
use crate::receiver::{Behaviour, Receiver};

const WHSEC: &str = "whsec_cascade_test";
const KEY: &str = "sk_test_cascade";

/// A localstripe: one given by the environment, or a child process of this test.
struct LocalStripe {
    base: String,
    child: Option<Child>,
}

impl Drop for LocalStripe {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

async fn localstripe() -> Option<LocalStripe> {
    if let Ok(base) = std::env::var("CASCADE_TEST_STRIPE") {
        return Some(LocalStripe { base, child: None });
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = Command::new("localstripe")
        .args(["--port", &port.to_string(), "--from-scratch"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(child) = child else {
        eprintln!("SKIPPED (localstripe): not installed (python3 -m pip install localstripe)");
        return None;
    };
    let ls = LocalStripe {
        base: format!("http://127.0.0.1:{port}"),
        child: Some(child),
    };
    for _ in 0..100 {
        if reqwest::get(format!("{}/v1/events", ls.base)).await.is_ok() {
            return Some(ls);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("SKIPPED (localstripe): did not start");
    None
}

async fn start(backend: Backend, stripe_base: &str) -> Option<Api> {
    let stripe = Stripe::new(stripe_base, KEY, WHSEC).unwrap();
    let mut config = roomy();
    config.cluster = true;
    config.money = Settings {
        fee_percent: 10,
        gateway: Some(Arc::new(stripe)),
        publishable_key: Some("pk_test_cascade".into()),
        js_url: format!("{stripe_base}/js.stripe.com/v3/"),
        ..Settings::default()
    };
    // The channel's webhooks go to a receiver of the test, on loopback, at once.
    config.webhooks = control_plane::webhooks::Settings {
        allow_private: true,
        poll: Duration::from_millis(50),
        ..Default::default()
    };
    Api::start(backend, config).await
}

/// A request with an Idempotency-Key.
async fn keyed(api: &Api, path: &str, token: &str, key: &str, body: Value) -> (StatusCode, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}{path}", api.base))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.json().await.unwrap_or(Value::Null))
}

/// Posts a webhook body with a signature header.
async fn deliver(api: &Api, body: &[u8], signature: &str) -> (StatusCode, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/payments/stripe/webhook", api.base))
        .header("content-type", "application/json")
        .header("stripe-signature", signature)
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    (resp.status(), resp.json().await.unwrap_or(Value::Null))
}

/// Polls `f` every 100 ms for up to 10 s.
async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: not within 10 s");
}

/// A sample of the control plane's `/metrics` text (0 while the series is absent).
fn metric(api: &Api, series: &str) -> f64 {
    api.cp
        .render_metrics()
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

const SUBSCRIPTIONS_USD: &str =
    "cascade_revenue_minor_units_total{currency=\"usd\",kind=\"subscription\"}";
const TIPS_USD: &str = "cascade_revenue_minor_units_total{currency=\"usd\",kind=\"tip\"}";

/// Every currency's postings sum to zero (debits = credits).
async fn balanced(api: &Api) {
    let mut per: std::collections::HashMap<String, i64> = Default::default();
    for (_, currency, sum) in book::trial_balance(&api.cp).await.unwrap() {
        *per.entry(currency).or_default() += sum;
    }
    assert!(per.values().all(|s| *s == 0), "{per:?}");
}

async fn balance(api: &Api, owner: &str, slug: &str) -> Value {
    let (s, b) = api
        .call(
            Method::GET,
            &format!("/channels/{slug}/balance"),
            Some(owner),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b
}

async fn subscribe_watch_cancel_and_tip(backend: Backend) {
    let Some(ls) = localstripe().await else {
        return;
    };
    let Some(api) = start(backend, &ls.base).await else {
        return;
    };
    // localstripe delivers its events, signed with the secret, to this control plane.
    let hook = reqwest::Client::new()
        .post(format!(
            "{}/_config/webhooks/{}",
            ls.base,
            rand::random::<u32>()
        ))
        .form(&[
            ("url", format!("{}/payments/stripe/webhook", api.base)),
            ("secret", WHSEC.to_owned()),
        ])
        .send()
        .await
        .unwrap();
    assert!(hook.status().is_success());

    let (owner, _, _) = api.user("lea").await;
    let (viewer, _, _) = api.user("vic").await;
    let (other, _, _) = api.user("otto").await;
    let (s, _) = api
        .call(
            Method::POST,
            "/channels",
            Some(&owner),
            Some(json!({"slug": "lea-live", "title": "Lea"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    // The channel's own integrations hear of its subscribers and tips.
    let rx = Receiver::start(Behaviour::Accept).await;
    let (s, ep) = api
        .call(
            Method::POST,
            "/webhooks",
            Some(&owner),
            Some(json!({"channel": "lea-live", "url": rx.url,
                        "events": ["subscription.created", "tip.received"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{ep}");
    let (s, tier) = api
        .call(
            Method::POST,
            "/channels/lea-live/tiers",
            Some(&owner),
            Some(json!({"name": "Gold", "amount": 500, "currency": "usd", "period": "month"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{tier}");
    let tier_id = tier["id"].as_str().unwrap().to_owned();
    let (s, tiers) = api
        .call(Method::GET, "/channels/lea-live/tiers", None, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(tiers[0]["amount"], 500);

    // Open until the owner closes it; then only subscribers (and the owner) pass.
    assert!(api.cp.check(Want::View, "lea-live", None).await.is_ok());
    let (s, _) = api
        .call(
            Method::PUT,
            "/channels/lea-live/paywall",
            Some(&owner),
            Some(json!({"subscribers_only": true, "stream_until": null})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        api.cp.check(Want::View, "lea-live", None).await,
        Err(Refusal::SubscriptionRequired)
    );
    let (s, p) = api
        .call(
            Method::POST,
            "/channels/lea-live/viewer-token",
            Some(&viewer),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(p["code"], "subscription_required", "{p}");
    // The cluster's WHEP redirect refuses the same way, before choosing an edge.
    let resp = reqwest::Client::new()
        .post(format!(
            "{}/whep/lea-live",
            api.base.trim_end_matches("/api/v1")
        ))
        .header("content-type", "application/sdp")
        .body("v=0")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let p: Value = resp.json().await.unwrap();
    assert_eq!(p["code"], "subscription_required");
    let (s, t) = api
        .call(
            Method::POST,
            "/channels/lea-live/viewer-token",
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{t}");

    // What the pages' card form needs, and a card saved through it (localstripe's
    // stand-in for Stripe.js confirms the SetupIntent with the publishable key).
    let (s, cfg) = api.call(Method::GET, "/payments/config", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(cfg["gateway"], "stripe");
    assert_eq!(cfg["publishable_key"], "pk_test_cascade");
    assert_eq!(cfg["js_url"], format!("{}/js.stripe.com/v3/", ls.base));
    let (s, setup) = api
        .call(
            Method::POST,
            "/me/payment-methods/setup",
            Some(&viewer),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{setup}");
    let secret = setup["client_secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("seti_"), "{secret}");
    let seti = secret.split("_secret_").next().unwrap();
    let confirmed: Value = reqwest::Client::new()
        .post(format!("{}/v1/setup_intents/{seti}/confirm", ls.base))
        .json(&json!({"key": "pk_test_cascade", "client_secret": secret,
            "payment_method_data": {"type": "card", "card": {"number": "4242424242424242",
                "exp_month": 12, "exp_year": 2034, "cvc": "123"}}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(confirmed["status"], "succeeded", "{confirmed}");
    let saved_card = confirmed["payment_method"].as_str().unwrap().to_owned();
    // No badges yet (and that answer is cached).
    let (_, badges) = api
        .call(Method::GET, "/channels/lea-live/badges", None, None)
        .await;
    assert_eq!(badges, json!([]));

    // Subscribe with the saved card; a repeat of the key charges nothing.
    let path = format!("/channels/lea-live/tiers/{tier_id}/subscribe");
    let body = json!({ "payment_method": saved_card });
    let (s, sub) = keyed(&api, &path, &viewer, "sub-1", body.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{sub}");
    assert_eq!(sub["status"], "incomplete");
    let (s, again) = keyed(&api, &path, &viewer, "sub-1", body.clone()).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(again["id"], sub["id"]);
    let sub_id = sub["id"].as_str().unwrap().to_owned();

    // localstripe's webhooks make it active, and the invoice becomes revenue.
    eventually("the subscription is active", || async {
        let (_, mine) = api
            .call(Method::GET, "/me/subscriptions", Some(&viewer), None)
            .await;
        mine[0]["status"] == "active" && mine[0]["entitled"] == true
    })
    .await;
    // The chat's badges list the subscriber with the tier's name (the activation dropped
    // the cached empty list).
    let (s, badges) = api
        .call(Method::GET, "/channels/lea-live/badges", None, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(badges, json!([{"username": "vic", "tier": "Gold"}]));
    eventually("the invoice is in the ledger", || async {
        balance(&api, &owner, "lea-live").await[0]["gross"] == 500
    })
    .await;
    let b = balance(&api, &owner, "lea-live").await;
    assert_eq!(
        b,
        json!([{"currency": "usd", "gross": 500, "fees": 50, "payouts": 0, "balance": 450}])
    );
    // The same gross on /metrics (counted just after the ledger's commit).
    eventually("the invoice is counted", || async {
        metric(&api, SUBSCRIPTIONS_USD) == 500.0
    })
    .await;
    let (s, _) = keyed(&api, &path, &viewer, "sub-2", body).await;
    assert_eq!(s, StatusCode::CONFLICT, "already subscribed");

    // The subscriber watches; another viewer does not.
    let (s, t) = api
        .call(
            Method::POST,
            "/channels/lea-live/viewer-token",
            Some(&viewer),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{t}");
    let token = t["token"].as_str().unwrap().to_owned();
    assert!(api
        .cp
        .check(Want::View, "lea-live", Some(&token))
        .await
        .is_ok());
    let (s, p) = api
        .call(
            Method::POST,
            "/channels/lea-live/viewer-token",
            Some(&other),
            None,
        )
        .await;
    assert_eq!(
        (s, p["code"].clone()),
        (StatusCode::FORBIDDEN, json!("subscription_required"))
    );

    // A tip: paid at once, announced in the room once its webhook arrives.
    let mut room = Live::open(&api, None, None).await;
    room.until("welcome").await;
    // Chat messages on /metrics: the accepted one, not the refused one.
    assert_eq!(metric(&api, "cascade_chat_messages_total"), 0.0);
    assert_eq!(say(&api, &viewer, "hello Lea").await.0, StatusCode::CREATED);
    let (s, _) = say(&api, &viewer, &"x".repeat(600)).await;
    assert!(s.is_client_error(), "{s}");
    assert_eq!(metric(&api, "cascade_chat_messages_total"), 1.0);
    let tip_body = json!({"amount": 300, "currency": "usd", "message": "great stream!", "payment_method": "pm_card_visa"});
    let (s, tip) = keyed(
        &api,
        "/channels/lea-live/tips",
        &viewer,
        "tip-1",
        tip_body.clone(),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{tip}");
    let (s, same) = keyed(&api, "/channels/lea-live/tips", &viewer, "tip-1", tip_body).await;
    assert_eq!((s, &same["id"]), (StatusCode::OK, &tip["id"]));
    let alert = tokio::time::timeout(Duration::from_secs(10), room.until("tip"))
        .await
        .expect("a tip event");
    assert_eq!(alert["tip"]["message"], "great stream!");
    assert_eq!(alert["tip"]["amount"], 300);
    assert_eq!(alert["tip"]["user"]["username"], "vic");
    eventually("the tip is in the ledger", || async {
        balance(&api, &owner, "lea-live").await[0]["gross"] == 800
    })
    .await;
    assert_eq!(balance(&api, &owner, "lea-live").await[0]["balance"], 720);
    eventually("the tip is counted", || async {
        metric(&api, TIPS_USD) == 300.0
    })
    .await;

    // Every event localstripe sent, delivered again (signed as Stripe signs) in reverse
    // order: nothing changes.
    let events: Value = reqwest::Client::new()
        .get(format!("{}/v1/events?limit=100", ls.base))
        .basic_auth(KEY, Some(""))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = WebhookSecret::new(WHSEC);
    let now = control_plane::tokens::now_secs();
    let mut replayed = 0;
    for e in events["data"].as_array().unwrap().iter().rev() {
        let body = serde_json::to_vec(e).unwrap();
        let (s, r) = deliver(&api, &body, &secret.sign(now, &body)).await;
        assert_eq!(s, StatusCode::OK, "{r}");
        replayed += 1;
    }
    assert!(replayed >= 4, "localstripe sent {replayed} events");
    assert_eq!(balance(&api, &owner, "lea-live").await[0]["gross"], 800);
    assert_eq!(
        metric(&api, SUBSCRIPTIONS_USD),
        500.0,
        "replays count nothing"
    );
    assert_eq!(metric(&api, TIPS_USD), 300.0, "replays count nothing");
    let (_, mine) = api
        .call(Method::GET, "/me/subscriptions", Some(&viewer), None)
        .await;
    assert_eq!(mine[0]["status"], "active");

    // Bad signature, old timestamp, no header: 400, nothing applied.
    let body = br#"{"id":"evt_forged","type":"invoice.paid","created":1,"data":{"object":{}}}"#;
    let forged = WebhookSecret::new("whsec_wrong").sign(now, body);
    assert_eq!(
        deliver(&api, body, &forged).await.0,
        StatusCode::BAD_REQUEST
    );
    let old = secret.sign(now - 301, body);
    assert_eq!(deliver(&api, body, &old).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(deliver(&api, body, "").await.0, StatusCode::BAD_REQUEST);

    // Cancel: the next WHEP is refused, with the same token.
    let (s, c) = api
        .call(
            Method::DELETE,
            &format!("/me/subscriptions/{sub_id}"),
            Some(&viewer),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{c}");
    assert_eq!(c["status"], "canceled");
    assert_eq!(
        api.cp.check(Want::View, "lea-live", Some(&token)).await,
        Err(Refusal::SubscriptionRequired)
    );
    let (s, _) = api
        .call(
            Method::POST,
            "/channels/lea-live/viewer-token",
            Some(&viewer),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // localstripe's `customer.subscription.deleted` (and any late `created`) changes
    // nothing more.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, mine) = api
        .call(Method::GET, "/me/subscriptions", Some(&viewer), None)
        .await;
    assert_eq!(mine[0]["status"], "canceled");

    // The payouts report.
    let (admin, _, admin_id) = api.user("ada").await;
    sqlx::query("UPDATE users SET role = 'admin' WHERE id = $1")
        .bind(&admin_id)
        .execute(api.cp.db().pool())
        .await
        .unwrap();
    let payout = json!({"amount": 700, "currency": "usd", "note": "bank transfer 1"});
    let (s, b) = keyed(
        &api,
        "/channels/lea-live/payouts",
        &admin,
        "p-1",
        payout.clone(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = keyed(
        &api,
        "/channels/lea-live/payouts",
        &admin,
        "p-1",
        payout.clone(),
    )
    .await;
    assert_eq!(
        (s, &b[0]["payouts"], &b[0]["balance"]),
        (StatusCode::OK, &json!(700), &json!(20))
    );
    let (s, _) = keyed(&api, "/channels/lea-live/payouts", &admin, "p-2", payout).await;
    assert_eq!(s, StatusCode::CONFLICT, "overdrawn");
    let csv = reqwest::Client::new()
        .get(format!("{}/admin/payouts.csv", api.base))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(csv.contains(",lea-live,usd,800,80,700,20"), "{csv}");
    let statement = reqwest::Client::new()
        .get(format!("{}/channels/lea-live/payouts.csv", api.base))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(statement.lines().count(), 4, "{statement}");
    balanced(&api).await;
    // One subscription.created (replayed events did not repeat it) and one tip.received.
    rx.wait_for(2, Duration::from_secs(10)).await;
    // Anything more would come within a few dispatcher polls.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = rx.got();
    let mut types: Vec<String> = got
        .iter()
        .map(|r| {
            let body: Value = serde_json::from_str(&r.body).unwrap();
            body["type"].as_str().unwrap().to_owned()
        })
        .collect();
    types.sort();
    assert_eq!(types, ["subscription.created", "tip.received"], "{got:?}");
}
both!(subscribe_watch_cancel_and_tip);

/// A server without a payment gateway says payments are off (404), not that it is busy.
async fn payments_off_without_a_gateway(backend: Backend) {
    let Some(api) = Api::start(backend, roomy()).await else {
        return;
    };
    let (status, body) = deliver(&api, b"{}", "t=1,v1=00").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("payments are not enabled"),
        "{body}"
    );
}
both!(payments_off_without_a_gateway);

/// A random sequence of gateway events for two subscriptions and some tips, with
/// duplicates (some at once, some under another event id) and out-of-order deliveries,
/// plus payouts: the ledger balances, each channel
/// holds gross − fees − payouts, every payment counts once, and each subscription ends in
/// the state of its newest event.
async fn ledger_balances_under_random_events(backend: Backend) {
    // The gateway is never called here: events are made and signed by the test.
    let Some(api) = start(backend, "http://127.0.0.1:9").await else {
        return;
    };
    let pool = api.cp.db().pool().clone();
    let (owner, _, owner_id) = api.user("lea").await;
    let (_, _, viewer_id) = api.user("vic").await;
    let mut channels = Vec::new();
    for slug in ["lea-a", "lea-b"] {
        let (s, ch) = api
            .call(
                Method::POST,
                "/channels",
                Some(&owner),
                Some(json!({"slug": slug, "title": "x"})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
        channels.push(ch["id"].as_str().unwrap().to_owned());
    }
    let now = control_plane::tokens::now_secs();
    for (i, ch) in channels.iter().enumerate() {
        sqlx::query(
            "INSERT INTO tiers (id, channel_id, name, amount, currency, period, gateway_product, \
             gateway_price, active, created_at, updated_at) VALUES ($1, $2, 'T', 500, 'usd', 'month', 'p', 'pr', 1, 0, 0)",
        )
        .bind(format!("tier{i}"))
        .bind(ch)
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO subscriptions (id, user_id, channel_id, tier_id, gateway_subscription, status, \
             status_at, idempotency_key, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'incomplete', 0, $1, 0, 0)",
        )
        .bind(format!("s{i}"))
        .bind(&viewer_id)
        .bind(ch)
        .bind(format!("tier{i}"))
        .bind(format!("sub_{i}"))
        .execute(&pool)
        .await
        .unwrap();
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xCA5CADE);
    let currencies = ["usd", "eur"];
    let statuses = ["active", "past_due", "active", "canceled", "unpaid"];
    // The events: (body, kind of effect) with distinct ids.
    let mut events: Vec<Vec<u8>> = Vec::new();
    let mut expected_gross: std::collections::HashMap<(usize, &str), i64> = Default::default();
    let mut expected_fees: std::collections::HashMap<(usize, &str), i64> = Default::default();
    let mut newest: Vec<(i64, u8, &str)> = vec![(0, 0, "incomplete"); channels.len()];
    // Gross by (currency, kind): what /metrics must say, however often each came.
    let mut by_kind: std::collections::HashMap<(&str, &str), i64> = Default::default();
    for n in 0..60 {
        let c = rng.random_range(0..channels.len());
        let created = now - 200 + rng.random_range(0..100i64);
        let body = match rng.random_range(0..3) {
            0 => {
                let status = statuses[rng.random_range(0..statuses.len())];
                // As at Stripe, nothing is reported after a cancellation.
                let created = if status == "canceled" {
                    now - 50
                } else {
                    created
                };
                let rank = match status {
                    "active" => 2,
                    "past_due" => 3,
                    "unpaid" => 4,
                    _ => 6,
                };
                let (at, r, _) = newest[c];
                if created > at || (created == at && rank > r) {
                    newest[c] = (created, rank, status);
                }
                json!({"id": format!("evt_{n}"), "type": "customer.subscription.updated", "created": created,
                       "data": {"object": {"id": format!("sub_{c}"), "object": "subscription", "status": status}}})
            }
            1 => {
                let amount = rng.random_range(1..5000i64);
                let cur = currencies[rng.random_range(0..2)];
                *expected_gross.entry((c, cur)).or_default() += amount;
                *expected_fees.entry((c, cur)).or_default() += (amount * 10 + 50) / 100;
                *by_kind.entry((cur, "subscription")).or_default() += amount;
                json!({"id": format!("evt_{n}"), "type": "invoice.paid", "created": created,
                       "data": {"object": {"id": format!("in_{n}"), "object": "invoice", "subscription": format!("sub_{c}"),
                                           "amount_paid": amount, "currency": cur}}})
            }
            _ => {
                let amount = rng.random_range(50..5000i64);
                let cur = currencies[rng.random_range(0..2)];
                let tip = format!("tip{n}");
                sqlx::query(
                    "INSERT INTO tips (id, channel_id, user_id, amount, currency, message, gateway_intent, \
                     status, idempotency_key, created_at) VALUES ($1, $2, $3, $4, $5, 'hi', $6, 'pending', $1, 0)",
                )
                .bind(&tip)
                .bind(&channels[c])
                .bind(&viewer_id)
                .bind(amount)
                .bind(cur)
                .bind(format!("pi_{n}"))
                .execute(&pool)
                .await
                .unwrap();
                *expected_gross.entry((c, cur)).or_default() += amount;
                *expected_fees.entry((c, cur)).or_default() += (amount * 10 + 50) / 100;
                *by_kind.entry((cur, "tip")).or_default() += amount;
                json!({"id": format!("evt_{n}"), "type": "payment_intent.succeeded", "created": created,
                       "data": {"object": {"id": format!("pi_{n}"), "object": "payment_intent", "amount": amount,
                                           "currency": cur, "metadata": {"tip_id": tip}}}})
            }
        };
        // A paid invoice told again under another event id (Stripe sends both
        // `invoice.paid` and `invoice.payment_succeeded`): the same payment, once.
        if body["type"] == "invoice.paid" && rng.random_bool(0.5) {
            let mut twin = body.clone();
            twin["id"] = json!(format!("evt_{n}_twin"));
            twin["type"] = json!("invoice.payment_succeeded");
            events.push(twin.to_string().into_bytes());
        }
        events.push(body.to_string().into_bytes());
    }
    // Deliver with duplicates, shuffled: every event once or more, in random order.
    let mut deliveries: Vec<usize> = (0..events.len()).collect();
    for _ in 0..40 {
        deliveries.push(rng.random_range(0..events.len()));
    }
    for i in (1..deliveries.len()).rev() {
        deliveries.swap(i, rng.random_range(0..=i));
    }
    let secret = WebhookSecret::new(WHSEC);
    let (admin, _, admin_id) = api.user("ada").await;
    sqlx::query("UPDATE users SET role = 'admin' WHERE id = $1")
        .bind(&admin_id)
        .execute(&pool)
        .await
        .unwrap();
    let mut paid_out: std::collections::HashMap<(usize, &str), i64> = Default::default();
    for (k, i) in deliveries.into_iter().enumerate() {
        let signed = secret.sign(now, &events[i]);
        if k % 7 == 0 {
            // The same event delivered twice at once.
            let (a, b) = futures_util::future::join(
                deliver(&api, &events[i], &signed),
                deliver(&api, &events[i], &signed),
            )
            .await;
            assert_eq!((a.0, b.0), (StatusCode::OK, StatusCode::OK), "{a:?} {b:?}");
        } else {
            let (s, r) = deliver(&api, &events[i], &signed).await;
            assert_eq!(s, StatusCode::OK, "{r}");
        }
        if k % 10 == 9 {
            // A payout of part of what a channel holds, sometimes sent twice.
            let c = rng.random_range(0..channels.len());
            let slug = ["lea-a", "lea-b"][c];
            let b = balance(&api, &owner, slug).await;
            if let Some(row) = b
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["balance"].as_i64() > Some(1))
            {
                let cur = if row["currency"] == "usd" {
                    "usd"
                } else {
                    "eur"
                };
                let amount = row["balance"].as_i64().unwrap() / 2;
                let body = json!({"amount": amount, "currency": cur});
                let key = format!("p{k}");
                for _ in 0..rng.random_range(1..3) {
                    let (s, r) = keyed(
                        &api,
                        &format!("/channels/{slug}/payouts"),
                        &admin,
                        &key,
                        body.clone(),
                    )
                    .await;
                    assert_eq!(s, StatusCode::OK, "{r}");
                }
                *paid_out.entry((c, cur)).or_default() += amount;
            }
        }
    }
    balanced(&api).await;
    for cur in currencies {
        for kind in ["subscription", "tip"] {
            let series =
                format!("cascade_revenue_minor_units_total{{currency=\"{cur}\",kind=\"{kind}\"}}");
            let want = by_kind.get(&(cur, kind)).copied().unwrap_or(0);
            assert_eq!(metric(&api, &series), want as f64, "{series}");
        }
    }
    for (c, slug) in ["lea-a", "lea-b"].iter().enumerate() {
        for row in balance(&api, &owner, slug).await.as_array().unwrap() {
            let cur = if row["currency"] == "usd" {
                "usd"
            } else {
                "eur"
            };
            let gross = expected_gross.get(&(c, cur)).copied().unwrap_or(0);
            let fees = expected_fees.get(&(c, cur)).copied().unwrap_or(0);
            let paid = paid_out.get(&(c, cur)).copied().unwrap_or(0);
            assert_eq!(row["gross"], gross, "{slug} {cur}");
            assert_eq!(row["fees"], fees, "{slug} {cur}");
            assert_eq!(row["payouts"], paid, "{slug} {cur}");
            assert_eq!(row["balance"], gross - fees - paid, "{slug} {cur}");
        }
        let (status,): (String,) =
            sqlx::query_as("SELECT status FROM subscriptions WHERE gateway_subscription = $1")
                .bind(format!("sub_{c}"))
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(status, newest[c].2, "subscription {c}");
    }
    let _ = owner_id;
}
both!(ledger_balances_under_random_events);

/// Payouts of one channel sent at once (distinct keys, each for the whole balance): one is
/// paid, the others are refused as overdrawn; the channel never goes below zero.
async fn concurrent_payouts_never_overdraw(backend: Backend) {
    use control_plane::money::ledger::{self, Amount, Currency};
    let Some(api) = start(backend, "http://127.0.0.1:9").await else {
        return;
    };
    let (owner, _, _) = api.user("lea").await;
    let (s, ch) = api
        .call(
            Method::POST,
            "/channels",
            Some(&owner),
            Some(json!({"slug": "lea-pay", "title": "x"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let channel = ch["id"].as_str().unwrap();
    let gross = Amount::new(1000, Currency::parse("usd").unwrap()).unwrap();
    let journal = ledger::revenue("stripe", channel, &gross, 10).unwrap();
    book::post(
        &api.cp,
        "tip:t1",
        book::Kind::Tip,
        Some(channel),
        "t1",
        &journal,
    )
    .await
    .unwrap();
    let (admin, _, admin_id) = api.user("ada").await;
    sqlx::query("UPDATE users SET role = 'admin' WHERE id = $1")
        .bind(&admin_id)
        .execute(api.cp.db().pool())
        .await
        .unwrap();
    let body = json!({"amount": 900, "currency": "usd"});
    let tries = (0..8).map(|i| {
        let (api, admin, body) = (&api, &admin, body.clone());
        async move {
            keyed(
                api,
                "/channels/lea-pay/payouts",
                admin,
                &format!("k{i}"),
                body,
            )
            .await
            .0
        }
    });
    let statuses = futures_util::future::join_all(tries).await;
    let paid = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(paid, 1, "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::OK || *s == StatusCode::CONFLICT),
        "{statuses:?}"
    );
    let b = balance(&api, &owner, "lea-pay").await;
    assert_eq!(
        (&b[0]["payouts"], &b[0]["balance"]),
        (&json!(900), &json!(0))
    );
    balanced(&api).await;
}
both!(concurrent_payouts_never_overdraw);
