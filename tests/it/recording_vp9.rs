//! Recording a VP9 live (issue 14): GStreamer's `webrtcbin` publishes VP9 (`vp9enc`,
//! `rtpvp9pay`) and Opus to a real node whose channel records; the recording is a WebM
//! with a `V_VP9` track, listed as a VP9 video with its duration, and decoded by software
//! nobody here wrote (GStreamer's `matroskademux`, `vp9dec`, `opusdec`), with a still
//! made on the server (libvpx), as is the live stream's thumbnail. A publisher
//! restart stays in one file (one in another video codec is left out, counted in
//! `/metrics`); a node killed mid-recording leaves a WebM that decodes up to the kill and
//! is listed when the node starts again.

use crate::recording::{
    assert_listed_length, assert_live_thumbnail, assert_recorded_live, assert_still_is_the_ball,
    decode, fetch_media, killed_while_recording, listed, live_with_a_restart, publish_with,
    recording_node, recordings, restart_and_list, wait_exit,
};

#[test]
fn a_vp9_live_records_to_one_webm_over_a_restart() {
    let (server, data, key) = recording_node("vp9-show", "3000");
    let (live, _, videos) = live_with_a_restart(&server, "vp9-show", &key, (5, 4), &["--vp9"]);
    assert_eq!(videos[0]["video_codec"], "vp9", "{:?}", videos[0]);
    let file = fetch_media(&server, &videos[0], &data, "fetched.webm");
    assert!(recordings(&data.join("recordings")).is_empty());
    let d = decode(&file);
    assert_recorded_live(&d, live, 5 + 4, 0.6);
    assert_listed_length(&videos[0], d.video_pts[d.video_pts.len() - 1]);
    // Its still: the WebM's first VP9 keyframe, decoded on the server (libvpx).
    assert_still_is_the_ball(&server, &videos[0]);
}

/// A browser or GStreamer broadcaster sends VP9: its channel gets a live thumbnail from a
/// keyframe the node decodes.
#[test]
fn a_vp9_live_stream_gets_a_thumbnail_decoded_on_the_server() {
    assert_live_thumbnail("thumb-vp9", &["--vp9"]);
}

#[test]
fn a_node_killed_while_recording_vp9_leaves_a_webm_that_decodes_and_is_listed() {
    // What was written before the kill: all but what the recorder still held for ordering.
    let (data, n) = killed_while_recording("vp9-crash", &["--vp9"], "webm", 0.6);
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
    let d = decode(&fetch_media(&server, &videos[0], &data, "fetched.webm"));
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
