//! The control plane meeting the media node through the real HTTP handlers: channel keys
//! on WHIP, viewer tokens on WHEP, tokens checked offline by a media-only node, backup
//! and restore of a live database, and secrets kept out of the log.

use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::peer::Peer;
use crate::server::{temp_dir, Server};

/// A JSON call on the API; returns status and body.
pub(crate) fn api(
    server: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = server.http().request(
        method.parse().unwrap(),
        server.url(&format!("/api/v1{path}")),
    );
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Signs up and in; returns the access token.
pub(crate) fn account(server: &Server, name: &str) -> String {
    let pw = format!("pw of {name} 123");
    let (s, _) = api(
        server,
        "POST",
        "/auth/signup",
        None,
        Some(json!({"email": format!("{name}@example.com"), "username": name, "password": pw})),
    );
    assert_eq!(s, 202);
    let (s, pair) = api(
        server,
        "POST",
        "/auth/signin",
        None,
        Some(json!({"login": name, "password": pw})),
    );
    assert_eq!(s, 200, "{pair}");
    pair["access_token"].as_str().unwrap().to_owned()
}

/// Creates a channel and a key; returns the key.
pub(crate) fn channel_with_key(
    server: &Server,
    token: &str,
    slug: &str,
    visibility: &str,
) -> (String, String) {
    let (s, _) = api(
        server,
        "POST",
        "/channels",
        Some(token),
        Some(json!({"slug": slug, "title": slug, "visibility": visibility})),
    );
    assert_eq!(s, 201);
    let (s, k) = api(
        server,
        "POST",
        &format!("/channels/{slug}/keys"),
        Some(token),
        Some(json!({"label": "test"})),
    );
    assert_eq!(s, 201);
    (
        k["key"].as_str().unwrap().to_owned(),
        k["id"].as_str().unwrap().to_owned(),
    )
}

pub(crate) fn whip(server: &Server, slug: &str, key: Option<&str>) -> u16 {
    let (_p, offer, _) = Peer::publisher(&["a"]);
    server
        .post_sdp(&format!("/whip/{slug}"), &offer, key)
        .status()
        .as_u16()
}

pub(crate) fn whep(server: &Server, slug: &str, token: Option<&str>) -> u16 {
    let (_v, offer, _) = Peer::viewer();
    server
        .post_sdp(&format!("/whep/{slug}"), &offer, token)
        .status()
        .as_u16()
}

#[test]
fn whip_takes_the_channels_live_key_and_whep_a_viewer_token() {
    let server = Server::start(&["--auth", "accounts"]);
    account(&server, "admin");
    let amy = account(&server, "amy");
    let bo = account(&server, "bo_b");
    let (amy_key, amy_key_id) = channel_with_key(&server, &amy, "amy-live", "public");
    let (bo_key, _) = channel_with_key(&server, &bo, "bo-private", "private");

    assert_eq!(whip(&server, "amy-live", None), 401);
    assert_eq!(whip(&server, "amy-live", Some("csk_not-a-key")), 401);
    assert_eq!(
        whip(&server, "amy-live", Some(&bo_key)),
        403,
        "a key publishes to its own channel only"
    );
    assert_eq!(whip(&server, "amy-live", Some(&amy_key)), 201);
    // Revoked: refused with 401.
    let (s, _) = api(
        &server,
        "DELETE",
        &format!("/channels/amy-live/keys/{amy_key_id}"),
        Some(&amy),
        None,
    );
    assert_eq!(s, 204);
    assert_eq!(whip(&server, "amy-live", Some(&amy_key)), 401);

    // WHEP: public is open; private needs a viewer token for that channel.
    assert_eq!(whep(&server, "amy-live", None), 201);
    assert_eq!(whep(&server, "no-such-channel", None), 404);
    assert_eq!(whep(&server, "bo-private", None), 401);
    let (_, public_token) = api(
        &server,
        "POST",
        "/channels/amy-live/viewer-token",
        None,
        None,
    );
    assert_eq!(
        whep(&server, "bo-private", public_token["token"].as_str()),
        403,
        "a viewer token for another channel"
    );
    let (s, own) = api(
        &server,
        "POST",
        "/channels/bo-private/viewer-token",
        Some(&bo),
        None,
    );
    assert_eq!(s, 200);
    assert_eq!(whep(&server, "bo-private", own["token"].as_str()), 201);
}

#[test]
fn a_media_only_node_checks_signed_tokens_offline() {
    let control = Server::start(&["--auth", "accounts"]);
    account(&control, "admin");
    let cy = account(&control, "cy_x");
    let (key, _) = channel_with_key(&control, &cy, "cy-tv", "public");
    let (_, signing) = api(&control, "GET", "/signing-key", None, None);
    let public_key = signing["public_key"].as_str().unwrap();
    let media = Server::start(&[
        "--auth",
        "tokens",
        "--token-public-key",
        public_key,
        "--control-plane",
        &control.base,
    ]);

    let (s, pt) = api(&control, "POST", "/publish-token", Some(&key), None);
    assert_eq!(s, 200);
    let token = pt["token"].as_str().unwrap();
    // The control plane is not asked: stop it first.
    drop(control);
    assert_eq!(whip(&media, "cy-tv", Some(token)), 201);
    assert_eq!(whip(&media, "other", Some(token)), 403);
    assert_eq!(
        whip(&media, "cy-tv", Some(&key)),
        401,
        "raw keys need the database"
    );
    assert_eq!(whip(&media, "cy-tv", None), 401);
    assert_eq!(
        whep(&media, "cy-tv", None),
        401,
        "offline nodes take viewer tokens only"
    );
}

#[test]
fn backup_while_writing_then_restore() {
    let data = temp_dir("live");
    let server = Server::launch(&["--auth", "accounts"], &data, Stdio::inherit(), "warn");
    account(&server, "admin");
    let users: Vec<(String, String)> = ["dee", "eli", "fin", "gil"]
        .iter()
        .map(|n| (n.to_string(), account(&server, n)))
        .collect();
    // Writers: the users make channels, paced so that they are still writing when the
    // backup ends on a loaded machine (4 users × 20 channels × 40 ms ≥ 3.2 s; more users
    // would meet the sign-up limit), until the test has seen writes after the backup.
    let made = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (made, stop) = (made.clone(), stop.clone());
        let (base, users) = (server.base.clone(), users.clone());
        std::thread::spawn(move || {
            let http = reqwest::blocking::Client::new();
            for i in 0..20 {
                for (name, token) in &users {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(40));
                    let slug = format!("{name}-{i:02}");
                    let r = http
                        .post(format!("{base}/api/v1/channels"))
                        .bearer_auth(token)
                        .json(&json!({"slug": slug, "title": slug}))
                        .send()
                        .unwrap();
                    assert_eq!(r.status(), 201);
                    made.lock().unwrap().push(slug);
                }
            }
        })
    };
    while made.lock().unwrap().len() < 12 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let before: Vec<String> = made.lock().unwrap().clone();
    let file = temp_dir("backup").join("cascade-backup.db");
    let out = Command::new(crate::server::cascade_bin())
        .arg("backup")
        .arg("--data-dir")
        .arg(&data)
        .arg("--to")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let during = made.lock().unwrap().len();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while made.lock().unwrap().len() < during + 4
        && !writer.is_finished()
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    let all: Vec<String> = made.lock().unwrap().clone();
    assert!(
        during < all.len(),
        "writes went on after the backup was taken"
    );
    drop(server);

    // Restore into a fresh data directory and serve from it.
    let fresh = temp_dir("restored");
    let out = Command::new(crate::server::cascade_bin())
        .arg("restore")
        .arg("--data-dir")
        .arg(&fresh)
        .arg("--from")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The secret key that seals the signing key is not in the backup: it travels apart.
    std::fs::copy(data.join("secret.key"), fresh.join("secret.key")).unwrap();
    let restored = Server::launch(&["--auth", "accounts"], &fresh, Stdio::inherit(), "warn");
    let mut back = Vec::new();
    for (name, _) in &users {
        let (s, pair) = api(
            &restored,
            "POST",
            "/auth/signin",
            None,
            Some(json!({"login": name, "password": format!("pw of {name} 123")})),
        );
        assert_eq!(s, 200, "{name} came back");
        let token = pair["access_token"].as_str().unwrap();
        let (_, page) = api(
            &restored,
            "GET",
            "/me/channels?per_page=100",
            Some(token),
            None,
        );
        back.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["slug"].as_str().unwrap().to_owned()),
        );
    }
    for slug in &before {
        assert!(
            back.contains(slug),
            "{slug}, made before the backup, is missing"
        );
    }
    assert!(back.iter().all(|s| all.contains(s)));
    assert!(
        back.len() >= before.len() && back.len() <= during,
        "{} {} {}",
        before.len(),
        back.len(),
        during
    );
    // A file that is not a backup is refused, and the database is untouched.
    let junk = temp_dir("junk").join("junk.db");
    std::fs::write(&junk, b"not a database").unwrap();
    let out = Command::new(crate::server::cascade_bin())
        .args(["restore", "--data-dir"])
        .arg(&fresh)
        .arg("--from")
        .arg(&junk)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a Cascade database"));
}

#[test]
fn secrets_never_reach_the_log() {
    let dir = temp_dir("log");
    let log = dir.join("stderr.log");
    let server = Server::launch(
        &["--auth", "accounts"],
        &dir.join("data"),
        Stdio::from(std::fs::File::create(&log).unwrap()),
        "debug",
    );
    account(&server, "admin");
    let pw = "a very secret password";
    api(
        &server,
        "POST",
        "/auth/signup",
        None,
        Some(json!({"email": "hid@example.com", "username": "hid", "password": pw})),
    );
    api(
        &server,
        "POST",
        "/auth/signin",
        None,
        Some(json!({"login": "hid", "password": "wrong password!"})),
    );
    let (_, pair) = api(
        &server,
        "POST",
        "/auth/signin",
        None,
        Some(json!({"login": "hid", "password": pw})),
    );
    let access = pair["access_token"].as_str().unwrap().to_owned();
    let refresh = pair["refresh_token"].as_str().unwrap().to_owned();
    let (_, again) = api(
        &server,
        "POST",
        "/auth/refresh",
        None,
        Some(json!({"refresh_token": refresh})),
    );
    let (key, _) = channel_with_key(&server, &access, "hid-tv", "public");
    assert_eq!(whip(&server, "hid-tv", Some(&key)), 201);
    assert_eq!(whip(&server, "hid-tv", Some(&format!("{key}x"))), 401);
    api(&server, "POST", "/publish-token", Some(&key), None);
    assert!(server.terminate());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.lines().count() > 5, "debug logging was on: {text}");
    for secret in [
        pw,
        &access,
        &refresh,
        again["refresh_token"].as_str().unwrap(),
        &key,
        &key[4..20],
    ] {
        assert!(!text.contains(secret), "a secret reached the log");
    }
}
