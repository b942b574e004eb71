//! Real media for the content tests, made by GStreamer (`gst-launch-1.0`: VP8 and Opus in
//! WebM, H.264 and AAC in MP4), and a tus client of raw requests (the browser test uses tus-js-client).

use std::process::Command;

use reqwest::header::HeaderMap;
use reqwest::StatusCode;

use crate::harness::Api;

/// A WebM of `secs` seconds (320x240, 30 fps, a keyframe a second, Opus sound), or None
/// (said loudly) where GStreamer's tools are missing.
pub fn webm(secs: u32) -> Option<Vec<u8>> {
    gst(
        "clip.webm",
        &format!(
            "videotestsrc num-buffers={} ! video/x-raw,width=320,height=240,framerate=30/1 \
             ! vp8enc deadline=1 target-bitrate=150000 keyframe-max-dist=30 ! webmmux name=m \
             ! filesink location=OUT audiotestsrc num-buffers={} samplesperbuffer=960 \
             ! audio/x-raw,rate=48000 ! opusenc ! m.",
            secs * 30,
            secs * 50
        ),
    )
}

/// An MP4 of `secs` seconds (320x240 H.264 from openh264, 30 fps, AAC sound; its `moov`
/// at the end, as GStreamer's `mp4mux` writes it), or None where GStreamer is missing.
pub fn mp4(secs: u32) -> Option<Vec<u8>> {
    gst(
        "clip.mp4",
        &format!(
            "videotestsrc num-buffers={} ! video/x-raw,width=320,height=240,framerate=30/1 \
             ! openh264enc bitrate=150000 gop-size=30 ! h264parse ! mp4mux name=m \
             ! filesink location=OUT audiotestsrc num-buffers={} samplesperbuffer=1024 \
             ! audio/x-raw,rate=48000 ! voaacenc ! m.",
            secs * 30,
            secs * 48_000 / 1024
        ),
    )
}

/// Runs a `gst-launch-1.0` pipeline whose sink writes `OUT` (a file `name` in a fresh
/// directory) and returns the file's bytes.
fn gst(name: &str, pipeline: &str) -> Option<Vec<u8>> {
    let dir = std::env::temp_dir().join(format!(
        "cascade-clip-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(name);
    let pipeline = pipeline.replace("OUT", &out.display().to_string());
    let run = Command::new("gst-launch-1.0")
        .arg("-q")
        .args(pipeline.split_whitespace())
        .output();
    match run {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "gst-launch-1.0 failed: {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(_) => {
            eprintln!("SKIPPED (GStreamer): gst-launch-1.0 is not installed (gstreamer1.0-tools)");
            return None;
        }
    }
    let bytes = std::fs::read(&out).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    Some(bytes)
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

/// A raw HTTP request to the API with tus headers.
pub async fn tus(
    api: &Api,
    method: reqwest::Method,
    path: &str,
    token: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> (StatusCode, HeaderMap, String) {
    let url = if path.starts_with("/api/v1") {
        format!("{}{}", api.base.trim_end_matches("/api/v1"), path)
    } else {
        format!("{}{path}", api.base)
    };
    let mut req = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(token)
        .header("tus-resumable", "1.0.0");
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let resp = req.body(body).send().await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.unwrap())
}

/// Creates an upload of `bytes` on `slug` and sends it in one PATCH; returns the last
/// answer (status, headers, body).
pub async fn upload(
    api: &Api,
    token: &str,
    slug: &str,
    title: &str,
    bytes: &[u8],
) -> (StatusCode, HeaderMap, String) {
    let location = create(api, token, slug, title, bytes.len()).await;
    tus(
        api,
        reqwest::Method::PATCH,
        &location,
        token,
        &[
            ("upload-offset", "0".into()),
            ("content-type", "application/offset+octet-stream".into()),
        ],
        bytes.to_vec(),
    )
    .await
}

/// tus creation; returns the upload's `Location`.
pub async fn create(api: &Api, token: &str, slug: &str, title: &str, len: usize) -> String {
    use base64::Engine;
    let meta = format!(
        "title {},filename {}",
        base64::engine::general_purpose::STANDARD.encode(title),
        base64::engine::general_purpose::STANDARD.encode("clip.webm")
    );
    let (s, h, b) = tus(
        api,
        reqwest::Method::POST,
        &format!("/channels/{slug}/uploads"),
        token,
        &[
            ("upload-length", len.to_string()),
            ("upload-metadata", meta),
        ],
        Vec::new(),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(h["tus-resumable"], "1.0.0");
    h["location"].to_str().unwrap().to_owned()
}
