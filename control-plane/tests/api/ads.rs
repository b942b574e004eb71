//! Ad breaks, sponsors' slots and analytics over HTTP, on SQLite and PostgreSQL. The
//! cues are read where the node in the process would take them
//! (`ControlPlane::cue_events`); the node's samples are fed as `src/webhooks.rs` feeds
//! them (`ControlPlane::observe_viewers`), at known times.

use std::time::{Duration, Instant};

use control_plane::analytics::{LiveSample, SessionSample};
use control_plane::Config;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both;
use crate::harness::{roomy, Api, Backend};

/// The cluster token media nodes present.
const NODES: &str = "the nodes' token";

async fn start(backend: Backend) -> Option<Api> {
    Api::start(
        backend,
        Config {
            analytics_sample: Duration::from_millis(100),
            cluster_token: Some(control_plane::cluster::ClusterToken::new(NODES)),
            ..roomy()
        },
    )
    .await
}

async fn cues_and_sponsors(backend: Backend) {
    let Some(api) = start(backend).await else {
        return;
    };
    let _ = api.user("admin").await;
    let (amy, _, _) = api.user("amy").await;
    let (bo, _, bo_id) = api.user("bo_b").await;
    let (s, ch) = api
        .call(
            Method::POST,
            "/channels",
            Some(&amy),
            Some(json!({"slug": "show", "title": "x"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{ch}");
    let pool = api.cp.db().pool().clone();
    for q in [
        "INSERT INTO tiers (id, channel_id, name, amount, currency, period, gateway_product, \
         gateway_price, active, ad_free, created_at, updated_at) VALUES ('t1', $1, 'No ads', 500, \
         'usd', 'month', 'p', 'pr', 1, 1, 0, 0)",
        "INSERT INTO subscriptions (id, user_id, channel_id, tier_id, gateway_subscription, status, \
         status_at, idempotency_key, created_at, updated_at) VALUES ('s1', $2, $1, 't1', 'sub_1', \
         'active', 0, 'k', 0, 0)",
    ] {
        sqlx::query(q)
            .bind(ch["id"].as_str().unwrap())
            .bind(&bo_id)
            .execute(&pool)
            .await
            .unwrap();
    }
    let (s, t) = api
        .call(Method::GET, "/channels/show/tiers", None, None)
        .await;
    assert_eq!((s, &t[0]["ad_free"]), (StatusCode::OK, &json!(true)));
    let mut cues = api.cp.cue_events();

    // The default ad tag, then a break.
    let (s, _) = api
        .call(
            Method::PUT,
            "/channels/show/ads",
            Some(&amy),
            Some(json!({"ad_tag_url": "javascript:x"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let tag = json!({"ad_tag_url": "https://ads.example/v?s={stream}&d={duration}"});
    let (s, _) = api
        .call(Method::PUT, "/channels/show/ads", Some(&amy), Some(tag))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = api
        .call(
            Method::POST,
            "/channels/show/ad-breaks",
            Some(&bo),
            Some(json!({"duration_s": 10})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = api
        .call(
            Method::POST,
            "/channels/show/ad-breaks",
            Some(&amy),
            Some(json!({"duration_s": 0})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let before = control_plane::tokens::now_secs() * 1000;
    let (s, brk) = api
        .call(
            Method::POST,
            "/channels/show/ad-breaks",
            Some(&amy),
            Some(json!({"duration_s": 10})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{brk}");
    assert_eq!(brk["ad_tag_url"], "https://ads.example/v?s=show&d=10");
    let starts = brk["starts_at"].as_i64().unwrap();
    assert!(
        (before + 1_000..before + 4_000).contains(&starts),
        "about 2 s ahead"
    );
    let cue = cues.recv().await.unwrap();
    assert_eq!((cue.stream.as_str(), cue.event), ("show", "adbreak"));
    assert_eq!(cue.data["id"], brk["id"]);
    assert_eq!(cue.data["skip"], false);
    assert_eq!(cue.until_ms, starts + 10_000);
    assert!(cue.exempt.contains(&bo_id), "the ad-free subscriber skips");
    let (s, _) = api
        .call(
            Method::POST,
            "/channels/show/ad-breaks",
            Some(&amy),
            Some(json!({"duration_s": 10})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "one break at a time");

    // Media-only nodes read the same cue from the feed (the cluster token).
    let (s, _) = api
        .call(Method::GET, "/cluster/cues", Some(&amy), None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, feed) = api
        .call(Method::GET, "/cluster/cues?since=0", Some(NODES), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{feed}");
    let row = &feed["cues"][0];
    assert_eq!(
        (&row["stream"], &row["event"]),
        (&json!("show"), &json!("adbreak"))
    );
    assert!(row["exempt"].as_str().unwrap().contains(&bo_id));
    let newest = row["created_at"].as_i64().unwrap();
    let asked = Instant::now();
    let (s, feed) = api
        .call(
            Method::GET,
            &format!("/cluster/cues?since={newest}&wait=1"),
            Some(NODES),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        asked.elapsed() >= Duration::from_millis(900),
        "nothing newer: it waits"
    );
    assert_eq!(
        feed["cues"].as_array().unwrap().len(),
        1,
        "the overlap repeats it"
    );

    // A sponsor's slot: told at its start and its end, listed meanwhile.
    let now = control_plane::tokens::now_secs() * 1000;
    let slot = |starts: i64, ends: i64| {
        json!({"name": "Acme", "image_url": "https://acme.example/a.png",
               "link": "https://acme.example", "starts_at": starts, "ends_at": ends})
    };
    let (s, _) = api
        .call(
            Method::POST,
            "/channels/show/sponsors",
            Some(&amy),
            Some(slot(now + 5_000, now)),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = api
        .call(
            Method::POST,
            "/channels/show/sponsors",
            Some(&bo),
            Some(slot(now, now + 2_500)),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, sp) = api
        .call(
            Method::POST,
            "/channels/show/sponsors",
            Some(&amy),
            Some(slot(now, now + 2_500)),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{sp}");
    let (s, list) = api
        .call(Method::GET, "/channels/show/sponsors", None, None)
        .await;
    assert_eq!(
        (s, list[0]["id"].clone()),
        (StatusCode::OK, sp["id"].clone())
    );
    let start = tokio::time::timeout(Duration::from_secs(3), cues.recv())
        .await
        .expect("the slot's start")
        .unwrap();
    assert_eq!(
        (start.event, &start.data["state"]),
        ("sponsor", &json!("start"))
    );
    let end = tokio::time::timeout(Duration::from_secs(5), cues.recv())
        .await
        .expect("the slot's end")
        .unwrap();
    assert_eq!(end.data["state"], "end");
    assert_eq!(end.data["id"], sp["id"]);
}
both!(cues_and_sponsors);

fn session(id: &str, viewer: Option<&str>) -> SessionSample {
    SessionSample {
        id: id.into(),
        stream: "show".into(),
        viewer: viewer.map(str::to_owned),
        join_ms: Some(400),
    }
}

fn live(viewers: u32) -> Vec<LiveSample> {
    vec![LiveSample {
        stream: "show".into(),
        active: true,
        viewers,
    }]
}

async fn analytics(backend: Backend) {
    let Some(api) = start(backend).await else {
        return;
    };
    let _ = api.user("admin").await;
    let (amy, _, _) = api.user("amy").await;
    let (bo, _, bo_id) = api.user("bo_b").await;
    let (s, ch) = api
        .call(
            Method::POST,
            "/channels",
            Some(&amy),
            Some(json!({"slug": "show", "title": "x"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let channel_id = ch["id"].as_str().unwrap().to_owned();
    let (s, _) = api
        .call(
            Method::POST,
            "/channels/show/chat/messages",
            Some(&bo),
            Some(json!({"text": "hi"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);

    // Two viewers for a second, then one leaves and the first comes back in another
    // session for a second; then the broadcast ends.
    let (s1, s2, s3) = ("00000000000000a1", "00000000000000a2", "00000000000000a3");
    let t0 = Instant::now();
    api.cp
        .observe_viewers(&live(2), &[session(s1, Some(&bo_id)), session(s2, None)])
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    api.cp
        .observe_viewers(&live(2), &[session(s2, None), session(s3, Some(&bo_id))])
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    api.cp.observe_viewers(&live(1), &[session(s2, None)]).await;
    let t2 = t0.elapsed().as_secs_f64();
    api.cp.observe_viewers(&[], &[]).await;

    // A tip of 10.00 with a 1.00 fee, as the ledger holds it.
    let pool = api.cp.db().pool().clone();
    let now = control_plane::tokens::now_secs() * 1000;
    sqlx::query(
        "INSERT INTO ledger_transactions (id, idempotency_key, kind, channel_id, reference, \
         created_at) VALUES ('x1', 'k1', 'tip', $1, 'pi_1', $2)",
    )
    .bind(&channel_id)
    .bind(now)
    .execute(&pool)
    .await
    .unwrap();
    for (seq, credit, amount) in [
        (0, format!("channel:{channel_id}:earnings"), 900),
        (1, "platform:fees".into(), 100),
    ] {
        sqlx::query(
            "INSERT INTO ledger_postings (txn_id, seq, debit_account, credit_account, amount, \
             currency) VALUES ('x1', $1, 'gateway:stripe', $2, $3, 'usd')",
        )
        .bind(seq)
        .bind(credit)
        .bind(amount)
        .execute(&pool)
        .await
        .unwrap();
    }

    let (s, f) = api
        .call(Method::GET, "/channels/show/analytics", Some(&amy), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{f}");
    assert_eq!(f["peak_viewers"], 2, "{f}");
    assert_eq!(f["unique_viewers"], 2, "bo twice and one anonymous: {f}");
    assert_eq!(f["sessions"], 3);
    // s1: 1 s, s2: to the end, s3: 1 s.
    let expected = (1.0 + t2 + 1.0) / 60.0;
    let got = f["viewer_minutes"].as_f64().unwrap();
    assert!(
        (got - expected).abs() < 0.5 / 60.0,
        "{got} against {expected}"
    );
    assert!(f["average_viewers"].as_f64().unwrap() > 1.0, "{f}");
    assert_eq!(f["join_seconds"]["p50"], 0.4);
    assert_eq!(
        (f["chat_messages"].clone(), f["chatters"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(
        f["revenue"],
        json!([{"currency": "usd", "gross": 1000, "fees": 100, "net": 900, "tips": 1000, "subscriptions": 0}])
    );
    let broadcast = f["broadcasts"][0]["id"].as_str().unwrap().to_owned();
    assert!(f["broadcasts"][0]["ended_at"].is_i64(), "ended: {f}");
    let path = format!("/channels/show/analytics/streams/{broadcast}");
    let (s, one) = api.call(Method::GET, &path, Some(&amy), None).await;
    assert_eq!(s, StatusCode::OK, "{one}");
    assert_eq!(
        (one["peak_viewers"].clone(), one["sessions"].clone()),
        (json!(2), json!(3))
    );
    let (s, _) = api
        .call(
            Method::GET,
            "/channels/show/analytics/streams/nope",
            Some(&amy),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = api
        .call(
            Method::GET,
            "/channels/show/analytics?from=10&to=5",
            Some(&amy),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // CSV: by Accept, by `.csv`, parsed.
    let http = reqwest::Client::new();
    let csv = http
        .get(format!("{}{path}", api.base))
        .bearer_auth(&amy)
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let text = csv.text().await.unwrap();
    let mut rows = csv::Reader::from_reader(text.as_bytes());
    let map: std::collections::HashMap<String, String> = rows
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[0].to_owned(), r[1].to_owned())
        })
        .collect();
    assert_eq!(map["unique_viewers"], "2");
    assert_eq!(map["revenue_net_usd"], "900");
    let text = http
        .get(format!("{}/channels/show/analytics.csv", api.base))
        .bearer_auth(&amy)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.starts_with("metric,value\n"), "{text}");

    // Who reads: analytics:read keys; not channel:manage keys, nor other users.
    let key = |scope: &'static str| {
        let api = &api;
        let amy = amy.clone();
        async move {
            let (s, k) = api
                .call(
                    Method::POST,
                    "/api-keys",
                    Some(&amy),
                    Some(json!({"name": scope, "scopes": [scope]})),
                )
                .await;
            assert_eq!(s, StatusCode::CREATED, "{k}");
            k["key"].as_str().unwrap().to_owned()
        }
    };
    let reader = key("analytics:read").await;
    let manager = key("channel:manage").await;
    let get = |t: String| {
        let api = &api;
        async move {
            api.call(Method::GET, "/channels/show/analytics", Some(&t), None)
                .await
                .0
        }
    };
    assert_eq!(get(reader.clone()).await, StatusCode::OK);
    assert_eq!(get(manager.clone()).await, StatusCode::FORBIDDEN);
    assert_eq!(get(bo.clone()).await, StatusCode::FORBIDDEN);
    let (s, _) = api
        .call(
            Method::POST,
            "/channels/show/ad-breaks",
            Some(&manager),
            Some(json!({"duration_s": 5})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "a channel:manage key cues breaks");

    // Playback reports: garbage is 400, a report of an open (or just closed) session is
    // taken once per 5 s, an unknown session is 404.
    let report = |session: &str, stall_ms: i64| {
        json!({"stream": "show", "session": session, "watched_ms": 10_000, "stall_ms": stall_ms,
               "stalls": 2, "frames": 300})
    };
    let post = |body: serde_json::Value| {
        let api = &api;
        async move {
            api.call(Method::POST, "/playback-stats", None, Some(body))
                .await
                .0
        }
    };
    let (s, _) = api
        .raw(
            Method::POST,
            "/playback-stats",
            "text/plain",
            b"{\"stream\":".to_vec(),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        post(json!({"stream": "show"})).await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(post(report(s2, 20_000)).await, StatusCode::BAD_REQUEST);
    assert_eq!(
        post(report("0000000000000bad", 0)).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(post(report(s2, 1_000)).await, StatusCode::NO_CONTENT);
    assert_eq!(post(report(s2, 1_000)).await, StatusCode::TOO_MANY_REQUESTS);
    let (_, f) = api
        .call(Method::GET, "/channels/show/analytics", Some(&amy), None)
        .await;
    assert_eq!(f["rebuffer_ratio"]["p50"], 0.1, "{f}");
    assert_eq!(f["stalls"], 2);
}
both!(analytics);
