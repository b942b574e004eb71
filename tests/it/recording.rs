//! Recording a live stream (issue 14): a channel that records, a real node, GStreamer's
//! `webrtcbin` publishing real VP8 and Opus over WHIP; the file is then read by software
//! nobody here wrote: GStreamer's `matroskademux`, `vp8dec` and `opusdec` decode it, and
//! the frames, the picture size and the times are checked. A publisher restart stays in
//! one file with continuous times; a node killed mid-recording leaves a file that decodes
//! up to the kill, listed as a video when the node starts again.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::accounts::{account, api, channel_with_key};
use crate::gstreamer::Script;
use crate::server::{temp_dir, Server};

/// What GStreamer decoded of a file (tests/interop/gst_decode.py: `matroskademux`,
/// `vp8dec`, `vp9dec` or `av1dec`, `opusdec`; or `qtdemux`, `openh264dec`; counted with
/// pad probes).
#[derive(Debug)]
pub(crate) struct Decoded {
    /// Presentation times of the decoded pictures, seconds.
    pub(crate) video_pts: Vec<f64>,
    /// Decoded audio buffers.
    pub(crate) audio: usize,
    /// The decoded picture size.
    pub(crate) size: Option<(u32, u32)>,
    /// The pipeline reached the file's end without an error.
    pub(crate) ok: bool,
    pub(crate) said: String,
}

/// Decodes `path` with GStreamer, every picture and audio buffer.
pub(crate) fn decode(path: &Path) -> Decoded {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/gst_decode.py");
    let out = Command::new("/usr/bin/python3")
        .arg(script)
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .expect("/usr/bin/python3 (scripts/test.sh installs python3-gi and GStreamer)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let size = match (v["width"].as_u64(), v["height"].as_u64()) {
        (Some(w), Some(h)) => Some((w as u32, h as u32)),
        _ => None,
    };
    Decoded {
        video_pts: v["video_pts"]
            .as_array()
            .map(|a| a.iter().filter_map(|t| t.as_f64()).collect())
            .unwrap_or_default(),
        audio: v["audio"].as_u64().unwrap_or(0) as usize,
        size,
        ok: out.status.success(),
        said,
    }
}

/// The recordings in `dir`.
pub(crate) fn recordings(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| Some(e.ok()?.path())).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|e| e == "webm" || e == "mp4"));
    v.sort();
    v
}

/// A node whose channel `slug` records; its data directory and the channel's stream key.
pub(crate) fn recording_node(slug: &str, grace_ms: &str) -> (Server, PathBuf, String) {
    let data = temp_dir("recording");
    let server = Server::launch(
        &["--auth", "accounts", "--recording-grace-ms", grace_ms],
        &data,
        Stdio::inherit(),
        "warn",
    );
    account(&server, "admin");
    let amy = account(&server, "amy");
    let (key, _) = channel_with_key(&server, &amy, slug, "public");
    let (s, r) = api(
        &server,
        "PUT",
        &format!("/channels/{slug}/recording"),
        Some(&amy),
        Some(json!({"enabled": true})),
    );
    assert_eq!((s, &r["enabled"]), (200, &json!(true)), "{r}");
    (server, data, key)
}

/// Publishes with GStreamer for `seconds` (from the script's start), with `more` of the
/// script's arguments (`--h264`, `--vp9`); returns once it is connected, with the script
/// and when it connected.
pub(crate) fn publish_with(
    server: &Server,
    slug: &str,
    key: &str,
    seconds: u32,
    more: &[&str],
) -> (Script, Instant) {
    publish_to_with(
        &server.url(&format!("/whip/{slug}")),
        Some(key),
        seconds,
        more,
    )
}

/// [`publish_with`] to the WHIP URL `url` (a token in it, or `token`).
pub(crate) fn publish_to(url: &str, token: Option<&str>, seconds: u32) -> (Script, Instant) {
    publish_to_with(url, token, seconds, &[])
}

fn publish_to_with(
    url: &str,
    token: Option<&str>,
    seconds: u32,
    more: &[&str],
) -> (Script, Instant) {
    let seconds = seconds.to_string();
    let mut args = vec![url, "--seconds", &seconds];
    if let Some(t) = token {
        args.extend(["--token", t]);
    }
    args.extend(more);
    let script = Script::start("gst_whip_publish.py", &args);
    script.wait_for("posted 201", Duration::from_secs(20));
    script.wait_for("connected", Duration::from_secs(15));
    (script, Instant::now())
}

/// Whether `n` pictures decoded from a recording fit publishers connected for `live` whose
/// scripts ran `scripted` seconds in all, at 30 fps: at least `low` of the connected
/// time's pictures, and no more than the scripts' live sources made. More than 30 ×
/// `live` may come: a source runs from the script's start, and what it made before the
/// connection (longer on a loaded machine) is sent once connected; a tenth more for the
/// scripts' start and end around their timers.
pub(crate) fn pictures_fit(n: usize, live: Duration, scripted: u32, low: f64) -> bool {
    let n = n as f64;
    n > live.as_secs_f64() * 30.0 * low && n <= f64::from(scripted) * 30.0 * 1.1
}

/// Whether pictures spanning `span` seconds fit the same publishers (see
/// [`pictures_fit`]): about the connected time, and no longer than the scripts ran.
pub(crate) fn span_fits(span: f64, live: Duration, scripted: u32) -> bool {
    span > live.as_secs_f64() - 1.5 && span < f64::from(scripted) + 1.0
}

pub(crate) fn wait_exit(mut script: Script) -> Instant {
    let _ = script.child.wait();
    Instant::now()
}

#[test]
fn a_recording_spans_a_publisher_restart_and_decodes() {
    let (server, data, key) = recording_node("rec-show", "3000");
    let (live, (t1, end1, t2), videos) =
        live_with_a_restart(&server, "rec-show", &key, (6, 5), &[]);
    // What the video's page plays: its media, fetched as a visitor.
    let media = server
        .http()
        .get(server.url(&format!(
            "/api/v1/videos/{}/media",
            videos[0]["id"].as_str().unwrap()
        )))
        .send()
        .unwrap();
    assert_eq!(media.status(), 200);
    let file = data.join("fetched.webm");
    std::fs::write(&file, media.bytes().unwrap()).unwrap();
    // The recorder's own copy went to the library.
    assert!(recordings(&data.join("recordings")).is_empty());
    let files = [file];
    let d = decode(&files[0]);
    assert!(d.ok, "GStreamer decodes it: {}", d.said);
    assert_eq!(d.size, Some((320, 240)), "the publisher's picture size");
    let n = d.video_pts.len();
    assert!(
        pictures_fit(n, live, 6 + 5, 0.7),
        "{n} pictures decoded for {live:?} live at 30 fps"
    );
    assert!(
        d.audio as f64 > live.as_secs_f64() * 30.0,
        "{} audio buffers",
        d.audio
    );
    assert_starts_at_its_first_picture(&d);
    let (first_pts, last_pts) = (d.video_pts[0], d.video_pts[n - 1]);
    let span = last_pts - first_pts;
    assert!(
        span_fits(span, live, 6 + 5),
        "pictures span {span:.2} s, the publishers were live {live:?}"
    );
    // Continuous: never back, and the time away closed up. Holes are allowed only at the
    // restart (the new publisher's audio starts at once, its first picture comes at its
    // first keyframe: the script's encoder makes one a second at most; on a loaded
    // machine its first frames may come in two bursts), less than 1.2 s in all.
    assert!(
        d.video_pts.windows(2).all(|w| w[1] >= w[0]),
        "times go back"
    );
    let holes: Vec<(f64, f64)> = d
        .video_pts
        .windows(2)
        .filter(|w| w[1] - w[0] > 0.2)
        .map(|w| (w[0] - first_pts, w[1] - w[0]))
        .collect();
    let away = (t2 - end1).as_secs_f64();
    let restart = (end1 - t1).as_secs_f64();
    assert!(
        holes.iter().map(|(_, h)| h).sum::<f64>() < 1.2
            && holes.iter().all(|(at, _)| (at - restart).abs() < 1.5),
        "holes (at, length) {holes:?}; the publisher was away {away:.2} s from {restart:.2} s"
    );
}

/// GStreamer (with `more` of its arguments) publishes to `slug` for `seconds.0`, then again
/// for `seconds.1` (back within the node's 3 s grace: the same recording goes on). Returns
/// how long it was live in all, when the first one connected and left and the second
/// connected, and the one video listed (the recording ends 3 s after the publisher left,
/// sampled twice a second), as a visitor sees it.
pub(crate) fn live_with_a_restart(
    server: &Server,
    slug: &str,
    key: &str,
    seconds: (u32, u32),
    more: &[&str],
) -> (
    Duration,
    (Instant, Instant, Instant),
    Vec<serde_json::Value>,
) {
    let (first, t1) = publish_with(server, slug, key, seconds.0, more);
    let end1 = wait_exit(first);
    let (second, t2) = publish_with(server, slug, key, seconds.1, more);
    let end2 = wait_exit(second);
    let live = (end1 - t1) + (end2 - t2);
    let videos = listed(server, slug, 1);
    assert_eq!(
        videos.len(),
        1,
        "one recording over the restart: {videos:?}"
    );
    assert_eq!(videos[0]["kind"], "recording");
    (live, (t1, end1, t2), videos)
}

/// A node recording `slug` killed with SIGKILL 4 s into a live published with `more` of
/// the script's arguments: its one file (of extension `ext`) decodes, with at least `low`
/// of the pictures of the time recorded (what was written: the recorder holds the last
/// moments for ordering, an MP4 its fragment under way). Returns the node's data
/// directory and the pictures decoded (for [`restart_and_list`]).
pub(crate) fn killed_while_recording(
    slug: &str,
    more: &[&str],
    ext: &str,
    low: f64,
) -> (PathBuf, usize) {
    let (mut server, data, key) = recording_node(slug, "30000");
    let dir = data.join("recordings");
    let (script, t) = publish_with(&server, slug, &key, 30, more);
    std::thread::sleep(Duration::from_secs(4));
    let recorded = t.elapsed();
    server.kill_hard();
    drop(script);
    let files = recordings(&dir);
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0].extension().unwrap(), ext);
    let d = decode(&files[0]);
    assert!(d.ok, "GStreamer decodes what was written: {}", d.said);
    assert_eq!(d.size, Some((320, 240)));
    let n = d.video_pts.len();
    let expect = recorded.as_secs_f64() * 30.0;
    assert!(
        n as f64 > expect * low && (n as f64) < expect * 1.1,
        "{n} pictures decoded for {recorded:?} recorded"
    );
    (data, n)
}

/// What a live over a restart (publishers connected for `live`, their scripts `scripted`
/// seconds in all) decoded to: the publisher's 320×240, at least `low` of the connected
/// time's pictures (see [`pictures_fit`]), the audio of the time, pictures in order over
/// about the time live. Returns the pictures' span.
pub(crate) fn assert_recorded_live(d: &Decoded, live: Duration, scripted: u32, low: f64) -> f64 {
    assert!(d.ok, "GStreamer decodes it: {}", d.said);
    assert_eq!(d.size, Some((320, 240)), "the publisher's picture size");
    let n = d.video_pts.len();
    assert!(
        pictures_fit(n, live, scripted, low),
        "{n} pictures decoded for {live:?} live at 30 fps"
    );
    assert!(d.audio as f64 > live.as_secs_f64() * 30.0, "{}", d.audio);
    assert!(
        d.video_pts.windows(2).all(|w| w[1] >= w[0]),
        "times go back"
    );
    assert_starts_at_its_first_picture(d);
    let span = d.video_pts[n - 1] - d.video_pts[0];
    assert!(
        span_fits(span, live, scripted),
        "pictures span {span:.2} s, the publishers were live {live:?}"
    );
    span
}

/// A player starts a recording on its first picture: no blank lead of the time the
/// recorder waited for a keyframe.
fn assert_starts_at_its_first_picture(d: &Decoded) {
    assert!(
        d.video_pts[0] < 0.001,
        "the first picture is at {:.3} s",
        d.video_pts[0]
    );
}

/// A live published with `more` of the script's arguments on a node that makes
/// thumbnails gets one from the server: a JPEG of the publisher's 320×240.
pub(crate) fn assert_live_thumbnail(slug: &str, more: &[&str]) {
    let (server, key, _) = thumbnail_node(slug);
    let (script, jpeg) = live_thumbnail(&server, slug, &key, more);
    assert_eq!(
        jpeg_size(&jpeg),
        Some((320, 240)),
        "the publisher's picture"
    );
    drop(script);
}

/// A PNG of GStreamer's ball pattern at 320×240: a black background, a white ball.
fn assert_ball(bytes: &[u8]) {
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .unwrap();
    let mut rgb = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut rgb).unwrap();
    assert_eq!(
        (info.width, info.height),
        (320, 240),
        "the publisher's picture"
    );
    let px: Vec<&[u8]> = rgb[..info.buffer_size()].chunks(3).collect();
    assert!(px[0].iter().all(|&c| c < 40), "the corner is {:?}", px[0]);
    assert!(
        px.iter().any(|p| p.iter().all(|&c| c > 215)),
        "no white ball"
    );
}

/// A listed video's still: served as a PNG of the publisher's ball (its first keyframe
/// decoded on the server).
pub(crate) fn assert_still_is_the_ball(server: &Server, video: &serde_json::Value) {
    let thumb = video["thumbnail_url"].as_str().expect("a still");
    let still = server.http().get(server.url(thumb)).send().unwrap();
    assert_eq!(still.status(), 200);
    assert_eq!(still.headers()["content-type"], "image/png");
    assert_ball(&still.bytes().unwrap());
}

/// A listed video's media fetched as a visitor (served as its container's type), written
/// to `data/name`.
pub(crate) fn fetch_media(
    server: &Server,
    video: &serde_json::Value,
    data: &Path,
    name: &str,
) -> PathBuf {
    let media = server
        .http()
        .get(server.url(video["media_url"].as_str().unwrap()))
        .send()
        .unwrap();
    assert_eq!(media.status(), 200);
    let mime = if name.ends_with(".mp4") {
        "video/mp4"
    } else {
        "video/webm"
    };
    assert_eq!(media.headers()["content-type"], mime);
    let file = data.join(name);
    std::fs::write(&file, media.bytes().unwrap()).unwrap();
    file
}

/// The video's listed length is the file's: up to its last picture, `last` seconds (the
/// file starts at the recording's first packet, which may come before the first keyframe
/// it waits for).
pub(crate) fn assert_listed_length(video: &serde_json::Value, last: f64) {
    let ms = video["duration_ms"].as_f64().unwrap();
    assert!(
        (ms / 1000.0 - last).abs() < 0.5,
        "listed as {ms} ms long, the last picture at {last:.2} s"
    );
}

/// The node started again on `data` (after a kill): the cut recording of `slug` listed as
/// its one video, as long as the `pictures` decoded from the file (30 fps).
pub(crate) fn restart_and_list(
    data: &Path,
    slug: &str,
    pictures: usize,
) -> (Server, Vec<serde_json::Value>) {
    let server = Server::launch(
        &["--auth", "accounts", "--recording-grace-ms", "30000"],
        data,
        Stdio::inherit(),
        "warn",
    );
    let videos = listed(&server, slug, 1);
    assert_eq!(videos.len(), 1, "{videos:?}");
    assert_eq!(videos[0]["kind"], "recording");
    let ms = videos[0]["duration_ms"].as_f64().unwrap();
    assert!(
        (ms / 1000.0 - pictures as f64 / 30.0).abs() < 1.0,
        "listed as {ms} ms long, {pictures} pictures decoded"
    );
    (server, videos)
}

/// The channel's videos as a visitor sees them, once there are `n` (within 20 s).
pub(crate) fn listed(server: &Server, slug: &str, n: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (s, v) = api(
            server,
            "GET",
            &format!("/channels/{slug}/videos"),
            None,
            None,
        );
        assert_eq!(s, 200, "{v}");
        let v = v.as_array().unwrap().clone();
        if v.len() >= n {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n} videos listed",
            v.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_node_killed_while_recording_leaves_a_file_that_decodes_and_is_listed_on_restart() {
    // What was written before the kill: all but the last moments (frames the recorder
    // still held for ordering, about a third of a second).
    let (data, n) = killed_while_recording("rec-crash", &[], "webm", 0.6);
    let dir = data.join("recordings");
    // Beside it, a file that is no recording (as a damaged one would be).
    let refused = dir.join("rec-crash-1000.webm");
    std::fs::write(&refused, b"not a webm at all").unwrap();
    // The node starts again on the same data: the cut recording is listed as a video of
    // the channel, and what it serves decodes as the file did.
    let (server, videos) = restart_and_list(&data, "rec-crash", n);
    let served = decode(&fetch_media(&server, &videos[0], &data, "fetched.webm"));
    assert!(
        served.ok,
        "GStreamer decodes what is served: {}",
        served.said
    );
    assert_eq!(served.video_pts.len(), n);
    // The library holds it now; the refused file is kept (never deleted) in refused/,
    // where the next start does not check it again.
    assert_eq!(recordings(&dir), Vec::<std::path::PathBuf>::new());
    assert_eq!(
        std::fs::read(dir.join("refused").join("rec-crash-1000.webm")).unwrap(),
        b"not a webm at all"
    );
    assert!(!refused.exists());
}

/// The channel's live thumbnail as a visitor gets it: status and bytes.
fn thumbnail(server: &Server, slug: &str) -> (u16, Vec<u8>) {
    let r = server
        .http()
        .get(server.url(&format!("/api/v1/channels/{slug}/thumbnail")))
        .send()
        .unwrap();
    (r.status().as_u16(), r.bytes().unwrap().to_vec())
}

/// A JPEG's picture size, from its baseline frame header (SOF0).
pub(crate) fn jpeg_size(b: &[u8]) -> Option<(u16, u16)> {
    let sof = b.windows(2).position(|w| w == [0xFF, 0xC0])?;
    let h = u16::from_be_bytes([*b.get(sof + 5)?, *b.get(sof + 6)?]);
    let w = u16::from_be_bytes([*b.get(sof + 7)?, *b.get(sof + 8)?]);
    Some((w, h))
}

/// A broadcaster without the studio (GStreamer here, OBS elsewhere) still gets a live
/// thumbnail: the node takes a keyframe, decodes it and writes it as the channel's; one
/// the studio posted is not replaced by it.
#[test]
fn a_live_stream_without_a_studio_gets_a_thumbnail_decoded_on_the_server() {
    let (server, key, amy) = thumbnail_node("thumb-live");
    assert_eq!(
        thumbnail(&server, "thumb-live").0,
        404,
        "none before it is live"
    );
    let (script, jpeg) = live_thumbnail(&server, "thumb-live", &key, &[]);
    assert_eq!(
        jpeg_size(&jpeg),
        Some((320, 240)),
        "the publisher's picture"
    );

    // The studio posts its own frame: the server's stills leave it be.
    let studio = post_studio_frame(&server, "thumb-live", &amy);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(thumbnail(&server, "thumb-live"), (200, studio));
    drop(script);
}

/// A node that makes live thumbnails each second, where amy owns public channel `slug`:
/// the node, the channel's stream key and amy's token.
pub(crate) fn thumbnail_node(slug: &str) -> (Server, String, String) {
    let server = Server::launch(
        &["--auth", "accounts", "--live-thumbnail-secs", "1"],
        &temp_dir("thumbs"),
        Stdio::inherit(),
        "warn",
    );
    account(&server, "admin");
    let amy = account(&server, "amy");
    let (key, _) = channel_with_key(&server, &amy, slug, "public");
    (server, key, amy)
}

/// Publishes `slug` with GStreamer (`more`: the script's arguments, `--h264`) on a node
/// that makes live thumbnails each second; the first thumbnail a visitor gets (a whole
/// JPEG, within 8 s), with the publishing script.
pub(crate) fn live_thumbnail(
    server: &Server,
    slug: &str,
    key: &str,
    more: &[&str],
) -> (Script, Vec<u8>) {
    let (script, _) = publish_with(server, slug, key, 12, more);
    let deadline = Instant::now() + Duration::from_secs(8);
    let jpeg = loop {
        let (s, b) = thumbnail(server, slug);
        if s == 200 {
            break b;
        }
        assert!(
            Instant::now() < deadline,
            "no thumbnail 8 s into the live ({s})"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(jpeg.starts_with(&[0xFF, 0xD8, 0xFF]) && jpeg.ends_with(&[0xFF, 0xD9]));
    (script, jpeg)
}

/// The studio's frame (a tiny JPEG) posted as `slug`'s thumbnail by its owner: its bytes.
pub(crate) fn post_studio_frame(server: &Server, slug: &str, owner: &str) -> Vec<u8> {
    let studio: Vec<u8> = [
        &[0xFF, 0xD8, 0xFF, 0xE0][..],
        b"studio frame",
        &[0xFF, 0xD9],
    ]
    .concat();
    let r = server
        .http()
        .put(server.url(&format!("/api/v1/channels/{slug}/thumbnail")))
        .bearer_auth(owner)
        .header("content-type", "image/jpeg")
        .body(studio.clone())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    studio
}
