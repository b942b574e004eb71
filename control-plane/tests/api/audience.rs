//! Media nodes' audience reports (`PUT /api/v1/cluster/nodes/{id}/audience`): checked
//! and bounded; merged over the nodes alive by the replica holding the `audience` lease,
//! into webhooks and analytics. Two replicas on one database, the lease moved from one to
//! the other mid-broadcast: each stream event reaches the receiver once, and the
//! broadcast is one, with every edge's viewers. A node that stops reporting stops
//! counting after the liveness window: its sessions close, its viewers drop out.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use control_plane::cluster::{ClusterToken, Tuning};
use control_plane::webhooks::{RetryPolicy, Settings};
use control_plane::Config;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both;
use crate::chat::room;
use crate::harness::{roomy, Api, Backend};
use crate::receiver::{Behaviour, Receiver};

const TOKEN: &str = "cluster-secret-for-the-audience-tests";

fn clustered() -> Config {
    Config {
        cluster: true,
        cluster_token: Some(ClusterToken::new(TOKEN)),
        cluster_tuning: Tuning {
            node_timeout_ms: 1500,
            view_ttl_ms: 0,
            ..Tuning::default()
        },
        webhooks: Settings {
            allow_private: true,
            retry: RetryPolicy {
                base_ms: 50,
                jitter: 0.0,
                ..RetryPolicy::default()
            },
            poll: Duration::from_millis(50),
            ..Settings::default()
        },
        analytics_sample: Duration::from_millis(200),
        ..roomy()
    }
}

async fn register(api: &Api, name: &str, role: &str) -> String {
    let (s, body) = api
        .call(
            Method::POST,
            "/cluster/nodes",
            Some(TOKEN),
            Some(json!({"name": name, "role": role, "zone": "a",
                "http_url": format!("http://{name}.test"), "relay_addr": format!("{name}.test:4433"),
                "capacity": 100})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

async fn put(api: &Api, id: &str, token: Option<&str>, audience: Value) -> (StatusCode, Value) {
    api.call(
        Method::PUT,
        &format!("/cluster/nodes/{id}/audience"),
        token,
        Some(audience),
    )
    .await
}

/// A node's report: what a media node sends every second, after its stats.
async fn report(api: &Api, id: &str, audience: &Value) {
    let (s, b) = api
        .call(
            Method::PUT,
            &format!("/cluster/nodes/{id}/stats"),
            Some(TOKEN),
            Some(json!({"cpu": 0.1, "egress_bps": 0, "viewers": 0, "streams": []})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = put(api, id, Some(TOKEN), audience.clone()).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
}

fn session(id: &str, viewer: Option<&str>) -> Value {
    json!({"id": id, "stream": "lea-live", "viewer": viewer, "join_ms": 420})
}

both!(reports_are_checked);
async fn reports_are_checked(b: Backend) {
    let Some(api) = Api::start(b, clustered()).await else {
        return;
    };
    let id = register(&api, "edge1", "edge").await;
    let good =
        json!({"streams": [{"name": "s", "viewers": 1}], "sessions": [session("ab12", None)]});
    assert_eq!(
        put(&api, &id, None, good.clone()).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        put(&api, &id, Some("wrong"), good.clone()).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        put(&api, "nobody", Some(TOKEN), good.clone()).await.0,
        StatusCode::NOT_FOUND,
        "a node the registry forgot registers again"
    );
    let many: Vec<Value> = (0..10_001)
        .map(|i| session(&format!("{i:x}"), None))
        .collect();
    let streams: Vec<Value> = (0..1_001)
        .map(|i| json!({"name": format!("s{i}")}))
        .collect();
    for bad in [
        json!({"streams": [{"name": "s", "active": true}]}),
        json!({"streams": [{"name": "s"}, {"name": "s"}]}),
        json!({"streams": [{"name": ""}]}),
        json!({"streams": [{"name": "x\u{7}"}]}),
        json!({"streams": [{"name": "s", "viewers": -1}]}),
        json!({"sessions": [session("not hex", None)]}),
        json!({"sessions": [session("ab", None), session("ab", None)]}),
        json!({"sessions": [{"id": "ab", "stream": "s", "join_ms": -5}]}),
        json!({"sessions": [{"id": "ab", "stream": "s", "viewer": "x".repeat(129)}]}),
        json!({ "sessions": many }),
        json!({ "streams": streams }),
    ] {
        let (s, problem) = put(&api, &id, Some(TOKEN), bad.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad:.80}: {problem}");
        assert!(problem["detail"].is_string(), "{problem}");
    }
    // Over the route's 4 MiB: refused, and the sender, still writing, reads the 413 (the
    // server reads the rest before it answers).
    let huge = json!({"sessions": [{"id": "ab", "stream": "x".repeat(5 * 1024 * 1024)}]});
    let sent = reqwest::Client::new()
        .put(format!("{}/cluster/nodes/{id}/audience", api.base))
        .bearer_auth(TOKEN)
        .json(&huge)
        .send()
        .await
        .expect("answered, not cut off");
    assert_eq!(sent.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        put(&api, &id, Some(TOKEN), good).await.0,
        StatusCode::NO_CONTENT
    );
}

/// Receives stream events until `n` arrived: their (type, data).
async fn events(rx: &Receiver, n: usize) -> Vec<(String, Value)> {
    rx.wait_for(n, Duration::from_secs(15))
        .await
        .iter()
        .map(|r| {
            let v: Value = serde_json::from_str(&r.body).unwrap();
            (v["type"].as_str().unwrap().to_owned(), v["data"].clone())
        })
        .collect()
}

async fn count(api: &Api, sql: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(api.cp.db().pool())
        .await
        .unwrap();
    n
}

both!(two_replicas_tell_a_cluster_broadcast_once);
async fn two_replicas_tell_a_cluster_broadcast_once(b: Backend) {
    let Some(one) = Api::start(b, clustered()).await else {
        return;
    };
    let two = Api::on(
        &one.url,
        Config {
            secret_key: Some(one.secret.clone()),
            ..clustered()
        },
    )
    .await;
    let (lea, _, _) = room(&one).await;
    let rx = Receiver::start(Behaviour::Accept).await;
    let (s, ep) = one
        .call(
            Method::POST,
            "/webhooks",
            Some(&lea),
            Some(json!({"channel": "lea-live", "url": rx.url,
                        "events": ["stream.started", "stream.ended"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{ep}");

    // The origin holds the publisher and one viewer; two edges hold three more. The
    // origin reports to one replica, the edges to the other, every 200 ms.
    let origin = register(&one, "origin", "origin").await;
    let edges = [
        register(&two, "edge1", "edge").await,
        register(&two, "edge2", "edge").await,
    ];
    let publishing = Arc::new(AtomicBool::new(true));
    let stop = Arc::new(AtomicBool::new(false));
    {
        let (publishing, stop) = (publishing.clone(), stop.clone());
        let local = std::net::IpAddr::from([127, 0, 0, 1]);
        let (to_one, to_two) = (one.from(local), two.from(local));
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let on = publishing.load(Ordering::Relaxed);
                let origin_audience = json!({
                    "streams": [{"name": "lea-live", "publisher": on, "active": on, "viewers": 1}],
                    "sessions": [session("a1", Some("u-ann"))],
                });
                report(&to_one, &origin, &origin_audience).await;
                let edge1 = json!({
                    "streams": [{"name": "lea-live", "viewers": 2}],
                    "sessions": [session("b1", Some("u-bob")), session("b2", None)],
                });
                report(&to_two, &edges[0], &edge1).await;
                let edge2 = json!({
                    "streams": [{"name": "lea-live", "viewers": 1}],
                    "sessions": [session("c1", Some("u-bob"))],
                });
                report(&to_two, &edges[1], &edge2).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    }
    let got = events(&rx, 1).await;
    assert_eq!(got[0].0, "stream.started", "{got:?}");

    // Concurrency samples of the whole cluster: 4 viewers (1 + 2 + 1).
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(&one, "SELECT COALESCE(MAX(peak), 0) FROM analytics_minutes").await < 4
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        count(&one, "SELECT MAX(peak) FROM analytics_minutes").await,
        4
    );

    // The replica holding the lease loses it (another held it for a while, then stopped
    // renewing, as if it died): whichever replica takes it next takes the broadcast up
    // where it was.
    sqlx::query(
        "UPDATE cluster_leases SET holder = 'a replica that died', expires_at = $1 \
         WHERE name = 'audience'",
    )
    .bind(now_ms() + 1500)
    .execute(one.cp.db().pool())
    .await
    .unwrap();
    let holder = || async {
        let (h,): (String,) =
            sqlx::query_as("SELECT holder FROM cluster_leases WHERE name = 'audience'")
                .fetch_one(one.cp.db().pool())
                .await
                .unwrap();
        h
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while holder().await == "a replica that died" && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_ne!(
        holder().await,
        "a replica that died",
        "a replica took the lease"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The publisher stops: the broadcast ends, told once, its peak every node's viewers.
    publishing.store(false, Ordering::Relaxed);
    let got = events(&rx, 2).await;
    assert_eq!(got[1].0, "stream.ended", "{got:?}");
    assert_eq!(got[1].1["peak_viewers"], 4, "{got:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let kinds: Vec<String> = events(&rx, 2).await.into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        kinds,
        ["stream.started", "stream.ended"],
        "nothing told twice"
    );
    assert_eq!(count(&one, "SELECT count(*) FROM broadcasts").await, 1);
    assert_eq!(
        count(
            &one,
            "SELECT count(*) FROM broadcasts WHERE ended_at IS NOT NULL"
        )
        .await,
        1
    );
    assert_eq!(count(&one, "SELECT count(*) FROM viewer_sessions").await, 4);
    assert_eq!(
        count(&one, "SELECT count(DISTINCT viewer) FROM viewer_sessions").await,
        3,
        "ann, bob (on two edges) and an anonymous viewer"
    );
    stop.store(true, Ordering::Relaxed);
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

both!(a_node_that_stops_reporting_stops_counting);
async fn a_node_that_stops_reporting_stops_counting(b: Backend) {
    let Some(api) = Api::start(b, clustered()).await else {
        return;
    };
    room(&api).await;
    let origin = register(&api, "origin", "origin").await;
    let edge = register(&api, "edge1", "edge").await;
    let on_origin = json!({
        "streams": [{"name": "lea-live", "publisher": true, "active": true, "viewers": 1}],
        "sessions": [session("a1", Some("u-ann"))],
    });
    let on_edge = json!({
        "streams": [{"name": "lea-live", "viewers": 2}],
        "sessions": [session("b1", Some("u-bob")), session("b2", None)],
    });
    let live_viewers = || async {
        let row: Option<(i64,)> = sqlx::query_as("SELECT viewers FROM live_streams")
            .fetch_optional(api.cp.db().pool())
            .await
            .unwrap();
        row.map(|(v,)| v)
    };
    // Both report until the cluster's three viewers and their sessions are counted (the
    // two are written on their own turns: one may come a report before the other).
    let open = "SELECT count(*) FROM viewer_sessions WHERE closed_at IS NULL";
    let deadline = Instant::now() + Duration::from_secs(30);
    while (live_viewers().await != Some(3) || count(&api, open).await != 3)
        && Instant::now() < deadline
    {
        report(&api, &origin, &on_origin).await;
        report(&api, &edge, &on_edge).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(live_viewers().await, Some(3), "the origin's and the edge's");
    assert_eq!(count(&api, open).await, 3);

    // The edge dies (no more reports): past the liveness window its viewers and its
    // sessions no longer count; the broadcast goes on.
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(&api, open).await != 1 && Instant::now() < deadline {
        report(&api, &origin, &on_origin).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(count(&api, open).await, 1, "the edge's sessions closed");
    let (still,): (String,) =
        sqlx::query_as("SELECT id FROM viewer_sessions WHERE closed_at IS NULL")
            .fetch_one(api.cp.db().pool())
            .await
            .unwrap();
    assert_eq!(still, "a1");
    let deadline = Instant::now() + Duration::from_secs(5);
    while live_viewers().await != Some(1) && Instant::now() < deadline {
        report(&api, &origin, &on_origin).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(live_viewers().await, Some(1), "the origin's viewer only");
    assert_eq!(
        count(
            &api,
            "SELECT count(*) FROM broadcasts WHERE ended_at IS NULL"
        )
        .await,
        1,
        "still live"
    );
}
