//! Channels, private viewing, viewer tokens, stream keys, and the media node's question
//! ("may this bearer publish or watch?") answered in-process and offline.

use control_plane::gate::{check_offline, Refusal, Want};
use control_plane::tokens::{now_secs, TokenKind};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both;
use crate::harness::{roomy, Api, Backend};

both!(channels_and_visibility);
async fn channels_and_visibility(b: Backend) {
    let Some(api) = Api::start(b, roomy()).await else {
        return;
    };
    api.user("admin").await;
    let (lea, _, _) = api.user("lea").await;
    let (max, _, _) = api.user("max").await;
    let (ned, _, _) = api.user("ned").await;
    let create = |t: &str, body: serde_json::Value| {
        let (api, t) = (&api, t.to_owned());
        async move {
            api.call(Method::POST, "/channels", Some(&t), Some(body))
                .await
        }
    };
    let (s, ch) = create(&lea, json!({"slug": "lea-live", "title": "Lea live", "tags": ["music", "lo-fi"], "category": "Music"})).await;
    assert_eq!(s, StatusCode::CREATED, "{ch}");
    assert_eq!(ch["whip_path"], "/whip/lea-live");
    assert_eq!(ch["owner"], "lea");
    assert_eq!(ch["tags"], json!(["music", "lo-fi"]));
    assert_eq!(
        api.call(Method::GET, "/me", Some(&lea), None).await.1["role"],
        "broadcaster"
    );
    assert_eq!(
        create(&max, json!({"slug": "lea-live", "title": "x"}))
            .await
            .0,
        StatusCode::CONFLICT
    );
    for bad in [
        json!({"slug": "Bad Slug", "title": "x"}),
        json!({"slug": "ok-slug", "title": ""}),
        json!({"slug": "ok-slug", "title": "x", "tags": ["NOPE"]}),
        json!({"slug": "ok-slug", "title": "x", "visibility": "secret"}),
    ] {
        assert_eq!(
            create(&lea, bad.clone()).await.0,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}"
        );
    }
    assert_eq!(
        api.call(
            Method::POST,
            "/channels",
            None,
            Some(json!({"slug": "anon", "title": "x"}))
        )
        .await
        .0,
        StatusCode::UNAUTHORIZED
    );
    let (s, _) = create(
        &lea,
        json!({"slug": "lea-secret", "title": "Secret", "visibility": "private"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    create(
        &lea,
        json!({"slug": "lea-link", "title": "Link only", "visibility": "unlisted"}),
    )
    .await;

    // Listing shows public channels only; "mine" shows all of the caller's.
    let (_, list) = api.call(Method::GET, "/channels", None, None).await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["items"][0]["slug"], "lea-live");
    let (_, mine) = api
        .call(Method::GET, "/me/channels?per_page=2", Some(&lea), None)
        .await;
    assert_eq!(
        (
            mine["total"].as_i64(),
            mine["items"].as_array().unwrap().len()
        ),
        (Some(3), 2)
    );

    // A private channel is invisible to others, until the owner lets them watch.
    assert_eq!(
        api.call(Method::GET, "/channels/lea-secret", None, None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.call(Method::GET, "/channels/lea-secret", Some(&max), None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.call(Method::GET, "/channels/lea-secret", Some(&lea), None)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        api.call(Method::GET, "/channels/lea-link", None, None)
            .await
            .0,
        StatusCode::OK
    );
    let vt = |t: Option<&str>, slug: &str| {
        let (api, t, path) = (
            &api,
            t.map(str::to_owned),
            format!("/channels/{slug}/viewer-token"),
        );
        async move { api.call(Method::POST, &path, t.as_deref(), None).await }
    };
    assert_eq!(vt(None, "lea-secret").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(vt(Some(&max), "lea-secret").await.0, StatusCode::NOT_FOUND);
    let (s, _) = api
        .call(
            Method::POST,
            "/channels/lea-secret/viewers",
            Some(&lea),
            Some(json!({"username": "max"})),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(
        api.call(
            Method::POST,
            "/channels/lea-secret/viewers",
            Some(&lea),
            Some(json!({"username": "ghost"}))
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.call(
            Method::POST,
            "/channels/lea-secret/viewers",
            Some(&max),
            Some(json!({"username": "ned"}))
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    let (s, tok) = vt(Some(&max), "lea-secret").await;
    assert_eq!(s, StatusCode::OK);
    let max_token = tok["token"].as_str().unwrap().to_owned();
    assert_eq!(
        api.call(Method::GET, "/channels/lea-secret", Some(&max), None)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        vt(None, "lea-live").await.0,
        StatusCode::OK,
        "public: anyone"
    );
    assert_eq!(vt(None, "nothing-here").await.0, StatusCode::NOT_FOUND);

    // What a media node is told for WHEP.
    let view = |t: Option<String>, slug: &'static str| {
        let cp = api.cp.clone();
        async move { cp.check(Want::View, slug, t.as_deref()).await.map(|_| ()) }
    };
    assert_eq!(view(None, "lea-live").await, Ok(()));
    assert_eq!(
        view(None, "lea-secret").await,
        Err(Refusal::Unauthenticated)
    );
    assert_eq!(view(Some(max_token.clone()), "lea-secret").await, Ok(()));
    assert_eq!(view(None, "nothing-here").await, Err(Refusal::NotFound));
    let (_, other) = vt(Some(&max), "lea-live").await;
    let other = other["token"].as_str().unwrap().to_owned();
    assert_eq!(
        view(Some(other), "lea-secret").await,
        Err(Refusal::Forbidden),
        "a viewer token for another channel"
    );
    let expired = api
        .cp
        .signer()
        .issue(
            TokenKind::View,
            "x",
            0,
            Some("lea-secret"),
            now_secs() - 600,
            300,
        )
        .unwrap();
    assert_eq!(
        view(Some(expired), "lea-secret").await,
        Err(Refusal::Unauthenticated)
    );
    // Revoking the grant stops new tokens.
    let (s, _) = api
        .call(
            Method::DELETE,
            "/channels/lea-secret/viewers/max",
            Some(&lea),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(vt(Some(&max), "lea-secret").await.0, StatusCode::NOT_FOUND);

    // Edit and delete: the owner only.
    let (s, ch) = api
        .call(
            Method::PATCH,
            "/channels/lea-live",
            Some(&lea),
            Some(json!({"title": "Lea LIVE", "visibility": "unlisted", "tags": []})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (ch["title"].as_str(), ch["visibility"].as_str()),
        (Some("Lea LIVE"), Some("unlisted"))
    );
    assert_eq!(ch["tags"], json!([]));
    assert_eq!(
        api.call(
            Method::PATCH,
            "/channels/lea-live",
            Some(&ned),
            Some(json!({"title": "mine"}))
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        api.call(Method::DELETE, "/channels/lea-live", Some(&ned), None)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        api.call(Method::DELETE, "/channels/lea-live", Some(&lea), None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.call(Method::GET, "/channels/lea-live", None, None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
}

both!(stream_keys);
async fn stream_keys(b: Backend) {
    let Some(api) = Api::start(b, roomy()).await else {
        return;
    };
    api.user("admin").await;
    let (oli, _, _) = api.user("oli").await;
    let (pam, _, _) = api.user("pam").await;
    for (t, slug) in [(&oli, "oli-tv"), (&pam, "pam-tv")] {
        let (s, _) = api
            .call(
                Method::POST,
                "/channels",
                Some(t),
                Some(json!({"slug": slug, "title": slug})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let (s, k1) = api
        .call(
            Method::POST,
            "/channels/oli-tv/keys",
            Some(&oli),
            Some(json!({"label": "OBS"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let key1 = k1["key"].as_str().unwrap().to_owned();
    assert!(key1.starts_with("csk_") && key1.len() > 40);
    assert_eq!(k1["whip_path"], "/whip/oli-tv");
    let (_, pk) = api
        .call(
            Method::POST,
            "/channels/pam-tv/keys",
            Some(&pam),
            Some(json!({})),
        )
        .await;
    let pam_key = pk["key"].as_str().unwrap().to_owned();
    assert_eq!(
        api.call(
            Method::POST,
            "/channels/oli-tv/keys",
            Some(&pam),
            Some(json!({}))
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );

    // Listed masked, never in full.
    let (s, list) = api
        .call(Method::GET, "/channels/oli-tv/keys", Some(&oli), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["masked"], format!("{}…", &key1[..8]));
    assert!(!list.to_string().contains(&key1));
    assert_eq!(
        api.call(Method::GET, "/channels/oli-tv/keys", Some(&pam), None)
            .await
            .0,
        StatusCode::FORBIDDEN
    );

    let publish = |slug: &'static str, k: Option<String>| {
        let cp = api.cp.clone();
        async move {
            cp.check(Want::Publish, slug, k.as_deref())
                .await
                .map(|_| ())
        }
    };
    assert_eq!(publish("oli-tv", Some(key1.clone())).await, Ok(()));
    assert_eq!(publish("oli-tv", None).await, Err(Refusal::Unauthenticated));
    assert_eq!(
        publish("oli-tv", Some("csk_wrong".into())).await,
        Err(Refusal::Unauthenticated)
    );
    assert_eq!(
        publish("oli-tv", Some(pam_key.clone())).await,
        Err(Refusal::Forbidden),
        "a key publishes to its channel only"
    );
    let (_, list) = api
        .call(Method::GET, "/channels/oli-tv/keys", Some(&oli), None)
        .await;
    assert!(list[0]["last_used_at"].is_i64(), "use is noted: {list}");

    // Rotate: the old key stops, the new one works, same label.
    let id1 = k1["id"].as_str().unwrap();
    let (s, k2) = api
        .call(
            Method::POST,
            &format!("/channels/oli-tv/keys/{id1}/rotate"),
            Some(&oli),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(k2["label"], "OBS");
    let key2 = k2["key"].as_str().unwrap().to_owned();
    assert_eq!(
        publish("oli-tv", Some(key1.clone())).await,
        Err(Refusal::Unauthenticated)
    );
    assert_eq!(publish("oli-tv", Some(key2.clone())).await, Ok(()));
    assert_eq!(
        api.call(
            Method::POST,
            &format!("/channels/oli-tv/keys/{id1}/rotate"),
            Some(&oli),
            None
        )
        .await
        .0,
        StatusCode::NOT_FOUND,
        "a revoked key cannot be rotated"
    );

    // A publish token for remote nodes: checked offline with the public key alone.
    let (s, pt) = api
        .call(Method::POST, "/publish-token", Some(&key2), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(pt["channel"], "oli-tv");
    let (_, sk) = api.call(Method::GET, "/signing-key", None, None).await;
    let verifier =
        control_plane::tokens::Verifier::from_public_key(sk["public_key"].as_str().unwrap())
            .unwrap();
    let token = pt["token"].as_str().unwrap();
    let revoked = control_plane::revocation::RevocationList::default();
    let grant = check_offline(&verifier, &revoked, Want::Publish, "oli-tv", Some(token)).unwrap();
    assert!(grant.listed, "a public channel is listed");
    assert_eq!(
        grant.tags.len(),
        3,
        "bound to channel, key and owner: {grant:?}"
    );
    assert_eq!(
        check_offline(&verifier, &revoked, Want::Publish, "oli-tv", Some(token)).map(|_| ()),
        Ok(())
    );
    assert_eq!(
        check_offline(&verifier, &revoked, Want::Publish, "pam-tv", Some(token)),
        Err(Refusal::Forbidden)
    );
    assert_eq!(
        check_offline(&verifier, &revoked, Want::View, "oli-tv", Some(token)),
        Err(Refusal::Unauthenticated),
        "not a viewer token"
    );
    assert_eq!(
        check_offline(&verifier, &revoked, Want::Publish, "oli-tv", Some(&key2)),
        Err(Refusal::Unauthenticated),
        "offline nodes take no raw keys"
    );
    assert_eq!(
        publish("oli-tv", Some(token.to_owned())).await,
        Ok(()),
        "the in-process gate takes it too"
    );
    assert_eq!(
        api.call(Method::POST, "/publish-token", Some(&key1), None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api.call(Method::POST, "/publish-token", None, None).await.0,
        StatusCode::UNAUTHORIZED
    );

    // Revoke.
    let id2 = k2["id"].as_str().unwrap();
    assert_eq!(
        api.call(
            Method::DELETE,
            &format!("/channels/oli-tv/keys/{id2}"),
            Some(&pam),
            None
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        api.call(
            Method::DELETE,
            &format!("/channels/oli-tv/keys/{id2}"),
            Some(&oli),
            None
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.call(
            Method::DELETE,
            &format!("/channels/oli-tv/keys/{id2}"),
            Some(&oli),
            None
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        publish("oli-tv", Some(key2)).await,
        Err(Refusal::Unauthenticated)
    );
    let (_, list) = api
        .call(Method::GET, "/channels/oli-tv/keys", Some(&oli), None)
        .await;
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .all(|k| k["revoked_at"].is_i64()));
    // Bounded: at most 10 live keys.
    for _ in 0..10 {
        assert_eq!(
            api.call(
                Method::POST,
                "/channels/oli-tv/keys",
                Some(&oli),
                Some(json!({}))
            )
            .await
            .0,
            StatusCode::CREATED
        );
    }
    assert_eq!(
        api.call(
            Method::POST,
            "/channels/oli-tv/keys",
            Some(&oli),
            Some(json!({}))
        )
        .await
        .0,
        StatusCode::CONFLICT
    );
}
