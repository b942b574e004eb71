//! Races and floods: simultaneous sign-ups with one email, and the rate limits.

use control_plane::{Config, RateLimits};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both;
use crate::harness::{roomy, Api, Backend};

both!(fifty_signups_one_email);
async fn fifty_signups_one_email(b: Backend) {
    let Some(api) = Api::start(b, roomy()).await else {
        return;
    };
    let (admin, _, _) = api.user("admin").await;
    let api = std::sync::Arc::new(api);
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let api = api.clone();
            tokio::spawn(async move {
                api.signup(
                    "race@example.com",
                    &format!("racer{i}"),
                    &format!("password {i}"),
                )
                .await
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(
            t.await.unwrap(),
            StatusCode::ACCEPTED,
            "every answer is the same"
        );
    }
    let (_, found) = api
        .call(
            Method::GET,
            "/admin/users?q=race@example.com",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(found["total"], 1, "{found}");
    let winner = found["items"][0]["username"].as_str().unwrap().to_owned();
    // Exactly one of the fifty passwords opens it, the winner's.
    let mut opened = Vec::new();
    for i in 0..50 {
        if api
            .signin("race@example.com", &format!("password {i}"))
            .await
            .0
            == StatusCode::OK
        {
            opened.push(i);
        }
    }
    assert_eq!(opened.len(), 1, "{opened:?}");
    assert_eq!(winner, format!("racer{}", opened[0]));
    let (_, all) = api
        .call(Method::GET, "/admin/users", Some(&admin), None)
        .await;
    assert_eq!(all["total"], 2, "the losers' usernames were not created");
}

both!(rate_limits);
async fn rate_limits(b: Backend) {
    let Some(api) = Api::start(
        b,
        Config {
            limits: RateLimits {
                signin_per_ip: 6,
                signin_per_account: 3,
                signup_per_ip: 2,
                ..RateLimits::default()
            },
            ..Config::default()
        },
    )
    .await
    else {
        return;
    };
    assert_eq!(
        api.signup("a@example.com", "qaa", "password a").await,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        api.signup("b@example.com", "qbb", "password b").await,
        StatusCode::ACCEPTED
    );
    let (s, headers, body) = api
        .call_full(
            Method::POST,
            "/auth/signup",
            None,
            Some(json!({"email": "c@example.com", "username": "qcc", "password": "password c"})),
        )
        .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=61).contains(&wait), "{wait}");
    // Per account: three tries at "qaa", then refused even with the right password.
    for _ in 0..3 {
        assert_eq!(
            api.signin("qaa", "wrong pass").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    let (s, headers, _) = api
        .call_full(
            Method::POST,
            "/auth/signin",
            None,
            Some(json!({"login": "QAA", "password": "password a"})),
        )
        .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    assert!(headers.contains_key("retry-after"));
    // Another account from the same address still works, until the address's limit.
    assert_eq!(api.signin("qbb", "password b").await.0, StatusCode::OK);
    assert_eq!(api.signin("nobody", "x").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        api.signin("qbb", "password b").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
}
