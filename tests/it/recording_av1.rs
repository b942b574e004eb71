//! Recording an AV1 live (issue 14): a publisher sends the temporal units libaom
//! (GStreamer's `av1enc`) made of a 320×240 ball (the recorder's test data), packetized
//! by str0m's AV1 payloader in frame mode, as browsers and OBS send AV1 over WHIP (Debian
//! 12's GStreamer has no AV1 RTP payloader), with Opus; the node's channel records. The
//! recording is a WebM with a `V_AV1` track and its `av1C`, listed as an AV1 video, and
//! decoded by software nobody here wrote (GStreamer's `matroskademux`, `av1dec`,
//! `opusdec`). A publisher restart stays in one file.

use std::time::{Duration, Instant};

use str0m::format::Codec;

use crate::peer::{pump, Peer};
use crate::recording::{
    assert_listed_length, decode, fetch_media, listed, recording_node, recordings,
};
use crate::server::Server;

/// 20 temporal units, a keyframe (with its sequence header) every 10; each after its
/// 4-byte big-endian length.
const TUS: &[u8] = include_bytes!("../../sfu/src/record/testdata/ball-320x240.av1.obu");

/// An Opus frame of 20 ms of silence (TOC: CELT fullband, 20 ms, one frame).
const OPUS_SILENCE: [u8; 3] = [0xf8, 0xff, 0xfe];

fn temporal_units() -> Vec<&'static [u8]> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(len) = TUS.get(at..at + 4) {
        let len = u32::from_be_bytes(len.try_into().unwrap()) as usize;
        out.push(&TUS[at + 4..at + 4 + len]);
        at += 4 + len;
    }
    out
}

/// Publishes `slug` for `live`: the temporal units over and over at 30 fps, 20 ms Opus
/// frames beside them; then hangs up. Returns the pictures sent.
fn publish_av1(server: &Server, slug: &str, key: &str, live: Duration) -> usize {
    let tus = temporal_units();
    let (mut p, offer, pending) = Peer::frame_publisher();
    let url = server.url(&format!("/whip/{slug}"));
    p.connect_as(&server.http(), &url, offer, pending, Some(key));
    assert!(pump(&mut [&mut p], Duration::from_secs(10), |p| p[0].connected));
    let start = Instant::now();
    let (mut pictures, mut audio) = (0u64, 0u64);
    while start.elapsed() < live {
        let t = start.elapsed();
        // Whole loops of the units: every loop starts at a keyframe.
        if t >= Duration::from_millis(pictures * 1000 / 30) {
            let tu = tus[(pictures % tus.len() as u64) as usize];
            p.write_frame(Codec::Av1, pictures * 3000, tu);
            pictures += 1;
        }
        if t >= Duration::from_millis(audio * 20) {
            p.write_frame(Codec::Opus, audio * 960, &OPUS_SILENCE);
            audio += 1;
        }
        p.poll();
        std::thread::sleep(Duration::from_millis(2));
    }
    // As a WHIP client leaves: DELETE its session (the stream is free for the next).
    let session = server.url(p.location.as_deref().expect("a session"));
    let left = server
        .http()
        .delete(session)
        .bearer_auth(key)
        .send()
        .unwrap();
    assert!(left.status().is_success(), "{}", left.status());
    pictures as usize
}

#[test]
fn an_av1_live_records_to_one_webm_over_a_restart() {
    let (server, data, key) = recording_node("av1-show", "3000");
    let sent = publish_av1(&server, "av1-show", &key, Duration::from_secs(3))
        + publish_av1(&server, "av1-show", &key, Duration::from_secs(2));
    let videos = listed(&server, "av1-show", 1);
    assert_eq!(
        videos.len(),
        1,
        "one recording over the restart: {videos:?}"
    );
    assert_eq!(videos[0]["video_codec"], "av1", "{:?}", videos[0]);
    let file = fetch_media(&server, &videos[0], &data, "fetched.webm");
    assert!(recordings(&data.join("recordings")).is_empty());
    let d = decode(&file);
    assert!(d.ok, "GStreamer decodes it: {}", d.said);
    assert_eq!(d.size, Some((320, 240)), "the publisher's picture size");
    let n = d.video_pts.len();
    // All but what a restart costs (the new publisher's first keyframe is its first
    // picture) and the node's first moments.
    assert!(
        n as f64 > sent as f64 * 0.8 && n <= sent,
        "{n} pictures decoded of {sent} sent"
    );
    assert!(d.audio > 150, "{} audio buffers", d.audio);
    assert!(
        d.video_pts.windows(2).all(|w| w[1] >= w[0]),
        "times go back"
    );
    let span = d.video_pts[n - 1] - d.video_pts[0];
    assert!(
        (span - sent as f64 / 30.0).abs() < 1.0,
        "pictures span {span:.2} s for {sent} sent at 30 fps"
    );
    assert_listed_length(&videos[0], d.video_pts[n - 1]);
}
