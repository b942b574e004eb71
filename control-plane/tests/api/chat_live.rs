//! The live room over a WebSocket: hello, history, live events to every client, posting
//! with acks and refusals, reconnecting without duplicates, and two control planes on one
//! database joined by NATS.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message as Ws;

use crate::both;
use crate::chat::{room, say};
use crate::harness::{roomy, Api, Backend};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One live client of `lea-live`.
pub struct Live {
    ws: Socket,
    queue: VecDeque<Value>,
}

impl Live {
    pub async fn open(api: &Api, token: Option<&str>, since: Option<i64>) -> Live {
        let url = format!(
            "{}/channels/lea-live/chat/ws",
            api.base.replacen("http://", "ws://", 1)
        );
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let mut live = Live {
            ws,
            queue: VecDeque::new(),
        };
        live.send(json!({"type": "hello", "token": token, "since": since}))
            .await;
        live
    }

    pub async fn send(&mut self, v: Value) {
        self.ws.send(Ws::text(v.to_string())).await.unwrap();
    }

    /// The next event (batches unpacked); panics after 5 s of nothing.
    pub async fn next(&mut self) -> Value {
        loop {
            if let Some(v) = self.queue.pop_front() {
                return v;
            }
            let msg = tokio::time::timeout(Duration::from_secs(5), self.ws.next())
                .await
                .expect("no frame within 5 s")
                .expect("socket ended")
                .unwrap();
            let Ws::Text(t) = msg else { continue };
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if v["type"] == "batch" {
                self.queue
                    .extend(v["events"].as_array().unwrap().iter().cloned());
            } else {
                self.queue.push_back(v);
            }
        }
    }

    /// Skips to the next event of `kind`.
    pub async fn until(&mut self, kind: &str) -> Value {
        loop {
            let v = self.next().await;
            if v["type"] == kind {
                return v;
            }
        }
    }

    /// Whether anything arrives within `wait`.
    pub async fn quiet(&mut self, wait: Duration) -> bool {
        self.queue.is_empty() && tokio::time::timeout(wait, self.ws.next()).await.is_err()
    }
}

both!(live_room);
async fn live_room(b: Backend) {
    let Some(api) = Api::start(b, roomy()).await else {
        return;
    };
    let (lea, max, _ned) = room(&api).await;
    say(&api, &lea, "before anyone came").await;

    let mut anon = Live::open(&api, None, None).await;
    let w = anon.next().await;
    assert_eq!(
        (w["type"].as_str(), w["role"].as_str()),
        (Some("welcome"), Some("anonymous"))
    );
    assert_eq!(w["user"], Value::Null);
    let h = anon.next().await;
    assert_eq!(h["type"], "history");
    assert_eq!(h["messages"][0]["text"], "before anyone came");

    let mut m = Live::open(&api, Some(&max), None).await;
    let w = m.next().await;
    assert_eq!(w["user"]["username"], "max");
    assert_eq!(w["role"], "viewer");
    m.until("history").await;

    // A post over the socket: acked to its author, delivered to everyone.
    m.send(json!({"type": "send", "text": "hi from the socket", "nonce": "n1"}))
        .await;
    let mut ack = None;
    let mut seen = false;
    while ack.is_none() || !seen {
        let v = m.next().await;
        match v["type"].as_str() {
            Some("ack") => ack = Some(v),
            Some("message") => seen = v["message"]["text"] == "hi from the socket",
            _ => {}
        }
    }
    let ack = ack.unwrap();
    assert_eq!(ack["nonce"], "n1");
    let got = anon.until("message").await;
    assert_eq!(got["message"]["text"], "hi from the socket");
    assert_eq!(got["message"]["id"], ack["id"]);

    // Posted over REST: the same event.
    say(&api, &lea, "from rest").await;
    assert_eq!(anon.until("message").await["message"]["text"], "from rest");

    // Refusals carry the code and reason.
    anon.send(json!({"type": "send", "text": "anon?", "nonce": "a"}))
        .await;
    let e = anon.until("error").await;
    assert_eq!(
        (e["code"].as_str(), e["status"].as_u64()),
        (Some("unauthorized"), Some(401))
    );
    anon.send(json!({"type": "nonsense"})).await;
    assert_eq!(anon.until("error").await["code"], "bad_frame");
    anon.ws.send(Ws::binary(vec![1, 2, 3])).await.unwrap();
    assert_eq!(anon.until("error").await["code"], "bad_frame");
    m.send(json!({"type": "send", "text": "x".repeat(600), "nonce": "long"}))
        .await;
    let e = m.until("error").await;
    assert_eq!(
        (e["code"].as_str(), e["nonce"].as_str()),
        (Some("too_long"), Some("long"))
    );
    // Over 8 KiB: the socket refuses the frame (axum closes it).
    anon.send(json!({"type": "ping"})).await;
    assert_eq!(anon.until("pong").await["type"], "pong");

    // Deletion reaches every client.
    let id = got["message"]["id"].as_i64().unwrap();
    let (s, _) = api
        .call(
            Method::DELETE,
            &format!("/channels/lea-live/chat/messages/{id}"),
            Some(&lea),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(anon.until("deleted").await["ids"], json!([id]));

    // A timeout shows as the restriction on the next welcome (after `auth`).
    api.call(
        Method::POST,
        "/channels/lea-live/bans",
        Some(&lea),
        Some(json!({"username": "max", "reason": "cool down", "duration_secs": 30})),
    )
    .await;
    m.send(json!({"type": "auth", "token": max})).await;
    let w = m.until("welcome").await;
    assert_eq!(w["restriction"]["code"], "timed_out");
    m.send(json!({"type": "send", "text": "still here", "nonce": "t"}))
        .await;
    let e = m.until("error").await;
    assert!(e["detail"].as_str().unwrap().contains("cool down"), "{e}");
    assert!(e["retry_after"].as_u64().unwrap() <= 30);

    // Reconnecting with `since`: only what was missed, no duplicates.
    let (_, h) = api
        .call(Method::GET, "/channels/lea-live/chat/messages", None, None)
        .await;
    let newest = h["messages"].as_array().unwrap().last().unwrap()["id"]
        .as_i64()
        .unwrap();
    drop(anon);
    say(&api, &lea, "while you were away").await;
    let mut back = Live::open(&api, None, Some(newest)).await;
    back.until("welcome").await;
    let h = back.until("history").await;
    let texts: Vec<&str> = h["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["while you were away"]);
    assert!(
        back.quiet(Duration::from_millis(300)).await,
        "nothing twice"
    );

    // Hello must come first, and in time.
    let url = format!(
        "{}/channels/lea-live/chat/ws",
        api.base.replacen("http://", "ws://", 1)
    );
    let (mut raw, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    raw.send(Ws::text(r#"{"type":"ping"}"#)).await.unwrap();
    let Some(Ok(Ws::Text(t))) = raw.next().await else {
        panic!("an error frame first")
    };
    assert!(t.as_str().contains("say hello first"), "{t}");
}

both!(many_messages_in_order_and_batched);
async fn many_messages_in_order_and_batched(b: Backend) {
    let Some(api) = Api::start(b, roomy()).await else {
        return;
    };
    let (lea, _, _) = room(&api).await;
    let mut viewer = Live::open(&api, None, None).await;
    viewer.until("history").await;
    // The owner is exempt from flood limits: 200 posts as fast as they go.
    let mut posts = Vec::new();
    for i in 0..200 {
        let (api, lea) = (api.base.clone(), lea.clone());
        posts.push(tokio::spawn(async move {
            let c = reqwest::Client::new();
            let r = c
                .post(format!("{api}/channels/lea-live/chat/messages"))
                .bearer_auth(lea)
                .json(&json!({ "text": format!("burst {i}") }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::CREATED);
        }));
    }
    for p in posts {
        p.await.unwrap();
    }
    let mut ids = Vec::new();
    while ids.len() < 200 {
        let v = viewer.until("message").await;
        ids.push(v["message"]["id"].as_i64().unwrap());
    }
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 200, "every message once");
    assert_eq!(sorted, (1..=200).collect::<Vec<i64>>());
}

/// Two control planes on one database (replicas, or `serve` nodes sharing PostgreSQL),
/// joined by NATS: a message posted on one reaches a client of the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_through_nats() {
    let Ok(nats) = std::env::var("CASCADE_TEST_NATS") else {
        eprintln!("SKIPPED (NATS): CASCADE_TEST_NATS is not set");
        return;
    };
    let backend = if std::env::var("CASCADE_TEST_POSTGRES").is_ok() {
        Backend::Postgres
    } else {
        Backend::Sqlite
    };
    let mut config = roomy();
    config.nats_url = Some(nats.clone());
    let a = Api::start(backend, config).await.unwrap();
    let mut config = roomy();
    config.nats_url = Some(nats);
    config.secret_key = Some(a.secret.clone());
    let b = Api::on(&a.url, config).await;
    let (lea, _, _) = room(&a).await;
    let mut on_b = Live::open(&b, None, None).await;
    on_b.until("history").await;
    let mut on_a = Live::open(&a, None, None).await;
    on_a.until("history").await;
    say(&a, &lea, "posted on a").await;
    assert_eq!(
        on_b.until("message").await["message"]["text"],
        "posted on a"
    );
    assert_eq!(
        on_a.until("message").await["message"]["text"],
        "posted on a"
    );
    say(&b, &lea, "posted on b").await;
    assert_eq!(
        on_a.until("message").await["message"]["text"],
        "posted on b"
    );
    assert!(
        on_a.quiet(Duration::from_millis(300)).await,
        "each message once through the bus"
    );
}

both!(websockets_per_address_are_capped);
async fn websockets_per_address_are_capped(b: Backend) {
    let mut config = roomy();
    config.chat_per_address = 2;
    let Some(api) = Api::start(b, config).await else {
        return;
    };
    room(&api).await;
    let first = Live::open(&api, None, None).await;
    let _second = Live::open(&api, None, None).await;
    let url = format!(
        "{}/channels/lea-live/chat/ws",
        api.base.replacen("http://", "ws://", 1)
    );
    match tokio_tungstenite::connect_async(url.as_str()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 429);
            assert!(resp.headers().contains_key("retry-after"));
        }
        other => panic!("a third socket from one address: {other:?}"),
    }
    // A closed socket gives its place back.
    drop(first);
    let mut ok = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if tokio_tungstenite::connect_async(url.as_str()).await.is_ok() {
            ok = true;
            break;
        }
    }
    assert!(ok, "a place is free again");
}
