//! `cascade serve` configuration: flags, then environment, then an optional TOML file,
//! then the embedded defaults.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde::Deserialize;
use signaling::IceServer;

/// Options of `cascade serve`.
#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// A TOML file with any of the options below (flags and environment win).
    #[arg(long, env = "CASCADE_CONFIG")]
    pub config: Option<PathBuf>,
    /// HTTP listen address [default: 127.0.0.1:8080].
    #[arg(long, env = "CASCADE_HTTP")]
    pub http: Option<SocketAddr>,
    /// Address the media UDP sockets bind to [default: 127.0.0.1].
    #[arg(long, env = "CASCADE_BIND_IP")]
    pub bind_ip: Option<IpAddr>,
    /// First media UDP port; worker i uses port+i [default: 0, any free port].
    #[arg(long, env = "CASCADE_UDP_PORT")]
    pub udp_port: Option<u16>,
    /// Address announced in ICE candidates [default: the bind address].
    #[arg(long, env = "CASCADE_PUBLIC_IP")]
    pub public_ip: Option<IpAddr>,
    /// First ICE-TCP port (passive TCP candidates, for clients whose network blocks UDP);
    /// worker i uses port+i; `off` offers no TCP [default: 0, any free port].
    #[arg(long, env = "CASCADE_TCP_PORT", value_parser = parse_tcp_port)]
    pub tcp_port: Option<TcpPort>,
    /// ICE-TCP connections open at once per worker [default: 1000].
    #[arg(long, env = "CASCADE_MAX_TCP_CONNECTIONS")]
    pub max_tcp_connections: Option<usize>,
    /// A TURN server announced with time-limited credentials (coturn's use-auth-secret),
    /// e.g. `turn:turn.example.net:3478?transport=udp` (repeatable or comma-separated).
    #[arg(long = "turn-url", env = "CASCADE_TURN_URL", value_delimiter = ',')]
    pub turn_urls: Vec<String>,
    /// A file holding the TURN server's static-auth-secret [default: the secret in
    /// CASCADE_TURN_SECRET].
    #[arg(long, env = "CASCADE_TURN_SECRET_FILE")]
    pub turn_secret_file: Option<PathBuf>,
    /// Seconds a TURN credential stays valid [default: 86400].
    #[arg(long, env = "CASCADE_TURN_TTL")]
    pub turn_ttl: Option<u64>,
    /// Media worker threads [default: one per core].
    #[arg(long, env = "CASCADE_WORKERS")]
    pub workers: Option<usize>,
    /// Most sessions the node accepts [default: 10000].
    #[arg(long, env = "CASCADE_MAX_SESSIONS")]
    pub max_sessions: Option<usize>,
    /// Seconds a session may take to connect before it is closed [default: 10].
    #[arg(long, env = "CASCADE_HANDSHAKE_TIMEOUT")]
    pub handshake_timeout: Option<u64>,
    /// Sessions only publishers may use [default: 5 % of --max-sessions, at least 1].
    #[arg(long, env = "CASCADE_PUBLISHER_RESERVE")]
    pub publisher_reserve: Option<usize>,
    /// Viewer handshakes in progress at once [default: half of --max-sessions, at least 10].
    #[arg(long, env = "CASCADE_MAX_PENDING")]
    pub max_pending: Option<usize>,
    /// Viewer handshakes in progress on one stream [default: 200].
    #[arg(long, env = "CASCADE_MAX_PENDING_PER_STREAM")]
    pub max_pending_per_stream: Option<usize>,
    /// Viewers' bandwidth estimation, starting at this many kbit/s: each viewer's layer
    /// follows what its path carries; 0 turns it off (a viewer gets the layer it asks
    /// for) [default: 3000].
    #[arg(long, env = "CASCADE_VIEWER_BWE")]
    pub viewer_bwe: Option<u64>,
    /// Transcode a single-layer VP8 publish into lower layers (half and quarter size)
    /// while a viewer wants one (docs/PROCESSING.md); costs CPU per laddered stream.
    #[arg(long, env = "CASCADE_LADDER")]
    pub ladder: bool,
    /// A PNG image blended into the bottom-right corner of each transcoded layer, an
    /// eighth of its width (the original layer stays untouched).
    #[arg(long, env = "CASCADE_LADDER_WATERMARK")]
    pub ladder_watermark: Option<std::path::PathBuf>,
    /// The CPU the node may use, in percent of the machine's cores, before viewers give
    /// way (new ones capped below the top layer, then the top layer shed for all, then new
    /// ones refused); 0: no limit [default: 90].
    #[arg(long, env = "CASCADE_CPU_BUDGET")]
    pub cpu_budget: Option<u64>,
    /// The media the node may send to viewers, in Mbit/s, before they give way (as with
    /// --cpu-budget); 0: no limit [default: 0].
    #[arg(long, env = "CASCADE_EGRESS_BUDGET")]
    pub egress_budget: Option<u64>,
    /// Level publishers' audio to this loudness, in LUFS (EBU R128, from -40 to -5):
    /// decoded, measured, a slow bounded gain and a limiter, encoded again, on a thread of
    /// its own; `--level-audio` alone aims at -16 [default: off].
    #[arg(
        long,
        env = "CASCADE_LEVEL_AUDIO",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "-16",
        allow_negative_numbers = true
    )]
    pub level_audio: Option<f64>,
    /// Viewer sessions from one client address (IPv6: /64); 0: no cap [default: 100].
    #[arg(long, env = "CASCADE_MAX_VIEWERS_PER_ADDRESS")]
    pub max_viewers_per_address: Option<usize>,
    /// Viewer handshakes in progress from one client address; 0: no cap [default: 10].
    #[arg(long, env = "CASCADE_MAX_PENDING_PER_ADDRESS")]
    pub max_pending_per_address: Option<usize>,
    /// Seconds to receive a request's headers, and to sit idle between requests [default: 10].
    #[arg(long, env = "CASCADE_HTTP_HEADER_TIMEOUT")]
    pub http_header_timeout: Option<u64>,
    /// Seconds to receive each piece of a request body [default: 10].
    #[arg(long, env = "CASCADE_HTTP_BODY_TIMEOUT")]
    pub http_body_timeout: Option<u64>,
    /// Seconds for a request to be answered (event streams then run on) [default: 30].
    #[arg(long, env = "CASCADE_HTTP_REQUEST_TIMEOUT")]
    pub http_request_timeout: Option<u64>,
    /// HTTP connections open at once; more wait to be accepted [default: 4096].
    #[arg(long, env = "CASCADE_HTTP_MAX_CONNECTIONS")]
    pub http_max_connections: Option<usize>,
    /// A publishing key, STREAM=KEY (repeatable). With none, publishing is open.
    #[arg(long = "publish-key", value_parser = parse_key)]
    pub publish_keys: Vec<(String, String)>,
    /// A STUN/TURN server URL to hand to clients (repeatable).
    #[arg(long = "ice-server")]
    pub ice_servers: Vec<String>,
    /// Allowed browser origin for the API (repeatable) [default: any].
    #[arg(long = "cors-origin")]
    pub cors_origins: Vec<String>,
    /// A PEM certificate chain (leaf first): serve HTTPS on --http (a plain-HTTP request
    /// there is redirected to HTTPS). Browsers give the camera only to a secure context:
    /// a studio on a LAN or public address needs it (or a TLS reverse proxy).
    #[arg(long, env = "CASCADE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "CASCADE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve HTTPS on --http with a certificate for this DNS name from an ACME CA
    /// (repeatable, or comma-separated; Let's Encrypt by default). The name must resolve
    /// to this node and --http must be reached as port 443 under it (TLS-ALPN-01).
    /// Certificates are kept in DATA_DIR/acme/ and renewed by themselves. Not with
    /// --tls-cert.
    #[arg(
        long = "acme-domain",
        env = "CASCADE_ACME_DOMAIN",
        value_delimiter = ','
    )]
    pub acme_domains: Vec<String>,
    /// The ACME account's contact, `mailto:you@example.com` (repeatable) [default: none].
    #[arg(
        long = "acme-contact",
        env = "CASCADE_ACME_CONTACT",
        value_delimiter = ','
    )]
    pub acme_contacts: Vec<String>,
    /// The ACME directory URL [default: Let's Encrypt's production directory; its staging
    /// one is https://acme-staging-v02.api.letsencrypt.org/directory].
    #[arg(long, env = "CASCADE_ACME_DIRECTORY")]
    pub acme_directory: Option<String>,
    /// A PEM file of extra roots that verify the ACME server (a private CA such as
    /// step-ca); the Web PKI roots are trusted in any case.
    #[arg(long, env = "CASCADE_ACME_CA_FILE")]
    pub acme_ca_file: Option<PathBuf>,
    /// The NATS server that carries chat between processes (several `serve` nodes or
    /// `control` replicas on one database), e.g. `nats://127.0.0.1:4222` [default: none,
    /// chat stays in this process].
    #[arg(long, env = "CASCADE_NATS_URL")]
    pub nats_url: Option<String>,
    /// Back up the database into this directory on a schedule (SQLite: a consistent copy
    /// of the live file; PostgreSQL: `pg_dump -Fc`), files named by time and written whole
    /// or not at all; one node per directory.
    #[arg(long, env = "CASCADE_BACKUP_DIR")]
    pub backup_dir: Option<PathBuf>,
    /// Time between scheduled backups, e.g. `90s`, `30m`, `6h`, `1d`, `1h30m`
    /// [default: 1h].
    #[arg(long, env = "CASCADE_BACKUP_EVERY", value_parser = parse_duration)]
    pub backup_every: Option<Duration>,
    /// Scheduled backups kept in --backup-dir; the oldest are deleted [default: 48].
    #[arg(long, env = "CASCADE_BACKUP_KEEP")]
    pub backup_keep: Option<usize>,
    /// Let webhook endpoints be on private and loopback addresses (a trusted network,
    /// tests); by default they are refused (SSRF).
    #[arg(long, env = "CASCADE_WEBHOOKS_ALLOW_PRIVATE")]
    pub webhooks_allow_private: bool,
    /// Delay before a failed webhook's first retry, milliseconds (doubling, up to an
    /// hour, for a day) [default: 5000].
    #[arg(long, env = "CASCADE_WEBHOOK_RETRY_BASE_MS")]
    pub webhook_retry_base_ms: Option<u64>,
    /// How often the node's concurrent viewers are sampled for analytics, milliseconds
    /// (at least 100) [default: 10000].
    #[arg(long, env = "CASCADE_ANALYTICS_SAMPLE_MS")]
    pub analytics_sample_ms: Option<u64>,
    /// How long a recorded stream may be without its publisher before the recording
    /// ends, milliseconds; a publisher back within it continues the same file
    /// [default: 30000].
    #[arg(long, env = "CASCADE_RECORDING_GRACE_MS")]
    pub recording_grace_ms: Option<u64>,
    /// How often a live VP8 or H.264 stream's thumbnail is taken on the server (a keyframe
    /// decoded), seconds, for publishers whose studio posts none; 0: never [default: 45].
    #[arg(long, env = "CASCADE_LIVE_THUMBNAIL_SECS")]
    pub live_thumbnail_secs: Option<u64>,
    #[command(flatten)]
    pub money: MoneyArgs,
    #[command(flatten)]
    pub content: ContentArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Who may publish and watch: `accounts` (channels' stream keys, the default),
    /// `open` (anyone: demos and tests), `keys` (the --publish-key list; implied by it),
    /// `tokens` (a media-only node checking tokens signed by a remote control plane).
    #[arg(long, env = "CASCADE_AUTH")]
    pub auth: Option<AuthMode>,
    /// The remote control plane's token public keys (`GET /api/v1/signing-key`), for
    /// `--auth tokens`; comma-separated while a key rotation overlaps. (A base64url key
    /// may begin with '-'.)
    #[arg(long, env = "CASCADE_TOKEN_PUBLIC_KEY", allow_hyphen_values = true)]
    pub token_public_key: Option<String>,
    /// For `--auth tokens`: the control plane's base URL (e.g. `http://10.0.0.2:8080`),
    /// whose revocation list the node follows.
    #[arg(long, env = "CASCADE_CONTROL_PLANE")]
    pub control_plane: Option<String>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// A node's place in a cluster: its relay links to parents and children, and what it tells
/// the control plane's registry.
#[derive(Debug, Args, Default, Clone)]
pub struct ClusterArgs {
    /// Serve relay links (QUIC) on this UDP address: other nodes pull streams from here.
    #[arg(long, env = "CASCADE_RELAY_LISTEN")]
    pub relay_listen: Option<SocketAddr>,
    /// The node's identity: `ca.pem`, `node.pem`, `node.key` (`cascade cluster issue`).
    #[arg(long, env = "CASCADE_NODE_DIR")]
    pub node_dir: Option<PathBuf>,
    /// A parent to pull streams from, NAME@HOST:PORT (repeatable; the first is the
    /// primary, the others backups). With none and a control plane, it assigns parents.
    #[arg(long = "parent", value_parser = parse_parent)]
    pub parents: Vec<(String, SocketAddr)>,
    /// The node's role in the tree, for the control plane's placement.
    #[arg(long, env = "CASCADE_ROLE", value_parser = ["origin", "relay", "edge"])]
    pub role: Option<String>,
    /// The node's zone (a backup parent is chosen in another) [default: "default"].
    #[arg(long, env = "CASCADE_ZONE")]
    pub zone: Option<String>,
    /// The bearer token nodes present to the control plane's cluster API.
    #[arg(long, env = "CASCADE_CLUSTER_TOKEN", hide_env_values = true)]
    pub cluster_token: Option<String>,
    /// The URL viewers reach this node's HTTP at [default: http://<bound address>].
    #[arg(long, env = "CASCADE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Viewers this node takes before placement prefers others.
    #[arg(long, env = "CASCADE_CAPACITY", default_value_t = 1000)]
    pub capacity: u32,
}

fn parse_parent(s: &str) -> Result<(String, SocketAddr), String> {
    let (name, addr) = s
        .split_once('@')
        .ok_or_else(|| format!("expected NAME@HOST:PORT, got {s:?}"))?;
    let addr = addr
        .parse()
        .map_err(|e| format!("{addr:?} is not an address: {e}"))?;
    Ok((name.to_owned(), addr))
}

/// Payments: the gateway (Stripe) and the platform's fee.
#[derive(Debug, Args, Default, Clone)]
pub struct MoneyArgs {
    /// The platform's fee, percent of every payment (0 to 100) [default: 10].
    #[arg(long, env = "CASCADE_PLATFORM_FEE_PERCENT", value_parser = clap::value_parser!(u8).range(0..=100))]
    pub platform_fee_percent: Option<u8>,
    /// A file holding the Stripe secret key (`sk_…`) [default: CASCADE_STRIPE_SECRET_KEY;
    /// neither: no payments].
    #[arg(long, env = "CASCADE_STRIPE_SECRET_KEY_FILE")]
    pub stripe_secret_key_file: Option<PathBuf>,
    /// A file holding the webhook endpoint's signing secret (`whsec_…`) [default:
    /// CASCADE_STRIPE_WEBHOOK_SECRET].
    #[arg(long, env = "CASCADE_STRIPE_WEBHOOK_SECRET_FILE")]
    pub stripe_webhook_secret_file: Option<PathBuf>,
    /// Stripe's API base URL (a localstripe for tests) [default: https://api.stripe.com].
    #[arg(long, env = "CASCADE_STRIPE_API_BASE")]
    pub stripe_api_base: Option<String>,
    /// The Stripe publishable key (`pk_…`, not a secret) the channel page's card form
    /// uses.
    #[arg(long, env = "CASCADE_STRIPE_PUBLISHABLE_KEY")]
    pub stripe_publishable_key: Option<String>,
    /// Where the channel page loads Stripe.js from (a localstripe's
    /// `http://HOST:PORT/js.stripe.com/v3/` in tests) [default:
    /// https://js.stripe.com/v3/].
    #[arg(long, env = "CASCADE_STRIPE_JS_URL")]
    pub stripe_js_url: Option<String>,
}

/// A secret from a file, else from an environment variable (never a flag: a flag shows in
/// `ps`).
fn secret(file: Option<&PathBuf>, env: &str) -> Result<Option<String>, String> {
    let value = match file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| format!("reading {}: {e}", path.display()))?,
        ),
        None => std::env::var(env).ok(),
    };
    Ok(value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()))
}

impl MoneyArgs {
    /// The control plane's money settings: Stripe when a secret key is given (it then
    /// needs the webhook secret too).
    pub fn resolve(&self) -> Result<control_plane::money::Settings, String> {
        let mut money = control_plane::money::Settings::default();
        if let Some(p) = self.platform_fee_percent {
            money.fee_percent = p;
        }
        if let Some(k) = &self.stripe_publishable_key {
            let k = k.trim();
            if !k.starts_with("pk_") || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err("--stripe-publishable-key must be a publishable key (pk_…)".into());
            }
            money.publishable_key = Some(k.to_owned());
        }
        if let Some(u) = &self.stripe_js_url {
            if signaling::headers::with_payment_script("", u).is_none() {
                return Err(format!("--stripe-js-url: {u:?} is not an http(s) URL"));
            }
            money.js_url = u.clone();
        }
        let key = secret(
            self.stripe_secret_key_file.as_ref(),
            "CASCADE_STRIPE_SECRET_KEY",
        )?;
        let webhook = secret(
            self.stripe_webhook_secret_file.as_ref(),
            "CASCADE_STRIPE_WEBHOOK_SECRET",
        )?;
        match (key, webhook) {
            (None, None) => {}
            (Some(key), Some(webhook)) => {
                let base = self
                    .stripe_api_base
                    .as_deref()
                    .unwrap_or(control_plane::money::stripe::DEFAULT_BASE);
                let stripe = control_plane::money::stripe::Stripe::new(base, &key, &webhook)
                    .map_err(|e| e.to_string())?;
                money.gateway = Some(std::sync::Arc::new(stripe));
            }
            (Some(_), None) => {
                return Err("the Stripe secret key needs the webhook secret too \
                     (--stripe-webhook-secret-file or CASCADE_STRIPE_WEBHOOK_SECRET)"
                    .into())
            }
            (None, Some(_)) => {
                return Err("the Stripe webhook secret needs the secret key too \
                     (--stripe-secret-key-file or CASCADE_STRIPE_SECRET_KEY)"
                    .into())
            }
        }
        Ok(money)
    }
}

/// Videos: where they are stored, how large an upload may be.
#[derive(Debug, Args, Default, Clone)]
pub struct ContentArgs {
    /// The directory videos are stored in [default: DATA_DIR/media with SQLite; with
    /// PostgreSQL, give this or --s3-bucket].
    #[arg(long, env = "CASCADE_MEDIA_DIR", conflicts_with = "s3_bucket")]
    pub media_dir: Option<PathBuf>,
    /// Store videos in this bucket of S3-compatible object storage (every replica of a
    /// cluster reads what any wrote). Credentials: CASCADE_S3_ACCESS_KEY_ID and
    /// CASCADE_S3_SECRET_ACCESS_KEY (or --s3-secret-access-key-file); never flags.
    #[arg(long, env = "CASCADE_S3_BUCKET")]
    pub s3_bucket: Option<String>,
    /// The bucket's region [default: us-east-1].
    #[arg(long, env = "CASCADE_S3_REGION")]
    pub s3_region: Option<String>,
    /// An S3-compatible server's URL (MinIO, Ceph, moto…) [default: AWS].
    #[arg(long, env = "CASCADE_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// A file holding the secret access key [default: CASCADE_S3_SECRET_ACCESS_KEY].
    #[arg(long, env = "CASCADE_S3_SECRET_ACCESS_KEY_FILE")]
    pub s3_secret_access_key_file: Option<PathBuf>,
    /// Where uploads in progress are staged [default: DATA_DIR/uploads].
    #[arg(long, env = "CASCADE_UPLOAD_DIR")]
    pub upload_dir: Option<PathBuf>,
    /// Largest upload, MiB [default: 2048].
    #[arg(long, env = "CASCADE_MAX_UPLOAD_MB")]
    pub max_upload_mb: Option<u64>,
    /// Largest recording a media-only node may hand to this control plane, MiB
    /// [default: 16384].
    #[arg(long, env = "CASCADE_MAX_RECORDING_MB")]
    pub max_recording_mb: Option<u64>,
    /// Longest video, minutes [default: 240].
    #[arg(long, env = "CASCADE_MAX_VIDEO_MINUTES")]
    pub max_video_minutes: Option<u32>,
}

impl ContentArgs {
    /// The control plane's content settings.
    pub fn resolve(&self) -> Result<control_plane::content::Settings, String> {
        use control_plane::content::{S3Settings, Settings, StorageSettings};
        let mut c = Settings {
            // Videos' stills from their first keyframe (libvpx, OpenH264).
            stills: Some(std::sync::Arc::new(crate::stills::Decoders)),
            ..Settings::default()
        };
        if let Some(d) = &self.media_dir {
            c.storage = StorageSettings::Directory(d.clone());
        }
        if let Some(bucket) = &self.s3_bucket {
            let key_id = std::env::var("CASCADE_S3_ACCESS_KEY_ID")
                .ok()
                .filter(|k| !k.trim().is_empty())
                .ok_or("--s3-bucket needs CASCADE_S3_ACCESS_KEY_ID")?;
            let secret = secret(
                self.s3_secret_access_key_file.as_ref(),
                "CASCADE_S3_SECRET_ACCESS_KEY",
            )?
            .ok_or(
                "--s3-bucket needs the secret access key (--s3-secret-access-key-file or \
                 CASCADE_S3_SECRET_ACCESS_KEY)",
            )?;
            if let Some(e) = &self.s3_endpoint {
                if !(e.starts_with("http://") || e.starts_with("https://")) {
                    return Err(format!("--s3-endpoint: {e:?} is not an http(s) URL"));
                }
            }
            c.storage = StorageSettings::S3(S3Settings {
                bucket: bucket.clone(),
                region: self.s3_region.clone().unwrap_or_default(),
                endpoint: self.s3_endpoint.clone(),
                access_key_id: key_id.trim().to_owned(),
                secret_access_key: secret,
            });
        }
        c.staging_dir = self.upload_dir.clone();
        if let Some(mb) = self.max_upload_mb {
            if mb == 0 {
                return Err("--max-upload-mb must be at least 1".into());
            }
            c.max_upload_bytes = mb.saturating_mul(1024 * 1024);
        }
        if let Some(mb) = self.max_recording_mb {
            if mb == 0 {
                return Err("--max-recording-mb must be at least 1".into());
            }
            c.max_recording_bytes = mb.saturating_mul(1024 * 1024);
        }
        if let Some(m) = self.max_video_minutes {
            c.max_duration_ms = i64::from(m) * 60_000;
        }
        Ok(c)
    }
}

/// Where the control plane keeps its data (also used by `backup` and `restore`).
#[derive(Debug, Args, Default, Clone)]
pub struct StoreArgs {
    /// Directory of the SQLite database [default: ./cascade-data].
    #[arg(long, env = "CASCADE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// A database URL (`postgres://…` or `sqlite://…`) instead of the data directory's file.
    #[arg(long, env = "CASCADE_DATABASE_URL")]
    pub database_url: Option<String>,
    /// A file holding the secret key (32 bytes, base64 or hex) that seals the token-signing
    /// keys in the database [default: the key in CASCADE_SECRET_KEY, else
    /// DATA_DIR/secret.key, made on first start].
    #[arg(long, env = "CASCADE_SECRET_KEY_FILE")]
    pub secret_key_file: Option<PathBuf>,
}

impl StoreArgs {
    /// Where the secret key that seals the signing keys comes from; `None` means beside
    /// an SQLite file named by `--database-url`.
    pub fn secret_key(&self) -> Option<control_plane::keystore::SecretKeySource> {
        use control_plane::keystore::SecretKeySource;
        if let Some(path) = &self.secret_key_file {
            return Some(SecretKeySource::File {
                path: path.clone(),
                create: false,
            });
        }
        // Read from the environment only (never a flag): a flag shows in `ps`.
        if let Some(value) = std::env::var("CASCADE_SECRET_KEY")
            .ok()
            .filter(|v| !v.trim().is_empty())
        {
            return Some(SecretKeySource::Value(value));
        }
        if self
            .database_url
            .as_deref()
            .is_some_and(|u| u.starts_with("sqlite:"))
        {
            return None;
        }
        let dir = self
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("cascade-data"));
        Some(SecretKeySource::File {
            path: dir.join("secret.key"),
            create: true,
        })
    }

    /// The database URL these options name.
    pub fn url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => {
                let dir = self
                    .data_dir
                    .clone()
                    .unwrap_or_else(|| PathBuf::from("cascade-data"));
                control_plane::db::sqlite_url(&dir.join("cascade.db"))
            }
        }
    }
}

/// How a node authorizes WHIP and WHEP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Stream keys of channels in the control plane.
    Accounts,
    /// Anyone may publish and watch anything.
    Open,
    /// The configured publish keys; watching is open.
    Keys,
    /// Signed tokens only, checked with the remote control plane's public key.
    Tokens,
}

/// `--log-format`: how log lines are written (to standard error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for people: time, level, the request's span, target, message, fields.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, the message and fields
    /// at the top, and the current span's fields (`request_id`, `method`, `route`) under
    /// `span`.
    Json,
}

/// Options every command takes (clap's `global`: before or after the command's name).
/// Not in the TOML file: logging starts before the file is read.
#[derive(Debug, Args, Default)]
pub struct GlobalArgs {
    /// How log lines are written to standard error (`RUST_LOG` filters them, default
    /// `info`): `text` or `json` (one object per line) [default: text].
    #[arg(
        long,
        env = "CASCADE_LOG_FORMAT",
        value_enum,
        global = true,
        default_value_t
    )]
    pub log_format: LogFormat,
}

/// `--tcp-port`: a port, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum TcpPort {
    /// First port (0: any free).
    Port(u16),
    /// `"off"`: no ICE-TCP.
    Off(Off),
}

/// The word `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Off {
    /// No TCP.
    Off,
}

fn parse_tcp_port(s: &str) -> Result<TcpPort, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(TcpPort::Off(Off::Off));
    }
    s.parse()
        .map(TcpPort::Port)
        .map_err(|_| format!("expected a port or `off`, got {s:?}"))
}

/// A duration as `<number><unit>`, units `ms`, `s`, `m`, `h`, `d`, summed when several
/// follow each other (`1h30m`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("expected a duration such as 90s, 30m, 6h, 1d or 1h30m, got {s:?}");
    let mut total = Duration::ZERO;
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let ms_per = match &rest[..unit] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(bad()),
        };
        rest = &rest[unit..];
        let ms = n.checked_mul(ms_per).ok_or_else(bad)?;
        total = total
            .checked_add(Duration::from_millis(ms))
            .ok_or_else(bad)?;
    }
    Ok(total)
}

fn parse_key(s: &str) -> Result<(String, String), String> {
    let (stream, key) = s.split_once('=').ok_or("expected STREAM=KEY")?;
    if stream.is_empty() || key.is_empty() {
        return Err("expected STREAM=KEY".into());
    }
    Ok((stream.to_owned(), key.to_owned()))
}

/// The TOML file's shape.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    http: Option<SocketAddr>,
    bind_ip: Option<IpAddr>,
    udp_port: Option<u16>,
    tcp_port: Option<TcpPort>,
    max_tcp_connections: Option<usize>,
    #[serde(default)]
    turn_urls: Vec<String>,
    turn_secret_file: Option<PathBuf>,
    turn_ttl: Option<u64>,
    public_ip: Option<IpAddr>,
    workers: Option<usize>,
    max_sessions: Option<usize>,
    handshake_timeout: Option<u64>,
    publisher_reserve: Option<usize>,
    max_pending: Option<usize>,
    max_pending_per_stream: Option<usize>,
    viewer_bwe: Option<u64>,
    ladder: Option<bool>,
    ladder_watermark: Option<std::path::PathBuf>,
    cpu_budget: Option<u64>,
    egress_budget: Option<u64>,
    level_audio: Option<f64>,
    max_viewers_per_address: Option<usize>,
    max_pending_per_address: Option<usize>,
    http_header_timeout: Option<u64>,
    http_body_timeout: Option<u64>,
    http_request_timeout: Option<u64>,
    http_max_connections: Option<usize>,
    #[serde(default)]
    publish_keys: HashMap<String, String>,
    #[serde(default)]
    ice_servers: Vec<IceServer>,
    #[serde(default)]
    cors_origins: Vec<String>,
    nats_url: Option<String>,
    backup_dir: Option<PathBuf>,
    backup_every: Option<String>,
    backup_keep: Option<usize>,
    #[serde(default)]
    webhooks_allow_private: bool,
    webhook_retry_base_ms: Option<u64>,
    analytics_sample_ms: Option<u64>,
    recording_grace_ms: Option<u64>,
    live_thumbnail_secs: Option<u64>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    #[serde(default)]
    acme_domains: Vec<String>,
    #[serde(default)]
    acme_contacts: Vec<String>,
    acme_directory: Option<String>,
    acme_ca_file: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    secret_key_file: Option<PathBuf>,
    auth: Option<AuthMode>,
    token_public_key: Option<String>,
    control_plane: Option<String>,
}

/// Everything `serve` needs, resolved.
#[derive(Debug)]
pub struct Settings {
    pub http: SocketAddr,
    pub http_limits: signaling::server::Limits,
    pub node: sfu::NodeConfig,
    pub publish_keys: HashMap<String, String>,
    pub ice_servers: Vec<IceServer>,
    pub turn: Option<signaling::Turn>,
    pub cors_origins: Vec<String>,
    pub nats_url: Option<String>,
    pub webhooks: control_plane::webhooks::Settings,
    pub money: control_plane::money::Settings,
    pub content: control_plane::content::Settings,
    pub analytics_sample: std::time::Duration,
    /// Where recordings are written (`DATA_DIR/recordings`).
    pub recordings_dir: PathBuf,
    /// How long a recorded stream may lose its publisher before its recording ends.
    pub recording_grace: std::time::Duration,
    /// How often live streams' thumbnails are taken on the server (None: never).
    pub live_thumbnail_every: Option<std::time::Duration>,
    pub tls: Option<signaling::tls::Tls>,
    pub database_url: String,
    pub secret_key: Option<control_plane::keystore::SecretKeySource>,
    pub auth: AuthMode,
    pub token_public_key: Option<String>,
    pub control_plane: Option<String>,
    pub cluster: ClusterArgs,
    pub backup: Option<Backup>,
}

/// Scheduled backups (`--backup-dir`).
#[derive(Debug, Clone)]
pub struct Backup {
    pub dir: PathBuf,
    pub every: Duration,
    pub keep: usize,
}

impl ServeArgs {
    /// Merges flags/env over the file over the defaults.
    pub fn resolve(self) -> Result<Settings, String> {
        let file: FileConfig = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("reading {}: {e}", path.display()))?;
                toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let d = sfu::NodeConfig::default();
        let node = sfu::NodeConfig {
            workers: self.workers.or(file.workers).unwrap_or(d.workers),
            bind_ip: self.bind_ip.or(file.bind_ip).unwrap_or(d.bind_ip),
            udp_port: self.udp_port.or(file.udp_port).unwrap_or(d.udp_port),
            tcp_port: match self.tcp_port.or(file.tcp_port) {
                Some(TcpPort::Port(p)) => Some(p),
                Some(TcpPort::Off(_)) => None,
                None => d.tcp_port,
            },
            max_tcp_connections: self
                .max_tcp_connections
                .or(file.max_tcp_connections)
                .unwrap_or(d.max_tcp_connections),
            public_ip: self.public_ip.or(file.public_ip),
            max_sessions: self
                .max_sessions
                .or(file.max_sessions)
                .unwrap_or(d.max_sessions),
            handshake_timeout: self
                .handshake_timeout
                .or(file.handshake_timeout)
                .map_or(d.handshake_timeout, Duration::from_secs),
            publisher_reserve: self.publisher_reserve.or(file.publisher_reserve),
            max_pending: self.max_pending.or(file.max_pending),
            max_pending_per_stream: self
                .max_pending_per_stream
                .or(file.max_pending_per_stream)
                .unwrap_or(d.max_pending_per_stream),
            max_per_address: self
                .max_viewers_per_address
                .or(file.max_viewers_per_address)
                .unwrap_or(d.max_per_address),
            max_pending_per_address: self
                .max_pending_per_address
                .or(file.max_pending_per_address)
                .unwrap_or(d.max_pending_per_address),
            viewer_bwe: match self.viewer_bwe.or(file.viewer_bwe) {
                Some(0) => None,
                Some(kbps) => Some(
                    kbps.checked_mul(1000)
                        .filter(|bps| (100_000..=100_000_000).contains(bps))
                        .ok_or_else(|| {
                            format!(
                                "--viewer-bwe {kbps}: a starting rate from 100 to 100000 kbit/s, or 0 for none"
                            )
                        })?,
                ),
                None => d.viewer_bwe,
            },
            ladder: self.ladder || file.ladder.unwrap_or(false),
            ladder_watermark: match self.ladder_watermark.as_ref().or(file.ladder_watermark.as_ref()) {
                None => None,
                Some(path) => {
                    let bytes = std::fs::read(path)
                        .map_err(|e| format!("--ladder-watermark {}: {e}", path.display()))?;
                    let mark = sfu::process::Watermark::from_png(&bytes)
                        .map_err(|e| format!("--ladder-watermark {}: {e}", path.display()))?;
                    Some(std::sync::Arc::new(mark))
                }
            },
            budget: sfu::budget::BudgetConfig {
                cpu: match self.cpu_budget.or(file.cpu_budget) {
                    None => d.budget.cpu,
                    Some(0) => None,
                    Some(p @ 10..=100) => Some(p as f64 / 100.0),
                    Some(p) => {
                        return Err(format!(
                            "--cpu-budget {p}: a share of the cores from 10 to 100 %, or 0 for none"
                        ))
                    }
                },
                egress_bps: match self.egress_budget.or(file.egress_budget) {
                    None => d.budget.egress_bps,
                    Some(0) => None,
                    Some(mbps) => Some(
                        mbps.checked_mul(1_000_000)
                            .filter(|_| mbps <= 1_000_000)
                            .ok_or_else(|| {
                                format!("--egress-budget {mbps}: at most 1000000 Mbit/s, or 0 for none")
                            })?,
                    ),
                },
                ..d.budget
            },
            level_audio: self
                .level_audio
                .or(file.level_audio)
                .map(|target_lufs| sfu::level::LevelConfig { target_lufs }),
            ..d
        };
        node.validate()?;
        let h = signaling::server::Limits::default();
        let secs = |flag: Option<u64>, file: Option<u64>, default: Duration| {
            flag.or(file).map_or(default, Duration::from_secs)
        };
        let http_limits = signaling::server::Limits {
            header_timeout: secs(
                self.http_header_timeout,
                file.http_header_timeout,
                h.header_timeout,
            ),
            body_timeout: secs(
                self.http_body_timeout,
                file.http_body_timeout,
                h.body_timeout,
            ),
            request_timeout: secs(
                self.http_request_timeout,
                file.http_request_timeout,
                h.request_timeout,
            ),
            max_connections: self
                .http_max_connections
                .or(file.http_max_connections)
                .unwrap_or(h.max_connections),
            larger: control_plane::api::LARGER_BODIES,
            ..h
        };
        if [
            http_limits.header_timeout,
            http_limits.body_timeout,
            http_limits.request_timeout,
        ]
        .contains(&Duration::ZERO)
            || http_limits.max_connections == 0
        {
            return Err("HTTP timeouts and --http-max-connections must be at least 1".into());
        }
        let mut publish_keys = file.publish_keys;
        publish_keys.extend(self.publish_keys);
        let mut ice_servers = file.ice_servers;
        ice_servers.extend(self.ice_servers.into_iter().map(|url| IceServer {
            url,
            username: None,
            credential: None,
        }));
        let turn = turn(
            if self.turn_urls.is_empty() {
                file.turn_urls
            } else {
                self.turn_urls
            },
            self.turn_secret_file.or(file.turn_secret_file),
            self.turn_ttl.or(file.turn_ttl).unwrap_or(86_400),
        )?;
        let mut cors_origins = file.cors_origins;
        cors_origins.extend(self.cors_origins);
        let store = StoreArgs {
            data_dir: self.store.data_dir.or(file.data_dir),
            database_url: self.store.database_url.or(file.database_url),
            secret_key_file: self.store.secret_key_file.or(file.secret_key_file),
        };
        let acme = Acme {
            domains: or_file(self.acme_domains, file.acme_domains),
            contacts: or_file(self.acme_contacts, file.acme_contacts),
            directory: self.acme_directory.or(file.acme_directory),
            ca_file: self.acme_ca_file.or(file.acme_ca_file),
        };
        let tls = tls(
            self.tls_cert.or(file.tls_cert),
            self.tls_key.or(file.tls_key),
            acme,
            &store,
        )?;
        let auth = self
            .auth
            .or(file.auth)
            .unwrap_or(if publish_keys.is_empty() {
                AuthMode::Accounts
            } else {
                AuthMode::Keys
            });
        let token_public_key = self.token_public_key.or(file.token_public_key);
        if auth == AuthMode::Tokens && token_public_key.is_none() {
            return Err("--auth tokens needs --token-public-key".into());
        }
        let control_plane = self.control_plane.or(file.control_plane);
        if auth == AuthMode::Tokens && control_plane.is_none() {
            // Without it, a revoked key or a suspended owner would publish until the
            // token expires.
            return Err("--auth tokens needs --control-plane (to follow revocations)".into());
        }
        if auth == AuthMode::Keys && publish_keys.is_empty() {
            return Err("--auth keys needs at least one --publish-key".into());
        }
        if self.cluster.relay_listen.is_some() != self.cluster.node_dir.is_some() {
            return Err("--relay-listen and --node-dir go together".into());
        }
        if !self.cluster.parents.is_empty() && self.cluster.relay_listen.is_none() {
            return Err(
                "--parent needs --relay-listen and --node-dir (the node's identity)".into(),
            );
        }
        let backup_every = match (self.backup_every, file.backup_every.as_deref()) {
            (Some(d), _) => Some(d),
            (None, Some(s)) => Some(parse_duration(s).map_err(|e| format!("backup_every: {e}"))?),
            (None, None) => None,
        };
        let backup_keep = self.backup_keep.or(file.backup_keep);
        let backup = match self.backup_dir.or(file.backup_dir) {
            Some(dir) => {
                let every = backup_every.unwrap_or(Duration::from_secs(3600));
                if every < Duration::from_secs(1) {
                    return Err("--backup-every must be at least 1s".into());
                }
                let keep = backup_keep.unwrap_or(48);
                if keep == 0 {
                    return Err("--backup-keep must be at least 1".into());
                }
                Some(Backup { dir, every, keep })
            }
            None if backup_every.is_some() || backup_keep.is_some() => {
                return Err("--backup-every and --backup-keep need --backup-dir".into())
            }
            None => None,
        };
        Ok(Settings {
            backup,
            cluster: self.cluster.clone(),
            database_url: store.url(),
            secret_key: store.secret_key(),
            auth,
            token_public_key,
            control_plane,
            http: self
                .http
                .or(file.http)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            http_limits,
            node,
            publish_keys,
            ice_servers,
            turn,
            cors_origins,
            nats_url: self.nats_url.or(file.nats_url),
            webhooks: control_plane::webhooks::Settings {
                allow_private: self.webhooks_allow_private || file.webhooks_allow_private,
                retry: control_plane::webhooks::RetryPolicy {
                    base_ms: self
                        .webhook_retry_base_ms
                        .or(file.webhook_retry_base_ms)
                        .map_or(5_000, |ms| i64::try_from(ms).unwrap_or(i64::MAX)),
                    ..Default::default()
                },
                ..Default::default()
            },
            money: self.money.resolve()?,
            content: self.content.resolve()?,
            analytics_sample: std::time::Duration::from_millis(
                self.analytics_sample_ms
                    .or(file.analytics_sample_ms)
                    .unwrap_or(10_000)
                    .max(100),
            ),
            recordings_dir: store
                .data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("cascade-data"))
                .join("recordings"),
            recording_grace: std::time::Duration::from_millis(
                self.recording_grace_ms
                    .or(file.recording_grace_ms)
                    .unwrap_or(30_000),
            ),
            live_thumbnail_every: match self
                .live_thumbnail_secs
                .or(file.live_thumbnail_secs)
                .unwrap_or(45)
            {
                0 => None,
                s => Some(std::time::Duration::from_secs(s)),
            },
            tls,
        })
    }
}

/// The `--acme-*` options, merged.
struct Acme {
    domains: Vec<String>,
    contacts: Vec<String>,
    directory: Option<String>,
    ca_file: Option<PathBuf>,
}

/// Flags (or the environment) win over the file's list.
fn or_file(flags: Vec<String>, file: Vec<String>) -> Vec<String> {
    if flags.is_empty() {
        file
    } else {
        flags
    }
}

/// The node's HTTPS: PEM files, or ACME, or none.
fn tls(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    acme: Acme,
    store: &StoreArgs,
) -> Result<Option<signaling::tls::Tls>, String> {
    let domains = acme
        .domains
        .iter()
        .map(|d| d.trim())
        .filter(|d| !d.is_empty())
        .map(signaling::acme::check_domain)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("--acme-domain {e}"))?;
    if domains.is_empty() {
        if !acme.contacts.is_empty() || acme.directory.is_some() || acme.ca_file.is_some() {
            return Err(
                "--acme-contact, --acme-directory and --acme-ca-file need --acme-domain".into(),
            );
        }
        return match (cert, key) {
            (Some(cert), Some(key)) => signaling::tls::Tls::from_pem_files(&cert, &key)
                .map(Some)
                .map_err(|e| format!("--tls-cert/--tls-key: {e}")),
            (None, None) => Ok(None),
            _ => Err("--tls-cert and --tls-key go together".into()),
        };
    }
    if cert.is_some() || key.is_some() {
        return Err(
            "--acme-domain and --tls-cert/--tls-key are exclusive: the certificate comes \
             from an ACME CA or from files, not both"
                .into(),
        );
    }
    let contacts: Vec<String> = acme
        .contacts
        .iter()
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty())
        .collect();
    if let Some(bad) = contacts.iter().find(|c| !c.starts_with("mailto:")) {
        return Err(format!("--acme-contact {bad:?}: expected mailto:…"));
    }
    let directory = acme
        .directory
        .unwrap_or_else(|| signaling::acme::LETS_ENCRYPT.to_owned());
    if !directory.starts_with("https://") {
        return Err(format!(
            "--acme-directory {directory:?}: expected https://…"
        ));
    }
    let data_dir = store
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("cascade-data"));
    let opts = signaling::acme::AcmeOptions {
        domains,
        contact: contacts,
        directory,
        ca_file: acme.ca_file,
        cache_dir: data_dir.join("acme"),
    };
    signaling::tls::Tls::acme(&opts)
        .map(Some)
        .map_err(|e| format!("--acme-*: {e}"))
}

/// The TURN servers to announce, with their secret: from the file, else from
/// CASCADE_TURN_SECRET (the environment only: a flag shows in `ps`).
fn turn(
    urls: Vec<String>,
    secret_file: Option<PathBuf>,
    ttl: u64,
) -> Result<Option<signaling::Turn>, String> {
    let urls: Vec<String> = urls
        .into_iter()
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty())
        .collect();
    if urls.is_empty() {
        return Ok(None);
    }
    if let Some(bad) = urls
        .iter()
        .find(|u| !(u.starts_with("turn:") || u.starts_with("turns:")))
    {
        return Err(format!("--turn-url {bad:?}: expected turn:… or turns:…"));
    }
    let secret = match secret_file {
        Some(path) => std::fs::read_to_string(&path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?,
        None => std::env::var("CASCADE_TURN_SECRET").unwrap_or_default(),
    };
    let secret = secret.trim();
    if secret.is_empty() {
        return Err(
            "--turn-url needs the TURN secret (--turn-secret-file or CASCADE_TURN_SECRET)".into(),
        );
    }
    if ttl == 0 {
        return Err("--turn-ttl must be at least 1 second".into());
    }
    Ok(Some(signaling::Turn::new(
        urls,
        secret.as_bytes(),
        Duration::from_secs(ttl),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_file_and_file_over_defaults() {
        let dir = std::env::temp_dir().join(format!("cascade-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            "http = \"127.0.0.1:9000\"\nworkers = 3\n[publish_keys]\nlive = \"k1\"\n[[ice_servers]]\nurl = \"stun:stun.example.net\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path),
            workers: Some(1),
            publish_keys: vec![("other".into(), "k2".into())],
            ..Default::default()
        };
        let s = args.resolve().unwrap();
        assert_eq!(s.http.port(), 9000);
        assert_eq!(s.node.workers, 1);
        assert_eq!(s.publish_keys.len(), 2);
        assert_eq!(s.ice_servers[0].url, "stun:stun.example.net");
        assert_eq!(s.node.max_sessions, 10_000);
    }

    #[test]
    fn level_audio_is_off_by_default_and_alone_aims_at_minus_16() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            serve: ServeArgs,
        }
        let level = |args: &[&str]| {
            let cli = Cli::try_parse_from(std::iter::once("serve").chain(args.iter().copied()))
                .expect("parses");
            cli.serve
                .resolve()
                .map(|s| s.node.level_audio.map(|l| l.target_lufs))
        };
        assert_eq!(level(&[]), Ok(None));
        assert_eq!(level(&["--level-audio"]), Ok(Some(-16.0)));
        assert_eq!(level(&["--level-audio=-23"]), Ok(Some(-23.0)));
        assert!(level(&["--level-audio=3"]).is_err(), "louder than -5 LUFS");
    }

    #[test]
    fn viewer_bwe_is_a_rate_in_kbps_or_zero_for_none() {
        let bwe = |kbps: Option<u64>| {
            ServeArgs {
                viewer_bwe: kbps,
                ..Default::default()
            }
            .resolve()
            .map(|s| s.node.viewer_bwe)
        };
        assert_eq!(bwe(None), Ok(Some(3_000_000)), "on by default");
        assert_eq!(bwe(Some(0)), Ok(None));
        assert_eq!(bwe(Some(1500)), Ok(Some(1_500_000)));
        for bad in [1, u64::MAX] {
            let err = bwe(Some(bad)).unwrap_err();
            assert!(err.contains("--viewer-bwe"), "{err}");
        }
    }

    #[test]
    fn budgets_are_percent_and_mbits_or_zero_for_none() {
        let budget = |cpu: Option<u64>, egress: Option<u64>| {
            ServeArgs {
                cpu_budget: cpu,
                egress_budget: egress,
                ..Default::default()
            }
            .resolve()
            .map(|s| (s.node.budget.cpu, s.node.budget.egress_bps))
        };
        assert_eq!(
            budget(None, None),
            Ok((Some(0.9), None)),
            "90 % of the cores"
        );
        assert_eq!(budget(Some(0), Some(200)), Ok((None, Some(200_000_000))));
        assert_eq!(budget(Some(50), Some(0)), Ok((Some(0.5), None)));
        for bad in [5, 101] {
            assert!(budget(Some(bad), None)
                .unwrap_err()
                .contains("--cpu-budget"));
        }
        assert!(budget(None, Some(u64::MAX))
            .unwrap_err()
            .contains("--egress-budget"));
    }

    #[test]
    fn tcp_is_on_by_default_and_off_by_flag_or_file() {
        assert_eq!(
            ServeArgs::default().resolve().unwrap().node.tcp_port,
            Some(0)
        );
        assert_eq!(parse_tcp_port("OFF"), Ok(TcpPort::Off(Off::Off)));
        assert_eq!(parse_tcp_port("7881"), Ok(TcpPort::Port(7881)));
        assert!(parse_tcp_port("seven").is_err());
        let off = ServeArgs {
            tcp_port: Some(TcpPort::Off(Off::Off)),
            ..Default::default()
        };
        assert_eq!(off.resolve().unwrap().node.tcp_port, None);
        for (toml, want) in [
            ("tcp_port = \"off\"\n", None),
            ("tcp_port = 7881\n", Some(7881)),
        ] {
            let file: FileConfig = toml::from_str(toml).unwrap();
            let port = match file.tcp_port {
                Some(TcpPort::Port(p)) => Some(p),
                _ => None,
            };
            assert_eq!(port, want, "{toml}");
        }
    }

    #[test]
    fn turn_needs_its_secret_and_turn_urls() {
        let dir = std::env::temp_dir().join(format!("cascade-cfg-turn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let secret = dir.join("turn.secret");
        std::fs::write(&secret, "s3cret\n").unwrap();
        let urls = vec!["turn:10.0.0.1:3478?transport=udp".to_owned()];
        let t = turn(urls.clone(), Some(secret.clone()), 600)
            .unwrap()
            .unwrap();
        let servers = t.servers("live", std::time::SystemTime::now());
        assert_eq!(servers[0].url, urls[0]);
        assert!(servers[0].username.as_deref().unwrap().ends_with(":live"));
        let missing = turn(urls, Some(dir.join("none")), 600).unwrap_err();
        assert!(missing.contains("reading"), "{missing}");
        let stun = turn(vec!["stun:x:3478".into()], Some(secret), 600).unwrap_err();
        assert!(stun.contains("--turn-url"), "{stun}");
        assert!(turn(Vec::new(), None, 600).unwrap().is_none());
    }

    #[test]
    fn backups_are_scheduled_hourly_by_default_and_durations_have_units() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        for bad in ["", "10", "h", "1w", "1h 30m", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        let resolve = |dir: Option<&str>, every: Option<Duration>, keep: Option<usize>| {
            ServeArgs {
                backup_dir: dir.map(PathBuf::from),
                backup_every: every,
                backup_keep: keep,
                ..Default::default()
            }
            .resolve()
            .map(|s| s.backup.map(|b| (b.every, b.keep)))
        };
        assert_eq!(resolve(None, None, None), Ok(None));
        assert_eq!(
            resolve(Some("/b"), None, None),
            Ok(Some((Duration::from_secs(3600), 48)))
        );
        assert_eq!(
            resolve(Some("/b"), Some(Duration::from_secs(1)), Some(3)),
            Ok(Some((Duration::from_secs(1), 3)))
        );
        assert!(resolve(None, Some(Duration::from_secs(60)), None).is_err());
        assert!(resolve(Some("/b"), Some(Duration::from_millis(500)), None).is_err());
        assert!(resolve(Some("/b"), None, Some(0)).is_err());
        let file: FileConfig =
            toml::from_str("backup_dir = \"/b\"\nbackup_every = \"6h\"\nbackup_keep = 4\n")
                .unwrap();
        assert_eq!(file.backup_every.as_deref(), Some("6h"));
    }

    #[test]
    fn bad_file_is_a_clear_error() {
        let dir = std::env::temp_dir().join(format!("cascade-cfg-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(&path, "htp = 1\n").unwrap();
        let err = ServeArgs {
            config: Some(path),
            ..Default::default()
        }
        .resolve()
        .unwrap_err();
        assert!(err.contains("unknown field"), "{err}");
        assert!(parse_key("nokey").is_err());
    }
}
