//! `cascade`: the broadcasting engine's one binary.

mod ads;
mod chat;
mod cluster;
mod config;
mod follow;
mod gatekeeper;
mod ops;
mod recording;
mod signing_keys;
mod simulate;
mod stills;
mod webhooks;

use std::sync::Arc;

use clap::{Parser, Subcommand};
use config::AuthMode;
use signaling::{auth, AppState, Authorizer, Cors};

#[derive(Parser)]
#[command(
    name = "cascade",
    version,
    about = "Real-time broadcasting: WHIP in, WHEP out"
)]
struct Cli {
    #[command(flatten)]
    global: config::GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node: media engine, WHIP/WHEP, the control plane's API, pages and metrics.
    Serve(Box<config::ServeArgs>),
    /// Run a media node of a cluster: `serve` with `--auth tokens` checked against the
    /// control plane at `--control-plane` (its public key fetched from it), registered
    /// there with `--role`, `--zone` and `--cluster-token`; parents come from it.
    Node(Box<config::ServeArgs>),
    /// Run a control-plane replica of a cluster (several may share one PostgreSQL): the
    /// API, the node registry (`--cluster-token`) and `POST /whep/{stream}` answered with a
    /// 307 to the chosen edge. No media.
    Control(Box<config::ServeArgs>),
    /// Load a WHIP/WHEP server with a synthetic publisher and many viewers; report what it held.
    Loadtest(Box<loadtest::Options>),
    /// Run the cluster's placement code on a synthetic cluster of many viewers; report the trees and timings.
    Simulate(simulate::Options),
    /// Back up the database to a file while the server keeps running (SQLite: a consistent
    /// copy; PostgreSQL: `pg_dump -Fc`, from PATH), and record the success in the database
    /// (`cascade_backup_last_success_timestamp_seconds`).
    Backup {
        #[command(flatten)]
        store: config::StoreArgs,
        /// The file to write (must not exist).
        #[arg(long)]
        to: std::path::PathBuf,
    },
    /// Replace the database with a backup. SQLite: stop the server first. PostgreSQL:
    /// `pg_restore` into an empty database (`createdb` a fresh one; one with tables is
    /// refused), then migrate it.
    Restore {
        #[command(flatten)]
        store: config::StoreArgs,
        /// The backup file.
        #[arg(long)]
        from: std::path::PathBuf,
    },
    /// Cluster certificates and local clusters.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Make a new token-signing key; the old one verifies until its tokens have expired.
    RotateSigningKey {
        #[command(flatten)]
        store: config::StoreArgs,
        /// Seconds before the new key signs (running servers reload keys every 30 s, media
        /// nodes need the new public key by then).
        #[arg(long, default_value_t = control_plane::keystore::DEFAULT_ROTATION_DELAY_SECS)]
        delay: i64,
        /// Seconds the old key keeps verifying after that [default: the longest token
        /// lifetime]; 0 retires it now and signs with the new one at once (a leaked key).
        #[arg(long)]
        overlap: Option<i64>,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(cli.global.log_format);
    let result = match cli.command {
        Command::Serve(args) => args.resolve().and_then(serve),
        Command::Node(mut args) => node_defaults(&mut args)
            .and_then(|()| args.resolve())
            .and_then(serve),
        Command::Control(args) => args.resolve().and_then(control),
        Command::Loadtest(opts) if opts.chat.chat_viewers > 0 => {
            let json = opts.json;
            loadtest::run_chat(*opts).map(|report| {
                if json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&report).unwrap_or_default()
                    );
                } else {
                    print!("{}", report.table());
                }
            })
        }
        Command::Loadtest(opts) => {
            let json = opts.json;
            loadtest::run(*opts).map(|report| {
                if json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&report).unwrap_or_default()
                    );
                } else {
                    print!("{}", report.table());
                }
            })
        }
        Command::Cluster(c) => cluster::run(c),
        Command::Simulate(opts) => {
            let report = simulate::run(&opts);
            if opts.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                );
            } else {
                print!("{}", report.text());
            }
            Ok(())
        }
        Command::Backup { store, to } => {
            run_db(async move {
                let url = store.url();
                let written = control_plane::backups::backup_to(&url, &to).await?;
                println!(
                    "backup written to {} ({} bytes)",
                    to.display(),
                    written.bytes
                );
                // The file is good whatever happens next; only the metric would miss it.
                if let Err(e) = control_plane::backups::record(&url, &written).await {
                    eprintln!("cascade: the backup is complete, but recording it in the database failed: {e}");
                }
                Ok(())
            })
        }
        Command::Restore { store, from } => run_db(async move {
            control_plane::backups::restore(&store.url(), &from).await?;
            println!("restored {}", from.display());
            Ok(())
        }),
        Command::RotateSigningKey {
            store,
            delay,
            overlap,
        } => run_db(async move {
            let config = control_plane::Config {
                secret_key: store.secret_key(),
                ..Default::default()
            };
            let overlap = overlap.unwrap_or(
                config
                    .access_ttl_secs
                    .max(config.view_ttl_secs)
                    .max(config.publish_ttl_secs),
            );
            let cp = control_plane::ControlPlane::open(&store.url(), config).await?;
            let r = cp.rotate_signing_key(delay, overlap).await?;
            cp.db().close().await;
            println!(
                "new signing key {} signs in {}s; older keys stop verifying in {}s",
                r.kid,
                (r.signs_from - r.now).max(0) / 1000,
                (r.old_retire_at - r.now).max(0) / 1000,
            );
            Ok(())
        }),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cascade: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Starts logging to standard error in `format`, filtered by `RUST_LOG` (default `info`).
fn init_logging(format: config::LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match format {
        config::LogFormat::Text => builder.init(),
        // The current span only: a request's span is the one whose fields matter, and the
        // list of all would repeat them.
        config::LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}

fn run_db(
    job: impl std::future::Future<Output = Result<(), control_plane::DbError>>,
) -> Result<(), String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?
        .block_on(job)
        .map_err(|e| e.to_string())
}

/// What `cascade node` adds to `serve`: tokens checked offline, the control plane's key.
fn node_defaults(args: &mut config::ServeArgs) -> Result<(), String> {
    let control = args
        .control_plane
        .clone()
        .ok_or("cascade node needs --control-plane URL[,URL…]")?;
    if args.cluster.role.is_none() {
        return Err("cascade node needs --role origin|relay|edge".into());
    }
    args.auth.get_or_insert(AuthMode::Tokens);
    if args.token_public_key.is_none() {
        args.token_public_key = Some(fetch_signing_keys(&control)?);
    }
    Ok(())
}

/// The control plane's token-verifying keys, from the first replica that answers.
fn fetch_signing_keys(control: &str) -> Result<String, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?
        .block_on(signing_keys::fetch(&reqwest::Client::new(), control))
}

/// The runtime of a server's HTTP front and control paths (media has its own threads).
/// Where the channel page loads the payment gateway's card form from, when payments are
/// on (its origin goes into that page's Content-Security-Policy).
fn payment_script(settings: &config::Settings) -> Option<&str> {
    let money = &settings.money;
    money.gateway.as_ref().map(|_| money.js_url.as_str())
}

fn server_runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

/// `cascade control`: a control-plane replica with the cluster's registry and placement.
fn control(settings: config::Settings) -> Result<(), String> {
    server_runtime()?.block_on(async move {
        let token = settings
            .cluster
            .cluster_token
            .clone()
            .ok_or("cascade control needs --cluster-token (what nodes present)")?;
        if settings.backup.is_some() {
            // Replicas share one database: one scheduler per database, not per replica.
            return Err(
                "--backup-dir is for `cascade serve`; back a cluster's PostgreSQL up with \
                        `cascade backup` from one timer (or WAL archiving)"
                    .into(),
            );
        }
        let control = control_plane::ControlPlane::open(
            &settings.database_url,
            control_plane::Config {
                cors_origins: settings.cors_origins.clone(),
                secret_key: settings.secret_key.clone(),
                nats_url: settings.nats_url.clone(),
                webhooks: settings.webhooks.clone(),
                money: settings.money.clone(),
                content: settings.content.clone(),
                analytics_sample: settings.analytics_sample,
                cluster: true,
                cluster_token: Some(control_plane::cluster::ClusterToken::new(token)),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| format!("opening the database: {e}"))?;
        let listener = tokio::net::TcpListener::bind(settings.http)
            .await
            .map_err(|e| format!("binding {}: {e}", settings.http))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let scheme = if settings.tls.is_some() {
            "https"
        } else {
            "http"
        };
        println!("cascade listening on {scheme}://{addr}");
        // Everything a replica serves is the control plane's: timed in its histogram
        // (pages and unknown paths too, as their template or `other`).
        let app = control
            .router()
            .merge(signaling::web_pages(signaling::headers::watch_policy(
                signaling::headers::CLUSTER_CONTENT_SECURITY_POLICY_VALUE,
                payment_script(&settings),
            )))
            .merge(ops::control_routes(control.clone()))
            .layer(axum::middleware::from_fn(
                signaling::headers::cluster_security_headers,
            ));
        let app = signaling::requests::timed(app, control.api_requests());
        signaling::server::serve_with(
            listener,
            app,
            settings.http_limits,
            settings.tls.clone(),
            shutdown_signal(),
        )
        .await
        .map_err(|e| e.to_string())?;
        control.db().close().await;
        Ok(())
    })
}

fn serve(settings: config::Settings) -> Result<(), String> {
    server_runtime()?.block_on(async move {
        let node = sfu::Node::start(settings.node.clone(), sfu::Metrics::new())
            .map_err(|e| format!("starting media workers: {e}"))?;
        if let Some(tls) = &settings.tls {
            tls.register_metrics(&node.metrics().registry);
        }
        let control = control_plane::ControlPlane::open(
            &settings.database_url,
            control_plane::Config {
                cors_origins: settings.cors_origins.clone(),
                secret_key: settings.secret_key.clone(),
                nats_url: settings.nats_url.clone(),
                webhooks: settings.webhooks.clone(),
                money: settings.money.clone(),
                content: settings.content.clone(),
                analytics_sample: settings.analytics_sample,
                chat_per_address: settings.node.max_per_address,
                // The all-in-one can hold a small cluster's registry (its own node serves
                // WHEP, so no redirect).
                cluster_token: settings
                    .cluster
                    .cluster_token
                    .clone()
                    .map(control_plane::cluster::ClusterToken::new),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| format!("opening the database: {e}"))?;
        if let Some(b) = &settings.backup {
            control.schedule_backups(control_plane::backups::Schedule {
                url: settings.database_url.clone(),
                dir: b.dir.clone(),
                every: b.every,
                keep: b.keep,
            });
        }
        let revoked = Arc::new(std::sync::RwLock::new(
            control_plane::revocation::RevocationList::default(),
        ));
        let auth: Arc<dyn Authorizer> = match settings.auth {
            AuthMode::Accounts => Arc::new(gatekeeper::Accounts(control.clone())),
            AuthMode::Open => Arc::new(auth::Open),
            AuthMode::Keys => Arc::new(auth::StaticKeys::new(settings.publish_keys.clone())),
            AuthMode::Tokens => {
                let key = settings.token_public_key.as_deref().unwrap_or_default();
                let verifier = control_plane::tokens::Verifier::from_public_key(key)
                    .map_err(|_| "--token-public-key is not an Ed25519 public key".to_string())?;
                // `--control-plane` comes with `--auth tokens` (checked in config).
                let keys = signing_keys::Follower::new(
                    verifier.clone(),
                    settings.control_plane.clone().unwrap_or_default(),
                );
                keys.spawn();
                Arc::new(gatekeeper::Tokens {
                    verifier,
                    keys,
                    revoked: revoked.clone(),
                })
            }
        };
        let cors = if settings.cors_origins.is_empty() {
            Cors::Any
        } else {
            Cors::Origins(settings.cors_origins.clone())
        };
        // Where sessions' `chat` data channels go: the chat of the control plane that
        // holds the accounts (this process's, or a media-only node's remote one).
        let chat: Option<Arc<dyn signaling::ChatBridge>> =
            match (settings.auth, settings.control_plane.clone()) {
                (AuthMode::Tokens, Some(base)) => Some(Arc::new(chat::Remote { base })),
                (AuthMode::Tokens, None) => None,
                _ => Some(Arc::new(chat::InProcess(control.clone()))),
            };
        let state = AppState::new(node.clone(), auth, settings.ice_servers.clone())
            .with_turn(settings.turn.clone())
            .with_chat(chat)
            .with_payment_script(payment_script(&settings))
            .with_ops(Some(Arc::new(ops::ControlOps(control.clone()))));
        // Where recordings and live stills go: the control plane in this process, or
        // through the cluster's API on a media-only node.
        let mut library = None;
        match (settings.auth, settings.control_plane.clone()) {
            (AuthMode::Tokens, Some(url)) => {
                follow::remote(url.clone(), revoked, state.clone());
                // Ad breaks and sponsors' slots, through the cluster's API.
                if let Some(token) = settings.cluster.cluster_token.clone() {
                    library = Some(recording::Library::Remote(recording::Remote::new(
                        &url,
                        token.clone(),
                    )));
                    ads::remote(url, token, node.clone());
                } else {
                    tracing::warn!(
                        "no --cluster-token: this node neither records, makes live thumbnails \
                         nor runs ad breaks (they go through the cluster's API)"
                    );
                }
            }
            (AuthMode::Tokens, None) => follow::in_process(control.clone(), state.clone()),
            _ => {
                follow::in_process(control.clone(), state.clone());
                library = Some(recording::Library::InProcess(control.clone()));
            }
        }
        // Live VP8 and H.264 streams' thumbnails from a keyframe, for studios that post
        // none: to the same control plane as the recordings.
        if let (Some(library), Some(every)) = (&library, settings.live_thumbnail_every) {
            stills::live(node.clone(), library.clone(), every);
        }
        // Channels that record their live streams, recorded here from go-live.
        if let Some(library) = library {
            recording::start(
                node.clone(),
                library,
                settings.recordings_dir.clone(),
                settings.recording_grace,
            );
        }
        if settings.auth != AuthMode::Tokens {
            // Stream started/ended and viewer milestones for this node's publishers, and
            // its viewer sessions for analytics (with the registry's nodes' when it is on).
            webhooks::watch_streams(state.clone(), control.clone());
            // Ad breaks and sponsors' slots cued here go to this node's viewers.
            ads::in_process(control.clone(), node.clone());
        }
        let listener = tokio::net::TcpListener::bind(settings.http)
            .await
            .map_err(|e| format!("binding {}: {e}", settings.http))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let media: Vec<String> = node.media_addrs().iter().map(|a| a.to_string()).collect();
        tracing::info!("media workers on udp {}", media.join(", "));
        if !node.tcp_addrs().is_empty() {
            let tcp: Vec<String> = node.tcp_addrs().iter().map(|a| a.to_string()).collect();
            tracing::info!("ICE-TCP on {}", tcp.join(", "));
        }
        // Tests and scripts read this line for the address actually bound.
        let scheme = if settings.tls.is_some() {
            "https"
        } else {
            "http"
        };
        println!("cascade listening on {scheme}://{addr}");
        let audience: cluster::agent::AudienceSource = {
            let state = state.clone();
            Arc::new(move || webhooks::audience(&state))
        };
        cluster::start(
            &settings.cluster,
            settings.control_plane.as_deref(),
            &node,
            audience,
            addr,
        )
        .await?;
        // Each router times its own requests in its own histogram (the node's
        // `cascade_http_…`, the control plane's `cascade_api_…`): counted once each.
        let api = signaling::requests::timed(control.router(), control.api_requests());
        let app = signaling::app(state, cors)
            .merge(api)
            .layer(axum::middleware::from_fn(
                signaling::headers::security_headers,
            ));
        signaling::server::serve_with(
            listener,
            app,
            settings.http_limits,
            settings.tls.clone(),
            shutdown_signal(),
        )
        .await
        .map_err(|e| e.to_string())?;
        tracing::info!("shutting down: closing sessions");
        node.shutdown().await;
        control.db().close().await;
        Ok(())
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
}
