//! Recording an H.264 live (issue 14): GStreamer's `webrtcbin` publishes H.264
//! (`openh264enc`, as OBS and GStreamer publishers send it) and Opus to a real node whose
//! channel records; the recording is an MP4, listed as a video with its duration, served
//! with range requests as `video/mp4`, and decoded by software nobody here wrote
//! (GStreamer's `qtdemux`, `openh264dec`, `opusdec`). A publisher restart stays in one
//! file; a node killed mid-recording leaves an MP4 that decodes up to the kill.

use std::time::Duration;

use crate::recording::{
    decode, live_with_a_restart, publish_with, recording_node, recordings, restart_and_list,
};

#[test]
fn an_h264_live_records_to_one_mp4_over_a_restart_served_with_ranges() {
    let (server, data, key) = recording_node("h264-show", "3000");
    let (live, _, videos) = live_with_a_restart(&server, "h264-show", &key, (5, 4), &["--h264"]);
    let url = server.url(videos[0]["media_url"].as_str().unwrap());
    // A range, as a player asks for it.
    let part = server
        .http()
        .get(&url)
        .header("Range", "bytes=0-99")
        .send()
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()["content-type"], "video/mp4");
    let head = part.bytes().unwrap();
    assert_eq!((head.len(), &head[4..8]), (100, &b"ftyp"[..]));
    let media = server.http().get(&url).send().unwrap();
    assert_eq!(media.status(), 200);
    let file = data.join("fetched.mp4");
    std::fs::write(&file, media.bytes().unwrap()).unwrap();
    assert!(recordings(&data.join("recordings")).is_empty());
    let d = decode(&file);
    assert!(d.ok, "GStreamer decodes it: {}", d.said);
    assert_eq!(d.size, Some((320, 240)), "the publisher's picture size");
    let n = d.video_pts.len();
    let expect = live.as_secs_f64() * 30.0;
    assert!(
        n as f64 > expect * 0.6 && (n as f64) < expect * 1.1,
        "{n} pictures decoded for {live:?} live at 30 fps"
    );
    assert!(d.audio as f64 > live.as_secs_f64() * 30.0, "{}", d.audio);
    assert!(
        d.video_pts.windows(2).all(|w| w[1] >= w[0]),
        "times go back"
    );
    let span = d.video_pts[n - 1] - d.video_pts[0];
    assert!(
        (span - live.as_secs_f64()).abs() < 1.5,
        "pictures span {span:.2} s, the publishers were live {live:?}"
    );
    let ms = videos[0]["duration_ms"].as_f64().unwrap();
    assert!(
        (ms / 1000.0 - span).abs() < 1.0,
        "listed as {ms} ms long, pictures span {span:.2} s"
    );
}

#[test]
fn a_node_killed_while_recording_h264_leaves_an_mp4_that_decodes_and_is_listed() {
    let (mut server, data, key) = recording_node("h264-crash", "30000");
    let dir = data.join("recordings");
    let (script, t) = publish_with(&server, "h264-crash", &key, 30, &["--h264"]);
    std::thread::sleep(Duration::from_secs(4));
    let recorded = t.elapsed();
    server.kill_hard();
    drop(script);
    let files = recordings(&dir);
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0].extension().unwrap(), "mp4");
    let d = decode(&files[0]);
    assert!(d.ok, "GStreamer decodes what was written: {}", d.said);
    let n = d.video_pts.len();
    // What was written: all but the fragment under way (a keyframe a second) and what
    // the recorder held for ordering.
    let expect = recorded.as_secs_f64() * 30.0;
    assert!(
        n as f64 > expect * 0.5 && (n as f64) < expect * 1.1,
        "{n} pictures decoded for {recorded:?} recorded"
    );
    restart_and_list(&data, "h264-crash", n);
}
