//! A channel's recording setting over HTTP, on SQLite and PostgreSQL, and what the node in
//! the process reads of it when a publisher goes live (`ControlPlane::recording_of`).

use control_plane::recording::RecordLayers;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both;
use crate::harness::{assert_owner_only, roomy, setting_owner_and_stranger, Api, Backend};

async fn setting(backend: Backend) {
    let Some(api) = Api::start(backend, roomy()).await else {
        return;
    };
    let (amy, bo) = setting_owner_and_stranger(&api).await;
    let path = "/channels/show/recording";

    // Off until the owner turns it on.
    let (s, r) = api.call(Method::GET, path, Some(&amy), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(r, json!({"enabled": false, "layers": "top"}));
    assert_eq!(api.cp.recording_of("show").await.unwrap(), None);

    // Only the owner: another user is refused, an anonymous caller too.
    let on = json!({"enabled": true, "layers": "all"});
    assert_owner_only(&api, path, &bo, on.clone()).await;
    assert_eq!(api.cp.recording_of("show").await.unwrap(), None);

    // A layer choice that does not exist is a clear error, and changes nothing.
    let (s, p) = api
        .call(
            Method::PUT,
            path,
            Some(&amy),
            Some(json!({"enabled": true, "layers": "middle"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert_eq!(api.cp.recording_of("show").await.unwrap(), None);

    let (s, r) = api.call(Method::PUT, path, Some(&amy), Some(on)).await;
    assert_eq!(
        (s, &r),
        (StatusCode::OK, &json!({"enabled": true, "layers": "all"}))
    );
    assert_eq!(
        api.cp.recording_of("show").await.unwrap(),
        Some(RecordLayers::All)
    );
    // Layers default to the top one.
    let (s, r) = api
        .call(
            Method::PUT,
            path,
            Some(&amy),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(
        (s, &r),
        (StatusCode::OK, &json!({"enabled": true, "layers": "top"}))
    );
    assert_eq!(
        api.cp.recording_of("show").await.unwrap(),
        Some(RecordLayers::Top)
    );
    let (s, r) = api.call(Method::GET, path, Some(&amy), None).await;
    assert_eq!(
        (s, r),
        (StatusCode::OK, json!({"enabled": true, "layers": "top"}))
    );

    let (s, r) = api
        .call(
            Method::PUT,
            path,
            Some(&amy),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!((s, r["enabled"].as_bool()), (StatusCode::OK, Some(false)));
    assert_eq!(api.cp.recording_of("show").await.unwrap(), None);
    let (s, _) = api
        .call(Method::GET, "/channels/nope/recording", Some(&amy), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}
both!(setting);
