//! Cascade's control plane: accounts, channels, stream keys and tokens, on SQLite or
//! PostgreSQL, served as `/api/v1`.
//!
//! **Boundary:** this crate knows nothing of media. The node asks it one question per
//! WHIP/WHEP request, through [`gate`]; a node elsewhere asks the same of a signed token
//! with [`tokens::Verifier`] and never calls the database.

#![warn(missing_docs, unreachable_pub)]

pub mod accounts;
pub mod admin;
pub mod ads;
pub mod analytics;
pub mod api;
pub mod apikeys;
pub mod audit;
pub mod backups;
pub mod channels;
pub mod chat;
pub mod cluster;
pub mod content;
pub mod db;
pub mod discovery;
pub mod error;
mod extract;
pub mod gate;
pub mod interact;
pub mod keys;
pub mod keystore;
pub mod ladder;
pub mod limits;
mod metrics;
pub mod model;
pub mod money;
pub mod password;
pub mod recording;
pub mod revocation;
pub mod tokens;
pub mod webhooks;

use std::sync::Arc;

pub use db::{Backend, Db, DbError};
pub use error::{ApiResult, Error};
pub use limits::RateLimits;

/// Settings of the control plane.
#[derive(Debug, Clone)]
pub struct Config {
    /// Sign-in and sign-up limits.
    pub limits: RateLimits,
    /// Lifetime of an access token, seconds.
    pub access_ttl_secs: i64,
    /// Lifetime of a refresh token, seconds.
    pub refresh_ttl_secs: i64,
    /// Lifetime of a viewer token, seconds (it only has to last until WHEP connects).
    pub view_ttl_secs: i64,
    /// Lifetime of a publish token for remote media nodes, seconds.
    pub publish_ttl_secs: i64,
    /// Browser origins allowed to call the API; empty means any.
    pub cors_origins: Vec<String>,
    /// The secret key that seals the signing keys in the database; `None` means
    /// `secret.key` beside the SQLite file, made on first start (PostgreSQL needs one).
    pub secret_key: Option<keystore::SecretKeySource>,
    /// Serve `POST /whep/{stream}` as a redirect to an edge of the cluster (a
    /// `cascade control` replica; never with a node in the same process, which serves
    /// WHEP itself).
    pub cluster: bool,
    /// The secret media nodes present to `/api/v1/cluster/...`; `None`: that API answers
    /// 404.
    pub cluster_token: Option<cluster::ClusterToken>,
    /// Liveness window, view cache, redirect token lifetime, load limits and fan-out.
    pub cluster_tuning: cluster::Tuning,
    /// The NATS server that carries chat between processes; `None`: one process.
    pub nats_url: Option<String>,
    /// Chat WebSockets open at once from one client address (0: no cap).
    pub chat_per_address: usize,
    /// Outbound webhooks: private addresses, retries, timeouts, concurrency.
    pub webhooks: webhooks::Settings,
    /// The payment gateway and the platform's fee.
    pub money: money::Settings,
    /// How often the node's concurrent viewers are sampled for analytics.
    pub analytics_sample: std::time::Duration,
    /// Videos: storage, upload limits.
    pub content: content::Settings,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            limits: RateLimits::default(),
            access_ttl_secs: 15 * 60,
            refresh_ttl_secs: 30 * 24 * 3600,
            view_ttl_secs: 5 * 60,
            publish_ttl_secs: 15 * 60,
            cors_origins: Vec::new(),
            secret_key: None,
            cluster: false,
            cluster_token: None,
            cluster_tuning: cluster::Tuning::default(),
            nats_url: None,
            chat_per_address: 100,
            webhooks: webhooks::Settings::default(),
            money: money::Settings::default(),
            analytics_sample: analytics::SAMPLE_EVERY,
            content: content::Settings::default(),
        }
    }
}

struct Inner {
    db: Db,
    signer: tokens::Signer,
    secret: keystore::SecretKey,
    hasher: password::Hasher,
    limiter: limits::Limiter,
    config: Config,
    events: tokio::sync::broadcast::Sender<revocation::Revoked>,
    cluster: cluster::registry::ViewCache,
    chat: chat::Chat,
    metrics: metrics::ApiMetrics,
    webhooks: Arc<webhooks::Webhooks>,
    /// Ad breaks and sponsors' slots for the node in this process.
    cues: tokio::sync::broadcast::Sender<ads::Cue>,
    /// Viewer sessions, concurrency samples and players' reports.
    analytics: analytics::Analytics,
    /// Keys of announcements already scheduled (poll results), so a burst is one.
    pending: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Channels' subscriber badges, read at most every 30 s.
    badges: money::checkout::BadgeCache,
    /// Live streams' counts and trending, notifications' wake-ups.
    discovery: discovery::Discovery,
    /// Videos' storage and uploads in progress.
    content: content::Content,
}

/// A running control plane: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct ControlPlane(Arc<Inner>);

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("backend", &self.0.db.backend())
            .finish_non_exhaustive()
    }
}

impl ControlPlane {
    /// Opens the database at `url` (migrating it) and loads the signing key.
    pub async fn open(url: &str, config: Config) -> Result<ControlPlane, DbError> {
        let secret = keystore::SecretKey::resolve(config.secret_key.as_ref(), url)?;
        let db = Db::connect(url).await?;
        let signer = tokens::Signer::load_or_create(&db, &secret).await?;
        let chat = chat::Chat::connect(config.nats_url.as_deref())
            .await
            .map_err(|e| DbError::Bus(e.to_string()))?;
        let webhooks =
            webhooks::Webhooks::start(db.clone(), secret.clone(), config.webhooks.clone())
                .map_err(DbError::Webhooks)?;
        let data_dir = db::sqlite_path(url).and_then(|f| f.parent().map(|d| d.to_path_buf()));
        let content = content::Content::open(&config.content, data_dir.as_deref())
            .map_err(|e| DbError::Storage(e.to_string()))?;
        let metrics = metrics::ApiMetrics::new();
        let analytics = analytics::Analytics::new(metrics.registry(), config.analytics_sample);
        let cp = ControlPlane(Arc::new(Inner {
            db,
            signer,
            secret,
            hasher: password::Hasher::default(),
            limiter: limits::Limiter::new(config.limits),
            config,
            events: tokio::sync::broadcast::channel(revocation::EVENT_QUEUE).0,
            cluster: cluster::registry::ViewCache::new(),
            chat,
            metrics,
            webhooks,
            cues: tokio::sync::broadcast::channel(ads::CUE_QUEUE).0,
            analytics,
            pending: Default::default(),
            badges: Default::default(),
            discovery: Default::default(),
            content,
        }));
        discovery::search::prepare(&cp)
            .await
            .map_err(DbError::Sql)?;
        // A `cascade control` replica: the cluster's audience into webhooks and analytics,
        // by the replica holding the lease.
        if cp.0.config.cluster {
            cp.spawn_cluster_observer();
        }
        // Expired recordings and stale uploads, every minute; ends with the control plane.
        let weak = Arc::downgrade(&cp.0);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(content::SWEEP_EVERY).await;
                let Some(inner) = weak.upgrade() else { return };
                content::sweep(&ControlPlane(inner), db::now_ms()).await;
            }
        });
        // Sponsors' slots that start or end, told every second; ends with the control
        // plane.
        let weak = Arc::downgrade(&cp.0);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                let Some(inner) = weak.upgrade() else { return };
                if let Err(e) = ads::sponsors::announce_due(&ControlPlane(inner)).await {
                    tracing::warn!("announcing sponsors' slots: {e}");
                }
            }
        });
        // Ping the database every 5 s for `cascade_db_up`; ends with the control plane.
        let weak = Arc::downgrade(&cp.0);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                let Some(inner) = weak.upgrade() else { return };
                let _ = ControlPlane(inner).ping().await;
            }
        });
        // The newest backup recorded, for `cascade_backup_last_success_timestamp_seconds`:
        // read at once, then every 30 s (another process may have taken one).
        let weak = Arc::downgrade(&cp.0);
        tokio::spawn(async move {
            loop {
                let Some(inner) = weak.upgrade() else { return };
                ControlPlane(inner).refresh_backup_gauge().await;
                tokio::time::sleep(backups::REFRESH_EVERY).await;
            }
        });
        // Follow rotations made by `cascade rotate-signing-key` or another replica; the
        // task ends with the last clone of the control plane.
        let weak = Arc::downgrade(&cp.0);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(keystore::RELOAD_EVERY).await;
                let Some(inner) = weak.upgrade() else { return };
                if let Err(e) = ControlPlane(inner).reload_signing_keys().await {
                    tracing::warn!("reloading the signing keys: {e}");
                }
            }
        });
        Ok(cp)
    }

    /// Re-reads the signing keys now (a running control plane also does so every
    /// [`keystore::RELOAD_EVERY`]).
    pub async fn reload_signing_keys(&self) -> Result<(), DbError> {
        self.0.signer.reload(&self.0.db, &self.0.secret).await
    }

    /// Makes a new signing key (see [`keystore::rotate`]) and reloads.
    pub async fn rotate_signing_key(
        &self,
        delay_secs: i64,
        overlap_secs: i64,
    ) -> Result<keystore::Rotation, DbError> {
        let r = keystore::rotate(&self.0.db, &self.0.secret, delay_secs, overlap_secs).await?;
        self.reload_signing_keys().await?;
        Ok(r)
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.0.db
    }

    /// The token signer (its verifier's public key is what remote nodes need).
    pub fn signer(&self) -> &tokens::Signer {
        &self.0.signer
    }

    pub(crate) fn hasher(&self) -> &password::Hasher {
        &self.0.hasher
    }

    pub(crate) fn limiter(&self) -> &limits::Limiter {
        &self.0.limiter
    }

    pub(crate) fn config(&self) -> &Config {
        &self.0.config
    }

    pub(crate) fn events(&self) -> &tokio::sync::broadcast::Sender<revocation::Revoked> {
        &self.0.events
    }

    pub(crate) fn cluster_cache(&self) -> &cluster::registry::ViewCache {
        &self.0.cluster
    }

    /// Channels' subscriber badges, cached.
    pub(crate) fn badges(&self) -> &money::checkout::BadgeCache {
        &self.0.badges
    }

    /// Videos' storage and settings.
    pub fn content(&self) -> &content::Content {
        &self.0.content
    }

    /// Chat and the rooms' live delivery.
    pub fn chat(&self) -> &chat::Chat {
        &self.0.chat
    }

    /// Outbound webhooks: [`webhooks::Webhooks::emit`] an event, feed the node's streams.
    pub fn webhooks(&self) -> &webhooks::Webhooks {
        &self.0.webhooks
    }

    /// Ad breaks and sponsors' slots to tell the viewers of this process's node.
    pub fn cue_events(&self) -> tokio::sync::broadcast::Receiver<ads::Cue> {
        self.0.cues.subscribe()
    }

    /// Tells `cue` to the node in this process and records it for nodes elsewhere.
    pub(crate) async fn send_cue(&self, cue: ads::Cue) {
        ads::feed::record(self, &cue).await;
        // No receiver: no node in this process (a `cascade control` replica).
        let _ = self.0.cues.send(cue);
    }

    /// Viewer sessions and concurrency as the node in this process samples them.
    pub fn analytics(&self) -> &analytics::Analytics {
        &self.0.analytics
    }

    /// Marks `key` scheduled; false when it already was.
    pub(crate) fn debounce(&self, key: &str) -> bool {
        let mut p = self.0.pending.lock().unwrap_or_else(|e| e.into_inner());
        p.len() < 10_000 && p.insert(key.to_owned())
    }

    /// Clears a key marked with [`ControlPlane::debounce`].
    pub(crate) fn debounced(&self, key: &str) {
        let mut p = self.0.pending.lock().unwrap_or_else(|e| e.into_inner());
        p.remove(key);
    }

    /// Discovery's state in this process.
    pub fn discovery(&self) -> &discovery::Discovery {
        &self.0.discovery
    }

    pub(crate) fn pool(&self) -> &sqlx::AnyPool {
        self.0.db.pool()
    }

    /// The `/api/v1` routes, with their CORS, body limit and problem+json errors (and,
    /// with [`Config::cluster`], `POST /whep/{stream}` redirecting to an edge). Request
    /// ids and timing ([`ControlPlane::api_requests`]) are the serving process's edge.
    pub fn router(&self) -> axum::Router {
        api::router(self.clone())
    }
}
