//! Only public channels are listed: `GET /api/streams`, the home page's source, and the
//! per-stream metric labels never name an unlisted or private channel that is live.

use serde_json::Value;

use crate::accounts::{account, channel_with_key};
use crate::peer::{pump, Peer};
use crate::server::Server;

#[test]
fn private_and_unlisted_streams_are_not_listed_anywhere() {
    let server = Server::start(&["--auth", "accounts"]);
    account(&server, "admin");
    let amy = account(&server, "amy");
    let http = server.http();
    let mut live = Vec::new();
    for (slug, visibility) in [
        ("amy-open", "public"),
        ("amy-secret", "private"),
        ("amy-link", "unlisted"),
    ] {
        let (key, _) = channel_with_key(&server, &amy, slug, visibility);
        let (mut p, offer, pending) = Peer::publisher(&["a"]);
        p.connect_as(
            &http,
            &server.url(&format!("/whip/{slug}")),
            offer,
            pending,
            Some(&key),
        );
        live.push(p);
    }
    let mut peers: Vec<&mut Peer> = live.iter_mut().collect();
    assert!(pump(&mut peers, std::time::Duration::from_secs(5), |p| p
        .iter()
        .all(|p| p.connected)));

    let list: Value = http
        .get(server.url("/api/streams"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let names: Vec<&str> = list["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["amy-open"]);
    let metrics = server.metrics_text();
    assert!(
        metrics.contains("amy-open"),
        "the public stream is labelled"
    );
    for hidden in ["amy-secret", "amy-link"] {
        assert!(!metrics.contains(hidden), "{hidden} named in /metrics");
    }
}
