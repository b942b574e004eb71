//! Recording on a cluster (issue 14): a `cascade control` replica and a media-only origin
//! node (real processes). GStreamer's `webrtcbin` publishes to the origin the control
//! plane's WHIP 307 names; the origin asks the control plane whether the channel records,
//! records, and hands the finished file to the control plane (`POST
//! /api/v1/cluster/recordings`), which lists it as a video of the channel: a visitor finds
//! it through the control plane's API and GStreamer decodes its media. A node killed while
//! recording hands in what it wrote when it starts again; a file that is no recording is
//! set aside in `refused/`. After a failover to a standby ingest on a second origin, that
//! origin records the live. The endpoint refuses a wrong token, an oversized body and a
//! file that is not WebM, and lists nothing half-made.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::accounts::{account, api, channel_with_key};
use crate::ads::{cluster_node_on, CLUSTER_TOKEN};
use crate::cluster_thumbnail::listed_thumbnail;
use crate::recording::{decode, listed, publish_to, recordings, wait_exit};
use crate::server::{temp_dir, Server};

/// A control plane taking recordings of at most 4 MiB from its nodes.
fn control_plane(data: &Path) -> Server {
    Server::launch_as(
        "control",
        &["--cluster-token", CLUSTER_TOKEN, "--max-recording-mb", "4"],
        data,
        Stdio::inherit(),
        "warn",
    )
}

/// A control plane with amy's public channel `slug`, which records; its stream key.
fn recording_channel(tag: &str, slug: &str) -> (Server, String) {
    let control = control_plane(&temp_dir(tag));
    account(&control, "admin");
    let amy = account(&control, "amy");
    let (key, _) = channel_with_key(&control, &amy, slug, "public");
    let (s, r) = api(
        &control,
        "PUT",
        &format!("/channels/{slug}/recording"),
        Some(&amy),
        Some(json!({"enabled": true})),
    );
    assert_eq!((s, &r["enabled"]), (200, &json!(true)), "{r}");
    (control, key)
}

/// The origin the control plane's WHIP redirect sends `key`'s broadcaster to: the 307's
/// `Location`, a short-lived publish token in it.
pub(crate) fn whip_location(control: &Server, origin: &Server, slug: &str, key: &str) -> String {
    let location = ingest_location(control, slug, key, false);
    assert!(location.starts_with(&origin.base), "{location}");
    location
}

/// The video's media as a visitor gets it from the control plane, written to `to`.
fn fetch_media(control: &Server, video: &serde_json::Value, to: &Path) {
    let media = control
        .http()
        .get(control.url(video["media_url"].as_str().unwrap()))
        .send()
        .unwrap();
    assert_eq!(media.status(), 200);
    std::fs::write(to, media.bytes().unwrap()).unwrap();
}

#[test]
fn a_recording_made_on_an_origin_node_is_listed_by_the_control_plane_and_decodes() {
    let (control, key) = recording_channel("noderec-control", "node-rec");
    let certs = temp_dir("noderec-certs");
    crate::cluster::certificates(&certs, &["origin"]);
    let data = temp_dir("noderec-origin");
    let flags = ["--recording-grace-ms", "2000"];
    let mut origin = cluster_node_on(&certs, &control.base, "origin", "origin", &data, &flags);
    std::thread::sleep(Duration::from_secs(2));

    let location = whip_location(&control, &origin, "node-rec", &key);
    let (script, t) = publish_to(&location, None, 6);
    let live = wait_exit(script) - t;
    // The recording ends 2 s after the publisher left; the origin hands it in.
    let videos = listed(&control, "node-rec", 1);
    assert_eq!(videos.len(), 1, "{videos:?}");
    assert_eq!(videos[0]["kind"], "recording");
    let fetched = data.join("fetched.webm");
    fetch_media(&control, &videos[0], &fetched);
    let d = decode(&fetched);
    assert!(d.ok, "GStreamer decodes it: {}", d.said);
    assert_eq!(d.size, Some((320, 240)), "the publisher's picture size");
    let n = d.video_pts.len() as f64;
    let expect = live.as_secs_f64() * 30.0;
    assert!(
        n > expect * 0.7 && n < expect * 1.1,
        "{n} pictures decoded for {live:?} live at 30 fps"
    );
    assert!(
        d.audio as f64 > live.as_secs_f64() * 30.0,
        "{} audio",
        d.audio
    );
    // A node that did not see the answer sends its file again with the same key: the
    // video listed the first time is the answer, nothing is listed twice.
    let file = std::fs::read(&fetched).unwrap();
    let again = |body: Vec<u8>| {
        let (s, r) = hand_in_keyed(&control, CLUSTER_TOKEN, "node-rec", body, false, Some("k1"));
        assert_eq!(s, 201, "{r}");
        r["video"].as_str().unwrap().to_owned()
    };
    let first = again(file.clone());
    assert_eq!(again(file), first);
    assert_eq!(listed(&control, "node-rec", 2).len(), 2);

    // The node's copy is gone once the control plane took it (the node removes it when
    // the answer comes, a moment after the video is listed).
    let dir = data.join("recordings");
    assert_eq!(
        recordings_within(&dir, 10),
        Vec::<std::path::PathBuf>::new()
    );

    // Live again, and the origin is killed 4 s in: its file stays on its disk.
    let location = whip_location(&control, &origin, "node-rec", &key);
    let (script, _) = publish_to(&location, None, 30);
    std::thread::sleep(Duration::from_secs(4));
    origin.kill_hard();
    drop(script);
    let left = recordings(&dir);
    assert_eq!(left.len(), 1, "{left:?}");
    let cut = decode(&left[0]);
    assert!(cut.ok, "what was written decodes: {}", cut.said);
    // Beside it, a file that is no recording (as a damaged one would be), of a time
    // after the channel was made.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let junk = format!("node-rec-{now_ms}.webm");
    std::fs::write(dir.join(&junk), b"not a webm at all").unwrap();

    // The origin starts again on the same data: the cut file goes to the control plane,
    // which lists it with what was written; the junk is set aside, not deleted.
    let _origin = cluster_node_on(&certs, &control.base, "origin", "origin", &data, &flags);
    // (The first live's, the one handed in twice above, and this one.)
    let videos = listed(&control, "node-rec", 3);
    assert_eq!(videos.len(), 3, "{videos:?}");
    let ms: Vec<f64> = videos
        .iter()
        .map(|v| v["duration_ms"].as_f64().unwrap())
        .collect();
    let cut_s = cut.video_pts.len() as f64 / 30.0;
    assert!(
        ms.iter().any(|ms| (ms / 1000.0 - cut_s).abs() < 1.0),
        "one listed as long as the {cut_s:.1} s the killed node wrote: {ms:?}"
    );
    let newest = videos
        .iter()
        .find(|v| (v["duration_ms"].as_f64().unwrap() / 1000.0 - cut_s).abs() < 1.0)
        .unwrap();
    let served = data.join("fetched-cut.webm");
    fetch_media(&control, newest, &served);
    let d = decode(&served);
    assert!(d.ok, "GStreamer decodes what is served: {}", d.said);
    assert_eq!(d.video_pts.len(), cut.video_pts.len());
    // Handed in and set aside within a few seconds of the start.
    assert_eq!(
        recordings_within(&dir, 10),
        Vec::<std::path::PathBuf>::new()
    );
    assert_eq!(
        std::fs::read(dir.join("refused").join(&junk)).unwrap(),
        b"not a webm at all"
    );
}

/// `POST /api/v1/cluster/recordings` with `token`, a body of `body` (a stream of it when
/// `chunked`): status and problem document.
fn hand_in(
    control: &Server,
    token: &str,
    stream: &str,
    body: Vec<u8>,
    chunked: bool,
) -> (u16, serde_json::Value) {
    hand_in_keyed(control, token, stream, body, chunked, None)
}

/// [`hand_in`] with the node's key for the file.
fn hand_in_keyed(
    control: &Server,
    token: &str,
    stream: &str,
    body: Vec<u8>,
    chunked: bool,
    key: Option<&str>,
) -> (u16, serde_json::Value) {
    let body = if chunked {
        reqwest::blocking::Body::new(std::io::Cursor::new(body))
    } else {
        reqwest::blocking::Body::from(body)
    };
    let mut r = control
        .http()
        .post(control.url("/api/v1/cluster/recordings"))
        .bearer_auth(token)
        .header("content-type", "video/webm")
        .header("cascade-stream", stream)
        .header("cascade-started-ms", "1900000000000");
    if let Some(key) = key {
        r = r.header("cascade-recording-key", key);
    }
    let r = r.body(body).send();
    let r = r.unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or_default())
}

/// The status of a hand-in that says it is 5 MiB long and sends no body (yet).
fn declared_too_large(control: &Server) -> u16 {
    use std::io::{Read, Write};
    let addr = control.base.trim_start_matches("http://");
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        c,
        "POST /api/v1/cluster/recordings HTTP/1.1\r\nHost: {addr}\r\n\
         Authorization: Bearer {CLUSTER_TOKEN}\r\nContent-Type: video/webm\r\n\
         Cascade-Stream: bad-rec\r\nCascade-Started-Ms: 1900000000000\r\n\
         Content-Length: {}\r\n\r\n",
        5 * 1024 * 1024
    )
    .unwrap();
    let mut head = [0u8; 12];
    c.read_exact(&mut head).unwrap();
    // "HTTP/1.1 413"
    std::str::from_utf8(&head[9..12]).unwrap().parse().unwrap()
}

#[test]
fn the_recordings_endpoint_refuses_bad_input_and_lists_nothing_half_made() {
    let data = temp_dir("noderec-bad");
    let control = control_plane(&data);
    account(&control, "admin");
    let amy = account(&control, "amy");
    channel_with_key(&control, &amy, "bad-rec", "public");
    let junk = b"not a webm at all".to_vec();

    let (s, _) = hand_in(&control, "a wrong token", "bad-rec", junk.clone(), false);
    assert_eq!(s, 401);
    let (s, _) = hand_in(&control, &amy, "bad-rec", junk.clone(), false);
    assert_eq!(s, 401, "a user's token is not the cluster's");

    let (s, p) = hand_in(&control, CLUSTER_TOKEN, "bad-rec", junk.clone(), false);
    assert_eq!((s, &p["code"]), (422, &json!("invalid_media")), "{p}");
    assert!(
        p["detail"].as_str().unwrap().contains("not a WebM"),
        "the reason says what is wrong: {p}"
    );
    let (s, p) = hand_in(&control, CLUSTER_TOKEN, "no-such-channel", junk, false);
    assert_eq!(s, 422, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("no channel"), "{p}");

    // Over 4 MiB: said in advance (refused before a byte of the body is read), or found
    // while reading a stream of unsaid length.
    assert_eq!(declared_too_large(&control), 413);
    let big = vec![0x1a; 4 * 1024 * 1024 + 64 * 1024];
    let (s, p) = hand_in(&control, CLUSTER_TOKEN, "bad-rec", big, true);
    assert_eq!((s, &p["status"]), (413, &json!(413)), "{p}");

    // Nothing half-made: no video listed, nothing left in the staging directory.
    let (s, v) = api(
        &control,
        "GET",
        "/channels/bad-rec/videos",
        Some(&amy),
        None,
    );
    assert_eq!((s, v), (200, json!([])));
    let staged: Vec<_> = std::fs::read_dir(data.join("uploads"))
        .map(|rd| rd.filter_map(|e| Some(e.ok()?.file_name())).collect())
        .unwrap_or_default();
    assert!(staged.is_empty(), "{staged:?}");
}

/// The recordings left in `dir` once it is empty, or after `secs` seconds.
fn recordings_within(dir: &std::path::Path, secs: u64) -> Vec<std::path::PathBuf> {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while !recordings(dir).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    recordings(dir)
}

/// Where the control plane's WHIP redirect sends `key`'s broadcaster (`?backup=1`: its
/// standby encoder): the 307's `Location`.
fn ingest_location(control: &Server, slug: &str, key: &str, backup: bool) -> String {
    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let path = if backup {
        format!("/whip/{slug}?backup=1")
    } else {
        format!("/whip/{slug}")
    };
    let r = http
        .post(control.url(&path))
        .header("content-type", "application/sdp")
        .bearer_auth(key)
        .body("v=0\r\n")
        .send()
        .unwrap();
    assert_eq!(r.status(), 307);
    r.headers()["location"].to_str().unwrap().to_owned()
}

/// A broadcaster with a standby encoder on a second origin; the primary's origin dies
/// (`kill -9`): the standby, now what the cluster carries, gets live stills from its
/// origin and is recorded there, the recording listed when the live ends (the dead
/// origin's own file stays on its disk: every video listed here was made by the
/// standby's).
#[test]
fn after_a_failover_to_the_standby_ingest_its_origin_records_the_live() {
    let (control, key) = recording_channel("failrec-control", "fail-rec");
    let certs = temp_dir("failrec-certs");
    crate::cluster::certificates(&certs, &["origin1", "origin2"]);
    let flags = ["--recording-grace-ms", "2000", "--live-thumbnail-secs", "1"];
    let data = [temp_dir("failrec-origin1"), temp_dir("failrec-origin2")];
    let mut origins = [
        cluster_node_on(&certs, &control.base, "origin1", "origin", &data[0], &flags),
        cluster_node_on(&certs, &control.base, "origin2", "origin", &data[1], &flags),
    ];
    std::thread::sleep(Duration::from_secs(2));
    let on = |location: &str| {
        origins
            .iter()
            .position(|o| location.starts_with(&o.base))
            .unwrap_or_else(|| panic!("placed on an origin: {location}"))
    };
    let location = ingest_location(&control, "fail-rec", &key, false);
    let primary = on(&location);
    let (main, _) = publish_to(&location, None, 60);
    // Once the primary's origin has reported it (every second), the standby is placed
    // elsewhere.
    std::thread::sleep(Duration::from_secs(3));
    let location = ingest_location(&control, "fail-rec", &key, true);
    assert_eq!(
        on(&location),
        1 - primary,
        "the standby on the other origin"
    );
    let (standby, _) = publish_to(&location, None, 20);
    std::thread::sleep(Duration::from_secs(4));
    let standby_dir = data[1 - primary].join("recordings");
    assert_eq!(
        recordings(&standby_dir),
        Vec::<std::path::PathBuf>::new(),
        "the standby's origin records nothing while the primary is live"
    );

    let deadline = Instant::now() + Duration::from_secs(10);
    let before = loop {
        if let Some(url) = listed_thumbnail(&control, "fail-rec") {
            break Some(url);
        }
        assert!(
            Instant::now() < deadline,
            "the primary's live still is listed"
        );
        std::thread::sleep(Duration::from_millis(250));
    };

    origins[primary].kill_hard();
    drop(main);
    // The standby's origin puts live stills (a new frame, a new URL) once it is in
    // charge: two new ones (the dead primary's last could be one).
    let deadline = Instant::now() + Duration::from_secs(12);
    let mut seen = vec![before];
    while seen.len() < 3 {
        let now = listed_thumbnail(&control, "fail-rec");
        if now.is_some() && !seen.contains(&now) {
            seen.push(now);
        }
        assert!(
            Instant::now() < deadline,
            "no live stills from the standby's origin after the failover: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    wait_exit(standby);
    // The standby's recording ends 2 s after it left; its origin hands it in.
    let videos = listed(&control, "fail-rec", 1);
    assert_eq!(videos.len(), 1, "{videos:?}");
    assert_eq!(videos[0]["kind"], "recording");
    let fetched = data[1 - primary].join("fetched.webm");
    fetch_media(&control, &videos[0], &fetched);
    let d = decode(&fetched);
    assert!(d.ok, "GStreamer decodes it: {}", d.said);
    assert!(
        d.video_pts.len() > 3 * 30,
        "the standby's live after the failover: {} pictures",
        d.video_pts.len()
    );
}
