//! Chat over REST: posting and its checks, history, deletion, pinning, reports, and
//! moderation (moderators, timeouts, bans, global bans, blocked terms, modes), each
//! refusal with its reason as the user sees it.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use control_plane::gate::{Refusal, Want};

use crate::both;
use crate::harness::{roomy, Api, Backend};

/// A channel `lea-live` owned by lea, and two viewers; returns their access tokens.
pub async fn room(api: &Api) -> (String, String, String) {
    api.user("admin").await;
    let (lea, _, _) = api.user("lea").await;
    let (max, _, _) = api.user("max").await;
    let (ned, _, _) = api.user("ned").await;
    let (s, ch) = api
        .call(
            Method::POST,
            "/channels",
            Some(&lea),
            Some(json!({"slug": "lea-live", "title": "Lea live"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{ch}");
    (lea, max, ned)
}

pub async fn say(api: &Api, token: &str, text: &str) -> (StatusCode, Value) {
    api.call(
        Method::POST,
        "/channels/lea-live/chat/messages",
        Some(token),
        Some(json!({ "text": text })),
    )
    .await
}

async fn texts(api: &Api, token: Option<&str>) -> Vec<String> {
    let (s, h) = api
        .call(Method::GET, "/channels/lea-live/chat/messages", token, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{h}");
    h["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect()
}

both!(posting_history_and_checks);
async fn posting_history_and_checks(b: Backend) {
    let Some(api) = Api::start(b, roomy()).await else {
        return;
    };
    let (lea, max, ned) = room(&api).await;
    assert!(texts(&api, None).await.is_empty());
    let (s, p) = api
        .call(
            Method::POST,
            "/channels/lea-live/chat/messages",
            None,
            Some(json!({"text": "hi"})),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "anonymous viewers read only: {p}"
    );

    let (s, m) = say(&api, &max, "hello @Ned 👋").await;
    assert_eq!(s, StatusCode::CREATED, "{m}");
    assert_eq!(m["user"]["username"], "max");
    assert_eq!(m["mentions"], json!(["ned"]));
    let first = m["id"].as_i64().unwrap();
    let (s, r) = api
        .call(
            Method::POST,
            "/channels/lea-live/chat/messages",
            Some(&ned),
            Some(json!({"text": "hey max", "reply_to": first})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!(r["reply_to"], first);
    assert!(r["id"].as_i64().unwrap() > first, "ids increase per room");
    assert_eq!(texts(&api, None).await, ["hello @Ned 👋", "hey max"]);
    let (_, since) = api
        .call(
            Method::GET,
            &format!("/channels/lea-live/chat/messages?since={first}"),
            None,
            None,
        )
        .await;
    assert_eq!(since["messages"].as_array().unwrap().len(), 1);

    // Refusals, each with its reason.
    let (s, p) = say(&api, &max, &"x".repeat(501)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        p["detail"].as_str().unwrap().contains("500 characters"),
        "{p}"
    );
    assert_eq!(
        say(&api, &max, "   ").await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let (s, p) = say(&api, &max, "HELLO @ned 👋").await;
    assert_eq!(s, StatusCode::CONFLICT, "a duplicate: {p}");
    let (s, p) = api
        .call(
            Method::POST,
            "/channels/lea-live/chat/messages",
            Some(&ned),
            Some(json!({"text": "to nothing", "reply_to": 999})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{p}");
    // Flood: five in ten seconds (ned has posted one), then 429 with how long to wait.
    for i in 0..4 {
        assert_eq!(
            say(&api, &ned, &format!("n{i}")).await.0,
            StatusCode::CREATED
        );
    }
    let (s, h, p) = api
        .call_full(
            Method::POST,
            "/channels/lea-live/chat/messages",
            Some(&ned),
            Some(json!({"text": "one too many"})),
        )
        .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{p}");
    assert!(h.contains_key("retry-after"));
    assert!(p["detail"].as_str().unwrap().contains("too many messages"));

    // Control characters and bidi overrides go; HTML is kept as text (clients render it
    // as text).
    let (_, m) = say(&api, &lea, "<b>bold</b>\u{202E}\ttab").await;
    assert_eq!(m["text"], "<b>bold</b> tab");

    // Invalid UTF-8 is refused by the JSON parser, with a problem document.
    let mut body = br#"{"text": "bad "#.to_vec();
    body.extend([0xff, 0xfe]);
    body.extend(br#""}"#);
    let (s, _) = api
        .raw(
            Method::POST,
            "/channels/lea-live/chat/messages",
            "application/json",
            body,
        )
        .await;
    assert!(
        s == StatusCode::BAD_REQUEST || s == StatusCode::UNAUTHORIZED,
        "{s}"
    );

    // Unknown room.
    let (s, _) = api
        .call(Method::GET, "/channels/nope/chat/messages", None, None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

both!(deletion_pins_reports_and_terms);
async fn deletion_pins_reports_and_terms(b: Backend) {
    let Some(api) = Api::start(b, roomy()).await else {
        return;
    };
    let (lea, max, ned) = room(&api).await;
    let (_, a) = say(&api, &max, "first").await;
    let (_, c) = say(&api, &ned, "second").await;
    let a = a["id"].as_i64().unwrap();
    let c = c["id"].as_i64().unwrap();
    let del = |t: &str, id: i64| {
        let (api, t) = (&api, t.to_owned());
        async move {
            api.call(
                Method::DELETE,
                &format!("/channels/lea-live/chat/messages/{id}"),
                Some(&t),
                None,
            )
            .await
            .0
        }
    };
    assert_eq!(del(&ned, a).await, StatusCode::FORBIDDEN, "not ned's");
    assert_eq!(
        del(&ned, c).await,
        StatusCode::NO_CONTENT,
        "an author deletes"
    );
    assert_eq!(texts(&api, None).await, ["first"]);
    assert_eq!(del(&ned, c).await, StatusCode::NOT_FOUND);

    // Pin (moderators only), shown in settings' neighbour, unpinned on deletion.
    let pin = |t: &str, id: i64| {
        let (api, t) = (&api, t.to_owned());
        async move {
            api.call(
                Method::PUT,
                "/channels/lea-live/chat/pinned",
                Some(&t),
                Some(json!({ "id": id })),
            )
            .await
            .0
        }
    };
    assert_eq!(pin(&max, a).await, StatusCode::FORBIDDEN);
    assert_eq!(pin(&lea, a).await, StatusCode::OK);

    // A report reaches the queue; resolving it by deletion removes the message.
    let (s, r) = api
        .call(
            Method::POST,
            &format!("/channels/lea-live/chat/messages/{a}/report"),
            Some(&ned),
            Some(json!({"reason": "rude"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    let (s, _) = api
        .call(Method::GET, "/channels/lea-live/reports", Some(&ned), None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "the queue is the moderators'");
    let (_, q) = api
        .call(Method::GET, "/channels/lea-live/reports", Some(&lea), None)
        .await;
    assert_eq!(q[0]["reason"], "rude");
    assert_eq!(q[0]["reporter"], "ned");
    let id = q[0]["id"].as_str().unwrap();
    let (s, _) = api
        .call(
            Method::POST,
            &format!("/channels/lea-live/reports/{id}/resolve"),
            Some(&lea),
            Some(json!({"action": "delete"})),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert!(texts(&api, None).await.is_empty());
    let (_, q) = api
        .call(Method::GET, "/channels/lea-live/reports", Some(&lea), None)
        .await;
    assert_eq!(q, json!([]), "resolved reports leave the open queue");

    // Blocked terms: masked, wildcard, rejected; the default list masks too.
    for (term, action) in [
        ("darn", "mask"),
        ("spam*", "mask"),
        ("buy followers", "reject"),
    ] {
        let (s, t) = api
            .call(
                Method::POST,
                "/channels/lea-live/blocked-terms",
                Some(&lea),
                Some(json!({"term": term, "action": action})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{t}");
    }
    let (s, _) = api
        .call(
            Method::POST,
            "/channels/lea-live/blocked-terms",
            Some(&lea),
            Some(json!({"term": "*", "action": "mask"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, m) = say(&api, &max, "Darn spammers, what the fuck").await;
    assert_eq!(m["text"], "*** ***, what the ***");
    let (s, p) = say(&api, &ned, "BUY FOLLOWERS here").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        p["detail"].as_str().unwrap().contains("does not allow"),
        "{p}"
    );
    let (_, terms) = api
        .call(
            Method::GET,
            "/channels/lea-live/blocked-terms",
            Some(&lea),
            None,
        )
        .await;
    assert_eq!(terms.as_array().unwrap().len(), 3);

    let (_, log) = api
        .call(Method::GET, "/channels/lea-live/modlog", Some(&lea), None)
        .await;
    let actions: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in ["pin", "deleted", "block_term"] {
        assert!(actions.contains(&a), "{a} in {actions:?}");
    }
    assert!(log.as_array().unwrap().iter().all(|e| e["actor"] == "lea"));
}

both!(moderators_timeouts_and_bans);
async fn moderators_timeouts_and_bans(b: Backend) {
    let Some(api) = Api::start(b, roomy()).await else {
        return;
    };
    let (lea, max, ned) = room(&api).await;
    let appoint = |t: &str, who: &str| {
        let (api, t, who) = (&api, t.to_owned(), who.to_owned());
        async move {
            api.call(
                Method::PUT,
                &format!("/channels/lea-live/moderators/{who}"),
                Some(&t),
                None,
            )
            .await
            .0
        }
    };
    assert_eq!(appoint(&max, "max").await, StatusCode::FORBIDDEN);
    assert_eq!(appoint(&lea, "ned").await, StatusCode::NO_CONTENT);
    let (_, mods) = api
        .call(
            Method::GET,
            "/channels/lea-live/moderators",
            Some(&ned),
            None,
        )
        .await;
    assert_eq!(mods[0]["username"], "ned");

    // The moderator times max out; max's next post is refused with the reason.
    let (s, ban) = api
        .call(
            Method::POST,
            "/channels/lea-live/bans",
            Some(&ned),
            Some(json!({"username": "max", "reason": "spamming", "duration_secs": 60})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{ban}");
    let (s, h, p) = api
        .call_full(
            Method::POST,
            "/channels/lea-live/chat/messages",
            Some(&max),
            Some(json!({"text": "let me speak"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let detail = p["detail"].as_str().unwrap();
    assert!(
        detail.contains("timed out") && detail.contains("spamming"),
        "{detail}"
    );
    assert!(h["retry-after"].to_str().unwrap().parse::<u64>().unwrap() <= 60);
    // A timed-out viewer still reads.
    assert_eq!(texts(&api, Some(&max)).await.len(), 0);
    let (s, _) = api
        .call(
            Method::POST,
            "/channels/lea-live/bans",
            Some(&ned),
            Some(json!({"username": "lea", "reason": "coup"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "the owner cannot be banned");
    let (s, _) = api
        .call(
            Method::DELETE,
            "/channels/lea-live/bans/max",
            Some(&ned),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(say(&api, &max, "thanks").await.0, StatusCode::CREATED);

    // A ban removes their messages and, with `watch`, their reading and watching too.
    let (_, vt) = api
        .call(
            Method::POST,
            "/channels/lea-live/viewer-token",
            Some(&max),
            None,
        )
        .await;
    let vt = vt["token"].as_str().unwrap().to_owned();
    let grant = api
        .cp
        .check(Want::View, "lea-live", Some(&vt))
        .await
        .unwrap();
    assert!(grant.identified);
    let (s, _) = api
        .call(
            Method::POST,
            "/channels/lea-live/bans",
            Some(&lea),
            Some(json!({"username": "max", "reason": "abuse", "watch": true})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert!(
        texts(&api, None).await.is_empty(),
        "the banned user's messages go"
    );
    let (s, p) = say(&api, &max, "again").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(p["detail"]
        .as_str()
        .unwrap()
        .contains("banned from this channel: abuse"));
    let (s, _) = api
        .call(
            Method::GET,
            "/channels/lea-live/chat/messages",
            Some(&max),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "banned from watching");
    assert_eq!(
        api.cp.check(Want::View, "lea-live", Some(&vt)).await,
        Err(Refusal::Forbidden),
        "the media node refuses their WHEP"
    );
    let feed = api.cp.revocation_feed().await.unwrap();
    assert!(
        feed.entries
            .iter()
            .any(|r| r.tag.starts_with("watch:") && r.end_live),
        "live sessions end"
    );
    let (s, p) = api
        .call(
            Method::POST,
            "/channels/lea-live/viewer-token",
            Some(&max),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{p}");
    let (_, bans) = api
        .call(Method::GET, "/channels/lea-live/bans", Some(&lea), None)
        .await;
    assert_eq!(bans[0]["username"], "max");
    assert_eq!(bans[0]["expires_at"], Value::Null);

    // Modes: moderators only, followers only.
    let mode = |m: &str| {
        let (api, lea, m) = (&api, lea.clone(), m.to_owned());
        async move {
            api.call(
                Method::PATCH,
                "/channels/lea-live/chat/settings",
                Some(&lea),
                Some(json!({ "mode": m })),
            )
            .await
        }
    };
    let (user3, _, _) = api.user("ola").await;
    assert_eq!(mode("moderators").await.0, StatusCode::OK);
    let (s, p) = say(&api, &user3, "hi").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{p}");
    assert_eq!(say(&api, &ned, "mods may").await.0, StatusCode::CREATED);
    assert_eq!(mode("followers").await.0, StatusCode::OK);
    let (s, p) = say(&api, &user3, "hi").await;
    assert!(
        p["detail"].as_str().unwrap().contains("followers"),
        "{s} {p}"
    );
    let (s, _) = api
        .call(
            Method::POST,
            "/channels/lea-live/follow",
            Some(&user3),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(say(&api, &user3, "hi").await.0, StatusCode::CREATED);
    // Slow mode: a wait in seconds; the owner is exempt.
    let (s, set) = api
        .call(
            Method::PATCH,
            "/channels/lea-live/chat/settings",
            Some(&lea),
            Some(json!({"slow_mode_secs": 30, "mode": "everyone"})),
        )
        .await;
    assert_eq!(
        (s, set["slow_mode_secs"].as_i64()),
        (StatusCode::OK, Some(30))
    );
    let (s, h, _) = api
        .call_full(
            Method::POST,
            "/channels/lea-live/chat/messages",
            Some(&user3),
            Some(json!({"text": "again so soon"})),
        )
        .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    assert!(h["retry-after"].to_str().unwrap().parse::<u64>().unwrap() > 20);
    assert_eq!(say(&api, &lea, "owner").await.0, StatusCode::CREATED);
    assert_eq!(say(&api, &lea, "owner again").await.0, StatusCode::CREATED);

    // An admin's global ban.
    let (_, pair) = api.signin("admin", "password-of-admin").await;
    let admin_token = pair["access_token"].as_str().unwrap();
    let (s, _) = api
        .call(
            Method::POST,
            "/admin/bans",
            Some(&lea),
            Some(json!({"username": "ola", "reason": "x"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "admins only");
    let (s, _) = api
        .call(
            Method::POST,
            "/admin/bans",
            Some(admin_token),
            Some(json!({"username": "ola", "reason": "spam network"})),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    api.call(
        Method::PATCH,
        "/channels/lea-live/chat/settings",
        Some(&lea),
        Some(json!({"slow_mode_secs": 0})),
    )
    .await;
    let (s, p) = say(&api, &user3, "anything").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(
        p["detail"].as_str().unwrap().contains("spam network"),
        "{p}"
    );
}
