//! Sign-up, sign-in, refresh rotation and reuse, sign-out (one and all), the profile,
//! email and password changes, account deletion, and the admin endpoints.

use control_plane::tokens::{now_secs, TokenKind};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both;
use crate::harness::{roomy, Api, Backend};

both!(sign_up_and_in);
async fn sign_up_and_in(b: Backend) {
    let Some(api) = Api::start(b, roomy()).await else {
        return;
    };
    assert_eq!(
        api.signup("Ann@Example.com", "ann", "correct horse").await,
        StatusCode::ACCEPTED
    );
    // The same email again: the same answer, and still one account.
    let (s, again) = api
        .call(
            Method::POST,
            "/auth/signup",
            None,
            Some(
                json!({"email": "ann@example.com", "username": "ann2", "password": "another one"}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    assert_eq!(again["status"], "accepted");
    assert_eq!(
        api.signin("ann2", "another one").await.0,
        StatusCode::UNAUTHORIZED
    );
    // A taken username is public anyway, so it is said.
    assert_eq!(
        api.signup("bob@example.com", "ANN", "password1").await,
        StatusCode::CONFLICT
    );
    for (email, user, pw) in [
        ("not-an-email", "bob", "password1"),
        ("bob@example.com", "b", "password1"),
        ("bob@example.com", "bob", "short"),
    ] {
        assert_eq!(
            api.signup(email, user, pw).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{email} {user} {pw}"
        );
    }
    // Wrong password and unknown account read the same.
    let (s1, wrong) = api.signin("ann", "wrong horse").await;
    let (s2, unknown) = api.signin("nobody", "wrong horse").await;
    assert_eq!(
        (s1, s2),
        (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED)
    );
    assert_eq!(wrong["detail"], unknown["detail"]);
    // Email or username, any case; the first account is the admin.
    let (s, pair) = api.signin("ANN@example.com", "correct horse").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(pair["user"]["role"], "admin");
    assert_eq!(pair["token_type"], "Bearer");
    let token = pair["access_token"].as_str().unwrap();
    let (s, me) = api.call(Method::GET, "/me", Some(token), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (me["username"].as_str(), me["email"].as_str()),
        (Some("ann"), Some("ann@example.com"))
    );
    assert!(me.get("password_hash").is_none());
    // The second account is a viewer.
    let (_, _, _) = api.user("carl").await;
    let (_, carl) = api.signin("carl", "password-of-carl").await;
    assert_eq!(carl["user"]["role"], "viewer");

    // Missing, garbage and expired access tokens.
    assert_eq!(
        api.call(Method::GET, "/me", None, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api.call(Method::GET, "/me", Some("garbage"), None).await.0,
        StatusCode::UNAUTHORIZED
    );
    let id = me["id"].as_str().unwrap();
    let expired = api
        .cp
        .signer()
        .issue(TokenKind::Access, id, 0, None, now_secs() - 3600, 900)
        .unwrap();
    let (s, body) = api.call(Method::GET, "/me", Some(&expired), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(body["detail"], "access token expired");
    // A viewer token is not an access token.
    let view = api
        .cp
        .signer()
        .issue(TokenKind::View, id, 0, Some("x"), now_secs(), 60)
        .unwrap();
    assert_eq!(
        api.call(Method::GET, "/me", Some(&view), None).await.0,
        StatusCode::UNAUTHORIZED
    );

    // Malformed requests are problems, never 5xx.
    let (s, p) = api
        .raw(Method::POST, "/auth/signin", "text/plain", b"{}".to_vec())
        .await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{p}");
    let (s, _) = api
        .raw(
            Method::POST,
            "/auth/signin",
            "application/json",
            b"{not json".to_vec(),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = api
        .raw(
            Method::POST,
            "/auth/signin",
            "application/json",
            b"{\"login\":1}".to_vec(),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let big = format!(
        "{{\"login\":\"{}\",\"password\":\"x\"}}",
        "a".repeat(20_000)
    );
    let (s, _) = api
        .raw(
            Method::POST,
            "/auth/signin",
            "application/json",
            big.into_bytes(),
        )
        .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        api.call(Method::GET, "/nowhere", None, None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.call(Method::PUT, "/me", Some(token), None).await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

both!(refresh_rotation);
async fn refresh_rotation(b: Backend) {
    let Some(api) = Api::start(b, roomy()).await else {
        return;
    };
    let (_, r0, _) = api.user("dora").await;
    let refresh = |t: String| {
        let api = &api;
        async move {
            api.call(
                Method::POST,
                "/auth/refresh",
                None,
                Some(json!({"refresh_token": t})),
            )
            .await
        }
    };
    let (s, p1) = refresh(r0.clone()).await;
    assert_eq!(s, StatusCode::OK);
    let r1 = p1["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(r1, r0, "rotated on every use");
    let a1 = p1["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        api.call(Method::GET, "/me", Some(&a1), None).await.0,
        StatusCode::OK
    );
    // Reusing r0 (a thief replaying it) revokes the whole family, r1 included.
    let (s, body) = refresh(r0.clone()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(
        body["detail"].as_str().unwrap().contains("reused"),
        "{body}"
    );
    assert_eq!(refresh(r1.clone()).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        refresh("crt_unknown".into()).await.0,
        StatusCode::UNAUTHORIZED
    );
    // Another sign-in is another family, untouched.
    let (_, p2) = api.signin("dora", "password-of-dora").await;
    let r2 = p2["refresh_token"].as_str().unwrap().to_owned();
    let (s, p3) = refresh(r2).await;
    assert_eq!(s, StatusCode::OK);
    // Sign out revokes this session's refresh token.
    let r3 = p3["refresh_token"].as_str().unwrap().to_owned();
    let (s, _) = api
        .call(
            Method::POST,
            "/auth/signout",
            None,
            Some(json!({"refresh_token": r3})),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(refresh(r3.clone()).await.0, StatusCode::UNAUTHORIZED);

    // Sign out everywhere: every access token and refresh token of the user dies.
    let (_, pa) = api.signin("dora", "password-of-dora").await;
    let (_, pb) = api.signin("dora", "password-of-dora").await;
    let (aa, rb) = (
        pa["access_token"].as_str().unwrap(),
        pb["refresh_token"].as_str().unwrap(),
    );
    let ab = pb["access_token"].as_str().unwrap();
    assert_eq!(
        api.call(Method::POST, "/auth/signout-all", Some(aa), None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.call(Method::GET, "/me", Some(ab), None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(refresh(rb.to_owned()).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        api.signin("dora", "password-of-dora").await.0,
        StatusCode::OK
    );

    // An expired refresh token is refused.
    let Some(short) = Api::start(
        b,
        control_plane::Config {
            refresh_ttl_secs: 0,
            ..roomy()
        },
    )
    .await
    else {
        return;
    };
    let (_, r, _) = short.user("eve").await;
    let (s, body) = short
        .call(
            Method::POST,
            "/auth/refresh",
            None,
            Some(json!({"refresh_token": r})),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(body["detail"], "refresh token expired");
}

both!(profile_email_password_delete);
async fn profile_email_password_delete(b: Backend) {
    let Some(api) = Api::start(b, roomy()).await else {
        return;
    };
    let (t, _, _) = api.user("fay").await;
    let (s, me) = api
        .call(
            Method::PATCH,
            "/me",
            Some(&t),
            Some(json!({"display_name": " Fay F. ", "bio": "hi\nthere", "avatar_url": "https://x.io/f.png"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (me["display_name"].as_str(), me["bio"].as_str()),
        (Some("Fay F."), Some("hi\nthere"))
    );
    let (s, _) = api
        .call(
            Method::PATCH,
            "/me",
            Some(&t),
            Some(json!({"avatar_url": "javascript:x"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        api.call(Method::GET, "/me", Some(&t), None).await.1["avatar_url"],
        "https://x.io/f.png"
    );

    // A second session, to see it signed out by the changes.
    let (_, other) = api.signin("fay", "password-of-fay").await;
    let other = other["access_token"].as_str().unwrap().to_owned();
    let (s, _) = api
        .call(
            Method::PUT,
            "/me/password",
            Some(&t),
            Some(json!({"current_password": "nope nope", "new_password": "brand new pw"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, pair) = api
        .call(
            Method::PUT,
            "/me/password",
            Some(&t),
            Some(json!({"current_password": "password-of-fay", "new_password": "brand new pw"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let t = pair["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        api.call(Method::GET, "/me", Some(&other), None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api.call(Method::GET, "/me", Some(&t), None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        api.signin("fay", "password-of-fay").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(api.signin("fay", "brand new pw").await.0, StatusCode::OK);

    // Email: a taken address gets the same answer as a free one (see security.rs) and
    // changes nothing; a free one is changed.
    api.user("gus").await;
    let (s, taken) = api
        .call(
            Method::PUT,
            "/me/email",
            Some(&t),
            Some(json!({"current_password": "brand new pw", "email": "gus@example.com"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let t = taken["access_token"].as_str().unwrap().to_owned();
    let (_, me) = api.call(Method::GET, "/me", Some(&t), None).await;
    assert_eq!(me["email"], "fay@example.com");
    let (s, pair) = api
        .call(
            Method::PUT,
            "/me/email",
            Some(&t),
            Some(json!({"current_password": "brand new pw", "email": "Fay@New.example"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, me) = api
        .call(Method::GET, "/me", pair["access_token"].as_str(), None)
        .await;
    assert_eq!(me["email"], "fay@new.example");
    assert_eq!(
        api.call(Method::GET, "/me", Some(&t), None).await.0,
        StatusCode::UNAUTHORIZED,
        "old session revoked"
    );
    let t = pair["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        api.signin("fay@new.example", "brand new pw").await.0,
        StatusCode::OK
    );

    // Delete: needs the password; then the account, its channels and keys are gone.
    let (s, _) = api
        .call(
            Method::POST,
            "/channels",
            Some(&t),
            Some(json!({"slug": "fay-show", "title": "Fay"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (_, key) = api
        .call(
            Method::POST,
            "/channels/fay-show/keys",
            Some(&t),
            Some(json!({})),
        )
        .await;
    let key = key["key"].as_str().unwrap().to_owned();
    let (s, _) = api
        .call(
            Method::DELETE,
            "/me",
            Some(&t),
            Some(json!({"current_password": "wrong"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = api
        .call(
            Method::DELETE,
            "/me",
            Some(&t),
            Some(json!({"current_password": "brand new pw"})),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(
        api.signin("fay@new.example", "brand new pw").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api.call(Method::GET, "/channels/fay-show", None, None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let gate = api
        .cp
        .check(control_plane::gate::Want::Publish, "fay-show", Some(&key))
        .await;
    assert_eq!(gate, Err(control_plane::gate::Refusal::Unauthenticated));
    // Nothing personal is left in the database.
    let (left,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM users WHERE email = 'fay@new.example' OR username = 'fay'",
    )
    .fetch_one(api.cp.db().pool())
    .await
    .unwrap();
    assert_eq!(left, 0);
}

both!(admin_manages_users);
async fn admin_manages_users(b: Backend) {
    let Some(api) = Api::start(b, roomy()).await else {
        return;
    };
    let (admin, _, admin_id) = api.user("root").await;
    let (hal, _, hal_id) = api.user("hal").await;
    for name in ["ida", "jon", "kim"] {
        api.user(name).await;
    }
    // Not for non-admins.
    assert_eq!(
        api.call(Method::GET, "/admin/users", Some(&hal), None)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        api.call(Method::GET, "/admin/users", None, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    // Pagination.
    let (s, page) = api
        .call(
            Method::GET,
            "/admin/users?page=2&per_page=2",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(page["total"], 5);
    let names: Vec<_> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["ida", "jon"]);
    let (_, found) = api
        .call(Method::GET, "/admin/users?q=KIM", Some(&admin), None)
        .await;
    assert_eq!(found["total"], 1);
    assert_eq!(
        api.call(Method::GET, "/admin/users?per_page=500", Some(&admin), None)
            .await
            .0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        api.call(Method::GET, "/admin/users?page=x", Some(&admin), None)
            .await
            .0,
        StatusCode::BAD_REQUEST
    );

    // Hal owns a channel with a key.
    api.call(
        Method::POST,
        "/channels",
        Some(&hal),
        Some(json!({"slug": "hal-tv", "title": "Hal"})),
    )
    .await;
    let (_, key) = api
        .call(
            Method::POST,
            "/channels/hal-tv/keys",
            Some(&hal),
            Some(json!({"label": "obs"})),
        )
        .await;
    let key = key["key"].as_str().unwrap().to_owned();
    let publish = |k: String| {
        let cp = api.cp.clone();
        async move {
            cp.check(control_plane::gate::Want::Publish, "hal-tv", Some(&k))
                .await
                .map(|_| ())
        }
    };
    assert_eq!(publish(key.clone()).await, Ok(()));

    // Suspend: sessions end, sign-in and keys refused.
    let (s, u) = api
        .call(
            Method::POST,
            &format!("/admin/users/{hal_id}/suspend"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(u["status"], "suspended");
    assert_eq!(
        api.call(Method::GET, "/me", Some(&hal), None).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (s, body) = api.signin("hal", "password-of-hal").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(body["detail"], "account suspended");
    assert_eq!(
        publish(key.clone()).await,
        Err(control_plane::gate::Refusal::Forbidden)
    );
    // Restore.
    let (s, u) = api
        .call(
            Method::POST,
            &format!("/admin/users/{hal_id}/restore"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!((s, u["status"].as_str()), (StatusCode::OK, Some("active")));
    let (s, pair) = api.signin("hal", "password-of-hal").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(publish(key.clone()).await, Ok(()));
    let hal = pair["access_token"].as_str().unwrap().to_owned();

    // Roles.
    let (s, u) = api
        .call(
            Method::PUT,
            &format!("/admin/users/{hal_id}/role"),
            Some(&admin),
            Some(json!({"role": "moderator"})),
        )
        .await;
    assert_eq!((s, u["role"].as_str()), (StatusCode::OK, Some("moderator")));
    let (s, _) = api
        .call(
            Method::PUT,
            &format!("/admin/users/{hal_id}/role"),
            Some(&admin),
            Some(json!({"role": "emperor"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = api
        .call(
            Method::PUT,
            &format!("/admin/users/{admin_id}/role"),
            Some(&admin),
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "an admin cannot demote themselves"
    );
    assert_eq!(
        api.call(
            Method::POST,
            "/admin/users/nobody/suspend",
            Some(&admin),
            None
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.call(
            Method::POST,
            &format!("/admin/users/{admin_id}/suspend"),
            Some(&hal),
            None
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );

    // Key rotation, then the audit log holds sign-ins, failures, roles, suspensions, keys.
    let (_, keys) = api
        .call(Method::GET, "/channels/hal-tv/keys", Some(&hal), None)
        .await;
    let kid = keys[0]["id"].as_str().unwrap();
    let (s, _) = api
        .call(
            Method::POST,
            &format!("/channels/hal-tv/keys/{kid}/rotate"),
            Some(&hal),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    api.signin("hal", "not the password").await;
    let (s, log) = api
        .call(Method::GET, "/admin/audit?per_page=100", Some(&admin), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let actions: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for want in [
        "signin",
        "signin.failed",
        "signin.suspended",
        "user.suspended",
        "user.active",
        "user.role",
        "key.create",
        "key.rotate",
    ] {
        assert!(actions.contains(&want), "{want} missing from {actions:?}");
    }
    assert_eq!(actions[0], "signin.failed", "newest first");
    let text = log.to_string();
    assert!(!text.contains(&key), "no key in the audit log");
    assert!(
        !text.contains("password-of-hal"),
        "no password in the audit log"
    );
    let (_, only) = api
        .call(
            Method::GET,
            "/admin/audit?action=user.role",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(only["total"], 1);
    assert_eq!(only["items"][0]["detail"], "broadcaster -> moderator");
}
