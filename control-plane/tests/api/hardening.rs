//! Issue 8's control-plane items: secrets at rest (file modes, the sealed signing key and
//! its rotation), the sign-in limiter keyed by account and address, one answer to an
//! email change, sessions that end with sign-out and refresh reuse, and one first admin.

use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use control_plane::keystore::{SecretKey, SecretKeySource};
use control_plane::tokens::{TokenKind, Verifier};
use control_plane::{Config, ControlPlane, RateLimits};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both;
use crate::harness::{fresh_url, roomy, Api, Backend};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn sqlite_file(url: &str) -> std::path::PathBuf {
    let rest = url.strip_prefix("sqlite://").unwrap();
    std::path::PathBuf::from(rest.split('?').next().unwrap())
}

/// The data directory is 0700 and every file with secrets in it 0600, whatever the umask:
/// the database, its -wal and -shm, the secret key, a backup and a restored copy.
#[tokio::test]
async fn data_files_are_private() {
    let url = fresh_url(Backend::Sqlite).await.unwrap();
    let db = sqlite_file(&url);
    let dir = db.parent().unwrap().to_path_buf();
    let cp = ControlPlane::open(&url, Config::default()).await.unwrap();
    // A write, so that the write-ahead log and its index exist.
    let api_user = sqlx::query("UPDATE signing_keys SET created_at = created_at")
        .execute(cp.db().pool())
        .await;
    assert!(api_user.is_ok());
    assert_eq!(mode(&dir), 0o700, "data directory");
    for f in [
        "cascade.db",
        "cascade.db-wal",
        "cascade.db-shm",
        "secret.key",
    ] {
        assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
    }
    let backup = dir.with_extension("backup.db");
    control_plane::db::backup(&url, &backup).await.unwrap();
    assert_eq!(mode(&backup), 0o600, "backup");
    cp.db().close().await;
    drop(cp);

    // A world-readable backup restored into a new place: the copy is private.
    std::fs::set_permissions(&backup, std::fs::Permissions::from_mode(0o644)).unwrap();
    let target_dir = dir.with_extension("restored");
    let target = control_plane::db::sqlite_url(&target_dir.join("cascade.db"));
    control_plane::db::restore(&target, &backup).await.unwrap();
    assert_eq!(mode(&target_dir), 0o700);
    assert_eq!(mode(&target_dir.join("cascade.db")), 0o600);

    // A database an older version left world-readable is made private on open.
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cp = ControlPlane::open(&url, Config::default()).await.unwrap();
    assert_eq!(mode(&db), 0o600);
    cp.db().close().await;
}

/// The DER of an Ed25519 PKCS#8 document's algorithm and key wrapper: a plaintext private
/// key shows it, raw or in base64url (as the first version stored it).
const PKCS8_DER: [u8; 9] = [0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];

fn holds_plain_key(bytes: &[u8]) -> bool {
    let has = |b: &[u8]| b.windows(PKCS8_DER.len()).any(|w| w == PKCS8_DER);
    if has(bytes) {
        return true;
    }
    // Base64 text may sit right after other text in a record: try each alignment.
    let b64 = |c: &u8| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_';
    bytes.split(|c| !b64(c)).filter(|t| t.len() >= 40).any(|t| {
        (0..4).any(|k| {
            let t = &t[k..];
            B64.decode(&t[..t.len() / 4 * 4]).is_ok_and(|d| has(&d))
        })
    })
}

async fn key_rows(api: &Api) -> Vec<(String, String, Option<String>, String)> {
    sqlx::query_as("SELECT id, private_pkcs8, private_sealed, public_key FROM signing_keys")
        .fetch_all(api.cp.db().pool())
        .await
        .unwrap()
}

both!(signing_key_is_sealed);
async fn signing_key_is_sealed(b: Backend) {
    let Some(api) = Api::start(b, roomy()).await else {
        return;
    };
    // The PKCS#8 marker really is what a plaintext key would show.
    let plain =
        aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new())
            .unwrap();
    assert!(holds_plain_key(B64.encode(plain.as_ref()).as_bytes()));
    assert!(holds_plain_key(plain.as_ref()));
    let glued = format!("primary{}", B64.encode(plain.as_ref()));
    assert!(holds_plain_key(glued.as_bytes()));

    let rows = key_rows(&api).await;
    assert_eq!(rows.len(), 1);
    for (id, private, sealed, _) in &rows {
        assert_eq!(private, "", "{id}: no plaintext column");
        let sealed = sealed.as_deref().expect("sealed");
        assert!(!holds_plain_key(sealed.as_bytes()), "{sealed}");
    }
    if b == Backend::Sqlite {
        api.user("ivy").await;
        let file = sqlite_file(&api.url);
        for side in ["", "-wal"] {
            let path = format!("{}{side}", file.display());
            let bytes = std::fs::read(&path).unwrap_or_default();
            assert!(!holds_plain_key(&bytes), "{path} holds a plaintext key");
        }
    }

    // A key an older version stored in plaintext is sealed on the next start, and its
    // bytes are gone from the SQLite file.
    let legacy = B64.encode(plain.as_ref());
    let public = {
        use aws_lc_rs::signature::KeyPair;
        let pair = aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(plain.as_ref()).unwrap();
        B64.encode(pair.public_key().as_ref())
    };
    sqlx::query(
        "INSERT INTO signing_keys (id, private_pkcs8, public_key, created_at) \
         VALUES ('legacy', $1, $2, 0)",
    )
    .bind(&legacy)
    .bind(&public)
    .execute(api.cp.db().pool())
    .await
    .unwrap();
    let config = Config {
        secret_key: Some(api.secret.clone()),
        ..roomy()
    };
    let again = ControlPlane::open(&api.url, config.clone()).await.unwrap();
    let (private, sealed): (String, Option<String>) = sqlx::query_as(
        "SELECT private_pkcs8, private_sealed FROM signing_keys WHERE id = 'legacy'",
    )
    .fetch_one(again.db().pool())
    .await
    .unwrap();
    assert_eq!(private, "");
    assert!(sealed.is_some_and(|s| !s.contains(&legacy)));
    if b == Backend::Sqlite {
        let file = sqlite_file(&api.url);
        for side in ["", "-wal"] {
            let path = format!("{}{side}", file.display());
            let bytes = std::fs::read(&path).unwrap_or_default();
            assert!(
                !String::from_utf8_lossy(&bytes).contains(&legacy),
                "{path} still holds the legacy key"
            );
        }
    }

    // Another secret key opens nothing, and says why.
    let wrong = Config {
        secret_key: Some(SecretKeySource::Value(SecretKey::random().to_text())),
        ..roomy()
    };
    let err = ControlPlane::open(&api.url, wrong).await.unwrap_err();
    assert!(err.to_string().contains("secret key"), "{err}");
    // PostgreSQL has no data directory to keep a default key file in.
    if b == Backend::Postgres {
        let err = ControlPlane::open(&api.url, roomy()).await.unwrap_err();
        assert!(err.to_string().contains("CASCADE_SECRET_KEY"), "{err}");
    }
}

fn kid(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let v: Value = serde_json::from_slice(&B64.decode(header).unwrap()).unwrap();
    v["kid"].as_str().unwrap_or_default().to_owned()
}

both!(signing_key_rotation_overlaps);
async fn signing_key_rotation_overlaps(b: Backend) {
    let Some(api) = Api::start(b, roomy()).await else {
        return;
    };
    let (old, _, _) = api.user("joy").await;
    let (_, sk1) = api.call(Method::GET, "/signing-key", None, None).await;
    let k1 = sk1["public_key"].as_str().unwrap().to_owned();
    assert_eq!(sk1["keys"].as_array().unwrap().len(), 1, "{sk1}");
    assert_eq!(sk1["keys"][0]["kid"], kid(&old).as_str());

    // A second replica on the same database signs and verifies with the same key.
    let config = Config {
        secret_key: Some(api.secret.clone()),
        ..roomy()
    };
    let replica = ControlPlane::open(&api.url, config).await.unwrap();
    assert!(replica
        .signer()
        .verifier()
        .verify(&old, TokenKind::Access)
        .is_ok());

    // Rotate: a new key signs at once (no delay), the old one verifies for an hour.
    let r = api.cp.rotate_signing_key(0, 3600).await.unwrap();
    let (s, _) = api.call(Method::GET, "/me", Some(&old), None).await;
    assert_eq!(s, StatusCode::OK, "a token signed before the rotation");
    let (_, pair) = api.signin("joy", "password-of-joy").await;
    let new = pair["access_token"].as_str().unwrap().to_owned();
    assert_eq!(kid(&new), r.kid);
    assert_ne!(kid(&new), kid(&old));
    let (_, sk2) = api.call(Method::GET, "/signing-key", None, None).await;
    let k2 = sk2["public_key"].as_str().unwrap().to_owned();
    assert_ne!(k1, k2);
    let listed: Vec<&str> = sk2["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["public_key"].as_str().unwrap())
        .collect();
    assert!(listed.contains(&k1.as_str()) && listed.contains(&k2.as_str()));

    // The replica learns the new key when it reloads (every 30 s, or now).
    assert!(replica
        .signer()
        .verifier()
        .verify(&new, TokenKind::Access)
        .is_err());
    replica.reload_signing_keys().await.unwrap();
    assert!(replica
        .signer()
        .verifier()
        .verify(&new, TokenKind::Access)
        .is_ok());

    // A media-only node given both public keys takes tokens from either; given only the
    // new one, not the old.
    let both = Verifier::from_public_key(&format!("{k1},{k2}")).unwrap();
    assert!(both.verify(&old, TokenKind::Access).is_ok());
    assert!(both.verify(&new, TokenKind::Access).is_ok());
    let only_new = Verifier::from_public_key(&k2).unwrap();
    assert!(only_new.verify(&old, TokenKind::Access).is_err());
    assert!(Verifier::from_public_key("").is_err());
    assert!(Verifier::from_public_key(&format!("{k1},junk")).is_err());

    // A leaked key: rotate with no overlap. Tokens of the retired keys are refused.
    api.cp.rotate_signing_key(0, 0).await.unwrap();
    for t in [&old, &new] {
        let (s, _) = api.call(Method::GET, "/me", Some(t), None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let (_, sk3) = api.call(Method::GET, "/signing-key", None, None).await;
    assert_eq!(sk3["keys"].as_array().unwrap().len(), 1, "{sk3}");
    let (s, pair) = api.signin("joy", "password-of-joy").await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = api
        .call(Method::GET, "/me", pair["access_token"].as_str(), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    replica.db().close().await;
}

/// A rotation with a delay: the old key keeps signing until the new one's time comes.
#[tokio::test]
async fn rotation_delay_keeps_the_old_key_signing() {
    let api = Api::start(Backend::Sqlite, roomy()).await.unwrap();
    let (old, _, _) = api.user("kim").await;
    api.cp.rotate_signing_key(3600, 3600).await.unwrap();
    let (_, pair) = api.signin("kim", "password-of-kim").await;
    let t = pair["access_token"].as_str().unwrap();
    assert_eq!(
        kid(t),
        kid(&old),
        "the new key is published, not yet signing"
    );
    let (_, sk) = api.call(Method::GET, "/signing-key", None, None).await;
    assert_eq!(sk["keys"].as_array().unwrap().len(), 2, "{sk}");
}

fn ip(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

both!(signin_limit_by_account_and_address);
async fn signin_limit_by_account_and_address(b: Backend) {
    let config = Config {
        limits: RateLimits {
            signin_per_ip: 100,
            signin_per_account: 5,
            signin_per_account_total: 1000,
            signup_per_ip: 100,
            email_changes_per_hour: 100,
        },
        ..Config::default()
    };
    let Some(api) = Api::start(b, config).await else {
        return;
    };
    api.user("alice").await;
    // A stranger hammers alice from one address, and is stopped there.
    let stranger = api.from(ip(2));
    let mut statuses = Vec::new();
    for i in 0..20 {
        statuses.push(stranger.signin("alice", &format!("guess {i}")).await.0);
    }
    let tried = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    assert!(tried <= 5, "{statuses:?}");
    assert_eq!(statuses[5..], [StatusCode::TOO_MANY_REQUESTS; 15]);
    // Alice, from her own address, is not locked out.
    let home = api.from(ip(3));
    assert_eq!(
        home.signin("alice", "password-of-alice").await.0,
        StatusCode::OK
    );
    // Her email and her username are one account: one budget.
    let cafe = api.from(ip(4));
    for login in [
        "alice@example.com",
        "ALICE",
        "alice@example.com",
        "alice",
        "Alice",
    ] {
        assert_eq!(
            cafe.signin(login, "wrong").await.0,
            StatusCode::UNAUTHORIZED,
            "{login}"
        );
    }
    assert_eq!(
        cafe.signin("alice@example.com", "password-of-alice")
            .await
            .0,
        StatusCode::TOO_MANY_REQUESTS
    );
    // A login that names nobody is limited just the same.
    for _ in 0..5 {
        assert_eq!(cafe.signin("nobody", "x").await.0, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        cafe.signin("nobody", "x").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// Everything of an email change's answer but the fresh tokens and times.
fn shape(v: &Value) -> Value {
    let mut v = v.clone();
    for k in ["access_token", "refresh_token"] {
        v[k] = Value::Null;
    }
    v["user"]["updated_at"] = Value::Null;
    v
}

both!(email_change_answers_the_same);
async fn email_change_answers_the_same(b: Backend) {
    let Some(api) = Api::start(b, roomy()).await else {
        return;
    };
    api.user("luz").await;
    let (t, _, _) = api.user("max").await;
    let change = |t: String, email: &'static str| {
        let api = &api;
        async move {
            api.call_full(
                Method::PUT,
                "/me/email",
                Some(&t),
                Some(json!({"current_password": "password-of-max", "email": email})),
            )
            .await
        }
    };
    let (s1, h1, taken) = change(t, "luz@example.com").await;
    let t = taken["access_token"].as_str().unwrap().to_owned();
    let (_, me) = api.call(Method::GET, "/me", Some(&t), None).await;
    assert_eq!(
        me["email"], "max@example.com",
        "a taken address changes nothing"
    );
    let (s2, h2, free) = change(t, "max2@example.com").await;
    assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK));
    assert_eq!(shape(&taken), shape(&free), "{taken} / {free}");
    assert_eq!(h1.get("content-type"), h2.get("content-type"));
    let (_, me) = api
        .call(Method::GET, "/me", free["access_token"].as_str(), None)
        .await;
    assert_eq!(me["email"], "max2@example.com", "a free address is taken");
}

both!(sign_out_and_reuse_end_access_tokens);
async fn sign_out_and_reuse_end_access_tokens(b: Backend) {
    let Some(api) = Api::start(b, roomy()).await else {
        return;
    };
    let (a1, r1, _) = api.user("nia").await;
    let (_, other) = api.signin("nia", "password-of-nia").await;
    let (a2, r2) = (
        other["access_token"].as_str().unwrap().to_owned(),
        other["refresh_token"].as_str().unwrap().to_owned(),
    );
    let me = |t: String| {
        let api = &api;
        async move { api.call(Method::GET, "/me", Some(&t), None).await.0 }
    };
    let refresh = |t: String| {
        let api = &api;
        async move {
            api.call(
                Method::POST,
                "/auth/refresh",
                None,
                Some(json!({"refresh_token": t})),
            )
            .await
        }
    };
    // Sign out of session 1: its access token dies now, not in 15 minutes.
    let (s, _) = api
        .call(
            Method::POST,
            "/auth/signout",
            None,
            Some(json!({"refresh_token": r1})),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(me(a1).await, StatusCode::UNAUTHORIZED);
    // Session 2 (another tab or device) gets a 401 once, and its refresh still works.
    assert_eq!(me(a2).await, StatusCode::UNAUTHORIZED);
    let (s, p2) = refresh(r2).await;
    assert_eq!(s, StatusCode::OK);
    let a2 = p2["access_token"].as_str().unwrap().to_owned();
    assert_eq!(me(a2.clone()).await, StatusCode::OK);

    // A thief replays a used refresh token: the access token minted from the family dies.
    let (_, p3) = api.signin("nia", "password-of-nia").await;
    let r3 = p3["refresh_token"].as_str().unwrap().to_owned();
    let (s, p4) = refresh(r3.clone()).await;
    assert_eq!(s, StatusCode::OK);
    let a4 = p4["access_token"].as_str().unwrap().to_owned();
    assert_eq!(me(a4.clone()).await, StatusCode::OK);
    assert_eq!(refresh(r3).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(me(a4).await, StatusCode::UNAUTHORIZED);
    // The other family lives on: one 401, then a refresh.
    assert_eq!(me(a2).await, StatusCode::UNAUTHORIZED);
    let (s, _) = refresh(p2["refresh_token"].as_str().unwrap().to_owned()).await;
    assert_eq!(s, StatusCode::OK);
    // An unknown token signs nothing out.
    let (_, p5) = api.signin("nia", "password-of-nia").await;
    let (s, _) = api
        .call(
            Method::POST,
            "/auth/signout",
            None,
            Some(json!({"refresh_token": "crt_unknown"})),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(
        me(p5["access_token"].as_str().unwrap().to_owned()).await,
        StatusCode::OK
    );
}

both!(one_first_admin);
async fn one_first_admin(b: Backend) {
    for round in 0..5 {
        let Some(api) = Api::start(b, roomy()).await else {
            return;
        };
        let api = std::sync::Arc::new(api);
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let api = api.clone();
                tokio::spawn(async move {
                    api.signup(
                        &format!("first{i}@example.com"),
                        &format!("first{i}"),
                        "same password",
                    )
                    .await
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), StatusCode::ACCEPTED);
        }
        let (admins,): (i64,) = sqlx::query_as("SELECT count(*) FROM users WHERE role = 'admin'")
            .fetch_one(api.cp.db().pool())
            .await
            .unwrap();
        assert_eq!(admins, 1, "round {round}");
    }
}
