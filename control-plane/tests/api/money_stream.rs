//! "This stream" subscribers-only (`PUT …/paywall {"this_stream": true}`): the live
//! running when the owner marks it, or the next one when the channel is offline, refuses
//! non-subscribers (403 `subscription_required`, viewer token and the node's WHEP gate)
//! and ends the sessions the open paywall let in; a subscriber watches on. When that
//! live ends (its broadcast, as the node's sampler records it, and no publisher back
//! within the grace) the next live is open again, and the recording of the marked live is
//! for subscribers. Lives come from `ControlPlane::observe_audience`, what `serve`'s
//! sampler calls every second.

use std::time::Duration;

use control_plane::cluster::{Audience, StreamHere};
use control_plane::gate::{Refusal, Want};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both;
use crate::harness::{Api, Backend};
use crate::videos::{record_since, visibility, with_media_dir};

/// Long enough for a few requests on a loaded machine.
const GRACE: Duration = Duration::from_millis(1500);

/// One look of the node's sampler: lea-live with its publisher sending, or nothing.
async fn sample(api: &Api, live: bool) {
    let streams = if live {
        vec![StreamHere {
            name: "lea-live".into(),
            publisher: true,
            active: true,
            viewers: 0,
        }]
    } else {
        Vec::new()
    };
    let audience = Audience {
        streams,
        sessions: Vec::new(),
    };
    api.cp.observe_audience(Some(audience)).await;
}

/// A viewer token for lea-live: the status and the problem's code (or the token).
async fn token(api: &Api, who: &str) -> (StatusCode, Value) {
    let (s, b) = api
        .call(
            Method::POST,
            "/channels/lea-live/viewer-token",
            Some(who),
            None,
        )
        .await;
    if s == StatusCode::OK {
        (s, b["token"].clone())
    } else {
        (s, b["code"].clone())
    }
}

/// The paywall refuses `who` a viewer token, and the node's WHEP gate anyone anonymous.
async fn refused(api: &Api, who: &str) {
    let refusal = (StatusCode::FORBIDDEN, json!("subscription_required"));
    assert_eq!(token(api, who).await, refusal);
    assert_eq!(
        api.cp.check(Want::View, "lea-live", None).await.err(),
        Some(Refusal::SubscriptionRequired)
    );
}

async fn set(api: &Api, owner: &str, body: Value) -> Value {
    let (s, p) = api
        .call(
            Method::PUT,
            "/channels/lea-live/paywall",
            Some(owner),
            Some(body),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    p
}

/// "This stream" subscribers-only, or lifted.
async fn mark(api: &Api, owner: &str, this_stream: bool) -> Value {
    let body = json!({"subscribers_only": false, "this_stream": this_stream});
    set(api, owner, body).await
}

async fn get(api: &Api, owner: &str) -> Value {
    let (s, p) = api
        .call(Method::GET, "/channels/lea-live/paywall", Some(owner), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    p
}

fn now_ms() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    i64::try_from(now.unwrap().as_millis()).unwrap()
}

async fn one_stream_for_subscribers(backend: Backend) {
    let (mut config, dir) = with_media_dir();
    config.money.stream_grace = GRACE;
    let Some(api) = Api::start(backend, config).await else {
        return;
    };
    let (owner, _, _) = api.user("lea").await;
    let (vic, _, vic_id) = api.user("vic").await;
    let (otto, _, _) = api.user("otto").await;
    crate::videos::channel(&api, &owner, "lea-live").await;
    let pool = api.cp.db().pool();
    let (channel,): (String,) = sqlx::query_as("SELECT id FROM channels WHERE slug = 'lea-live'")
        .fetch_one(pool)
        .await
        .unwrap();
    // Vic subscribes (the gateway's part is `money.rs`'s).
    sqlx::query(
        "INSERT INTO tiers (id, channel_id, name, amount, currency, period, gateway_product, \
         gateway_price, active, created_at, updated_at) \
         VALUES ('t1', $1, 'Gold', 500, 'usd', 'month', 'p', 'pr', 1, 0, 0)",
    )
    .bind(&channel)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO subscriptions (id, user_id, channel_id, tier_id, gateway_subscription, \
         status, status_at, idempotency_key, created_at, updated_at) \
         VALUES ('s1', $1, $2, 't1', 'sub_1', 'active', 0, 'k', 0, 0)",
    )
    .bind(&vic_id)
    .bind(&channel)
    .execute(pool)
    .await
    .unwrap();

    // Live and open: everyone watches.
    sample(&api, true).await;
    assert_eq!(token(&api, &otto).await.0, StatusCode::OK);
    assert!(api.cp.check(Want::View, "lea-live", None).await.is_ok());
    assert_eq!(get(&api, &owner).await["this_stream"], false);

    // The owner marks this live: the open paywall's sessions end, the others are refused.
    let mut revoked = api.cp.revocation_events();
    let p = mark(&api, &owner, true).await;
    assert_eq!(
        (&p["this_stream"], &p["subscribers_only"]),
        (&json!(true), &json!(false))
    );
    let r = tokio::time::timeout(Duration::from_secs(5), revoked.recv())
        .await
        .expect("a revocation")
        .unwrap();
    assert_eq!(r.tag, format!("paywall:{channel}"));
    assert!(r.end_live);
    refused(&api, &otto).await;
    assert_eq!(token(&api, &vic).await.0, StatusCode::OK, "the subscriber");
    assert_eq!(token(&api, &owner).await.0, StatusCode::OK, "the owner");

    // The publisher drops and comes back within the grace: the same live, still closed.
    sample(&api, false).await;
    sample(&api, true).await;
    assert_eq!(token(&api, &otto).await.0, StatusCode::FORBIDDEN);

    // The live ends for good: the next one is open again.
    sample(&api, false).await;
    assert_eq!(
        token(&api, &otto).await.0,
        StatusCode::FORBIDDEN,
        "within the grace the publisher may come back"
    );
    tokio::time::sleep(GRACE + Duration::from_millis(100)).await;
    sample(&api, true).await;
    assert_eq!(get(&api, &owner).await["this_stream"], false);
    assert_eq!(token(&api, &otto).await.0, StatusCode::OK, "the next live");
    assert!(api.cp.check(Want::View, "lea-live", None).await.is_ok());
    sample(&api, false).await;

    // Marked while offline: the next live is the subscribers'; the one after it is open.
    tokio::time::sleep(GRACE + Duration::from_millis(100)).await;
    let p = mark(&api, &owner, true).await;
    assert_eq!(p["this_stream"], true, "{p}");
    let marked_live = now_ms();
    sample(&api, true).await;
    refused(&api, &otto).await;
    assert_eq!(token(&api, &vic).await.0, StatusCode::OK);
    // Marking it again during that live keeps that live (not the next).
    mark(&api, &owner, true).await;
    sample(&api, false).await;
    tokio::time::sleep(GRACE + Duration::from_millis(100)).await;
    let after = now_ms();
    sample(&api, true).await;
    assert_eq!(token(&api, &otto).await.0, StatusCode::OK);
    // Recordings: the marked live's is for subscribers, the next live's is public.
    if let (Some(a), Some(b)) = (crate::clips::webm(1), crate::clips::webm(2)) {
        let marked = record_since(&api, "lea-live", &a, marked_live).await;
        assert_eq!(visibility(&api, &owner, &marked).await, "subscribers");
        let open = record_since(&api, "lea-live", &b, after).await;
        assert_eq!(visibility(&api, &owner, &open).await, "public");
    }

    // Lifting it (and older clients' time-boxed form, which still works).
    mark(&api, &owner, true).await;
    assert_eq!(token(&api, &otto).await.0, StatusCode::FORBIDDEN);
    let p = mark(&api, &owner, false).await;
    assert_eq!(p["this_stream"], false);
    assert_eq!(token(&api, &otto).await.0, StatusCode::OK);
    let until = now_ms() + 60_000;
    let p = set(
        &api,
        &owner,
        json!({"subscribers_only": false, "stream_until": until}),
    )
    .await;
    assert_eq!(
        (&p["stream_until"], &p["this_stream"]),
        (&json!(until), &json!(false))
    );
    assert_eq!(token(&api, &otto).await.0, StatusCode::FORBIDDEN);
    let _ = std::fs::remove_dir_all(dir);
}
both!(one_stream_for_subscribers);
