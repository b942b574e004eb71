//! Videos in S3-compatible storage, against moto's standalone server (PyPI
//! `moto[server]`): `CASCADE_TEST_S3` names a running one, else one is started here on a
//! free port; without either the scenario says SKIPPED loudly.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use control_plane::content::{S3Settings, StorageSettings};
use reqwest::{Method, StatusCode};

use crate::clips;
use crate::harness::{Api, Backend};
use crate::videos::{channel, with_media_dir};

struct Moto {
    endpoint: String,
    child: Option<Child>,
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

async fn moto() -> Option<Moto> {
    if let Ok(endpoint) = std::env::var("CASCADE_TEST_S3") {
        return Some(Moto {
            endpoint,
            child: None,
        });
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(child) = child else {
        eprintln!(
            "SKIPPED (S3): moto_server is not installed (python3 -m pip install 'moto[server]')"
        );
        return None;
    };
    let m = Moto {
        endpoint: format!("http://127.0.0.1:{port}"),
        child: Some(child),
    };
    for _ in 0..150 {
        if reqwest::get(&m.endpoint).await.is_ok() {
            return Some(m);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("SKIPPED (S3): moto_server did not start");
    None
}

/// The keys in `bucket` (moto's ListObjectsV2, XML).
async fn keys(endpoint: &str, bucket: &str) -> Vec<String> {
    let xml = reqwest::get(format!("{endpoint}/{bucket}?list-type=2"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    xml.split("<Key>")
        .skip(1)
        .filter_map(|s| s.split("</Key>").next().map(str::to_owned))
        .collect()
}

async fn videos_in_s3(backend: Backend) {
    let Some(clip) = clips::webm(3) else { return };
    let Some(moto) = moto().await else { return };
    let bucket = format!("cascade-{}", std::process::id());
    let made = reqwest::Client::new()
        .put(format!("{}/{bucket}-{backend:?}", moto.endpoint).to_lowercase())
        .send()
        .await
        .unwrap();
    assert!(made.status().is_success(), "{made:?}");
    let bucket = format!("{bucket}-{backend:?}").to_lowercase();
    let (mut config, dir) = with_media_dir();
    config.content.storage = StorageSettings::S3(S3Settings {
        bucket: bucket.clone(),
        region: String::new(),
        endpoint: Some(moto.endpoint.clone()),
        access_key_id: "testing".into(),
        secret_access_key: "testing-secret".into(),
    });
    let Some(api) = Api::start(backend, config).await else {
        return;
    };
    let (amy, _, _) = api.user("amy").await;
    channel(&api, &amy, "amy-live").await;
    let (s, h, b) = clips::upload(&api, &amy, "amy-live", "In the bucket", &clip).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    let id = h["cascade-video-id"].to_str().unwrap().to_owned();
    let stored = keys(&moto.endpoint, &bucket).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(stored[0].starts_with("videos/"), "{stored:?}");
    // Nothing of the video in the local directory.
    assert!(std::fs::read_dir(dir.join("media")).is_err());

    // Ranges come from the bucket.
    let origin = api.base.trim_end_matches("/api/v1");
    let url = format!("{origin}/api/v1/videos/{id}/media");
    let resp = reqwest::Client::new()
        .get(&url)
        .header("range", "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        resp.headers()["content-range"],
        format!("bytes 1000-1999/{}", clip.len()).as_str()
    );
    assert_eq!(&resp.bytes().await.unwrap()[..], &clip[1000..2000]);
    let whole = reqwest::get(&url).await.unwrap().bytes().await.unwrap();
    assert_eq!(&whole[..], &clip[..]);

    // Deleted: the object goes from the bucket.
    let (s, _) = api
        .call(Method::DELETE, &format!("/videos/{id}"), Some(&amy), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert!(keys(&moto.endpoint, &bucket).await.is_empty());
    let _ = std::fs::remove_dir_all(dir);
}
crate::both!(videos_in_s3);
