//! Resumable uploads (tus 1.0) with raw requests: offsets, a PATCH cut off mid-body and
//! resumed, the protocol's refusals, and the check of the finished file (a truncated,
//! a foreign or a garbage file is refused and nothing of it stays).

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::clips::{self, tus};
use crate::harness::{Api, Backend};
use crate::videos::{channel, media, with_media_dir};

const OCTETS: &str = "application/offset+octet-stream";

async fn head(api: &Api, token: &str, loc: &str) -> (StatusCode, Option<u64>) {
    let (s, h, _) = tus(api, Method::HEAD, loc, token, &[], Vec::new()).await;
    let off = h
        .get("upload-offset")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    if s == StatusCode::OK {
        assert_eq!(h["cache-control"], "no-store");
    }
    (s, off)
}

async fn patch(
    api: &Api,
    token: &str,
    loc: &str,
    offset: usize,
    body: Vec<u8>,
) -> (StatusCode, reqwest::header::HeaderMap, String) {
    tus(
        api,
        Method::PATCH,
        loc,
        token,
        &[
            ("upload-offset", offset.to_string()),
            ("content-type", OCTETS.into()),
        ],
        body,
    )
    .await
}

async fn listed(api: &Api, token: &str) -> usize {
    let (_, list) = api
        .call(Method::GET, "/channels/amy-live/videos", Some(token), None)
        .await;
    list.as_array().unwrap().len()
}

/// Uploads `bytes` to amy-live and asserts the 422 `invalid_media` whose detail `says`.
async fn refused(api: &Api, token: &str, what: &str, bytes: &[u8], says: &str) {
    let (s, h, b) = clips::upload(api, token, "amy-live", what, bytes).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {b}");
    assert_eq!(h["content-type"], "application/problem+json");
    let p: Value = serde_json::from_str(&b).unwrap();
    assert_eq!(p["code"], "invalid_media", "{what}: {p}");
    assert!(p["detail"].as_str().unwrap().contains(says), "{what}: {p}");
}

async fn resumes_after_a_cut(backend: Backend) {
    let Some(clip) = clips::webm(3) else { return };
    let (config, dir) = with_media_dir();
    let Some(api) = Api::start(backend, config).await else {
        return;
    };
    let (amy, _, _) = api.user("amy").await;
    let (bob, _, _) = api.user("bob").await;
    channel(&api, &amy, "amy-live").await;
    let loc = clips::create(&api, &amy, "amy-live", "Resumed", clip.len()).await;
    assert!(loc.starts_with("/api/v1/uploads/"), "{loc}");
    assert_eq!(head(&api, &amy, &loc).await, (StatusCode::OK, Some(0)));
    // Someone else's upload does not exist for them.
    assert_eq!(head(&api, &bob, &loc).await.0, StatusCode::NOT_FOUND);

    // A PATCH whose connection breaks after 40,000 bytes: those bytes stay.
    let first = clip[..40_000].to_vec();
    let stream = futures_util::stream::unfold(0, move |step| {
        let first = first.clone();
        async move {
            match step {
                0 => Some((Ok::<_, std::io::Error>(first), 1)),
                1 => {
                    // The bytes are on their way; then the connection dies.
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    Some((Err(std::io::Error::other("the network went away")), 2))
                }
                _ => None,
            }
        }
    });
    let origin = api.base.trim_end_matches("/api/v1");
    let cut = reqwest::Client::new()
        .patch(format!("{origin}{loc}"))
        .bearer_auth(&amy)
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", "0")
        .header("content-type", OCTETS)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await;
    assert!(cut.is_err(), "the client's body failed: {cut:?}");
    let mut offset = None;
    for _ in 0..50 {
        offset = head(&api, &amy, &loc).await.1;
        if offset == Some(40_000) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(offset, Some(40_000), "HEAD says where to resume");
    assert_eq!(listed(&api, &amy).await, 0, "nothing half-made is listed");

    // The wrong offset is refused; the right one resumes; the last byte lists it.
    let (s, _, p) = patch(&api, &amy, &loc, 0, clip[..10].to_vec()).await;
    assert_eq!(s, StatusCode::CONFLICT, "{p}");
    let (s, h, _) = patch(&api, &amy, &loc, 40_000, clip[40_000..60_000].to_vec()).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(h["upload-offset"], "60000");
    assert!(h.get("cascade-video-id").is_none());
    let (s, h, b) = patch(&api, &amy, &loc, 60_000, clip[60_000..].to_vec()).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    let id = h["cascade-video-id"].to_str().unwrap().to_owned();
    assert_eq!(listed(&api, &amy).await, 1);
    // The stored file is the upload, byte for byte.
    let origin = api.base.trim_end_matches("/api/v1");
    let got = reqwest::get(format!("{origin}/api/v1/videos/{id}/media"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&got[..], &clip[..]);
    // The upload itself is over.
    assert_eq!(head(&api, &amy, &loc).await.0, StatusCode::NOT_FOUND);
    let staged: Vec<_> = std::fs::read_dir(dir.join("staging")).unwrap().collect();
    assert!(staged.is_empty(), "{staged:?}");
    let _ = std::fs::remove_dir_all(dir);
}
crate::both!(resumes_after_a_cut);

async fn protocol_refusals(backend: Backend) {
    let (config, dir) = with_media_dir();
    let Some(api) = Api::start(backend, config).await else {
        return;
    };
    let (amy, _, _) = api.user("amy").await;
    let (bob, _, _) = api.user("bob").await;
    channel(&api, &amy, "amy-live").await;
    let create = "/channels/amy-live/uploads";
    // Another protocol version: 412 with the versions spoken.
    let origin = api.base.trim_end_matches("/api/v1");
    let resp = reqwest::Client::new()
        .post(format!("{origin}/api/v1{create}"))
        .bearer_auth(&amy)
        .header("tus-resumable", "0.2.2")
        .header("upload-length", "10")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(resp.headers()["tus-version"], "1.0.0");
    // No length, a length past the limit (4 MiB here), empty.
    let (s, _, _) = tus(&api, Method::POST, create, &amy, &[], Vec::new()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, h, b) = tus(
        &api,
        Method::POST,
        create,
        &amy,
        &[("upload-length", (5u64 << 20).to_string())],
        Vec::new(),
    )
    .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{b}");
    assert_eq!(h["content-type"], "application/problem+json");
    let (s, _, _) = tus(
        &api,
        Method::POST,
        create,
        &amy,
        &[("upload-length", "0".into())],
        Vec::new(),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    // Not their channel.
    let (s, _, _) = tus(
        &api,
        Method::POST,
        create,
        &bob,
        &[("upload-length", "10".into())],
        Vec::new(),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Anonymous.
    let resp = reqwest::Client::new()
        .post(format!("{origin}/api/v1{create}"))
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "10")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    let loc = clips::create(&api, &amy, "amy-live", "x", 100).await;
    // The wrong content type; more bytes than declared.
    let (s, _, _) = tus(
        &api,
        Method::PATCH,
        &loc,
        &amy,
        &[
            ("upload-offset", "0".into()),
            ("content-type", "application/json".into()),
        ],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (s, _, b) = patch(&api, &amy, &loc, 0, vec![0u8; 150]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    // Termination.
    let (s, _, _) = tus(&api, Method::DELETE, &loc, &amy, &[], Vec::new()).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(head(&api, &amy, &loc).await.0, StatusCode::NOT_FOUND);
    // At most five in progress per channel.
    for _ in 0..5 {
        clips::create(&api, &amy, "amy-live", "x", 100).await;
    }
    let (s, _, _) = tus(
        &api,
        Method::POST,
        create,
        &amy,
        &[("upload-length", "10".into())],
        Vec::new(),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let _ = std::fs::remove_dir_all(dir);
}
crate::both!(protocol_refusals);

async fn bad_files_are_refused_and_leave_nothing(backend: Backend) {
    let Some(clip) = clips::webm(3) else { return };
    let (config, dir) = with_media_dir();
    let Some(api) = Api::start(backend, config).await else {
        return;
    };
    let (amy, _, _) = api.user("amy").await;
    channel(&api, &amy, "amy-live").await;
    let truncated = clip[..clip.len() * 2 / 3].to_vec();
    // A Matroska file that is not WebM (its doc type).
    let mut matroska = clip.clone();
    let at = matroska.windows(4).position(|w| w == b"webm").unwrap();
    matroska[at..at + 4].copy_from_slice(b"mkv!");
    let garbage = b"this is not a video at all, only words".repeat(100);
    // A WebM whose video is in a codec a browser may not play (its codec id changed: the
    // file is whole, only the codec is refused).
    let mut theora = clip.clone();
    let at = theora.windows(5).position(|w| w == b"V_VP8").unwrap();
    theora[at..at + 5].copy_from_slice(b"V_THO");
    for (what, bytes, says) in [
        ("truncated", truncated, "truncated"),
        ("not webm", matroska, "not a WebM"),
        ("garbage", garbage, "not a WebM"),
        ("codec", theora, "codec V_THO is not allowed"),
    ] {
        refused(&api, &amy, what, &bytes, says).await;
    }
    assert_eq!(listed(&api, &amy).await, 0);
    let staged: Vec<_> = std::fs::read_dir(dir.join("staging")).unwrap().collect();
    assert!(staged.is_empty(), "{staged:?}");
    assert!(std::fs::read_dir(dir.join("media"))
        .unwrap()
        .next()
        .is_none());
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM uploads")
        .fetch_one(api.cp.db().pool())
        .await
        .unwrap();
    assert_eq!(n, 0);
    let _ = std::fs::remove_dir_all(dir);
}
crate::both!(bad_files_are_refused_and_leave_nothing);

/// An MP4 (H.264 and AAC, sent as `clip.webm`: the container is told by its bytes) is
/// listed with its duration and served as video/mp4 with ranges; the same file cut short
/// is refused and nothing of it stays.
async fn mp4_is_listed_and_a_cut_one_refused(backend: Backend) {
    let Some(clip) = clips::mp4(3) else { return };
    let (config, dir) = with_media_dir();
    let Some(api) = Api::start(backend, config).await else {
        return;
    };
    let (amy, _, _) = api.user("amy").await;
    channel(&api, &amy, "amy-live").await;

    let truncated = clip[..clip.len() * 2 / 3].to_vec();
    refused(&api, &amy, "cut", &truncated, "truncated").await;
    assert_eq!(listed(&api, &amy).await, 0);
    assert!(std::fs::read_dir(dir.join("media"))
        .unwrap()
        .next()
        .is_none());

    let (s, h, b) = clips::upload(&api, &amy, "amy-live", "An MP4", &clip).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    assert!(h.get("cascade-video-id").is_some());
    let (_, list) = api
        .call(Method::GET, "/channels/amy-live/videos", None, None)
        .await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let v = &list[0];
    assert_eq!(v["video_codec"], "h264", "{v}");
    assert_eq!(v["audio_codec"], "aac", "{v}");
    assert_eq!(v["width"], 320, "{v}");
    let ms = v["duration_ms"].as_i64().unwrap();
    assert!((2_800..=3_300).contains(&ms), "{ms}");
    let url = v["media_url"].as_str().unwrap().to_owned();
    let (s, h, body) = media(&api, &url, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["content-type"], "video/mp4");
    assert_eq!(body, clip);
    let (s, h, body) = media(&api, &url, Some("bytes=100-199")).await;
    assert_eq!(s, StatusCode::PARTIAL_CONTENT);
    assert_eq!(h["content-type"], "video/mp4");
    assert_eq!(
        h["content-range"],
        format!("bytes 100-199/{}", clip.len()).as_str()
    );
    assert_eq!(body, &clip[100..200]);
    let _ = std::fs::remove_dir_all(dir);
}
crate::both!(mp4_is_listed_and_a_cut_one_refused);
