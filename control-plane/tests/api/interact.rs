//! Polls, live Q&A and surveys over REST, and their live events.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both;
use crate::chat::room;
use crate::chat_live::Live;
use crate::harness::{roomy, Api, Backend};

async fn call(
    api: &Api,
    m: Method,
    path: &str,
    t: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    api.call(m, &format!("/channels/lea-live{path}"), Some(t), body)
        .await
}

both!(polls);
async fn polls(b: Backend) {
    let Some(api) = Api::start(b, roomy()).await else {
        return;
    };
    let (lea, max, ned) = room(&api).await;
    let mut viewer = Live::open(&api, None, None).await;
    viewer.until("history").await;
    let new = json!({"question": "Next game?", "options": ["Chess", "Go", "Shogi"]});
    let (s, _) = call(&api, Method::POST, "/polls", &max, Some(new.clone())).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "moderators run polls");
    for bad in [
        json!({"question": "?", "options": ["only one"]}),
        json!({"question": "", "options": ["a", "b"]}),
        json!({"question": "?", "options": ["a", "b"], "duration_secs": 1}),
    ] {
        let (s, _) = call(&api, Method::POST, "/polls", &lea, Some(bad.clone())).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    let (s, poll) = call(&api, Method::POST, "/polls", &lea, Some(new)).await;
    assert_eq!(s, StatusCode::CREATED, "{poll}");
    let id = poll["id"].as_str().unwrap().to_owned();
    assert_eq!(viewer.until("poll").await["poll"]["question"], "Next game?");

    let vote = |t: &str, choices: Value| {
        let (api, t, id) = (&api, t.to_owned(), id.clone());
        async move {
            call(
                api,
                Method::POST,
                &format!("/polls/{id}/votes"),
                &t,
                Some(json!({ "choices": choices })),
            )
            .await
        }
    };
    assert_eq!(
        vote(&max, json!([0, 1])).await.0,
        StatusCode::UNPROCESSABLE_ENTITY,
        "single choice"
    );
    assert_eq!(
        vote(&max, json!([7])).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let (s, mine) = vote(&max, json!([1])).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(mine["my_choices"], json!([1]));
    let (s, p) = vote(&max, json!([2])).await;
    assert_eq!(s, StatusCode::CONFLICT, "one vote per account: {p}");
    assert_eq!(vote(&ned, json!([1])).await.0, StatusCode::OK);
    // Live results reach a third client (announced once for both votes).
    let results = loop {
        let p = viewer.until("poll").await;
        if p["poll"]["total_votes"] == 2 {
            break p;
        }
    };
    assert_eq!(results["poll"]["options"][1]["votes"], 2);
    assert!(
        results["poll"].get("my_choices").is_none(),
        "no one's own vote in broadcasts"
    );

    let (s, closed) = call(
        &api,
        Method::POST,
        &format!("/polls/{id}/close"),
        &lea,
        None,
    )
    .await;
    assert_eq!(
        (s, closed["closed"].as_bool()),
        (StatusCode::OK, Some(true))
    );
    assert_eq!(viewer.until("poll").await["poll"]["closed"], true);
    let (s, p) = vote(&lea, json!([0])).await;
    assert_eq!(s, StatusCode::CONFLICT, "closed: {p}");
    assert!(p["detail"].as_str().unwrap().contains("closed"));

    // Multiple choice.
    let (_, multi) = call(
        &api,
        Method::POST,
        "/polls",
        &lea,
        Some(json!({"question": "Snacks", "options": ["a", "b", "c"], "multiple": true})),
    )
    .await;
    let mid = multi["id"].as_str().unwrap();
    let (s, p) = call(
        &api,
        Method::POST,
        &format!("/polls/{mid}/votes"),
        &max,
        Some(json!({"choices": [0, 2]})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(p["options"][2]["votes"], 1);
    let (_, list) = api
        .call(Method::GET, "/channels/lea-live/polls", None, None)
        .await;
    assert_eq!(list.as_array().unwrap().len(), 2);
}

both!(questions);
async fn questions(b: Backend) {
    let Some(api) = Api::start(b, roomy()).await else {
        return;
    };
    let (lea, max, ned) = room(&api).await;
    let mut viewer = Live::open(&api, None, None).await;
    viewer.until("history").await;
    let ask = |t: &str, text: &str| {
        let (api, t, text) = (&api, t.to_owned(), text.to_owned());
        async move {
            call(
                api,
                Method::POST,
                "/questions",
                &t,
                Some(json!({ "text": text })),
            )
            .await
        }
    };
    let (s, q1) = ask(&max, "How do you light the set?").await;
    assert_eq!(s, StatusCode::CREATED, "{q1}");
    let (_, q2) = ask(&ned, "What camera is that?").await;
    assert_eq!(
        viewer.until("question").await["question"]["text"],
        "How do you light the set?"
    );
    let (id1, id2) = (q1["id"].as_str().unwrap(), q2["id"].as_str().unwrap());
    let up = |t: &str, id: &str| {
        let (api, t, id) = (&api, t.to_owned(), id.to_owned());
        async move {
            call(
                api,
                Method::POST,
                &format!("/questions/{id}/upvote"),
                &t,
                None,
            )
            .await
        }
    };
    assert_eq!(up(&max, id2).await.1["upvotes"], 1);
    assert_eq!(up(&lea, id2).await.1["upvotes"], 2);
    assert_eq!(
        up(&max, id2).await.0,
        StatusCode::CONFLICT,
        "one upvote each"
    );
    let (_, by_votes) = api
        .call(
            Method::GET,
            "/channels/lea-live/questions?sort=votes",
            None,
            None,
        )
        .await;
    assert_eq!(by_votes[0]["id"], id2);
    let (_, by_time) = api
        .call(
            Method::GET,
            "/channels/lea-live/questions?sort=time",
            None,
            None,
        )
        .await;
    assert_eq!(by_time[0]["id"], id2, "newest first");
    assert_eq!(by_time[1]["id"], id1);

    assert_eq!(
        call(
            &api,
            Method::PATCH,
            &format!("/questions/{id1}"),
            &max,
            Some(json!({"answered": true}))
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    let (s, a) = call(
        &api,
        Method::PATCH,
        &format!("/questions/{id2}"),
        &lea,
        Some(json!({"answered": true})),
    )
    .await;
    assert_eq!((s, a["answered"].as_bool()), (StatusCode::OK, Some(true)));
    loop {
        let q = viewer.until("question").await;
        if q["question"]["answered"] == true {
            break;
        }
    }
    call(
        &api,
        Method::PATCH,
        &format!("/questions/{id1}"),
        &lea,
        Some(json!({"hidden": true})),
    )
    .await;
    let (_, list) = api
        .call(Method::GET, "/channels/lea-live/questions", None, None)
        .await;
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "hidden questions are not listed"
    );
    // Moderated like chat: a timed-out user cannot ask; blocked terms apply.
    api.call(
        Method::POST,
        "/channels/lea-live/bans",
        Some(&lea),
        Some(json!({"username": "ned", "duration_secs": 60, "reason": "calm"})),
    )
    .await;
    let (s, p) = ask(&ned, "another?").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{p}");
    let (_, q) = ask(&max, "why the fuck not").await;
    assert_eq!(q["text"], "why the *** not");
}

both!(surveys);
async fn surveys(b: Backend) {
    let Some(api) = Api::start(b, roomy()).await else {
        return;
    };
    let (lea, max, ned) = room(&api).await;
    let new = json!({"title": "How was it?", "questions": [
        {"kind": "choice", "prompt": "Favourite part", "options": ["Intro", "Q&A"]},
        {"kind": "scale", "prompt": "Rate it", "min": 1, "max": 5},
        {"kind": "text", "prompt": "Anything else?"}
    ]});
    assert_eq!(
        call(&api, Method::POST, "/surveys", &max, Some(new.clone()))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    let (s, sv) = call(&api, Method::POST, "/surveys", &lea, Some(new)).await;
    assert_eq!(s, StatusCode::CREATED, "{sv}");
    let id = sv["id"].as_str().unwrap();
    let respond = |t: &str, answers: Value| {
        let (api, t, id) = (&api, t.to_owned(), id.to_owned());
        async move {
            call(
                api,
                Method::POST,
                &format!("/surveys/{id}/responses"),
                &t,
                Some(json!({ "answers": answers })),
            )
            .await
        }
    };
    assert_eq!(
        respond(&max, json!([0, 9, "x"])).await.0,
        StatusCode::UNPROCESSABLE_ENTITY,
        "off the scale"
    );
    assert_eq!(
        respond(&max, json!([0, 4])).await.0,
        StatusCode::UNPROCESSABLE_ENTITY,
        "one answer each"
    );
    assert_eq!(
        respond(&max, json!([1, 5, "=cmd|' /C calc'!A0, \"quoted\""]))
            .await
            .0,
        StatusCode::CREATED
    );
    assert_eq!(
        respond(&max, json!([0, 1, ""])).await.0,
        StatusCode::CONFLICT,
        "one response per account"
    );
    assert_eq!(
        respond(&ned, json!([1, 4, "great"])).await.0,
        StatusCode::CREATED
    );

    let (s, r) = call(
        &api,
        Method::GET,
        &format!("/surveys/{id}/results"),
        &lea,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(r["questions"][0]["counts"], json!([0, 2]));
    assert_eq!(r["questions"][1]["mean"], 4.5);
    assert_eq!(r["survey"]["responses"], 2);
    assert_eq!(
        call(
            &api,
            Method::GET,
            &format!("/surveys/{id}/results"),
            &max,
            None
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );

    let csv = reqwest::Client::new()
        .get(format!(
            "{}/channels/lea-live/surveys/{id}/results?format=csv",
            api.base
        ))
        .bearer_auth(&lea)
        .send()
        .await
        .unwrap();
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let text = csv.text().await.unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "respondent,answered_at,Favourite part,Rate it,Anything else?"
    );
    let max_row = lines.next().unwrap();
    assert!(max_row.starts_with("max,"), "{max_row}");
    assert!(
        max_row.contains(",Q&A,5,\"'=cmd|' /C calc'!A0, \"\"quoted\"\"\""),
        "quoted and defused: {max_row}"
    );

    let (s, c) = call(
        &api,
        Method::POST,
        &format!("/surveys/{id}/close"),
        &lea,
        None,
    )
    .await;
    assert_eq!((s, c["closed"].as_bool()), (StatusCode::OK, Some(true)));
    let (late, _, _) = api.user("later").await;
    assert_eq!(
        respond(&late, json!([0, 3, "late"])).await.0,
        StatusCode::CONFLICT,
        "closed"
    );
}
