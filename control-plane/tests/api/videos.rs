//! Videos: an uploaded WebM listed, read with range requests, edited, hidden by its
//! visibility, deleted with its stored media; a recording registered sends
//! `recording.ready`; the retention sweeper on a virtual clock.

use std::path::PathBuf;
use std::time::Duration;

use control_plane::content::{self, Recording, StorageSettings};
use control_plane::Config;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::clips;
use crate::harness::{roomy, Api, Backend};
use crate::receiver::{Behaviour, Receiver};

/// A config whose videos go to a fresh directory (returned).
pub fn with_media_dir() -> (Config, PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "cascade-media-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let mut config = roomy();
    config.content.storage = StorageSettings::Directory(dir.join("media"));
    config.content.staging_dir = Some(dir.join("staging"));
    config.content.max_upload_bytes = 4 * 1024 * 1024;
    config.webhooks.allow_private = true;
    (config, dir)
}

fn files_in(dir: &std::path::Path) -> usize {
    walk(dir).len()
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

pub async fn channel(api: &Api, token: &str, slug: &str) {
    let (s, b) = api
        .call(
            Method::POST,
            "/channels",
            Some(token),
            Some(json!({"slug": slug, "title": "Show"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
}

/// Raw GET of a video's media with an optional Range.
pub async fn media(
    api: &Api,
    url: &str,
    range: Option<&str>,
) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let origin = api.base.trim_end_matches("/api/v1");
    let mut req = reqwest::Client::new().get(format!("{origin}{url}"));
    if let Some(r) = range {
        req = req.header("range", r);
    }
    let resp = req.send().await.unwrap();
    let (s, h) = (resp.status(), resp.headers().clone());
    (s, h, resp.bytes().await.unwrap().to_vec())
}

async fn videos_lifecycle(backend: Backend) {
    let Some(clip) = clips::webm(4) else { return };
    let (config, dir) = with_media_dir();
    let Some(api) = Api::start(backend, config).await else {
        return;
    };
    let (_admin, _, _) = api.user("root").await;
    let (amy, _, _) = api.user("amy").await;
    let (bob, _, _) = api.user("bob").await;
    channel(&api, &amy, "amy-live").await;

    let (s, h, b) = clips::upload(&api, &amy, "amy-live", "First clip", &clip).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    assert_eq!(h["upload-offset"], clip.len().to_string().as_str());
    let id = h["cascade-video-id"].to_str().unwrap().to_owned();

    // Listed for everyone, with what the check found.
    let (s, list) = api
        .call(Method::GET, "/channels/amy-live/videos", None, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let v = &list[0];
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["title"], "First clip");
    assert_eq!(v["kind"], "upload");
    assert_eq!(v["video_codec"], "vp8");
    assert_eq!(v["audio_codec"], "opus");
    assert_eq!(v["width"], 320);
    assert_eq!(v["size_bytes"], clip.len());
    let ms = v["duration_ms"].as_i64().unwrap();
    assert!((3_500..=4_500).contains(&ms), "{ms}");
    let url = v["media_url"].as_str().unwrap().to_owned();

    // Media: whole, a range, a suffix, and a range outside it.
    let (s, h, body) = media(&api, &url, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["accept-ranges"], "bytes");
    assert_eq!(h["content-type"], "video/webm");
    assert_eq!(body, clip);
    let (s, h, body) = media(&api, &url, Some("bytes=100-199")).await;
    assert_eq!(s, StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        h["content-range"],
        format!("bytes 100-199/{}", clip.len()).as_str()
    );
    assert_eq!(body, &clip[100..200]);
    let (s, _, body) = media(&api, &url, Some("bytes=-50")).await;
    assert_eq!(s, StatusCode::PARTIAL_CONTENT);
    assert_eq!(body, &clip[clip.len() - 50..]);
    let (s, h, body) = media(&api, &url, Some(&format!("bytes={}-", clip.len()))).await;
    assert_eq!(s, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        h["content-range"],
        format!("bytes */{}", clip.len()).as_str()
    );
    assert_eq!(h["content-type"], "application/problem+json");
    assert!(String::from_utf8_lossy(&body).contains("outside"));

    // Someone else may not edit or delete it.
    let path = format!("/videos/{id}");
    let (s, _) = api
        .call(
            Method::PATCH,
            &path,
            Some(&bob),
            Some(json!({"title": "mine"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = api.call(Method::DELETE, &path, Some(&bob), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, p) = api
        .call(
            Method::PATCH,
            &path,
            Some(&amy),
            Some(json!({"title": "  "})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{p}");

    // Unlisted: gone from the list, open by its link.
    let (s, v) = api
        .call(
            Method::PATCH,
            &path,
            Some(&amy),
            Some(
                json!({"title": "Renamed", "description": "a test card", "visibility": "unlisted"}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["title"], "Renamed");
    let (_, list) = api
        .call(Method::GET, "/channels/amy-live/videos", None, None)
        .await;
    assert_eq!(list.as_array().unwrap().len(), 0, "{list}");
    let (s, v) = api.call(Method::GET, &path, None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["description"], "a test card");
    let (_, list) = api
        .call(Method::GET, "/channels/amy-live/videos", Some(&amy), None)
        .await;
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "the owner sees all: {list}"
    );

    // Private: the owner only; its media too, and its link's token is the owner's.
    api.call(
        Method::PATCH,
        &path,
        Some(&amy),
        Some(json!({"visibility": "private"})),
    )
    .await;
    let (s, _) = api.call(Method::GET, &path, Some(&bob), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) = media(&api, &url, Some("bytes=0-9")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = api.call(Method::GET, &path, Some(&amy), None).await;
    assert_eq!(s, StatusCode::OK);
    let private_url = v["media_url"].as_str().unwrap().to_owned();
    assert!(private_url.contains("?token="), "{private_url}");
    let (s, _, body) = media(&api, &private_url, Some("bytes=0-9")).await;
    assert_eq!(s, StatusCode::PARTIAL_CONTENT);
    assert_eq!(body, &clip[..10]);
    // That token opens this video only.
    let other = private_url.replace(&id, "someothervideo");
    let (s, _, _) = media(&api, &other, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Subscribers: listed, refused with the code the pages act on, no link.
    api.call(
        Method::PATCH,
        &path,
        Some(&amy),
        Some(json!({"visibility": "subscribers"})),
    )
    .await;
    let (_, list) = api
        .call(Method::GET, "/channels/amy-live/videos", Some(&bob), None)
        .await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert!(list[0]["media_url"].is_null(), "{list}");
    let (s, p) = api.call(Method::GET, &path, Some(&bob), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(p["code"], "subscription_required");
    let (s, _, _) = media(&api, &url, None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // The owner still plays it.
    let (s, v) = api.call(Method::GET, &path, Some(&amy), None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = media(&api, v["media_url"].as_str().unwrap(), Some("bytes=0-0")).await;
    assert_eq!(s, StatusCode::PARTIAL_CONTENT);

    // Deleted by its owner: the row and the stored file go.
    let media_dir = dir.join("media");
    assert_eq!(files_in(&media_dir), 1);
    let (s, _) = api.call(Method::DELETE, &path, Some(&amy), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(files_in(&media_dir), 0, "{:?}", walk(&media_dir));
    let (s, _) = api.call(Method::GET, &path, Some(&amy), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) = media(&api, &url, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let _ = std::fs::remove_dir_all(dir);
}
crate::both!(videos_lifecycle);

async fn admins_delete_any_video(backend: Backend) {
    let Some(clip) = clips::webm(1) else { return };
    let (config, dir) = with_media_dir();
    let Some(api) = Api::start(backend, config).await else {
        return;
    };
    let (root, _, _) = api.user("root").await;
    let (amy, _, _) = api.user("amy").await;
    channel(&api, &amy, "amy-live").await;
    let (s, h, _) = clips::upload(&api, &amy, "amy-live", "x", &clip).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let id = h["cascade-video-id"].to_str().unwrap().to_owned();
    // An admin edits it too (a moderator renaming a misleading title).
    let (s, v) = api
        .call(
            Method::PATCH,
            &format!("/videos/{id}"),
            Some(&root),
            Some(json!({"title": "Renamed by an admin", "visibility": "private"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["title"].as_str(), v["visibility"].as_str()),
        (Some("Renamed by an admin"), Some("private"))
    );
    let (s, _) = api
        .call(Method::DELETE, &format!("/videos/{id}"), Some(&root), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(files_in(&dir.join("media")), 0);
    let _ = std::fs::remove_dir_all(dir);
}
crate::both!(admins_delete_any_video);

/// A recording stored by the recorder, registered as the recorder will; begun a minute ago.
async fn record(api: &Api, slug: &str, clip: &[u8]) -> String {
    record_since(api, slug, clip, control_plane_now() - 60_000).await
}

pub async fn record_since(api: &Api, slug: &str, clip: &[u8], started_ms: i64) -> String {
    let (channel_id,): (String,) = sqlx::query_as("SELECT id FROM channels WHERE slug = $1")
        .bind(slug)
        .fetch_one(api.cp.db().pool())
        .await
        .unwrap();
    let key = format!("recordings/{slug}-{}.webm", clip.len());
    let storage = api.cp.content().storage().unwrap();
    storage.put(&key, clip.to_vec().into()).await.unwrap();
    let probe = content::check::probe(std::io::Cursor::new(clip.to_vec()), i64::MAX).unwrap();
    content::register_recording(
        &api.cp,
        Recording {
            channel_id,
            stream: slug.into(),
            title: "Live on Sunday".into(),
            storage_key: key,
            probe,
            size_bytes: clip.len() as i64,
            started_ms,
        },
    )
    .await
    .unwrap()
}

async fn a_recording_is_listed_and_announced(backend: Backend) {
    let Some(clip) = clips::webm(1) else { return };
    let (config, dir) = with_media_dir();
    let Some(api) = Api::start(backend, config).await else {
        return;
    };
    let (amy, _, _) = api.user("amy").await;
    channel(&api, &amy, "amy-live").await;
    let rx = Receiver::start(Behaviour::Accept).await;
    let (s, b) = api
        .call(
            Method::POST,
            "/webhooks",
            Some(&amy),
            Some(json!({"channel": "amy-live", "url": rx.url, "events": ["recording.ready"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let id = record(&api, "amy-live", &clip).await;
    let (_, list) = api
        .call(Method::GET, "/channels/amy-live/videos", None, None)
        .await;
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["kind"], "recording");
    assert_eq!(list[0]["source_stream"], "amy-live");
    // The channel's page lists it under its past broadcasts, linked to its video page.
    let (s, profile) = api
        .call(Method::GET, "/channels/amy-live/profile", None, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{profile}");
    assert_eq!(profile["videos"][0]["id"], id.as_str(), "{profile}");
    assert_eq!(profile["videos"][0]["url"], format!("/video/{id}"));
    let got = rx.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    let event: serde_json::Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(event["type"], "recording.ready", "{event}");
    assert_eq!(event["data"]["video_id"], id.as_str(), "{event}");
    let _ = std::fs::remove_dir_all(dir);
}
crate::both!(a_recording_is_listed_and_announced);

/// What a live showed only to subscribers, its recording shows only to them: a recording
/// of a subscribers-only channel, or of a live the paywall closed for a while, is a
/// subscribers' video (listed, not playable by others, not in search); one of an open
/// live is public.
async fn a_paywalled_live_records_a_subscribers_video(backend: Backend) {
    let Some(clip) = clips::webm(1) else { return };
    let (config, dir) = with_media_dir();
    let Some(api) = Api::start(backend, config).await else {
        return;
    };
    let (amy, _, _) = api.user("amy").await;
    let (bob, _, _) = api.user("bob").await;
    channel(&api, &amy, "amy-live").await;
    let open = record(&api, "amy-live", &clip).await;
    assert_eq!(visibility(&api, &amy, &open).await, "public");

    // Subscribers-only while recording, and still.
    let s = paywall(&api, &amy, true).await;
    assert_eq!(s, StatusCode::OK);
    let closed = record(&api, "amy-live", &clip).await;
    assert_eq!(visibility(&api, &amy, &closed).await, "subscribers");
    // Bob sees it listed but cannot play it; the owner can.
    let (s, p) = api
        .call(Method::GET, &format!("/videos/{closed}"), Some(&bob), None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{p}");
    assert_eq!(p["code"], "subscription_required", "{p}");
    let (_, list) = api
        .call(Method::GET, "/channels/amy-live/videos", Some(&bob), None)
        .await;
    let listed = list
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == closed.as_str());
    assert!(listed.is_some_and(|v| v["url"].is_null()), "{list}");

    // Closed for a while during the live, open again when it ended.
    let s = paywall(&api, &amy, false).await;
    assert_eq!(s, StatusCode::OK);
    // However long ago the closing's revocation expired (tokens last minutes, a live hours).
    sqlx::query("DELETE FROM revocations")
        .execute(api.cp.db().pool())
        .await
        .unwrap();
    let was_closed = record(&api, "amy-live", &clip).await;
    assert_eq!(visibility(&api, &amy, &was_closed).await, "subscribers");
    // A live begun after the paywall opened again is public.
    let later = record_since(&api, "amy-live", &clip, control_plane_now() + 1).await;
    assert_eq!(visibility(&api, &amy, &later).await, "public");
    let _ = std::fs::remove_dir_all(dir);
}
crate::both!(a_paywalled_live_records_a_subscribers_video);

async fn paywall(api: &Api, owner: &str, subscribers_only: bool) -> StatusCode {
    let body = json!({"subscribers_only": subscribers_only, "stream_until": null});
    let path = "/channels/amy-live/paywall";
    api.call(Method::PUT, path, Some(owner), Some(body)).await.0
}

pub async fn visibility(api: &Api, owner: &str, id: &str) -> String {
    let (s, v) = api
        .call(Method::GET, &format!("/videos/{id}"), Some(owner), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["visibility"].as_str().unwrap().to_owned()
}

async fn retention_sweeps_expired_recordings_but_not_watched_ones(backend: Backend) {
    let Some(clip) = clips::webm(1) else { return };
    let (config, dir) = with_media_dir();
    let Some(api) = Api::start(backend, config).await else {
        return;
    };
    let (amy, _, _) = api.user("amy").await;
    let (bob, _, _) = api.user("bob").await;
    channel(&api, &amy, "amy-live").await;
    let path = "/channels/amy-live/retention";
    let (s, r) = api.call(Method::GET, path, Some(&amy), None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(r["keep_days"].is_null(), "forever by default: {r}");
    for bad in [json!({"keep_days": 0}), json!({"keep_days": 100000})] {
        let (s, _) = api.call(Method::PUT, path, Some(&amy), Some(bad)).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let (s, _) = api
        .call(Method::PUT, path, Some(&bob), Some(json!({"keep_days": 1})))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    let old = record(&api, "amy-live", &clip).await;
    let watched = record(&api, "amy-live", &clips::webm(2).unwrap()).await;
    let (s, h, _) = clips::upload(&api, &amy, "amy-live", "upload", &clip).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let upload = h["cascade-video-id"].to_str().unwrap().to_owned();
    let day = 86_400_000i64;
    let now = control_plane_now();
    // Everything made three days ago (a virtual clock: the sweep is told the time).
    sqlx::query("UPDATE videos SET created_at = $1")
        .bind(now - 3 * day)
        .execute(api.cp.db().pool())
        .await
        .unwrap();

    // Forever: nothing goes.
    assert!(content::retention::sweep(&api.cp, now)
        .await
        .unwrap()
        .is_empty());
    let (s, _) = api
        .call(Method::PUT, path, Some(&amy), Some(json!({"keep_days": 2})))
        .await;
    assert_eq!(s, StatusCode::OK);
    // A viewer reads one now (a range, as a seeking player does).
    let (_, v) = api
        .call(Method::GET, &format!("/videos/{watched}"), None, None)
        .await;
    let (s, _, _) = media(&api, v["media_url"].as_str().unwrap(), Some("bytes=0-99")).await;
    assert_eq!(s, StatusCode::PARTIAL_CONTENT);

    let gone = content::retention::sweep(&api.cp, now).await.unwrap();
    assert_eq!(gone, vec![old.clone()], "only the unwatched recording goes");
    let (s, _) = api
        .call(Method::GET, &format!("/videos/{old}"), None, None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    for kept in [&watched, &upload] {
        let (s, _) = api
            .call(Method::GET, &format!("/videos/{kept}"), None, None)
            .await;
        assert_eq!(s, StatusCode::OK);
    }
    // Nine minutes later the viewer is still within the grace; at ten it goes (the
    // upload never does).
    let read_at = now;
    assert!(content::retention::sweep(&api.cp, read_at + 9 * 60_000)
        .await
        .unwrap()
        .is_empty());
    let gone = content::retention::sweep(&api.cp, read_at + 10 * 60_000 + 1000)
        .await
        .unwrap();
    assert_eq!(gone, vec![watched]);
    assert_eq!(files_in(&dir.join("media")), 1, "the upload's file stays");
    let _ = std::fs::remove_dir_all(dir);
}
crate::both!(retention_sweeps_expired_recordings_but_not_watched_ones);

fn control_plane_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Recordings as the node hands them over: no length limit (a recording lasts as long as
/// its live, whatever uploads may), and a refused file left on disk.
async fn recordings_are_unlimited_and_kept_on_disk_when_refused(backend: Backend) {
    let Some(clip) = clips::webm(3) else { return };
    let (mut config, dir) = with_media_dir();
    config.content.max_duration_ms = 1000;
    let Some(api) = Api::start(backend, config).await else {
        return;
    };
    let (amy, _, _) = api.user("amy").await;
    channel(&api, &amy, "amy-live").await;
    // The recordings started after the channel was made (Unix ms).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let local = dir.join("recordings");
    std::fs::create_dir_all(&local).unwrap();
    let file = |name: &str, bytes: &[u8]| {
        let p = local.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };

    // An upload as long is refused; the recording is listed whole, its file gone.
    let (s, _, b) = clips::upload(&api, &amy, "amy-live", "Long", &clip).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let whole = file("amy-live-1.webm", &clip);
    let id = content::store_recording(&api.cp, "amy-live", &whole, now)
        .await
        .unwrap();
    let (_, list) = api
        .call(Method::GET, "/channels/amy-live/videos", None, None)
        .await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["id"], id.as_str());
    let ms = list[0]["duration_ms"].as_i64().unwrap();
    assert!((2_500..=3_500).contains(&ms), "{ms}");
    assert!(!whole.exists());

    // A finished recording that does not check is refused and stays on disk.
    let cut = &clip[..clip.len() * 2 / 3];
    let damaged = file("amy-live-2.webm", cut);
    let garbage = file("amy-live-3.webm", b"not a video");
    for f in [&damaged, &garbage] {
        let e = content::store_recording(&api.cp, "amy-live", f, now).await;
        assert!(e.is_err(), "{e:?}");
        assert!(f.exists(), "{} kept", f.display());
    }
    // Nor does the check for a file a crash cut take them: this one's cues and sizes
    // say it was finished (a crash-cut recording is tests/it/recording.rs's).
    for f in [&damaged, &garbage] {
        let e = content::recover_recording(&api.cp, "amy-live", f, now).await;
        assert!(e.is_err(), "{e:?}");
        assert!(f.exists(), "{} kept", f.display());
    }
    // A recording older than the channel of its name was a deleted channel's (the name
    // taken again since): not listed on the new one, kept on disk.
    let older = file("amy-live-4.webm", &clip);
    let e = content::recover_recording(&api.cp, "amy-live", &older, now - 3_600_000).await;
    assert!(e.is_err(), "{e:?}");
    assert!(older.exists());
    let (_, list) = api
        .call(Method::GET, "/channels/amy-live/videos", None, None)
        .await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let _ = std::fs::remove_dir_all(dir);
}
crate::both!(recordings_are_unlimited_and_kept_on_disk_when_refused);

/// The video hits of a search, as anyone sees them: (id, title).
async fn found(api: &Api, q: &str) -> Vec<(String, String)> {
    let (s, hits) = api
        .call(
            Method::GET,
            &format!("/search?q={q}&kind=video"),
            None,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{hits}");
    hits.as_array()
        .unwrap()
        .iter()
        .map(|h| {
            assert_eq!(h["kind"], "video", "{h}");
            (
                h["id"].as_str().unwrap().into(),
                h["title"].as_str().unwrap().into(),
            )
        })
        .collect()
}

/// Search finds a public video by a word of its description once it is edited in; a video
/// made private leaves the results, and a deleted one too.
async fn public_videos_are_found_by_their_description(backend: Backend) {
    let Some(clip) = clips::webm(1) else { return };
    let (config, dir) = with_media_dir();
    let Some(api) = Api::start(backend, config).await else {
        return;
    };
    let (amy, _, _) = api.user("amy").await;
    channel(&api, &amy, "amy-live").await;
    let (s, h, b) = clips::upload(&api, &amy, "amy-live", "Morning walk", &clip).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    let id = h["cascade-video-id"].to_str().unwrap().to_owned();
    // Listed: found by its title at once.
    assert_eq!(
        found(&api, "morn").await,
        [(id.clone(), "Morning walk".into())]
    );
    assert!(found(&api, "waterfalls").await.is_empty());

    let path = format!("/videos/{id}");
    let edit = |body: serde_json::Value| {
        let (api, amy, path) = (&api, &amy, &path);
        async move {
            let (s, v) = api.call(Method::PATCH, path, Some(amy), Some(body)).await;
            assert_eq!(s, StatusCode::OK, "{v}");
        }
    };
    edit(json!({"description": "Along the river to the waterfalls at dawn"})).await;
    assert_eq!(
        found(&api, "waterf").await,
        [(id.clone(), "Morning walk".into())]
    );
    // The channel is found by its own words, not the video's.
    let (_, hits) = api
        .call(Method::GET, "/search?q=waterfalls", None, None)
        .await;
    assert_eq!(hits.as_array().unwrap().len(), 1, "{hits}");

    edit(json!({"visibility": "private"})).await;
    assert!(found(&api, "waterfalls").await.is_empty());
    edit(json!({"visibility": "unlisted"})).await;
    assert!(found(&api, "waterfalls").await.is_empty());
    edit(json!({"visibility": "public", "title": "Evening walk"})).await;
    assert_eq!(
        found(&api, "waterfalls").await,
        [(id.clone(), "Evening walk".into())]
    );
    assert!(found(&api, "morning").await.is_empty());

    let (s, _) = api.call(Method::DELETE, &path, Some(&amy), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert!(found(&api, "waterfalls").await.is_empty());
    let _ = std::fs::remove_dir_all(dir);
}
crate::both!(public_videos_are_found_by_their_description);

/// A deleted channel's videos go with their stored files; so do those of a deleted account.
async fn deleting_a_channel_or_an_account_removes_its_media(backend: Backend) {
    let Some(clip) = clips::webm(1) else { return };
    let (config, dir) = with_media_dir();
    let Some(api) = Api::start(backend, config).await else {
        return;
    };
    let (amy, _, _) = api.user("amy").await;
    let (bob, _, _) = api.user("bob").await;
    channel(&api, &amy, "amy-live").await;
    channel(&api, &bob, "bob-live").await;
    for (token, slug) in [(&amy, "amy-live"), (&amy, "amy-live"), (&bob, "bob-live")] {
        let (s, _, b) = clips::upload(&api, token, slug, "A clip", &clip).await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    }
    let media = dir.join("media");
    assert_eq!(files_in(&media), 3);

    let (s, b) = api
        .call(Method::DELETE, "/channels/amy-live", Some(&amy), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    assert_eq!(files_in(&media), 1, "{:?}", walk(&media));

    let (s, b) = api
        .call(
            Method::DELETE,
            "/me",
            Some(&bob),
            Some(json!({"current_password": "password-of-bob"})),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    assert_eq!(files_in(&media), 0, "{:?}", walk(&media));
    let _ = std::fs::remove_dir_all(dir);
}
crate::both!(deleting_a_channel_or_an_account_removes_its_media);
