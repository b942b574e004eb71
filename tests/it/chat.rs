//! Chat over a WHEP session's data channel against real `cascade serve` processes: the
//! room served in process, and relayed by a media-only node to its control plane.

use std::time::Duration;

use serde_json::{json, Value};

use crate::accounts::{account, api, channel_with_key};
use crate::peer::{pump, Peer};
use crate::server::Server;

const WITHIN: Duration = Duration::from_secs(10);

/// The frames of `type` the peer's channel received (batches unpacked).
fn frames(p: &Peer, kind: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for t in &p.channel_texts {
        let v: Value = serde_json::from_str(t).unwrap();
        let list = if v["type"] == "batch" {
            v["events"].as_array().unwrap().clone()
        } else {
            vec![v]
        };
        out.extend(list.into_iter().filter(|e| e["type"] == kind));
    }
    out
}

/// Connects a viewer with a `chat` channel to `media`'s WHEP for `slug`, says hello, and
/// waits for the history.
fn chat_viewer(media: &Server, slug: &str, bearer: Option<&str>, hello: Value) -> Peer {
    let http = media.http();
    let (mut v, offer, pending) = Peer::viewer_with_channel();
    v.connect_as(
        &http,
        &media.url(&format!("/whep/{slug}")),
        offer,
        pending,
        bearer,
    );
    assert!(
        pump(&mut [&mut v], WITHIN, |p| p[0].channel.is_some()),
        "channel open"
    );
    v.send_text(&hello.to_string());
    assert!(
        pump(&mut [&mut v], WITHIN, |p| !frames(p[0], "history")
            .is_empty()),
        "welcome and history over the data channel: {:?}",
        v.channel_texts
    );
    v
}

#[test]
fn chat_over_a_whep_data_channel() {
    let server = Server::start(&["--auth", "accounts"]);
    account(&server, "admin");
    let ann = account(&server, "ann");
    let bob = account(&server, "bob");
    channel_with_key(&server, &ann, "ann-tv", "public");
    let (s, _) = api(
        &server,
        "POST",
        "/channels/ann-tv/chat/messages",
        Some(&ann),
        Some(json!({"text": "welcome all"})),
    );
    assert_eq!(s, 201);

    let mut v = chat_viewer(
        &server,
        "ann-tv",
        None,
        json!({"type": "hello", "token": bob}),
    );
    let welcome = &frames(&v, "welcome")[0];
    assert_eq!(welcome["user"]["username"], "bob");
    assert_eq!(
        frames(&v, "history")[0]["messages"][0]["text"],
        "welcome all"
    );

    // Posted over REST, received over the channel; posted over the channel, acked.
    api(
        &server,
        "POST",
        "/channels/ann-tv/chat/messages",
        Some(&ann),
        Some(json!({"text": "live now"})),
    );
    assert!(pump(&mut [&mut v], WITHIN, |p| frames(p[0], "message")
        .iter()
        .any(|m| m["message"]["text"] == "live now")));
    v.send_text(&json!({"type": "send", "text": "hi ann", "nonce": "b1"}).to_string());
    assert!(pump(&mut [&mut v], WITHIN, |p| !frames(p[0], "ack").is_empty()));
    assert_eq!(frames(&v, "ack")[0]["nonce"], "b1");
    let (_, h) = api(&server, "GET", "/channels/ann-tv/chat/messages", None, None);
    assert_eq!(
        h["messages"].as_array().unwrap().last().unwrap()["text"],
        "hi ann"
    );

    // Garbage on the channel: an error frame, the session and the channel go on.
    v.send_text("{not json");
    assert!(pump(&mut [&mut v], WITHIN, |p| frames(p[0], "error")
        .iter()
        .any(|e| e["code"] == "bad_frame")));
    v.send_text(r#"{"type":"ping"}"#);
    assert!(pump(&mut [&mut v], WITHIN, |p| !frames(p[0], "pong").is_empty()));
    assert!(v.connected);

    // The node's /metrics counts the three messages stored, not a refused one.
    let (s, _) = api(
        &server,
        "POST",
        "/channels/ann-tv/chat/messages",
        Some(&ann),
        Some(json!({ "text": "x".repeat(600) })),
    );
    assert_eq!(s, 422);
    assert_eq!(server.metric("cascade_chat_messages_total"), 3.0);
}

#[test]
fn a_media_only_node_relays_chat_to_its_control_plane() {
    let control = Server::start(&["--auth", "accounts"]);
    account(&control, "admin");
    let ann = account(&control, "ann");
    channel_with_key(&control, &ann, "ann-tv", "public");
    let (_, signing) = api(&control, "GET", "/signing-key", None, None);
    let media = Server::start(&[
        "--auth",
        "tokens",
        "--token-public-key",
        signing["public_key"].as_str().unwrap(),
        "--control-plane",
        &control.base,
    ]);
    let (s, vt) = api(
        &control,
        "POST",
        "/channels/ann-tv/viewer-token",
        None,
        None,
    );
    assert_eq!(s, 200, "{vt}");
    let mut v = chat_viewer(
        &media,
        "ann-tv",
        vt["token"].as_str(),
        json!({"type": "hello"}),
    );
    assert_eq!(frames(&v, "welcome")[0]["role"], "anonymous");
    api(
        &control,
        "POST",
        "/channels/ann-tv/chat/messages",
        Some(&ann),
        Some(json!({"text": "via the relay"})),
    );
    assert!(pump(&mut [&mut v], WITHIN, |p| frames(p[0], "message")
        .iter()
        .any(|m| m["message"]["text"] == "via the relay")));
}
