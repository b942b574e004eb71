//! Recording a VP9 live (issue 14): GStreamer's `webrtcbin` publishes VP9 (`vp9enc`,
//! `rtpvp9pay`) and Opus to a real node whose channel records; the recording is a WebM
//! with a `V_VP9` track, listed as a VP9 video with its duration, and decoded by software
//! nobody here wrote (GStreamer's `matroskademux`, `vp9dec`, `opusdec`), with a still
//! made on the server (libvpx), as is the live stream's thumbnail. A publisher
//! restart stays in one file (one in another video codec is left out, counted in
//! `/metrics`); a node killed mid-recording leaves a WebM that decodes up to the kill and
//! is listed when the node starts again.

use std::time::Duration;

use crate::recording::{
    decode, jpeg_size, listed, live_thumbnail, live_with_a_restart, pictures_fit, publish_with,
    recording_node, recordings, restart_and_list, span_fits, thumbnail_node, wait_exit,
};
use crate::recording_h264::assert_ball;

#[test]
fn a_vp9_live_records_to_one_webm_over_a_restart() {
    let (server, data, key) = recording_node("vp9-show", "3000");
    let (live, _, videos) = live_with_a_restart(&server, "vp9-show", &key, (5, 4), &["--vp9"]);
    assert_eq!(videos[0]["video_codec"], "vp9", "{:?}", videos[0]);
    let url = server.url(videos[0]["media_url"].as_str().unwrap());
    let media = server.http().get(&url).send().unwrap();
    assert_eq!(media.status(), 200);
    assert_eq!(media.headers()["content-type"], "video/webm");
    let file = data.join("fetched.webm");
    std::fs::write(&file, media.bytes().unwrap()).unwrap();
    assert!(recordings(&data.join("recordings")).is_empty());
    let d = decode(&file);
    assert!(d.ok, "GStreamer decodes it: {}", d.said);
    assert_eq!(d.size, Some((320, 240)), "the publisher's picture size");
    let n = d.video_pts.len();
    assert!(
        pictures_fit(n, live, 5 + 4, 0.6),
        "{n} pictures decoded for {live:?} live at 30 fps"
    );
    assert!(d.audio as f64 > live.as_secs_f64() * 30.0, "{}", d.audio);
    assert!(
        d.video_pts.windows(2).all(|w| w[1] >= w[0]),
        "times go back"
    );
    let span = d.video_pts[n - 1] - d.video_pts[0];
    assert!(
        span_fits(span, live, 5 + 4),
        "pictures span {span:.2} s, the publishers were live {live:?}"
    );
    // The file's length: up to its last picture (the file starts at the recording's
    // first packet, which may come before the first keyframe it waits for).
    let ms = videos[0]["duration_ms"].as_f64().unwrap();
    let last = d.video_pts[n - 1];
    assert!(
        (ms / 1000.0 - last).abs() < 0.5,
        "listed as {ms} ms long, the last picture at {last:.2} s"
    );
    // Its still: the WebM's first VP9 keyframe, decoded on the server (libvpx).
    let thumb = videos[0]["thumbnail_url"].as_str().expect("a still");
    let still = server.http().get(server.url(thumb)).send().unwrap();
    assert_eq!(still.status(), 200);
    assert_eq!(still.headers()["content-type"], "image/png");
    assert_ball(&still.bytes().unwrap());
}

/// A browser or GStreamer broadcaster sends VP9: its channel gets a live thumbnail from a
/// keyframe the node decodes.
#[test]
fn a_vp9_live_stream_gets_a_thumbnail_decoded_on_the_server() {
    let (server, key, _) = thumbnail_node("thumb-vp9");
    let (script, jpeg) = live_thumbnail(&server, "thumb-vp9", &key, &["--vp9"]);
    assert_eq!(
        jpeg_size(&jpeg),
        Some((320, 240)),
        "the publisher's picture"
    );
    drop(script);
}

#[test]
fn a_node_killed_while_recording_vp9_leaves_a_webm_that_decodes_and_is_listed() {
    let (mut server, data, key) = recording_node("vp9-crash", "30000");
    let dir = data.join("recordings");
    let (script, t) = publish_with(&server, "vp9-crash", &key, 30, &["--vp9"]);
    std::thread::sleep(Duration::from_secs(4));
    let recorded = t.elapsed();
    server.kill_hard();
    drop(script);
    let files = recordings(&dir);
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0].extension().unwrap(), "webm");
    let d = decode(&files[0]);
    assert!(d.ok, "GStreamer decodes what was written: {}", d.said);
    assert_eq!(d.size, Some((320, 240)));
    let n = d.video_pts.len();
    // What was written before the kill: all but what the recorder still held for ordering.
    let expect = recorded.as_secs_f64() * 30.0;
    assert!(
        n as f64 > expect * 0.6 && (n as f64) < expect * 1.1,
        "{n} pictures decoded for {recorded:?} recorded"
    );
    let (_server, videos) = restart_and_list(&data, "vp9-crash", n);
    assert_eq!(videos[0]["video_codec"], "vp9");
}

#[test]
fn a_restart_in_another_video_codec_keeps_the_files_and_is_counted() {
    let (server, data, key) = recording_node("vp9-then-vp8", "3000");
    let skipped = r#"cascade_recording_video_skipped_total{reason="codec_changed"}"#;
    let (first, t1) = publish_with(&server, "vp9-then-vp8", &key, 4, &["--vp9"]);
    let end1 = wait_exit(first);
    // Back within the grace, in VP8: the same recording, whose file is VP9.
    let (second, t2) = publish_with(&server, "vp9-then-vp8", &key, 4, &[]);
    let end2 = wait_exit(second);
    let videos = listed(&server, "vp9-then-vp8", 1);
    assert_eq!(videos.len(), 1, "{videos:?}");
    assert_eq!(videos[0]["video_codec"], "vp9");
    let skipped = server.metric(skipped);
    assert!(
        skipped > (end2 - t2).as_secs_f64() * 30.0 * 0.5,
        "the VP8 pictures counted as skipped: {skipped}"
    );
    let media = server
        .http()
        .get(server.url(videos[0]["media_url"].as_str().unwrap()))
        .send()
        .unwrap();
    let file = data.join("fetched.webm");
    std::fs::write(&file, media.bytes().unwrap()).unwrap();
    let d = decode(&file);
    assert!(d.ok, "GStreamer decodes it: {}", d.said);
    // The pictures of the first publisher; the audio of both.
    let span = d.video_pts[d.video_pts.len() - 1] - d.video_pts[0];
    let first = (end1 - t1).as_secs_f64();
    assert!(
        span < first + 0.5,
        "pictures span {span:.2} s, VP9 for {first:.2} s"
    );
    let live = (end1 - t1) + (end2 - t2);
    assert!(
        d.audio as f64 > live.as_secs_f64() * 30.0,
        "{} audio buffers for {live:?}",
        d.audio
    );
}
