//! Recording an H.264 live (issue 14): GStreamer's `webrtcbin` publishes H.264
//! (`openh264enc`, as OBS and GStreamer publishers send it) and Opus to a real node whose
//! channel records; the recording is an MP4, listed as a video with its duration, served
//! with range requests as `video/mp4`, and decoded by software nobody here wrote
//! (GStreamer's `qtdemux`, `openh264dec`, `opusdec`). A publisher restart stays in one
//! file; a node killed mid-recording leaves an MP4 that decodes up to the kill. The
//! recording is listed with its still, and the live stream gets its thumbnail, both
//! decoded from H.264 keyframes on the server (OpenH264).

use std::time::Duration;

use crate::recording::{
    decode, jpeg_size, live_thumbnail, live_with_a_restart, pictures_fit, publish_with,
    recording_node, recordings, restart_and_list, span_fits, thumbnail_node,
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
    let ms = videos[0]["duration_ms"].as_f64().unwrap();
    assert!(
        (ms / 1000.0 - span).abs() < 1.0,
        "listed as {ms} ms long, pictures span {span:.2} s"
    );
    // Its still: the first keyframe of the MP4, decoded on the server.
    let thumb = videos[0]["thumbnail_url"].as_str().expect("a still");
    let still = server.http().get(server.url(thumb)).send().unwrap();
    assert_eq!(still.status(), 200);
    assert_eq!(still.headers()["content-type"], "image/png");
    assert_ball(&still.bytes().unwrap());
}

/// A PNG of GStreamer's ball pattern at 320×240: a black background, a white ball.
pub(crate) fn assert_ball(bytes: &[u8]) {
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

/// An OBS or GStreamer broadcaster sends H.264: its channel still gets a live thumbnail
/// on every list, from a keyframe the node decodes.
#[test]
fn an_h264_live_stream_gets_a_thumbnail_decoded_on_the_server() {
    let (server, key, _) = thumbnail_node("thumb-h264");
    let (script, jpeg) = live_thumbnail(&server, "thumb-h264", &key, &["--h264"]);
    assert_eq!(
        jpeg_size(&jpeg),
        Some((320, 240)),
        "the publisher's picture"
    );
    drop(script);
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
