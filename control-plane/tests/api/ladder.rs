//! A channel's transcoded-ladder setting over HTTP, on SQLite and PostgreSQL, and what a
//! node learns of it when a publisher goes live: the in-process gate's grant, and the
//! publish token a media-only node checks offline.

use control_plane::gate::{check_offline, Want};
use control_plane::revocation::RevocationList;
use control_plane::tokens::Verifier;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both;
use crate::harness::{assert_owner_only, roomy, setting_owner_and_stranger, Api, Backend};

/// Whether a node may ladder `slug`'s stream published with `key`: as the node in the
/// process is told (the gate), and as a media-only node is told (a publish token).
async fn laddered(api: &Api, slug: &str, key: &str) -> (bool, bool) {
    let in_process = api
        .cp
        .check(Want::Publish, slug, Some(key))
        .await
        .expect("the key publishes");
    let (s, pt) = api
        .call(Method::POST, "/publish-token", Some(key), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{pt}");
    let (_, sk) = api.call(Method::GET, "/signing-key", None, None).await;
    let verifier = Verifier::from_public_key(sk["public_key"].as_str().unwrap()).unwrap();
    let offline = check_offline(
        &verifier,
        &RevocationList::default(),
        Want::Publish,
        slug,
        pt["token"].as_str(),
    )
    .expect("the token publishes");
    (in_process.ladder, offline.ladder)
}

async fn setting(backend: Backend) {
    let Some(api) = Api::start(backend, roomy()).await else {
        return;
    };
    let (amy, bo) = setting_owner_and_stranger(&api).await;
    let (s, k) = api
        .call(
            Method::POST,
            "/channels/show/keys",
            Some(&amy),
            Some(json!({"label": "obs"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{k}");
    let key = k["key"].as_str().unwrap().to_owned();
    let path = "/channels/show/ladder";

    // On until the owner turns it off.
    let (s, r) = api.call(Method::GET, path, Some(&amy), None).await;
    assert_eq!((s, r), (StatusCode::OK, json!({"enabled": true})));
    assert_eq!(laddered(&api, "show", &key).await, (true, true));

    // Only the owner: another user is refused, an anonymous caller too.
    let off = json!({"enabled": false});
    assert_owner_only(&api, path, &bo, off.clone()).await;
    assert_eq!(laddered(&api, "show", &key).await, (true, true));

    // Not a setting: a clear error, nothing changed.
    let (s, p) = api
        .call(
            Method::PUT,
            path,
            Some(&amy),
            Some(json!({"enabled": "no"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert_eq!(laddered(&api, "show", &key).await, (true, true));

    // Off: the next go-live is told so, here and on a media-only node. Twice is the same.
    for _ in 0..2 {
        let (s, r) = api
            .call(Method::PUT, path, Some(&amy), Some(off.clone()))
            .await;
        assert_eq!((s, r), (StatusCode::OK, off.clone()));
    }
    let (s, r) = api.call(Method::GET, path, Some(&amy), None).await;
    assert_eq!((s, r), (StatusCode::OK, off.clone()));
    assert_eq!(laddered(&api, "show", &key).await, (false, false));

    // On again.
    let (s, r) = api
        .call(
            Method::PUT,
            path,
            Some(&amy),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!((s, r), (StatusCode::OK, json!({"enabled": true})));
    assert_eq!(laddered(&api, "show", &key).await, (true, true));

    let (s, _) = api
        .call(Method::GET, "/channels/nope/ladder", Some(&amy), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}
both!(setting);
