//! Live thumbnails on a cluster (issue 14): a `cascade control` replica and a media-only
//! origin node (real processes). GStreamer's `webrtcbin` publishes to the origin the
//! control plane's WHIP 307 names, with no studio to post frames; the origin decodes a
//! keyframe every second and puts it to the control plane (`PUT
//! /api/v1/cluster/thumbnails/{stream}`): the live list a viewer reads from the control
//! plane links a JPEG of the publisher's picture. The endpoint refuses a wrong token, a
//! body that is no JPEG, an oversized one and a stream without a channel.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::accounts::{account, api, channel_with_key};
use crate::ads::{cluster_node_on, CLUSTER_TOKEN};
use crate::cluster_recording::whip_location;
use crate::recording::{jpeg_size, publish_to};
use crate::server::{temp_dir, Server};

fn control_plane(data: &std::path::Path) -> Server {
    Server::launch_as(
        "control",
        &["--cluster-token", CLUSTER_TOKEN],
        data,
        Stdio::inherit(),
        "warn",
    )
}

/// The thumbnail URL of `slug`'s card in the control plane's live list, once it has one.
pub(crate) fn listed_thumbnail(control: &Server, slug: &str) -> Option<String> {
    let (s, live) = api(control, "GET", "/live", None, None);
    assert_eq!(s, 200, "{live}");
    live.as_array()?
        .iter()
        .find(|card| card["channel"] == slug)?
        .get("thumbnail")?
        .as_str()
        .map(str::to_owned)
}

#[test]
fn a_stream_published_on_an_origin_node_gets_a_live_thumbnail_from_the_control_plane() {
    let control = control_plane(&temp_dir("nodethumb-control"));
    account(&control, "admin");
    let amy = account(&control, "amy");
    let (key, _) = channel_with_key(&control, &amy, "node-thumb", "public");
    let certs = temp_dir("nodethumb-certs");
    crate::cluster::certificates(&certs, &["origin"]);
    let data = temp_dir("nodethumb-origin");
    let flags = ["--live-thumbnail-secs", "1"];
    let origin = cluster_node_on(&certs, &control.base, "origin", "origin", &data, &flags);
    std::thread::sleep(Duration::from_secs(2));

    let location = whip_location(&control, &origin, "node-thumb", &key);
    let (script, live) = publish_to(&location, None, 20);
    // Listed live within a few seconds (the node's audience reports), its thumbnail a
    // second or two later (a keyframe asked for, decoded, put).
    let deadline = live + Duration::from_secs(15);
    let url = loop {
        if let Some(url) = listed_thumbnail(&control, "node-thumb") {
            break url;
        }
        assert!(
            Instant::now() < deadline,
            "no thumbnail listed 15 s into the live"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let r = control.http().get(control.url(&url)).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    let jpeg = r.bytes().unwrap().to_vec();
    assert!(jpeg.starts_with(&[0xFF, 0xD8, 0xFF]) && jpeg.ends_with(&[0xFF, 0xD9]));
    assert_eq!(
        jpeg_size(&jpeg),
        Some((320, 240)),
        "the publisher's picture"
    );
    // It is decodable: GStreamer makes a picture of it.
    let file = data.join("thumb.jpg");
    std::fs::write(&file, &jpeg).unwrap();
    let decoded = std::process::Command::new("gst-launch-1.0")
        .args(["-q", "filesrc"])
        .arg(format!("location={}", file.display()))
        .args(["!", "jpegdec", "!", "fakesink"])
        .status()
        .unwrap();
    assert!(decoded.success(), "GStreamer decodes the thumbnail");

    // The studio posts its own frame: the node's stills leave it be.
    let studio = crate::recording::post_studio_frame(&control, "node-thumb", &amy);
    std::thread::sleep(Duration::from_secs(3));
    let url = listed_thumbnail(&control, "node-thumb").unwrap();
    let served = control.http().get(control.url(&url)).send().unwrap();
    assert_eq!(served.bytes().unwrap().to_vec(), studio);
    drop(script);
}

/// `PUT /api/v1/cluster/thumbnails/{stream}`: status and problem document.
fn put_still(
    control: &Server,
    token: &str,
    stream: &str,
    kind: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let r = control
        .http()
        .put(control.url(&format!("/api/v1/cluster/thumbnails/{stream}")))
        .bearer_auth(token)
        .header("content-type", kind)
        .body(body)
        .send()
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or_default())
}

#[test]
fn the_thumbnails_endpoint_refuses_bad_input() {
    let control = control_plane(&temp_dir("nodethumb-bad"));
    account(&control, "admin");
    let amy = account(&control, "amy");
    channel_with_key(&control, &amy, "bad-thumb", "public");
    let jpeg: Vec<u8> = [&[0xFF, 0xD8, 0xFF, 0xE0][..], b"frame", &[0xFF, 0xD9]].concat();

    let (s, _) = put_still(
        &control,
        "a wrong token",
        "bad-thumb",
        "image/jpeg",
        jpeg.clone(),
    );
    assert_eq!(s, 401);
    let (s, _) = put_still(&control, &amy, "bad-thumb", "image/jpeg", jpeg.clone());
    assert_eq!(s, 401, "a user's token is not the cluster's");

    let (s, p) = put_still(
        &control,
        CLUSTER_TOKEN,
        "bad-thumb",
        "image/jpeg",
        b"a PNG?".to_vec(),
    );
    assert_eq!(s, 422, "{p}");
    assert!(
        p["detail"].as_str().unwrap().contains("not a whole JPEG"),
        "the reason says what is wrong: {p}"
    );
    let (s, p) = put_still(
        &control,
        CLUSTER_TOKEN,
        "bad-thumb",
        "image/png",
        jpeg.clone(),
    );
    assert_eq!(s, 422, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("image/jpeg"), "{p}");
    // Over 256 KiB: refused when its length is said (before the body is read), and when
    // it is found while reading a stream of unsaid length.
    let big = [&jpeg[..4], &vec![0; 300 * 1024], &[0xFF, 0xD9]].concat();
    let (s, _) = put_still(
        &control,
        CLUSTER_TOKEN,
        "bad-thumb",
        "image/jpeg",
        big.clone(),
    );
    assert_eq!(s, 413);
    let r = control
        .http()
        .put(control.url("/api/v1/cluster/thumbnails/bad-thumb"))
        .bearer_auth(CLUSTER_TOKEN)
        .header("content-type", "image/jpeg")
        .body(reqwest::blocking::Body::new(std::io::Cursor::new(big)))
        .send()
        .unwrap();
    let s = r.status().as_u16();
    let p: Value = r.json().unwrap_or_default();
    assert_eq!((s, &p["status"]), (413, &json!(413)), "{p}");
    let (s, p) = put_still(
        &control,
        CLUSTER_TOKEN,
        "no-such-channel",
        "image/jpeg",
        jpeg.clone(),
    );
    assert_eq!(s, 404, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("no channel"), "{p}");
    // Nothing was written by any of them.
    let (s, _) = api(&control, "GET", "/channels/bad-thumb/thumbnail", None, None);
    assert_eq!(s, 404);

    // A good one is taken, as a node's would be.
    let (s, p) = put_still(
        &control,
        CLUSTER_TOKEN,
        "bad-thumb",
        "image/jpeg",
        jpeg.clone(),
    );
    assert_eq!((s, &p["still"]), (200, &json!("written")), "{p}");
    let r = control
        .http()
        .get(control.url("/api/v1/channels/bad-thumb/thumbnail"))
        .send()
        .unwrap();
    assert_eq!(r.bytes().unwrap().to_vec(), jpeg);

    // The endpoint is in the API's description, with its answer's schema.
    let (s, doc) = api(&control, "GET", "/openapi.json", None, None);
    assert_eq!(s, 200);
    assert!(doc["paths"]["/api/v1/cluster/thumbnails/{stream}"]["put"].is_object());
    assert!(doc["components"]["schemas"]["ServerStill"].is_object());
}
