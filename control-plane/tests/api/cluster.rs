//! The cluster: node registry, liveness, drain, parents, viewer placement, and the WHEP
//! redirect to an edge.

use std::time::Duration;

use control_plane::cluster::{ClusterToken, Tuning};
use control_plane::gate::{check_offline, Want};
use control_plane::tokens::{TokenKind, Verifier};
use control_plane::Config;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both;
use crate::harness::{roomy, Api, Backend};

pub(crate) const TOKEN: &str = "cluster-secret-for-tests";
const TIMEOUT_MS: i64 = 700;

pub(crate) fn clustered() -> Config {
    Config {
        cluster: true,
        cluster_token: Some(ClusterToken::new(TOKEN)),
        cluster_tuning: Tuning {
            node_timeout_ms: TIMEOUT_MS,
            view_ttl_ms: 0,
            ..Tuning::default()
        },
        ..roomy()
    }
}

pub(crate) async fn register(api: &Api, name: &str, role: &str, zone: &str) -> String {
    let (s, body) = api
        .call(
            Method::POST,
            "/cluster/nodes",
            Some(TOKEN),
            Some(json!({"name": name, "role": role, "zone": zone,
                "http_url": format!("http://{name}.test:8080/"), "relay_addr": format!("{name}.test:4433"),
                "capacity": 100})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

pub(crate) async fn report(api: &Api, id: &str, stats: Value) -> StatusCode {
    api.call(
        Method::PUT,
        &format!("/cluster/nodes/{id}/stats"),
        Some(TOKEN),
        Some(stats),
    )
    .await
    .0
}

fn idle() -> Value {
    json!({"cpu": 0.1, "egress_bps": 0, "viewers": 0, "streams": []})
}

both!(registry_liveness_drain_and_placement);
async fn registry_liveness_drain_and_placement(b: Backend) {
    let Some(api) = Api::start(b, clustered()).await else {
        return;
    };
    // Credentials: none, wrong, and a user's access token are refused.
    let (user, _, _) = api.user("admin").await;
    let (viewer, _, _) = api.user("vic").await;
    let body = json!({"name": "x", "role": "edge", "zone": "a", "http_url": "http://x", "relay_addr": "x:1", "capacity": 1});
    for token in [None, Some("wrong"), Some(user.as_str())] {
        let (s, _) = api
            .call(Method::POST, "/cluster/nodes", token, Some(body.clone()))
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{token:?}");
    }
    // Bad bodies.
    for bad in [
        json!({"name": "x", "role": "boss", "zone": "a", "http_url": "http://x", "relay_addr": "x:1", "capacity": 1}),
        json!({"name": "x", "role": "edge", "zone": "a", "http_url": "ftp://x", "relay_addr": "x:1", "capacity": 1}),
        json!({"name": "x", "role": "edge", "zone": "a", "http_url": "http://x", "relay_addr": "x:1", "capacity": 0}),
        json!({"name": "", "role": "edge", "zone": "a", "http_url": "http://x", "relay_addr": "x:1", "capacity": 1}),
        json!({"name": "x", "role": "edge"}),
    ] {
        let (s, _) = api
            .call(
                Method::POST,
                "/cluster/nodes",
                Some(TOKEN),
                Some(bad.clone()),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    let resp = reqwest::Client::new()
        .post(format!("{}/cluster/nodes", api.base))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");

    let origin = register(&api, "origin-1", "origin", "a").await;
    let r1 = register(&api, "relay-1", "relay", "b").await;
    let r2 = register(&api, "relay-2", "relay", "c").await;
    let e1 = register(&api, "edge-1", "edge", "a").await;
    let e2 = register(&api, "edge-2", "edge", "b").await;
    let live = json!({"cpu": 0.2, "egress_bps": 1000, "viewers": 0,
        "streams": [{"name": "show", "publishing": "primary"}]});
    assert_eq!(report(&api, &origin, live.clone()).await, StatusCode::OK);
    for id in [&r1, &r2, &e1, &e2] {
        assert_eq!(report(&api, id, idle()).await, StatusCode::OK);
    }
    assert_eq!(report(&api, "nobody", idle()).await, StatusCode::NOT_FOUND);
    assert_eq!(
        report(
            &api,
            &e1,
            json!({"cpu": 2.0, "egress_bps": 0, "viewers": 0})
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        report(
            &api,
            &e1,
            json!({"cpu": 0.1, "egress_bps": -1, "viewers": 0})
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    let (s, nodes) = api
        .call(Method::GET, "/cluster/nodes", Some(TOKEN), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(nodes.as_array().unwrap().len(), 5);
    assert!(nodes
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["alive"] == true && n["draining"] == false));
    assert_eq!(nodes[0]["name"], "edge-1");
    assert_eq!(nodes[0]["http_url"], "http://edge-1.test:8080");

    // An edge pulls from a relay, its backup is the other relay (another zone).
    let (s, p) = api
        .call(
            Method::GET,
            &format!("/cluster/parents?node={e1}&stream=show"),
            Some(TOKEN),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    let relays = [r1.as_str(), r2.as_str()];
    assert!(
        relays.contains(&p["primary"]["id"].as_str().unwrap()),
        "{p}"
    );
    assert!(relays.contains(&p["backup"]["id"].as_str().unwrap()), "{p}");
    assert_ne!(p["primary"]["id"], p["backup"]["id"]);
    assert!(p["primary"]["relay_addr"]
        .as_str()
        .unwrap()
        .ends_with(".test:4433"));
    // The relay pulls from the origin; the origin is the root; unknown things are 404.
    let (s, p) = api
        .call(
            Method::GET,
            &format!("/cluster/parents?node={r1}&stream=show"),
            Some(TOKEN),
            None,
        )
        .await;
    assert_eq!(
        (s, p["primary"]["id"].as_str()),
        (StatusCode::OK, Some(origin.as_str()))
    );
    assert_eq!(p["backup"], Value::Null);
    let ask = |node: &str, stream: &str| {
        let path = format!("/cluster/parents?node={node}&stream={stream}");
        let api = &api;
        async move { api.call(Method::GET, &path, Some(TOKEN), None).await.0 }
    };
    assert_eq!(ask(&origin, "show").await, StatusCode::CONFLICT);
    assert_eq!(ask(&e1, "nothing").await, StatusCode::NOT_FOUND);
    assert_eq!(ask("nobody", "show").await, StatusCode::NOT_FOUND);
    let (s, _) = api
        .call(Method::GET, "/cluster/parents?node=x", Some(TOKEN), None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Viewers go to edges; a drained edge takes none (an admin may drain, a user not).
    let place = || async {
        let (s, h, p) = api
            .call_full(Method::GET, "/cluster/place?stream=show", Some(TOKEN), None)
            .await;
        (s, h, p)
    };
    let (s, _, p) = place().await;
    assert_eq!(s, StatusCode::OK);
    assert!([e1.as_str(), e2.as_str()].contains(&p["id"].as_str().unwrap()));
    let drain = |id: &str, token: &str| {
        let (api, path, token) = (&api, format!("/cluster/nodes/{id}/drain"), token.to_owned());
        async move { api.call(Method::POST, &path, Some(&token), None).await.0 }
    };
    assert_eq!(drain(&e1, &viewer).await, StatusCode::FORBIDDEN);
    assert_eq!(drain(&e1, &user).await, StatusCode::NO_CONTENT);
    assert_eq!(drain("nobody", TOKEN).await, StatusCode::NOT_FOUND);
    // The drained node learns it from the answer to its next report.
    let path = format!("/cluster/nodes/{e1}/stats");
    let (s, answer) = api
        .call(Method::PUT, &path, Some(TOKEN), Some(idle()))
        .await;
    assert_eq!(
        (s, answer["draining"].clone()),
        (StatusCode::OK, json!(true))
    );
    let path = format!("/cluster/nodes/{e2}/stats");
    let (_, answer) = api
        .call(Method::PUT, &path, Some(TOKEN), Some(idle()))
        .await;
    assert_eq!(answer["draining"], json!(false));
    for _ in 0..10 {
        let (s, _, p) = place().await;
        assert_eq!((s, p["id"].as_str()), (StatusCode::OK, Some(e2.as_str())));
        assert_eq!(p["http_url"], "http://edge-2.test:8080");
    }

    // Dead after the liveness window without stats: edge-2 stops reporting.
    tokio::time::sleep(Duration::from_millis(TIMEOUT_MS as u64 + 300)).await;
    for id in [&origin, &r1, &r2, &e1] {
        report(&api, id, if *id == origin { live.clone() } else { idle() }).await;
    }
    let (_, nodes) = api
        .call(Method::GET, "/cluster/nodes", Some(&user), None)
        .await;
    let by_name = |n: &str| {
        nodes
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(by_name("edge-2")["alive"], false);
    assert_eq!(
        (
            by_name("edge-1")["alive"].clone(),
            by_name("edge-1")["draining"].clone()
        ),
        (json!(true), json!(true))
    );
    // Edges exist but none can take a viewer: 503, retry in 2 s.
    let (s, h, _) = place().await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(h["retry-after"], "2");

    // Registering the same name again replaces it (a new id, not a new node).
    let e2b = register(&api, "edge-2", "edge", "b").await;
    assert_ne!(e2b, e2);
    assert_eq!(report(&api, &e2, idle()).await, StatusCode::NOT_FOUND);
    let (_, nodes) = api
        .call(Method::GET, "/cluster/nodes", Some(TOKEN), None)
        .await;
    assert_eq!(nodes.as_array().unwrap().len(), 5);
    let (s, _, p) = place().await;
    assert_eq!((s, p["id"].as_str()), (StatusCode::OK, Some(e2b.as_str())));
}

both!(cluster_api_is_off_without_a_token);
async fn cluster_api_is_off_without_a_token(b: Backend) {
    let Some(api) = Api::start(b, roomy()).await else {
        return;
    };
    let (s, _) = api
        .call(Method::GET, "/cluster/nodes", Some(TOKEN), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // And the control plane does not answer WHEP itself.
    let root = api.base.trim_end_matches("/api/v1");
    let resp = reqwest::Client::new()
        .post(format!("{root}/whep/show"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

both!(a_dead_origins_last_list_roots_nothing);
/// An origin holding a stream's publisher dies; the broadcaster comes back on another
/// origin, whose name sorts first. The dead origin's last report (it still says "primary")
/// must not stand for the stream's root: a relay asking for its parent gets the live one.
async fn a_dead_origins_last_list_roots_nothing(b: Backend) {
    let Some(api) = Api::start(b, clustered()).await else {
        return;
    };
    let back = register(&api, "origin-a", "origin", "a").await;
    let dead = register(&api, "origin-b", "origin", "b").await;
    let relay = register(&api, "relay-1", "relay", "a").await;
    let live = json!({"cpu": 0.2, "egress_bps": 1000, "viewers": 0,
        "streams": [{"name": "show", "publishing": "primary"}]});
    assert_eq!(report(&api, &dead, live.clone()).await, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(TIMEOUT_MS as u64 + 300)).await;
    assert_eq!(report(&api, &back, live).await, StatusCode::OK);
    assert_eq!(report(&api, &relay, idle()).await, StatusCode::OK);
    let (s, p) = api
        .call(
            Method::GET,
            &format!("/cluster/parents?node={relay}&stream=show"),
            Some(TOKEN),
            None,
        )
        .await;
    assert_eq!(
        (s, p["primary"]["id"].as_str()),
        (StatusCode::OK, Some(back.as_str())),
        "{p}"
    );
}

both!(the_registry_is_bounded_and_forgets_long_dead_nodes);
/// At most `max_nodes` are registered; nodes dead for `forget_dead_after_ms` leave at the
/// next registration, so nodes that come and go under new names (autoscaling) neither fill
/// the registry nor stay listed.
async fn the_registry_is_bounded_and_forgets_long_dead_nodes(b: Backend) {
    let mut config = clustered();
    config.cluster_tuning.max_nodes = 2;
    config.cluster_tuning.forget_dead_after_ms = 1_000;
    let Some(api) = Api::start(b, config).await else {
        return;
    };
    register(&api, "edge-1", "edge", "a").await;
    register(&api, "edge-2", "edge", "a").await;
    let body = json!({"name": "edge-3", "role": "edge", "zone": "a",
        "http_url": "http://edge-3.test:8080/", "relay_addr": "edge-3.test:4433", "capacity": 100});
    let (s, _) = api
        .call(Method::POST, "/cluster/nodes", Some(TOKEN), Some(body))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "the limit holds");
    // A registration again under a name already there is no new node.
    register(&api, "edge-2", "edge", "a").await;
    // Neither reports: dead, then forgotten.
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    register(&api, "edge-3", "edge", "a").await;
    let (_, nodes) = api
        .call(Method::GET, "/cluster/nodes", Some(TOKEN), None)
        .await;
    let names: Vec<&str> = nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["edge-3"]);
}

both!(whep_redirects_to_an_edge_with_a_viewer_token);
async fn whep_redirects_to_an_edge_with_a_viewer_token(b: Backend) {
    let Some(api) = Api::start(b, clustered()).await else {
        return;
    };
    let (lea, _, lea_id) = api.user("lea").await;
    for (slug, visibility) in [("lea-live", "public"), ("lea-secret", "private")] {
        let (s, _) = api
            .call(
                Method::POST,
                "/channels",
                Some(&lea),
                Some(json!({"slug": slug, "title": "x", "visibility": visibility})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let edge = register(&api, "edge-1", "edge", "a").await;
    report(&api, &edge, idle()).await;
    let (_, sk) = api.call(Method::GET, "/signing-key", None, None).await;
    let verifier = Verifier::from_public_key(sk["public_key"].as_str().unwrap()).unwrap();
    let revoked = control_plane::revocation::RevocationList::default();

    let root = api.base.trim_end_matches("/api/v1").to_owned();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let whep = |stream: &str, bearer: Option<&str>| {
        let mut req = http
            .post(format!("{root}/whep/{stream}"))
            .header("content-type", "application/sdp")
            .body("v=0\r\n");
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        req.send()
    };
    let token_of = |resp: &reqwest::Response, stream: &str| {
        let loc = resp.headers()["location"].to_str().unwrap().to_owned();
        let prefix = format!("http://edge-1.test:8080/whep/{stream}?token=");
        assert!(loc.starts_with(&prefix), "{loc}");
        loc[prefix.len()..].to_owned()
    };

    // A public channel: anyone, with an anonymous token for this channel.
    let resp = whep("lea-live", None).await.unwrap();
    assert_eq!(resp.status(), StatusCode::TEMPORARY_REDIRECT);
    let token = token_of(&resp, "lea-live");
    let claims = verifier.verify(&token, TokenKind::View).unwrap();
    assert_eq!(claims.chan.as_deref(), Some("lea-live"));
    assert!(claims.exp - claims.iat <= 60);
    assert!(check_offline(&verifier, &revoked, Want::View, "lea-live", Some(&token)).is_ok());
    assert!(check_offline(&verifier, &revoked, Want::View, "lea-secret", Some(&token)).is_err());

    // A private channel: the gate decides on the caller's bearer.
    let resp = whep("lea-secret", None).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let (_, vt) = api
        .call(
            Method::POST,
            "/channels/lea-secret/viewer-token",
            Some(&lea),
            None,
        )
        .await;
    let resp = whep("lea-secret", vt["token"].as_str()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::TEMPORARY_REDIRECT);
    let token = token_of(&resp, "lea-secret");
    let claims = verifier.verify(&token, TokenKind::View).unwrap();
    assert_eq!(claims.sub, lea_id);
    assert!(check_offline(&verifier, &revoked, Want::View, "lea-secret", Some(&token)).is_ok());
    // A token for another channel is refused; a stream with no channel is not found.
    let (_, other) = api
        .call(Method::POST, "/channels/lea-live/viewer-token", None, None)
        .await;
    let resp = whep("lea-secret", other["token"].as_str()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        whep("no-such", None).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );

    // The same, in process, for a node.
    let r = api.cp.place_viewer("lea-live", None).await.unwrap();
    assert_eq!(r.node, edge);
    assert!(r.location.ends_with(&r.token));

    // A full cluster: 503, retry in 2 s.
    api.call(
        Method::POST,
        &format!("/cluster/nodes/{edge}/drain"),
        Some(TOKEN),
        None,
    )
    .await;
    let resp = whep("lea-live", None).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.headers()["retry-after"], "2");
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
}

both!(a_standby_sent_before_its_primary_is_reported_goes_to_another_origin);
/// A broadcaster's primary and standby ingests sent one after the other, before the first
/// origin has reported its publisher: the standby still goes to the other origin. The view
/// is read again for every request here (`view_ttl_ms: 0`), as it is by another replica,
/// so this holds only because the placement itself is shared.
async fn a_standby_sent_before_its_primary_is_reported_goes_to_another_origin(b: Backend) {
    let Some(ingests) = Ingests::start(b).await else {
        return;
    };
    // Ten channels: without the shared placement each standby has an even chance of
    // landing on its primary's origin.
    for i in 0..10 {
        let slug = format!("ned-{i}");
        let key = ingests.channel(&slug).await;
        let primary = ingests.whip(&slug, &key, "").await;
        let standby = ingests.whip(&slug, &key, "?backup=1").await;
        assert_ne!(primary, standby, "{slug}: both ingests on one origin");
        // Asked again before any report, each keeps its origin.
        assert_eq!(ingests.whip(&slug, &key, "").await, primary, "{slug}");
        assert_eq!(
            ingests.whip(&slug, &key, "?backup=1").await,
            standby,
            "{slug}"
        );
    }
}

both!(a_primary_and_a_standby_sent_at_once_go_to_two_origins);
/// An encoder that starts its primary and standby outputs together: the two requests are
/// placed at the same moment (here by one replica that reads its view again for each, as
/// two replicas would). Each placement of a stream's ingest reads that stream's placements
/// under a lock, and a primary also keeps off its standby's origin.
async fn a_primary_and_a_standby_sent_at_once_go_to_two_origins(b: Backend) {
    let Some(ingests) = Ingests::start(b).await else {
        return;
    };
    for i in 0..12 {
        let slug = format!("ned-{i}");
        let key = ingests.channel(&slug).await;
        let (primary, standby) = tokio::join!(
            ingests.whip(&slug, &key, ""),
            ingests.whip(&slug, &key, "?backup=1")
        );
        assert_ne!(primary, standby, "{slug}: both ingests on one origin");
    }
}

both!(many_broadcasters_placed_at_once_do_not_wait_on_each_other);
/// More broadcasters at once than SQLite's pool has connections: each placement holds one
/// and the write lock (PostgreSQL: its stream's lock), and none waits for another
/// connection inside it, so every one is placed at once.
async fn many_broadcasters_placed_at_once_do_not_wait_on_each_other(b: Backend) {
    // The origins stay alive through the burst on a loaded machine.
    let mut config = clustered();
    config.cluster_tuning.node_timeout_ms = 10_000;
    let Some(ingests) = Ingests::start_with(b, config).await else {
        return;
    };
    let mut keys = Vec::new();
    for i in 0..8 {
        let slug = format!("eve-{i}");
        keys.push((ingests.channel(&slug).await, slug));
    }
    let started = std::time::Instant::now();
    let all =
        futures_util::future::join_all(keys.iter().map(|(key, slug)| ingests.whip(slug, key, "")))
            .await;
    assert_eq!(all.len(), 8);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "placed in {:?}: placements waited on each other",
        started.elapsed()
    );
}

/// Two origins in two zones, and a user whose channels publish to them.
struct Ingests {
    api: Api,
    user: String,
    origins: [String; 2],
    root: String,
    http: reqwest::Client,
}

impl Ingests {
    async fn start(b: Backend) -> Option<Ingests> {
        Ingests::start_with(b, clustered()).await
    }

    async fn start_with(b: Backend, config: Config) -> Option<Ingests> {
        let api = Api::start(b, config).await?;
        let (user, _, _) = api.user("ned").await;
        let origins = [
            register(&api, "origin-a", "origin", "a").await,
            register(&api, "origin-b", "origin", "b").await,
        ];
        let root = api.base.trim_end_matches("/api/v1").to_owned();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Some(Ingests {
            api,
            user,
            origins,
            root,
            http,
        })
    }

    /// A new channel's stream key, with both origins alive (dead after `TIMEOUT_MS`
    /// without a report) and publishing nothing.
    async fn channel(&self, slug: &str) -> String {
        for o in &self.origins {
            assert_eq!(report(&self.api, o, idle()).await, StatusCode::OK);
        }
        let (s, _) = self
            .api
            .call(
                Method::POST,
                "/channels",
                Some(&self.user),
                Some(json!({"slug": slug, "title": "x"})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
        let (s, k) = self
            .api
            .call(
                Method::POST,
                &format!("/channels/{slug}/keys"),
                Some(&self.user),
                Some(json!({"label": "OBS"})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
        k["key"].as_str().unwrap().to_owned()
    }

    /// The origin a WHIP request (`query`: "" or "?backup=1") is sent to.
    async fn whip(&self, slug: &str, key: &str, query: &str) -> String {
        let resp = self
            .http
            .post(format!("{}/whip/{slug}{query}", self.root))
            .bearer_auth(key)
            .header("content-type", "application/sdp")
            .body("v=0\r\n")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::TEMPORARY_REDIRECT);
        let loc = resp.headers()["location"].to_str().unwrap().to_owned();
        let host = loc.split('/').nth(2).unwrap().to_owned();
        assert!(host.starts_with("origin-"), "{loc}");
        host
    }
}
