//! A control plane served on loopback over a fresh database: an SQLite file in a temp
//! directory, or a fresh schema in the PostgreSQL named by `CASCADE_TEST_POSTGRES`.

use std::sync::atomic::{AtomicU32, Ordering};

use control_plane::keystore::{SecretKey, SecretKeySource};
use control_plane::{Config, ControlPlane, RateLimits};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct Api {
    pub base: String,
    pub cp: ControlPlane,
    /// The database URL (to open a second control plane on it, as a replica would).
    pub url: String,
    /// The secret key that seals its signing keys.
    pub secret: SecretKeySource,
    http: reqwest::Client,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Limits high enough that only the rate-limit test meets them.
pub fn roomy() -> Config {
    Config {
        limits: RateLimits {
            signin_per_ip: 10_000,
            signin_per_account: 10_000,
            signin_per_account_total: 10_000,
            signup_per_ip: 10_000,
            email_changes_per_hour: 10_000,
        },
        ..Config::default()
    }
}

fn unique(tag: &str) -> String {
    format!(
        "{tag}_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    )
}

/// A database URL for a fresh database, or None (said loudly) when PostgreSQL is not
/// configured for this run.
pub async fn fresh_url(backend: Backend) -> Option<String> {
    match backend {
        Backend::Sqlite => {
            let dir = std::env::temp_dir().join(unique("cascade-cp"));
            Some(control_plane::db::sqlite_url(&dir.join("cascade.db")))
        }
        Backend::Postgres => {
            let Ok(base) = std::env::var("CASCADE_TEST_POSTGRES") else {
                eprintln!("SKIPPED (PostgreSQL): CASCADE_TEST_POSTGRES is not set");
                return None;
            };
            let schema = unique("cascade_t");
            let pool = sqlx::postgres::PgPool::connect(&base)
                .await
                .expect("CASCADE_TEST_POSTGRES is set but PostgreSQL cannot be reached");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
            let sep = if base.contains('?') { '&' } else { '?' };
            Some(format!("{base}{sep}options=-c%20search_path%3D{schema}"))
        }
    }
}

impl Api {
    pub async fn start(backend: Backend, config: Config) -> Option<Api> {
        let url = fresh_url(backend).await?;
        Some(Api::on(&url, config).await)
    }

    /// A control plane served on the database at `url` (a second one: a replica).
    pub async fn on(url: &str, mut config: Config) -> Api {
        let url = url.to_owned();
        // PostgreSQL has no data directory for a default key file.
        let secret = config
            .secret_key
            .get_or_insert_with(|| SecretKeySource::Value(SecretKey::random().to_text()))
            .clone();
        let cp = ControlPlane::open(&url, config)
            .await
            .expect("open control plane");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = cp.router();
        // On the node's HTTP server, with the bounds `cascade serve` gives it.
        let limits = signaling::server::Limits {
            larger: control_plane::api::LARGER_BODIES,
            ..Default::default()
        };
        tokio::spawn(async move {
            signaling::server::serve(listener, app, limits, std::future::pending())
                .await
                .unwrap();
        });
        Api {
            base: format!("http://{addr}/api/v1"),
            cp,
            url,
            secret,
            http: reqwest::Client::new(),
        }
    }

    /// The same server, called from another loopback address (127.0.0.0/8 is all local):
    /// what the server sees as the client's address.
    pub fn from(&self, ip: std::net::IpAddr) -> Api {
        Api {
            base: self.base.clone(),
            cp: self.cp.clone(),
            url: self.url.clone(),
            secret: self.secret.clone(),
            http: reqwest::Client::builder()
                .local_address(ip)
                .build()
                .unwrap(),
        }
    }

    /// Sends a request; returns the status and the JSON body (Null when empty), and checks
    /// that every error is a problem document.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (status, _, body) = self.call_full(method, path, token, body).await;
        (status, body)
    }

    pub async fn call_full(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status.is_client_error() || status.is_server_error() {
            assert_eq!(
                headers["content-type"], "application/problem+json",
                "{status} {body}"
            );
            assert_eq!(body["status"], status.as_u16(), "{body}");
        }
        (status, headers, body)
    }

    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let resp = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
        (status, resp.json().await.unwrap())
    }

    pub async fn signup(&self, email: &str, username: &str, password: &str) -> StatusCode {
        self.call(
            Method::POST,
            "/auth/signup",
            None,
            Some(json!({"email": email, "username": username, "password": password})),
        )
        .await
        .0
    }

    /// Signs in; returns the token pair document.
    pub async fn signin(&self, login: &str, password: &str) -> (StatusCode, Value) {
        self.call(
            Method::POST,
            "/auth/signin",
            None,
            Some(json!({"login": login, "password": password})),
        )
        .await
    }

    /// Signs up and in; returns (access token, refresh token, user id).
    pub async fn user(&self, name: &str) -> (String, String, String) {
        let password = format!("password-of-{name}");
        let s = self
            .signup(&format!("{name}@example.com"), name, &password)
            .await;
        assert_eq!(s, StatusCode::ACCEPTED);
        let (s, pair) = self.signin(name, &password).await;
        assert_eq!(s, StatusCode::OK, "{pair}");
        (
            pair["access_token"].as_str().unwrap().to_owned(),
            pair["refresh_token"].as_str().unwrap().to_owned(),
            pair["user"]["id"].as_str().unwrap().to_owned(),
        )
    }
}

/// Runs a scenario on SQLite, then on PostgreSQL when configured.
#[macro_export]
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::harness::Backend::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::harness::Backend::Postgres).await;
            }
        }
    };
}

/// A channel setting's test start: an admin, the owner `amy` of channel `show` and another
/// user `bo_b`; their access tokens (amy's, bo's).
pub async fn setting_owner_and_stranger(api: &Api) -> (String, String) {
    let _ = api.user("admin").await;
    let (amy, _, _) = api.user("amy").await;
    let (bo, _, _) = api.user("bo_b").await;
    let (s, ch) = api
        .call(
            Method::POST,
            "/channels",
            Some(&amy),
            Some(json!({"slug": "show", "title": "x"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{ch}");
    (amy, bo)
}

/// Only the owner reads and writes the setting at `path`: another user gets 403, an
/// anonymous caller 401.
pub async fn assert_owner_only(api: &Api, path: &str, stranger: &str, body: Value) {
    let (s, _) = api
        .call(Method::PUT, path, Some(stranger), Some(body.clone()))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = api.call(Method::PUT, path, None, Some(body)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = api.call(Method::GET, path, Some(stranger), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}
