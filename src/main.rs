//! `cascade`: the broadcasting engine's one binary.

mod config;

use std::sync::Arc;

use clap::{Parser, Subcommand};
use signaling::{auth, AppState, Authorizer, Cors};

#[derive(Parser)]
#[command(
    name = "cascade",
    version,
    about = "Real-time broadcasting: WHIP in, WHEP out"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node: media engine, WHIP/WHEP, pages and metrics, in one process.
    Serve(config::ServeArgs),
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => args.resolve().and_then(serve),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cascade: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn serve(settings: config::Settings) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let node = sfu::Node::start(settings.node.clone(), sfu::Metrics::new())
            .map_err(|e| format!("starting media workers: {e}"))?;
        let auth: Arc<dyn Authorizer> = if settings.publish_keys.is_empty() {
            Arc::new(auth::Open)
        } else {
            Arc::new(auth::StaticKeys::new(settings.publish_keys.clone()))
        };
        let cors = if settings.cors_origins.is_empty() {
            Cors::Any
        } else {
            Cors::Origins(settings.cors_origins.clone())
        };
        let state = AppState::new(node.clone(), auth, settings.ice_servers.clone());
        let listener = tokio::net::TcpListener::bind(settings.http)
            .await
            .map_err(|e| format!("binding {}: {e}", settings.http))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let media: Vec<String> = node.media_addrs().iter().map(|a| a.to_string()).collect();
        tracing::info!("media workers on udp {}", media.join(", "));
        // Tests and scripts read this line for the address actually bound.
        println!("cascade listening on http://{addr}");
        axum::serve(listener, signaling::app(state, cors))
            .with_graceful_shutdown(shutdown_signal())
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!("shutting down: closing sessions");
        node.shutdown().await;
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
