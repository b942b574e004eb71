//! API keys: scopes enforced per route with a clear code, channel binding, revocation,
//! `last_used_at`, and no key in clear in the database.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both;
use crate::chat::room;
use crate::harness::{roomy, Api, Backend};

async fn key(api: &Api, token: &str, scopes: &[&str], channel: Option<&str>) -> (String, String) {
    let (s, k) = api
        .call(
            Method::POST,
            "/api-keys",
            Some(token),
            Some(json!({"name": "exporter", "scopes": scopes, "channel": channel})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{k}");
    (
        k["key"].as_str().unwrap().to_owned(),
        k["id"].as_str().unwrap().to_owned(),
    )
}

both!(scopes_revocation_and_storage);
async fn scopes_revocation_and_storage(b: Backend) {
    let Some(api) = Api::start(b, roomy()).await else {
        return;
    };
    let (lea, max, _) = room(&api).await;
    // A viewer with no channel gets none; unknown scopes are refused.
    let (s, _) = api
        .call(
            Method::POST,
            "/api-keys",
            Some(&max),
            Some(json!({"scopes": ["analytics:read"]})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = api
        .call(
            Method::POST,
            "/api-keys",
            Some(&lea),
            Some(json!({"scopes": ["root"]})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);

    let (read, read_id) = key(&api, &lea, &["analytics:read"], Some("lea-live")).await;
    assert!(read.starts_with(&format!("cak_{read_id}_")));
    let (s, ch) = api
        .call(Method::GET, "/channels/lea-live", Some(&read), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{ch}");
    // The wrong scope: 403 with a code, and RFC 6750's header.
    let (s, h, p) = api
        .call_full(
            Method::PATCH,
            "/channels/lea-live",
            Some(&read),
            Some(json!({"title": "taken over"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{p}");
    assert_eq!(p["code"], "insufficient_scope", "{p}");
    assert!(p["detail"].as_str().unwrap().contains("channel:manage"));
    assert!(h["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("insufficient_scope"));
    // Routes that take no key at all.
    for (m, path) in [
        (Method::GET, "/me"),
        (Method::GET, "/api-keys"),
        (Method::DELETE, "/channels/lea-live"),
    ] {
        let (s, p) = api.call(m, path, Some(&read), None).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{path}: {p}");
        assert_eq!(p["code"], "api_key_not_allowed", "{path}");
    }

    // channel:manage manages its channel (webhooks included), and only it.
    let (manage, manage_id) = key(&api, &lea, &["channel:manage"], Some("lea-live")).await;
    let (s, p) = api
        .call(
            Method::PATCH,
            "/channels/lea-live",
            Some(&manage),
            Some(json!({"title": "Lea, by her bot"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    let (s, p) = api
        .call(
            Method::POST,
            "/channels",
            Some(&lea),
            Some(json!({"slug": "lea-two", "title": "Second"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let (s, p) = api
        .call(
            Method::PATCH,
            "/channels/lea-two",
            Some(&manage),
            Some(json!({"title": "no"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{p}");
    assert_eq!(p["code"], "api_key_wrong_channel");
    let (s, p) = api
        .call(
            Method::POST,
            "/webhooks",
            Some(&manage),
            Some(json!({"channel": "lea-two", "url": "https://example.com/h", "events": ["tip.received"]})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{p}");
    let (s, p) = api
        .call(
            Method::POST,
            "/webhooks",
            Some(&manage),
            Some(json!({"channel": "lea-live", "url": "https://example.com/h", "events": ["tip.received"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let (s, p) = api.call(Method::GET, "/webhooks", Some(&read), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{p}");

    // last_used_at moves (at most once a minute: set it back to see it move).
    let pool = api.cp.db().pool();
    sqlx::query("UPDATE api_keys SET last_used_at = 1000 WHERE id = $1")
        .bind(&read_id)
        .execute(pool)
        .await
        .unwrap();
    api.call(Method::GET, "/channels/lea-live", Some(&read), None)
        .await;
    let (_, keys) = api.call(Method::GET, "/api-keys", Some(&lea), None).await;
    let listed = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == read_id.as_str())
        .unwrap();
    assert!(
        listed["last_used_at"].as_i64().unwrap() > 1_000_000,
        "{listed}"
    );
    assert!(
        listed.get("key").is_none(),
        "listed without the key: {listed}"
    );
    assert_eq!(listed["scopes"], json!(["analytics:read"]));

    // Not stored in clear: neither the key nor its secret part is in the table.
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT id, key_hash, scopes FROM api_keys")
            .fetch_all(pool)
            .await
            .unwrap();
    // `cak_<id>_<secret>`: the id is hex, and the secret (base64url) may hold `_` itself.
    let secret_part = read
        .strip_prefix("cak_")
        .and_then(|rest| rest.split_once('_'))
        .unwrap()
        .1;
    for (_, hash, _) in &rows {
        assert!(!hash.contains(secret_part) && hash != &read);
        assert_eq!(hash.len(), 64, "a SHA-256");
    }

    // Revoked: 401 from the next request on.
    let (s, _) = api
        .call(
            Method::DELETE,
            &format!("/api-keys/{manage_id}"),
            Some(&lea),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = api
        .call(Method::GET, "/channels/lea-live", Some(&manage), None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // A tampered key is 401 too; another user cannot revoke lea's.
    let tampered = format!("{}x", &read[..read.len() - 1]);
    let (s, _) = api
        .call(Method::GET, "/channels/lea-live", Some(&tampered), None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = api
        .call(
            Method::DELETE,
            &format!("/api-keys/{read_id}"),
            Some(&max),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}
