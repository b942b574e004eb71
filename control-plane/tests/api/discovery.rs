//! Discovery over HTTP, on SQLite and PostgreSQL: search (ranking, prefixes, hostile
//! queries), live now by category and tag, trending as the formula orders it, follows and
//! their notifications (listed and pushed), recommendations from co-viewing, thumbnails.
//! The node's samples are fed as `src/webhooks.rs` feeds them
//! (`ControlPlane::observe_streams`).

use std::time::Duration;

use control_plane::discovery::trending::{score, Inputs};
use control_plane::webhooks::StreamSample;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both;
use crate::harness::{roomy, Api, Backend};

fn live(list: &[(&str, u32)]) -> Vec<StreamSample> {
    list.iter()
        .map(|(s, v)| StreamSample {
            stream: (*s).into(),
            active: true,
            viewers: *v,
        })
        .collect()
}

async fn channel(api: &Api, token: &str, body: Value) -> Value {
    let (s, ch) = api
        .call(Method::POST, "/channels", Some(token), Some(body))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{ch}");
    ch
}

fn names(list: &Value, field: &str) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|x| x[field].as_str().unwrap().to_owned())
        .collect()
}

both!(search_ranks_prefixes_and_survives_hostile_queries);
async fn search_ranks_prefixes_and_survives_hostile_queries(b: Backend) {
    let Some(api) = Api::start(b, roomy()).await else {
        return;
    };
    let (ada, _, _) = api.user("ada").await;
    // "cascade" in the title of one, the description of another, a tag of a third.
    channel(
        &api,
        &ada,
        json!({"slug": "in-title", "title": "Cascade nights",
        "description": "music until dawn"}),
    )
    .await;
    channel(
        &api,
        &ada,
        json!({"slug": "in-body", "title": "Evening show",
        "description": "we talk about cascade and waterfalls"}),
    )
    .await;
    channel(
        &api,
        &ada,
        json!({"slug": "in-tag", "title": "Morning show",
        "tags": ["cascade"], "category": "Talk shows"}),
    )
    .await;
    channel(
        &api,
        &ada,
        json!({"slug": "hidden", "title": "Cascade secrets",
        "visibility": "private"}),
    )
    .await;
    channel(
        &api,
        &ada,
        json!({"slug": "other", "title": "Gardening",
        "description": "Ça pousse: 日本語 の 庭"}),
    )
    .await;

    // A prefix finds all three public ones, the title first, the tag before the body.
    let (s, hits) = api.call(Method::GET, "/search?q=casc", None, None).await;
    assert_eq!(s, StatusCode::OK, "{hits}");
    assert_eq!(names(&hits, "channel"), ["in-title", "in-tag", "in-body"]);
    // A word of a description; two words must both match.
    let (_, hits) = api
        .call(Method::GET, "/search?q=waterfalls", None, None)
        .await;
    assert_eq!(names(&hits, "channel"), ["in-body"]);
    let (_, hits) = api
        .call(Method::GET, "/search?q=casc%20wat", None, None)
        .await;
    assert_eq!(names(&hits, "channel"), ["in-body"]);
    // Accents and other scripts.
    let (_, hits) = api
        .call(
            Method::GET,
            "/search?q=%C3%A7a%20%E6%97%A5%E6%9C%AC%E8%AA%9E",
            None,
            None,
        )
        .await;
    assert_eq!(names(&hits, "channel"), ["other"], "{hits}");
    // Hostile queries are words or nothing: never an error.
    for q in [
        "\"",
        "\"casc",
        "casc*",
        "*",
        "-casc",
        "casc OR nights",
        "NOT",
        "AND",
        "(casc",
        "casc:*",
        "'",
        "\\",
        "a & b | !c",
        "NEAR(casc nights)",
        "title:casc",
        "",
        "%00",
        "%E2%80%AE",
        "%F0%9F%98%80",
    ] {
        let (s, hits) = api
            .call(
                Method::GET,
                &format!(
                    "/search?q={}",
                    q.replace(' ', "%20")
                        .replace('&', "%26")
                        .replace('|', "%7C")
                        .replace('"', "%22")
                        .replace('\\', "%5C")
                ),
                None,
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{q}: {hits}");
        assert!(hits.is_array(), "{q}: {hits}");
    }
    // "casc OR nights" is two words that must both match, not an operator.
    let (_, hits) = api
        .call(Method::GET, "/search?q=casc%20OR%20nights", None, None)
        .await;
    assert!(names(&hits, "channel").is_empty(), "{hits}");
    let (_, hits) = api.call(Method::GET, "/search?q=-casc", None, None).await;
    assert_eq!(names(&hits, "channel").len(), 3);
    // Kinds, limits.
    let (_, hits) = api
        .call(Method::GET, "/search?q=casc&kind=stream", None, None)
        .await;
    assert_eq!(hits, json!([]));
    let (s, _) = api
        .call(Method::GET, "/search?q=casc&kind=bogus", None, None)
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = api
        .call(Method::GET, "/search?q=casc&limit=0", None, None)
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    // An edit is searchable at once; the old words are gone.
    let (s, _) = api
        .call(
            Method::PATCH,
            "/channels/in-body",
            Some(&ada),
            Some(json!({"description": "rivers"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, hits) = api
        .call(Method::GET, "/search?q=waterfalls", None, None)
        .await;
    assert_eq!(hits, json!([]));
    // A deleted channel is not found.
    let (s, _) = api
        .call(Method::DELETE, "/channels/in-title", Some(&ada), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, hits) = api.call(Method::GET, "/search?q=casc", None, None).await;
    assert_eq!(names(&hits, "channel"), ["in-tag"]);
}

both!(live_now_trending_follows_and_notifications);
async fn live_now_trending_follows_and_notifications(b: Backend) {
    let Some(api) = Api::start(b, roomy()).await else {
        return;
    };
    let (bo, _, _) = api.user("bob").await;
    let (vi, _, _) = api.user("viv").await;
    let (_, me) = api.call(Method::GET, "/me", Some(&bo), None).await;
    let bo_id = me["id"].as_str().unwrap().to_owned();
    channel(
        &api,
        &bo,
        json!({"slug": "alpha", "title": "Alpha", "category": "gaming", "tags": ["speedrun"]}),
    )
    .await;
    channel(
        &api,
        &bo,
        json!({"slug": "beta", "title": "Beta", "category": "Music"}),
    )
    .await;
    channel(
        &api,
        &bo,
        json!({"slug": "gamma", "title": "Gamma", "category": "music", "tags": ["lo-fi"]}),
    )
    .await;
    let (s, cats) = api.call(Method::GET, "/categories", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        cats[0],
        json!({"slug": "gaming", "name": "Gaming", "live": 0})
    );

    // vi follows alpha and keeps a notification stream open.
    let (s, _) = api
        .call(Method::POST, "/channels/alpha/follow", Some(&vi), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let resp = reqwest::Client::new()
        .get(format!("{}/me/notifications/events", api.base))
        .bearer_auth(&vi)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut pushed = resp;

    // The studio names the stream; then all three go live.
    let (s, info) = api
        .call(
            Method::PUT,
            "/channels/gamma/stream-info",
            Some(&bo),
            Some(json!({"title": "Gamma: late beats", "category": "music"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{info}");
    let (s, _) = api
        .call(
            Method::PUT,
            "/channels/gamma/stream-info",
            Some(&vi),
            Some(json!({"title": "x"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    api.cp
        .observe_streams(&live(&[("alpha", 10), ("beta", 40), ("gamma", 30)]))
        .await;

    // Live now: most watched first; by category (slug or name, any case) and tag.
    let (s, list) = api.call(Method::GET, "/live", None, None).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_eq!(names(&list, "channel"), ["beta", "gamma", "alpha"]);
    assert_eq!(list[1]["title"], "Gamma: late beats");
    assert_eq!(list[0]["viewers"], 40);
    let (_, list) = api
        .call(Method::GET, "/live?category=music", None, None)
        .await;
    assert_eq!(names(&list, "channel"), ["beta", "gamma"]);
    let (_, list) = api
        .call(Method::GET, "/live?tag=speedrun", None, None)
        .await;
    assert_eq!(names(&list, "channel"), ["alpha"]);
    let (s, _) = api
        .call(Method::GET, "/live?tag=%22%20OR%201", None, None)
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, cats) = api.call(Method::GET, "/categories", None, None).await;
    assert_eq!(cats[0]["live"], 1);
    assert_eq!(cats[1]["live"], 2);
    // The live stream is searchable by the studio's title.
    let (_, hits) = api
        .call(Method::GET, "/search?q=beats&kind=stream", None, None)
        .await;
    assert_eq!(names(&hits, "channel"), ["gamma"]);

    // The follower was told: pushed to the open stream, listed, and live under following.
    let chunk = tokio::time::timeout(Duration::from_secs(5), pushed.chunk())
        .await
        .expect("a notification pushed within 5 s")
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&chunk);
    assert!(
        text.contains("event: notification") && text.contains("Alpha is live"),
        "{text}"
    );
    let (s, n) = api
        .call(Method::GET, "/me/notifications", Some(&vi), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(n["unread"], 1);
    assert_eq!(n["items"][0]["channel"], "alpha");
    let (_, n) = api
        .call(Method::GET, "/me/notifications", Some(&bo), None)
        .await;
    assert_eq!(n["unread"], 0, "only followers are told");
    let (_, f) = api
        .call(Method::GET, "/me/following/live", Some(&vi), None)
        .await;
    assert_eq!(names(&f, "channel"), ["alpha"]);
    let (s, _) = api
        .call(Method::GET, "/me/following/live", None, None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (_, n) = api
        .call(Method::GET, "/me/notifications", Some(&vi), None)
        .await;
    let nid = n["items"][0]["id"].as_str().unwrap().to_owned();
    let (s, _) = api
        .call(
            Method::POST,
            "/me/notifications/read",
            Some(&vi),
            Some(json!({"ids": [nid]})),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, n) = api
        .call(Method::GET, "/me/notifications", Some(&vi), None)
        .await;
    assert_eq!(n["unread"], 0);
    assert!(n["items"][0]["read_at"].is_i64());

    // The channel page's summary: followers, following.
    let (s, p) = api
        .call(Method::GET, "/channels/alpha/profile", Some(&vi), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(
        (
            p["following"].clone(),
            p["card"]["followers"].clone(),
            p["card"]["live"].clone()
        ),
        (json!(true), json!(1), json!(true))
    );
    assert_eq!(p["videos"], json!([]));
    let (_, p) = api
        .call(Method::GET, "/channels/alpha/profile", None, None)
        .await;
    assert_eq!(p["following"], false);
    // Unfollowed: alpha is no longer among vi's live follows, nor vi among its followers.
    let (s, _) = api
        .call(Method::DELETE, "/channels/alpha/follow", Some(&vi), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, f) = api
        .call(Method::GET, "/me/following/live", Some(&vi), None)
        .await;
    assert!(names(&f, "channel").is_empty(), "{f}");
    let (_, p) = api
        .call(Method::GET, "/channels/alpha/profile", Some(&vi), None)
        .await;
    assert_eq!(
        (p["following"].clone(), p["card"]["followers"].clone()),
        (json!(false), json!(0))
    );
    let (s, _) = api
        .call(Method::POST, "/channels/alpha/follow", Some(&vi), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);

    // Trending, five seconds on: alpha grew 10 → 60, beta held 40, gamma held 30 with a
    // lively chat (100 messages in the window). The formula orders them alpha, gamma, beta;
    // by viewers it would be alpha, beta, gamma.
    let pool = api.cp.db().pool().clone();
    let (gamma_id,): (String,) = sqlx::query_as("SELECT id FROM channels WHERE slug = 'gamma'")
        .fetch_one(&pool)
        .await
        .unwrap();
    let now = control_plane::tokens::now_secs() * 1000;
    for i in 0..100i64 {
        sqlx::query(
            "INSERT INTO chat_messages (channel_id, id, user_id, text, created_at) \
             VALUES ($1, $2, $3, 'hi', $4)",
        )
        .bind(&gamma_id)
        .bind(i + 1)
        .bind(&bo_id)
        .bind(now)
        .execute(&pool)
        .await
        .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(5_100)).await;
    api.cp
        .observe_streams(&live(&[("alpha", 60), ("beta", 40), ("gamma", 30)]))
        .await;
    let want = |v, then, chat| {
        score(Inputs {
            viewers: v,
            viewers_then: then,
            chat,
        })
    };
    let (sa, sb, sg) = (want(60, 10, 0), want(40, 40, 0), want(30, 30, 100));
    assert!(sa > sg && sg > sb, "{sa} {sg} {sb}");
    let (s, t) = api.call(Method::GET, "/trending", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(names(&t, "channel"), ["alpha", "gamma", "beta"], "{t}");
    assert!((t[0]["score"].as_f64().unwrap() - sa).abs() < 1e-9, "{t}");
    assert!((t[1]["score"].as_f64().unwrap() - sg).abs() < 1e-9, "{t}");

    // Beta ends: gone from live now and search; a restart within ten minutes tells no one
    // again.
    api.cp
        .observe_streams(&live(&[("alpha", 60), ("gamma", 30)]))
        .await;
    let (_, list) = api.call(Method::GET, "/live", None, None).await;
    assert_eq!(names(&list, "channel"), ["alpha", "gamma"]);
    api.cp.observe_streams(&live(&[("gamma", 30)])).await;
    api.cp
        .observe_streams(&live(&[("alpha", 1), ("gamma", 30)]))
        .await;
    let (_, n) = api
        .call(Method::GET, "/me/notifications", Some(&vi), None)
        .await;
    assert_eq!(n["items"].as_array().unwrap().len(), 1, "{n}");
}

both!(recommendations_from_co_viewing);
async fn recommendations_from_co_viewing(b: Backend) {
    let Some(api) = Api::start(b, roomy()).await else {
        return;
    };
    let (owner, _, _) = api.user("owner").await;
    let (me, _, me_id) = api.user("myself").await;
    let (_, _, u2) = api.user("peer2").await;
    let (_, _, u3) = api.user("peer3").await;
    let (_, _, u4) = api.user("stranger").await;
    let (_, _, f1) = api.user("fan1").await;
    let (_, _, f2) = api.user("fan2").await;
    let (_, _, f3) = api.user("fan3").await;
    for slug in ["ch-x", "ch-y", "ch-z", "ch-w", "ch-f", "ch-v"] {
        channel(
            &api,
            &owner,
            json!({"slug": slug, "title": slug.to_uppercase()}),
        )
        .await;
    }
    let pool = api.cp.db().pool().clone();
    let now = control_plane::tokens::now_secs() * 1000;
    // Who watched what (the analytics' sessions): me watched x; peer2 x and y; peer3 x, y
    // and z; a stranger w only. Me follows f, which I never watched: three of f's viewers
    // also watched v, so a follow alone seeds v.
    let watched = [
        (&f1, "ch-f"),
        (&f1, "ch-v"),
        (&f2, "ch-f"),
        (&f2, "ch-v"),
        (&f3, "ch-f"),
        (&f3, "ch-v"),
        (&me_id, "ch-x"),
        (&u2, "ch-x"),
        (&u2, "ch-y"),
        (&u3, "ch-x"),
        (&u3, "ch-y"),
        (&u3, "ch-z"),
        (&u4, "ch-w"),
    ];
    for (i, (user, slug)) in watched.iter().enumerate() {
        sqlx::query(
            "INSERT INTO viewer_sessions (id, channel_id, viewer, opened_at, closed_at) \
             SELECT $1, id, $2, $3, $3 FROM channels WHERE slug = $4",
        )
        .bind(format!("s{i}"))
        .bind(*user)
        .bind(now - 60_000)
        .bind(*slug)
        .execute(&pool)
        .await
        .unwrap();
    }
    let (s, _) = api
        .call(Method::POST, "/channels/ch-f/follow", Some(&me), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);

    // Offline: v (three people in common, through the follow), y (two) before z (one);
    // not x (watched already), f (followed) nor w (no one in common).
    let (s, r) = api
        .call(Method::GET, "/recommendations", Some(&me), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(names(&r, "channel"), ["ch-v", "ch-y", "ch-z"], "{r}");
    assert_eq!(r[0]["reason"], "co_viewing");
    // z goes live, and w and f: live first, then the rest, then trending (w; f is
    // followed, so not recommended).
    api.cp
        .observe_streams(&live(&[("ch-z", 3), ("ch-w", 100), ("ch-f", 5)]))
        .await;
    let (_, r) = api
        .call(Method::GET, "/recommendations", Some(&me), None)
        .await;
    assert_eq!(
        names(&r, "channel"),
        ["ch-z", "ch-v", "ch-y", "ch-w"],
        "{r}"
    );
    assert_eq!(r[3]["reason"], "trending");
    // Anonymous: trending, live only.
    let (_, r) = api.call(Method::GET, "/recommendations", None, None).await;
    assert_eq!(names(&r, "channel"), ["ch-w", "ch-f", "ch-z"], "{r}");
    assert_eq!(r[0]["reason"], "trending");
}

both!(thumbnails);
async fn thumbnails(b: Backend) {
    let Some(api) = Api::start(b, roomy()).await else {
        return;
    };
    let (bo, _, _) = api.user("bob").await;
    let (eve, _, _) = api.user("eve").await;
    channel(&api, &bo, json!({"slug": "cam", "title": "Cam"})).await;
    let http = reqwest::Client::new();
    let url = format!("{}/channels/cam/thumbnail", api.base);
    let jpeg: Vec<u8> = [&[0xFF, 0xD8, 0xFF, 0xE0][..], &[7u8; 1000], &[0xFF, 0xD9]].concat();
    let put = |token: &str, kind: &str, body: Vec<u8>| {
        http.put(&url)
            .bearer_auth(token)
            .header("content-type", kind)
            .body(body)
            .send()
    };
    let (s, _) = api
        .call(Method::GET, "/channels/cam/thumbnail", None, None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(
        put(&eve, "image/jpeg", jpeg.clone())
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    let r = put(&bo, "image/png", jpeg.clone()).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let r = put(&bo, "image/jpeg", b"GIF89a not a jpeg".to_vec())
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // Truncated (no end marker), then too large.
    let r = put(&bo, "image/jpeg", jpeg[..500].to_vec()).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let big: Vec<u8> = [
        &[0xFF, 0xD8, 0xFF, 0xE0][..],
        &vec![7u8; 300 * 1024],
        &[0xFF, 0xD9],
    ]
    .concat();
    let r = put(&bo, "image/jpeg", big).await.unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    assert_eq!(
        put(&bo, "image/jpeg", jpeg.clone()).await.unwrap().status(),
        StatusCode::NO_CONTENT
    );

    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    assert_eq!(r.headers()["cache-control"], "public, max-age=60");
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(r.bytes().await.unwrap().to_vec(), jpeg);
    let r = http
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    // Lists link it, versioned by its ETag.
    api.cp.observe_streams(&live(&[("cam", 1)])).await;
    let (_, list) = api.call(Method::GET, "/live", None, None).await;
    let thumb = list[0]["thumbnail"].as_str().unwrap();
    assert_eq!(
        thumb,
        format!(
            "/api/v1/channels/cam/thumbnail?v={}",
            etag.trim_matches('"')
        )
    );
}

both!(followers_notified_webhook);
async fn followers_notified_webhook(b: Backend) {
    use control_plane::webhooks::{RetryPolicy, Settings};
    use control_plane::Config;
    let webhooks = Settings {
        // The receiver is on loopback.
        allow_private: true,
        retry: RetryPolicy {
            base_ms: 50,
            jitter: 0.0,
            ..RetryPolicy::default()
        },
        poll: Duration::from_millis(50),
        ..Settings::default()
    };
    let Some(api) = Api::start(
        b,
        Config {
            webhooks,
            ..roomy()
        },
    )
    .await
    else {
        return;
    };
    let (bob, _, _) = api.user("bob").await;
    let (viv, _, _) = api.user("viv").await;
    let (ann, _, _) = api.user("ann").await;
    channel(&api, &bob, json!({"slug": "stage", "title": "Stage"})).await;
    let rx = crate::receiver::Receiver::start(crate::receiver::Behaviour::Accept).await;
    let (s, ep) = api
        .call(
            Method::POST,
            "/webhooks",
            Some(&bob),
            Some(json!({"channel": "stage", "url": rx.url, "events": ["followers.notified"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{ep}");
    for t in [&viv, &ann] {
        let (s, _) = api
            .call(Method::POST, "/channels/stage/follow", Some(t), None)
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
    }
    api.cp.observe_streams(&live(&[("stage", 0)])).await;
    let got = rx.wait_for(1, Duration::from_secs(5)).await;
    let body: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(body["type"], "followers.notified");
    assert_eq!(body["data"], json!({"stream": "stage", "followers": 2}));
}
