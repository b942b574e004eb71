//! Recording an H.264 live (issue 14): GStreamer's `webrtcbin` publishes H.264
//! (`openh264enc`, as OBS and GStreamer publishers send it) and Opus to a real node whose
//! channel records; the recording is an MP4, listed as a video with its duration, served
//! with range requests as `video/mp4`, and decoded by software nobody here wrote
//! (GStreamer's `qtdemux`, `openh264dec`, `opusdec`). A publisher restart stays in one
//! file; a node killed mid-recording leaves an MP4 that decodes up to the kill. The
//! recording is listed with its still, and the live stream gets its thumbnail, both
//! decoded from H.264 keyframes on the server (OpenH264).

use crate::recording::{
    assert_live_thumbnail, assert_recorded_live, assert_still_is_the_ball, decode,
    killed_while_recording, live_with_a_restart, recording_node, recordings, restart_and_list,
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
    let span = assert_recorded_live(&decode(&file), live, 5 + 4, 0.6);
    let ms = videos[0]["duration_ms"].as_f64().unwrap();
    assert!(
        (ms / 1000.0 - span).abs() < 1.0,
        "listed as {ms} ms long, pictures span {span:.2} s"
    );
    // Its still: the first keyframe of the MP4, decoded on the server.
    assert_still_is_the_ball(&server, &videos[0]);
}

/// An OBS or GStreamer broadcaster sends H.264: its channel still gets a live thumbnail
/// on every list, from a keyframe the node decodes.
#[test]
fn an_h264_live_stream_gets_a_thumbnail_decoded_on_the_server() {
    assert_live_thumbnail("thumb-h264", &["--h264"]);
}

#[test]
fn a_node_killed_while_recording_h264_leaves_an_mp4_that_decodes_and_is_listed() {
    // What was written: all but the fragment under way (a keyframe a second) and what
    // the recorder held for ordering.
    let (data, n) = killed_while_recording("h264-crash", &["--h264"], "mp4", 0.5);
    restart_and_list(&data, "h264-crash", n);
}
