//! TURN announced to clients (RFC 9725 §4.6): every WHIP/WHEP answer and OPTIONS carries
//! the configured TURN servers in `Link` headers with fresh time-limited credentials
//! (coturn's use-auth-secret; that coturn takes them is the browser test's to show).

use std::time::{SystemTime, UNIX_EPOCH};

use crate::peer::Peer;
use crate::server::{temp_dir, Server};

fn ice_links(h: &reqwest::header::HeaderMap) -> Vec<String> {
    h.get_all("link")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter(|v| v.contains("rel=\"ice-server\""))
        .map(str::to_owned)
        .collect()
}

/// The `name="value"` parameter of a link.
fn param<'a>(link: &'a str, name: &str) -> &'a str {
    let at = link.find(&format!("{name}=\"")).expect(name) + name.len() + 2;
    let rest = &link[at..];
    &rest[..rest.find('"').unwrap()]
}

#[test]
fn answers_and_options_carry_turn_servers_with_expiring_credentials() {
    let secret = temp_dir("turn").join("secret");
    std::fs::write(&secret, "north\n").unwrap();
    let server = Server::start(&[
        "--turn-url",
        "turn:127.0.0.1:3478?transport=udp,turn:127.0.0.1:3478?transport=tcp",
        "--turn-secret-file",
        secret.to_str().unwrap(),
        "--turn-ttl",
        "600",
    ]);
    let (_, offer, _) = Peer::viewer();
    let resp = server.post_sdp("/whep/turnlive", &offer, None);
    assert_eq!(resp.status(), 201);
    let links = ice_links(resp.headers());
    assert_eq!(links.len(), 2, "{links:?}");
    assert!(
        links[0].starts_with("<turn:127.0.0.1:3478?transport=udp>"),
        "{links:?}"
    );
    assert!(
        links[1].starts_with("<turn:127.0.0.1:3478?transport=tcp>"),
        "{links:?}"
    );
    let user = param(&links[0], "username");
    let (expiry, label) = user.split_once(':').unwrap();
    assert_eq!(label, "turnlive");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expiry: u64 = expiry.parse().unwrap();
    assert!(
        (now + 590..=now + 610).contains(&expiry),
        "{expiry} vs {now}"
    );
    assert_eq!(
        param(&links[0], "credential").len(),
        28,
        "base64 of a SHA-1 HMAC"
    );
    assert_eq!(param(&links[0], "credential-type"), "password");

    let options = server
        .http()
        .request(reqwest::Method::OPTIONS, server.url("/whip/turnlive"))
        .send()
        .unwrap();
    let links = ice_links(options.headers());
    assert_eq!(links.len(), 2, "OPTIONS too: {links:?}");
}
