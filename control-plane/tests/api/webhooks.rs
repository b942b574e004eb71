//! Outbound webhooks to a real receiver on loopback: signatures checked the way
//! docs/WEBHOOKS.md tells receivers to, retries, a hanging endpoint beside a healthy
//! one, the queue across a restart, secret rotation, SSRF, stream events.

use std::time::{Duration, Instant};

use aws_lc_rs::hmac;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use control_plane::webhooks::{RetryPolicy, Settings, StreamSample};
use control_plane::Config;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both;
use crate::chat::{room, say};
use crate::harness::{roomy, Api, Backend};
use crate::receiver::{Behaviour, Receiver};

/// Fast retries, private addresses allowed (the receiver is on loopback).
fn fast() -> Settings {
    Settings {
        allow_private: true,
        retry: RetryPolicy {
            base_ms: 50,
            jitter: 0.0,
            ..RetryPolicy::default()
        },
        poll: Duration::from_millis(50),
        ..Settings::default()
    }
}

fn config(webhooks: Settings) -> Config {
    Config {
        webhooks,
        ..roomy()
    }
}

/// Standard Webhooks verification, from the specification: HMAC-SHA256 with the
/// base64-decoded secret over "{id}.{timestamp}.{body}", compared with each `v1,`
/// signature in the header.
fn verifies(secret: &str, id: &str, timestamp: &str, body: &str, header: &str) -> bool {
    let key = B64
        .decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"))
        .expect("base64 secret");
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, &key),
        format!("{id}.{timestamp}.{body}").as_bytes(),
    );
    let expected = B64.encode(tag.as_ref());
    header
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|sig| sig == expected)
}

async fn endpoint(api: &Api, token: &str, url: &str, events: &[&str]) -> Value {
    let (s, ep) = api
        .call(
            Method::POST,
            "/webhooks",
            Some(token),
            Some(json!({"channel": "lea-live", "url": url, "events": events})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{ep}");
    ep
}

async fn channel_id(api: &Api) -> String {
    let (id,): (String,) = sqlx::query_as("SELECT id FROM channels WHERE slug = 'lea-live'")
        .fetch_one(api.cp.db().pool())
        .await
        .unwrap();
    id
}

both!(signed_test_event_and_ssrf);
async fn signed_test_event_and_ssrf(b: Backend) {
    // Without the flag, loopback and private addresses are refused.
    let Some(strict) = Api::start(b, roomy()).await else {
        return;
    };
    let (lea, max, _) = room(&strict).await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://10.0.0.1/",
        "http://localhost/",
    ] {
        let (s, p) = strict
            .call(
                Method::POST,
                "/webhooks",
                Some(&lea),
                Some(json!({"channel": "lea-live", "url": url, "events": ["stream.started"]})),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {p}");
        assert!(p["detail"].as_str().unwrap().contains("private"), "{p}");
    }
    // Someone else's channel: not theirs; every channel: admins only.
    let (s, _) = strict
        .call(
            Method::POST,
            "/webhooks",
            Some(&max),
            Some(json!({"channel": "lea-live", "url": "https://example.com/", "events": ["stream.started"]})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = strict
        .call(
            Method::POST,
            "/webhooks",
            Some(&lea),
            Some(json!({"url": "https://example.com/", "events": ["stream.started"]})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    let Some(api) = Api::start(b, config(fast())).await else {
        return;
    };
    let (lea, max, _) = room(&api).await;
    let rx = Receiver::start(Behaviour::Accept).await;
    let ep = endpoint(&api, &lea, &rx.url, &["stream.started"]).await;
    let secret = ep["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    assert!(B64.decode(&secret[6..]).unwrap().len() >= 24);
    let id = ep["id"].as_str().unwrap();
    // Listed without the secret; invisible to others.
    let (_, list) = api.call(Method::GET, "/webhooks", Some(&lea), None).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(list[0].get("secret").is_none(), "{list}");
    let (s, _) = api
        .call(Method::GET, &format!("/webhooks/{id}"), Some(&max), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let (s, q) = api
        .call(
            Method::POST,
            &format!("/webhooks/{id}/test"),
            Some(&lea),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{q}");
    let got = rx.wait_for(1, Duration::from_secs(5)).await;
    let r = &got[0];
    assert_eq!(r.id, q["event_id"]);
    let ts: i64 = r.timestamp.parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - ts).abs() < 30, "timestamp in seconds");
    assert!(verifies(
        &secret,
        &r.id,
        &r.timestamp,
        &r.body,
        &r.signature
    ));
    assert!(!verifies(
        &secret,
        &r.id,
        &r.timestamp,
        &format!("{} ", r.body),
        &r.signature
    ));
    let body: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(body["type"], "webhook.test");
    assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));

    // Redelivery: the same event, the same webhook-id.
    let (s, _) = api
        .call(
            Method::POST,
            &format!("/webhooks/{id}/events/{}/redeliver", r.id),
            Some(&lea),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let got = rx.wait_for(2, Duration::from_secs(5)).await;
    assert_eq!(got[1].id, r.id);
    assert_eq!(got[1].body, r.body);
    let (s, _) = api
        .call(
            Method::POST,
            &format!("/webhooks/{id}/events/msg_nope/redeliver"),
            Some(&lea),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

both!(fails_three_times_then_delivered_once);
async fn fails_three_times_then_delivered_once(b: Backend) {
    let Some(api) = Api::start(b, config(fast())).await else {
        return;
    };
    let (lea, max, _) = room(&api).await;
    let rx = Receiver::start(Behaviour::FailFirst(3)).await;
    let ep = endpoint(&api, &lea, &rx.url, &["chat.message_reported"]).await;
    let id = ep["id"].as_str().unwrap();
    // A real report makes the event.
    let (s, m) = say(&api, &lea, "hello").await;
    assert_eq!(s, StatusCode::CREATED, "{m}");
    let (s, rep) = api
        .call(
            Method::POST,
            &format!("/channels/lea-live/chat/messages/{}/report", m["id"]),
            Some(&max),
            Some(json!({"reason": "spam"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{rep}");
    let got = rx.wait_for(4, Duration::from_secs(10)).await;
    assert!(got.iter().all(|r| r.id == got[0].id), "one event, retried");
    let body: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(body["type"], "chat.message_reported");
    assert_eq!(body["data"]["reason"], "spam");
    assert_eq!(body["data"]["reporter"], "max");
    // Backoff: 50, 100, 200 ms (no jitter here), give or take the poll.
    let gaps: Vec<u128> = got
        .windows(2)
        .map(|w| (w[1].at - w[0].at).as_millis())
        .collect();
    for (i, g) in gaps.iter().enumerate() {
        assert!(*g >= 50 << i, "gap {i}: {g} ms ({gaps:?})");
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(rx.got().len(), 4, "nothing after the success");
    let (_, log) = api
        .call(
            Method::GET,
            &format!("/webhooks/{id}/deliveries"),
            Some(&lea),
            None,
        )
        .await;
    let d = &log["deliveries"];
    assert_eq!(d.as_array().unwrap().len(), 1, "{log}");
    assert_eq!(d[0]["attempts"], 4);
    assert!(d[0]["delivered_at"].is_i64(), "{log}");
    assert!(d[0]["next_attempt_at"].is_null());
    let attempts = log["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 4);
    assert_eq!(attempts[0]["status"], 204);
    assert_eq!(attempts[3]["status"], 500);
    assert_eq!(attempts[3]["error"], "answered 500");
}

both!(a_hanging_endpoint_does_not_delay_others);
async fn a_hanging_endpoint_does_not_delay_others(b: Backend) {
    let Some(api) = Api::start(b, config(fast())).await else {
        return;
    };
    let (lea, _, _) = room(&api).await;
    let stuck = Receiver::start(Behaviour::Hang).await;
    let healthy = Receiver::start(Behaviour::Accept).await;
    endpoint(&api, &lea, &stuck.url, &["tip.received"]).await;
    endpoint(&api, &lea, &healthy.url, &["tip.received"]).await;
    let ch = channel_id(&api).await;
    // Ten events: the stuck endpoint takes its share of slots and holds them.
    let start = Instant::now();
    for i in 0..10 {
        api.cp
            .webhooks()
            .emit(
                Some(&ch),
                control_plane::webhooks::Event::Other(
                    control_plane::webhooks::EventType::TipReceived,
                    json!({ "n": i }),
                ),
            )
            .await;
    }
    let got = healthy.wait_for(10, Duration::from_secs(3)).await;
    let first = got[0].at - start;
    let last = got[9].at - start;
    assert!(first < Duration::from_secs(1), "first after {first:?}");
    assert!(last < Duration::from_millis(1500), "all ten after {last:?}");
    assert!(!stuck.got().is_empty(), "the stuck one was tried meanwhile");
    assert!(stuck.got().len() <= 4, "no more than its own slots at once");
}

both!(pending_deliveries_survive_a_restart);
async fn pending_deliveries_survive_a_restart(b: Backend) {
    // The first process only queues (as if it stopped before sending).
    let Some(first) = Api::start(
        b,
        config(Settings {
            dispatch: false,
            ..fast()
        }),
    )
    .await
    else {
        return;
    };
    let (lea, _, _) = room(&first).await;
    let rx = Receiver::start(Behaviour::Accept).await;
    let ep = endpoint(&first, &lea, &rx.url, &["stream.started"]).await;
    let secret = ep["secret"].as_str().unwrap().to_owned();
    first
        .cp
        .webhooks()
        .observe_streams(&[StreamSample {
            stream: "lea-live".into(),
            active: true,
            viewers: 0,
        }])
        .await;
    let (pending,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM webhook_deliveries WHERE next_attempt_at IS NOT NULL")
            .fetch_one(first.cp.db().pool())
            .await
            .unwrap();
    assert_eq!(pending, 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(rx.got().is_empty());
    // Reopened on the same database, it sends what was queued.
    let second = Api::on(
        &first.url,
        Config {
            secret_key: Some(first.secret.clone()),
            ..config(fast())
        },
    )
    .await;
    let got = rx.wait_for(1, Duration::from_secs(5)).await;
    assert!(verifies(
        &secret,
        &got[0].id,
        &got[0].timestamp,
        &got[0].body,
        &got[0].signature
    ));
    let body: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(body["type"], "stream.started");
    assert_eq!(body["data"]["stream"], "lea-live");
    drop(second);
}

both!(rotation_signs_with_both_then_the_new);
async fn rotation_signs_with_both_then_the_new(b: Backend) {
    let Some(api) = Api::start(
        b,
        config(Settings {
            rotation_overlap_ms: 1_500,
            ..fast()
        }),
    )
    .await
    else {
        return;
    };
    let (lea, _, _) = room(&api).await;
    let rx = Receiver::start(Behaviour::Accept).await;
    let ep = endpoint(&api, &lea, &rx.url, &["stream.started"]).await;
    let old = ep["secret"].as_str().unwrap().to_owned();
    let id = ep["id"].as_str().unwrap();
    let (s, rotated) = api
        .call(
            Method::POST,
            &format!("/webhooks/{id}/rotate"),
            Some(&lea),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{rotated}");
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert!(rotated["previous_secret_until"].is_i64());
    api.call(
        Method::POST,
        &format!("/webhooks/{id}/test"),
        Some(&lea),
        None,
    )
    .await;
    let r = rx.wait_for(1, Duration::from_secs(5)).await.remove(0);
    assert_eq!(r.signature.split(' ').count(), 2, "{}", r.signature);
    assert!(verifies(&new, &r.id, &r.timestamp, &r.body, &r.signature));
    assert!(verifies(&old, &r.id, &r.timestamp, &r.body, &r.signature));
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    api.call(
        Method::POST,
        &format!("/webhooks/{id}/test"),
        Some(&lea),
        None,
    )
    .await;
    let r = rx.wait_for(2, Duration::from_secs(5)).await.remove(1);
    assert_eq!(r.signature.split(' ').count(), 1, "{}", r.signature);
    assert!(verifies(&new, &r.id, &r.timestamp, &r.body, &r.signature));
    assert!(!verifies(&old, &r.id, &r.timestamp, &r.body, &r.signature));
}

both!(stream_events_from_the_node_samples);
async fn stream_events_from_the_node_samples(b: Backend) {
    let Some(api) = Api::start(b, config(fast())).await else {
        return;
    };
    let (lea, _, _) = room(&api).await;
    let rx = Receiver::start(Behaviour::Accept).await;
    endpoint(
        &api,
        &lea,
        &rx.url,
        &["stream.started", "stream.ended", "viewers.milestone"],
    )
    .await;
    let sample = |active, viewers| StreamSample {
        stream: "lea-live".into(),
        active,
        viewers,
    };
    let wh = api.cp.webhooks();
    wh.observe_streams(&[sample(true, 2)]).await;
    wh.observe_streams(&[sample(true, 12)]).await;
    wh.observe_streams(&[sample(true, 11)]).await;
    wh.observe_streams(&[]).await;
    let got = rx.wait_for(3, Duration::from_secs(5)).await;
    let mut kinds: Vec<(String, Value)> = got
        .iter()
        .map(|r| {
            let v: Value = serde_json::from_str(&r.body).unwrap();
            (v["type"].as_str().unwrap().to_owned(), v["data"].clone())
        })
        .collect();
    kinds.sort_by(|a, b| a.0.cmp(&b.0));
    let names: Vec<&str> = kinds.iter().map(|k| k.0.as_str()).collect();
    assert_eq!(
        names,
        ["stream.ended", "stream.started", "viewers.milestone"]
    );
    assert_eq!(kinds[0].1["peak_viewers"], 12);
    assert_eq!(kinds[2].1["milestone"], 10);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.got().len(), 3, "one milestone per broadcast");
}
