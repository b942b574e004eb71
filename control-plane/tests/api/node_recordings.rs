//! A media-only node's finished recordings (`POST /cluster/recordings`), on SQLite and
//! PostgreSQL: a file sent again under its `Cascade-Recording-Key`, even while its first
//! send is still being stored, is listed once; a send whose storing failed does not keep
//! the key from the next one.

use std::time::Duration;

use control_plane::cluster::ClusterToken;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::clips;
use crate::harness::{Api, Backend};
use crate::videos::{channel, with_media_dir};

const TOKEN: &str = "cluster-secret-for-tests";

/// The node's hand-in of `body` for `stream` under `key`: status and JSON answer.
async fn hand_in(api: &Api, stream: &str, key: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let started_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let r = reqwest::Client::new()
        .post(format!("{}/cluster/recordings", api.base))
        .bearer_auth(TOKEN)
        .header("content-type", "video/webm")
        .header("cascade-stream", stream)
        .header("cascade-started-ms", started_ms.to_string())
        .header("cascade-recording-key", key)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or_default())
}

/// [`hand_in`] as the node does it: a 409 (the same file being stored) is tried again
/// until the answer is another.
async fn hand_in_until_answered(
    api: &Api,
    stream: &str,
    key: &str,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    for _ in 0..100 {
        let (s, r) = hand_in(api, stream, key, body.clone()).await;
        if s != StatusCode::CONFLICT {
            return (s, r);
        }
        assert_eq!(r["status"], 409, "a problem document: {r}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("still 409 after 10 s");
}

/// The ids of the videos listed on `slug`.
async fn videos_of(api: &Api, slug: &str) -> Vec<String> {
    let (s, list) = api
        .call(Method::GET, &format!("/channels/{slug}/videos"), None, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{list}");
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn a_file_sent_again_while_stored_is_listed_once(backend: Backend) {
    let Some(clip) = clips::webm(1) else { return };
    let (mut config, dir) = with_media_dir();
    config.cluster_token = Some(ClusterToken::new(TOKEN));
    let Some(api) = Api::start(backend, config).await else {
        return;
    };
    let (amy, _, _) = api.user("amy").await;
    channel(&api, &amy, "amy-live").await;
    // At go-live the node learns the largest recording taken (a larger one it sets aside
    // without sending it).
    let (_, asked) = api
        .call(
            Method::GET,
            "/cluster/recording?stream=amy-live",
            Some(TOKEN),
            None,
        )
        .await;
    let max = api.cp.content().settings().max_recording_bytes;
    assert_eq!(asked["max_bytes"], max, "{asked}");

    // A node whose first send timed out sends the file again at once, several times: the
    // sends meet while the first is being stored.
    let sends = (0..6).map(|_| hand_in_until_answered(&api, "amy-live", "k1", clip.clone()));
    let answers = futures_util::future::join_all(sends).await;
    let mut ids: Vec<String> = answers
        .iter()
        .map(|(s, r)| {
            assert_eq!(*s, StatusCode::CREATED, "{r}");
            r["video"].as_str().unwrap().to_owned()
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids.len(),
        1,
        "every send is answered with one video: {ids:?}"
    );
    assert_eq!(videos_of(&api, "amy-live").await, ids);

    // A send whose storing fails (here: the file does not check) gives the key up: the
    // next send of it is stored and listed.
    let (s, r) = hand_in(&api, "amy-live", "k2", b"not a webm at all".to_vec()).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{r}");
    let (s, r) = hand_in(&api, "amy-live", "k2", clip.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    let second = r["video"].as_str().unwrap().to_owned();
    assert_ne!(second, ids[0]);
    assert_eq!(videos_of(&api, "amy-live").await.len(), 2);
    // And that one is remembered too.
    let (s, r) = hand_in(&api, "amy-live", "k2", clip).await;
    assert_eq!(
        (s, r["video"].as_str()),
        (StatusCode::CREATED, Some(&*second))
    );
    assert_eq!(videos_of(&api, "amy-live").await.len(), 2);
    let _ = std::fs::remove_dir_all(dir);
}
crate::both!(a_file_sent_again_while_stored_is_listed_once);
