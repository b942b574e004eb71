//! Tokens and live sessions hold only while what they were minted from does: revoking or
//! rotating a key, suspending the owner, signing out everywhere, deleting a channel or
//! removing a private viewer reaches tokens and ends live sessions, in one process and on
//! a media-only node that follows the control plane's revocation list.

use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::accounts::{account, api, channel_with_key};
use crate::peer::{pump, Peer};
use crate::server::Server;

/// How long a revocation may take to show (it takes milliseconds in one process and about
/// a second through the long poll; this only bounds a failing test).
const WITHIN: Duration = Duration::from_secs(5);

/// POSTs `offer` to `path` and, if a session was made, ends it; returns the status.
fn post_once(server: &Server, path: &str, offer: &str, bearer: Option<&str>) -> u16 {
    let resp = server.post_sdp(path, offer, bearer);
    let status = resp.status().as_u16();
    if let Some(loc) = resp.headers().get("location") {
        let url = server.url(loc.to_str().unwrap());
        server.http().delete(url).send().unwrap();
    }
    status
}

fn whip_once(server: &Server, slug: &str, bearer: Option<&str>) -> u16 {
    let (_p, offer, _) = Peer::publisher(&["a"]);
    post_once(server, &format!("/whip/{slug}"), &offer, bearer)
}

fn whep_once(server: &Server, slug: &str, bearer: Option<&str>) -> u16 {
    let (_v, offer, _) = Peer::viewer();
    post_once(server, &format!("/whep/{slug}"), &offer, bearer)
}

fn publish_token(server: &Server, key: &str) -> String {
    let (s, t) = api(server, "POST", "/publish-token", Some(key), None);
    assert_eq!(s, 200, "{t}");
    t["token"].as_str().unwrap().to_owned()
}

fn revoke_key(server: &Server, owner: &str, slug: &str, id: &str) {
    let path = format!("/channels/{slug}/keys/{id}");
    let (s, _) = api(server, "DELETE", &path, Some(owner), None);
    assert_eq!(s, 204);
}

/// A new stream key of the channel; returns the key.
fn new_key(server: &Server, owner: &str, slug: &str) -> String {
    let path = format!("/channels/{slug}/keys");
    let (s, k) = api(server, "POST", &path, Some(owner), Some(json!({})));
    assert_eq!(s, 201, "{k}");
    k["key"].as_str().unwrap().to_owned()
}

fn user_id(server: &Server, token: &str) -> String {
    let (s, me) = api(server, "GET", "/me", Some(token), None);
    assert_eq!(s, 200);
    me["id"].as_str().unwrap().to_owned()
}

fn eventually(what: &str, mut ok: impl FnMut() -> bool) {
    let end = Instant::now() + WITHIN;
    while Instant::now() < end {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what}: not within {WITHIN:?}");
}

/// A connected publisher and viewer of `slug`; the viewer's server-sent event names
/// arrive on the returned channel.
fn live(server: &Server, slug: &str, bearer: &str) -> (Peer, Peer, mpsc::Receiver<String>) {
    let http = server.http();
    let (mut publ, offer, pending) = Peer::publisher(&["a"]);
    publ.connect_as(
        &http,
        &server.url(&format!("/whip/{slug}")),
        offer,
        pending,
        Some(bearer),
    );
    let (mut view, offer, pending) = Peer::viewer();
    view.connect(&http, &server.url(&format!("/whep/{slug}")), offer, pending);
    assert!(
        pump(&mut [&mut publ, &mut view], WITHIN, |p| p
            .iter()
            .all(|p| p.connected)),
        "publisher and viewer connect"
    );
    let events = server.url(&format!("{}/events", view.location.as_deref().unwrap()));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let resp = reqwest::blocking::Client::new().get(events).send().unwrap();
        for line in BufReader::new(resp).lines() {
            let Ok(line) = line else { return };
            if let Some(name) = line.strip_prefix("event:") {
                if tx.send(name.trim().to_owned()).is_err() {
                    return;
                }
            }
        }
    });
    assert_eq!(
        rx.recv_timeout(WITHIN).as_deref(),
        Ok("active"),
        "the viewer hears the stream is live"
    );
    (publ, view, rx)
}

/// Waits for `inactive` on a viewer's events while keeping the peers' timers running.
fn sees_inactive(peers: &mut [&mut Peer], rx: &mpsc::Receiver<String>) -> bool {
    let mut seen = false;
    pump(peers, WITHIN, |_| {
        while let Ok(name) = rx.try_recv() {
            seen |= name == "inactive";
        }
        seen
    })
}

#[test]
fn publish_tokens_die_with_their_key_and_their_owners_session() {
    let server = Server::start(&["--auth", "accounts"]);
    let admin = account(&server, "admin");
    let amy = account(&server, "amy");
    let amy_id = user_id(&server, &amy);
    let (key, key_id) = channel_with_key(&server, &amy, "amy-tv", "public");

    // Rotation: the old key's tokens stop, the new key's work.
    let old = publish_token(&server, &key);
    assert_eq!(whip_once(&server, "amy-tv", Some(&old)), 201);
    let (s, rotated) = api(
        &server,
        "POST",
        &format!("/channels/amy-tv/keys/{key_id}/rotate"),
        Some(&amy),
        None,
    );
    assert_eq!(s, 201);
    assert_eq!(whip_once(&server, "amy-tv", Some(&old)), 401, "rotated");
    let rotated_key = rotated["key"].as_str().unwrap();
    let new_id = rotated["id"].as_str().unwrap();
    let token = publish_token(&server, rotated_key);
    assert_eq!(whip_once(&server, "amy-tv", Some(&token)), 201);

    // Revocation.
    revoke_key(&server, &amy, "amy-tv", new_id);
    assert_eq!(whip_once(&server, "amy-tv", Some(&token)), 401, "revoked");

    // Signing out everywhere: tokens minted before stop, fresh ones work.
    let k3 = new_key(&server, &amy, "amy-tv");
    let before = publish_token(&server, &k3);
    let (s, _) = api(&server, "POST", "/auth/signout-all", Some(&amy), None);
    assert_eq!(s, 204);
    assert_eq!(
        whip_once(&server, "amy-tv", Some(&before)),
        401,
        "signed out"
    );
    let after = publish_token(&server, &k3);
    assert_eq!(whip_once(&server, "amy-tv", Some(&after)), 201);

    // Suspension.
    let (s, _) = api(
        &server,
        "POST",
        &format!("/admin/users/{amy_id}/suspend"),
        Some(&admin),
        None,
    );
    assert_eq!(s, 200);
    let refused = whip_once(&server, "amy-tv", Some(&after));
    assert!(refused == 401 || refused == 403, "suspended: {refused}");
    assert_eq!(whip_once(&server, "amy-tv", Some(&k3)), 403, "suspended");
}

#[test]
fn tokens_are_bound_to_the_channel_not_its_name() {
    let server = Server::start(&["--auth", "accounts"]);
    account(&server, "admin");
    let amy = account(&server, "amy");
    let bo = account(&server, "bo_b");
    let (key, _) = channel_with_key(&server, &amy, "shared", "private");
    let publish = publish_token(&server, &key);
    let (s, view) = api(
        &server,
        "POST",
        "/channels/shared/viewer-token",
        Some(&amy),
        None,
    );
    assert_eq!(s, 200);
    let view = view["token"].as_str().unwrap().to_owned();
    assert_eq!(whep_once(&server, "shared", Some(&view)), 201);

    // Amy deletes the channel; Bo makes a private one with the same name.
    let (s, _) = api(&server, "DELETE", "/channels/shared", Some(&amy), None);
    assert_eq!(s, 204);
    let (s, _) = api(
        &server,
        "POST",
        "/channels",
        Some(&bo),
        Some(json!({"slug": "shared", "title": "Bo's", "visibility": "private"})),
    );
    assert_eq!(s, 201);
    assert_eq!(
        whip_once(&server, "shared", Some(&publish)),
        401,
        "an old publish token does not publish into the new channel"
    );
    assert_eq!(
        whep_once(&server, "shared", Some(&view)),
        403,
        "an old viewer token does not open the new private channel"
    );
}

#[test]
fn a_removed_private_viewer_can_no_longer_use_their_token() {
    let server = Server::start(&["--auth", "accounts"]);
    account(&server, "admin");
    let amy = account(&server, "amy");
    let cy = account(&server, "cy_x");
    channel_with_key(&server, &amy, "amy-club", "private");
    let (s, _) = api(
        &server,
        "POST",
        "/channels/amy-club/viewers",
        Some(&amy),
        Some(json!({"username": "cy_x"})),
    );
    assert_eq!(s, 204);
    let (s, t) = api(
        &server,
        "POST",
        "/channels/amy-club/viewer-token",
        Some(&cy),
        None,
    );
    assert_eq!(s, 200);
    let token = t["token"].as_str().unwrap().to_owned();
    assert_eq!(whep_once(&server, "amy-club", Some(&token)), 201);
    let (s, _) = api(
        &server,
        "DELETE",
        "/channels/amy-club/viewers/cy_x",
        Some(&amy),
        None,
    );
    assert_eq!(s, 204);
    assert_eq!(whep_once(&server, "amy-club", Some(&token)), 401);
}

#[test]
fn revoking_a_key_or_suspending_the_owner_ends_the_live_broadcast() {
    let server = Server::start(&["--auth", "accounts"]);
    let admin = account(&server, "admin");
    let amy = account(&server, "amy");
    let amy_id = user_id(&server, &amy);
    let (key, key_id) = channel_with_key(&server, &amy, "amy-tv", "public");

    let (mut publ, mut view, events) = live(&server, "amy-tv", &key);
    assert_eq!(server.sessions(), 2);
    revoke_key(&server, &amy, "amy-tv", &key_id);
    assert!(
        sees_inactive(&mut [&mut publ, &mut view], &events),
        "the viewer is told the broadcast ended"
    );
    eventually("the publisher's session ends", || server.sessions() == 1);
    drop((publ, view));

    // Suspension ends a broadcast made with a live key, and its private viewers too.
    let k2 = new_key(&server, &amy, "amy-tv");
    let (mut publ, mut view, events) = live(&server, "amy-tv", &k2);
    let (s, _) = api(
        &server,
        "POST",
        &format!("/admin/users/{amy_id}/suspend"),
        Some(&admin),
        None,
    );
    assert_eq!(s, 200);
    assert!(
        sees_inactive(&mut [&mut publ, &mut view], &events),
        "the viewer is told the broadcast ended"
    );
}

#[test]
fn deleting_the_channel_ends_its_broadcast() {
    let server = Server::start(&["--auth", "accounts"]);
    account(&server, "admin");
    let amy = account(&server, "amy");
    let (key, _) = channel_with_key(&server, &amy, "amy-tv", "public");
    let (mut publ, mut view, events) = live(&server, "amy-tv", &key);
    let (s, _) = api(&server, "DELETE", "/channels/amy-tv", Some(&amy), None);
    assert_eq!(s, 204);
    assert!(sees_inactive(&mut [&mut publ, &mut view], &events));
    eventually("both sessions end", || server.sessions() == 0);
}

#[test]
fn a_media_only_node_follows_the_revocation_list() {
    let control = Server::start(&["--auth", "accounts"]);
    account(&control, "admin");
    let amy = account(&control, "amy");
    let (key, key_id) = channel_with_key(&control, &amy, "amy-tv", "public");
    let (_, signing) = api(&control, "GET", "/signing-key", None, None);
    let media = Server::start(&[
        "--auth",
        "tokens",
        "--token-public-key",
        signing["public_key"].as_str().unwrap(),
        "--control-plane",
        &control.base,
    ]);
    let token = publish_token(&control, &key);
    let http = media.http();
    let (mut publ, offer, pending) = Peer::publisher(&["a"]);
    publ.connect_as(
        &http,
        &media.url("/whip/amy-tv"),
        offer,
        pending,
        Some(&token),
    );
    assert!(pump(&mut [&mut publ], WITHIN, |p| p[0].connected));
    assert_eq!(media.sessions(), 1);

    revoke_key(&control, &amy, "amy-tv", &key_id);
    eventually("the media node ends the broadcast", || {
        publ.poll();
        media.sessions() == 0
    });
    assert_eq!(whip_once(&media, "amy-tv", Some(&token)), 401);

    // Signing out everywhere reaches the media node's token checks too.
    let token = publish_token(&control, &new_key(&control, &amy, "amy-tv"));
    assert_eq!(whip_once(&media, "amy-tv", Some(&token)), 201);
    let (s, _) = api(&control, "POST", "/auth/signout-all", Some(&amy), None);
    assert_eq!(s, 204);
    eventually("the media node refuses the older token", || {
        whip_once(&media, "amy-tv", Some(&token)) == 401
    });
}

/// A leaked signing key rotated out (`rotate-signing-key --delay 0 --overlap 0`): a
/// media-only node takes tokens of the new key and refuses the old key's, with no restart
/// and no `--token-public-key` change.
#[test]
fn a_media_only_node_follows_a_signing_key_rotation() {
    let data = crate::server::temp_dir("data");
    let control = Server::launch(
        &["--auth", "accounts"],
        &data,
        std::process::Stdio::inherit(),
        "warn",
    );
    account(&control, "admin");
    let amy = account(&control, "amy");
    let (key, _) = channel_with_key(&control, &amy, "amy-tv", "public");
    let (_, signing) = api(&control, "GET", "/signing-key", None, None);
    let old_key = signing["public_key"].as_str().unwrap().to_owned();
    let media = Server::start(&[
        "--auth",
        "tokens",
        "--token-public-key",
        &old_key,
        "--control-plane",
        &control.base,
    ]);
    let old = publish_token(&control, &key);
    assert_eq!(whip_once(&media, "amy-tv", Some(&old)), 201);

    let out = std::process::Command::new(crate::server::cascade_bin())
        .args([
            "rotate-signing-key",
            "--delay",
            "0",
            "--overlap",
            "0",
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // The running control plane loads the new key within its 30 s reload.
    let end = Instant::now() + Duration::from_secs(45);
    while api(&control, "GET", "/signing-key", None, None).1["public_key"] == old_key.as_str() {
        assert!(
            Instant::now() < end,
            "the control plane never took the new key"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let new = publish_token(&control, &key);
    assert_eq!(
        whip_once(&media, "amy-tv", Some(&new)),
        201,
        "a token of the new key, on the node started with the old one"
    );
    assert_eq!(
        whip_once(&media, "amy-tv", Some(&old)),
        401,
        "a token of the retired key"
    );
}

#[test]
fn deleting_the_account_ends_its_broadcast() {
    let server = Server::start(&["--auth", "accounts"]);
    account(&server, "admin");
    let amy = account(&server, "amy");
    let (key, _) = channel_with_key(&server, &amy, "amy-tv", "public");
    let (mut publ, mut view, events) = live(&server, "amy-tv", &key);
    let (s, _) = api(
        &server,
        "DELETE",
        "/me",
        Some(&amy),
        Some(json!({"current_password": "pw of amy 123"})),
    );
    assert_eq!(s, 204);
    assert!(sees_inactive(&mut [&mut publ, &mut view], &events));
    eventually("both sessions end", || server.sessions() == 0);
}

/// A paywall turned on ends the sessions of those it no longer admits, at once: the
/// anonymous viewer's session ends (its player is told `ended`) and it cannot join
/// again; the owner, watching with her viewer token, watches on.
#[test]
fn closing_the_paywall_ends_the_sessions_it_no_longer_admits() {
    let server = Server::start(&["--auth", "accounts"]);
    account(&server, "admin");
    let amy = account(&server, "amy");
    let (key, _) = channel_with_key(&server, &amy, "amy-show", "public");
    let (mut publ, mut anon, events) = live(&server, "amy-show", &key);

    let (s, t) = api(
        &server,
        "POST",
        "/channels/amy-show/viewer-token",
        Some(&amy),
        None,
    );
    assert_eq!(s, 200, "{t}");
    let (mut own, offer, pending) = Peer::viewer();
    own.connect_as(
        &server.http(),
        &server.url("/whep/amy-show"),
        offer,
        pending,
        t["token"].as_str(),
    );
    assert!(
        pump(&mut [&mut publ, &mut anon, &mut own], WITHIN, |p| p
            .iter()
            .all(|p| p.connected)),
        "the owner's viewer connects"
    );
    assert_eq!(server.sessions(), 3);

    let (s, p) = api(
        &server,
        "PUT",
        "/channels/amy-show/paywall",
        Some(&amy),
        Some(json!({"subscribers_only": true})),
    );
    assert_eq!(s, 200, "{p}");
    let mut told = false;
    pump(&mut [&mut publ, &mut anon, &mut own], WITHIN, |_| {
        while let Ok(name) = events.try_recv() {
            told |= name == "ended";
        }
        told
    });
    assert!(
        told,
        "the anonymous viewer's player is told its session ended"
    );
    eventually("the anonymous viewer's session ends", || {
        server.sessions() == 2
    });
    assert_eq!(
        whep_once(&server, "amy-show", None),
        403,
        "and it cannot join again"
    );
    // The owner's session (and the publisher's) go on.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(server.sessions(), 2);
}
