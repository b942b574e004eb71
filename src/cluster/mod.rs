//! A node in a cluster: relay links to parents and children (`relay`), and the commands
//! that make a cluster's certificates.

pub mod agent;
pub mod metrics;
pub mod netns;
pub mod relay;
pub mod stream_list;
pub mod up;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Subcommand;
use edge_relay::net::{NetConfig, RelayEndpoint};
use edge_relay::tls::NodeIdentity;

use crate::config::ClusterArgs;
use relay::{ParentAddr, Parents, Relay};

/// `cascade cluster …`
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Make a cluster CA (ca.pem, ca.key) in a new directory.
    Init {
        /// Where to write it (must not hold a CA yet).
        #[arg(long)]
        dir: PathBuf,
    },
    /// Issue a node certificate signed by the cluster CA.
    Issue {
        /// The CA's directory (`cascade cluster init`).
        #[arg(long)]
        ca: PathBuf,
        /// The node's name (its certificate's).
        #[arg(long)]
        name: String,
        /// Where to write ca.pem, node.pem and node.key.
        #[arg(long)]
        out: PathBuf,
    },
    /// Drain a node: no new viewers or children; its viewers move, its children re-parent.
    Drain {
        /// The control plane's URL.
        #[arg(long, env = "CASCADE_CONTROL_PLANE")]
        control: String,
        /// The cluster token.
        #[arg(long, env = "CASCADE_CLUSTER_TOKEN", hide_env_values = true)]
        cluster_token: String,
        /// The node's name.
        #[arg(long)]
        node: String,
    },
    /// Start a local cluster of `cascade serve` processes (origin, relays, edges).
    Up(up::UpArgs),
}

/// Drains a node through the control plane: it takes no new viewers or children, tells its
/// viewers to move and lets its children go to other parents.
fn drain(control: &str, token: &str, name: &str) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let base = control.trim_end_matches('/');
        let http = reqwest::Client::new();
        let nodes: Vec<serde_json::Value> = http
            .get(format!("{base}/api/v1/cluster/nodes"))
            .bearer_auth(token)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| format!("listing nodes: {e}"))?
            .json()
            .await
            .map_err(|e| format!("listing nodes: {e}"))?;
        let id = nodes
            .iter()
            .find(|n| n["name"] == name)
            .and_then(|n| n["id"].as_str())
            .ok_or_else(|| format!("no node named {name}"))?;
        http.post(format!("{base}/api/v1/cluster/nodes/{id}/drain"))
            .bearer_auth(token)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| format!("draining {name}: {e}"))?;
        println!("node {name} drained: its viewers and children move within a few seconds");
        Ok(())
    })
}

/// Runs a `cascade cluster` command.
pub fn run(c: ClusterCommand) -> Result<(), String> {
    match c {
        ClusterCommand::Init { dir } => {
            edge_relay::tls::init_cluster(&dir).map_err(|e| e.to_string())?;
            println!("cluster CA written to {}", dir.display());
        }
        ClusterCommand::Issue { ca, name, out } => {
            edge_relay::tls::issue_node(&ca, &name, &out).map_err(|e| e.to_string())?;
            println!("node {name}: certificate written to {}", out.display());
        }
        ClusterCommand::Drain {
            control,
            cluster_token,
            node,
        } => drain(&control, &cluster_token, &node)?,
        ClusterCommand::Up(args) => up::run(args)?,
    }
    Ok(())
}

/// Starts the node's relay links, if it has any (`--relay-listen`), and its registration
/// with the control plane (`--control-plane` with `--cluster-token` and `--role`).
pub async fn start(
    args: &ClusterArgs,
    control: Option<&str>,
    node: &sfu::Node,
    audience: agent::AudienceSource,
    http: SocketAddr,
) -> Result<(), String> {
    let (Some(listen), Some(dir)) = (args.relay_listen, args.node_dir.as_ref()) else {
        return Ok(());
    };
    let identity = NodeIdentity::load(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let (endpoint, requests) = RelayEndpoint::bind(listen, &identity, NetConfig::default())
        .map_err(|e| format!("relay on {listen}: {e}"))?;
    let local = endpoint
        .local_addr()
        .map_err(|e| format!("relay on {listen}: {e}"))?;
    // Tests and scripts read this line for the address actually bound.
    println!("cascade relay {} on quic {local}", identity.name);
    let metrics = metrics::RelayMetrics::register(&node.metrics().registry);
    metrics.spawn_sampler(endpoint.clone(), identity.not_after());
    let registry = match (control, &args.cluster_token, &args.role) {
        (Some(urls), Some(token), Some(role)) => Some(agent::Agent::start(
            urls.split(',').map(str::to_owned).collect(),
            token.clone(),
            agent::Registration {
                name: identity.name.clone(),
                role: role.clone(),
                zone: args.zone.clone().unwrap_or_else(|| "default".into()),
                http_url: args
                    .public_url
                    .clone()
                    .unwrap_or_else(|| format!("http://{http}")),
                relay_addr: local.to_string(),
                capacity: args.capacity,
            },
            node.clone(),
            audience,
        )),
        _ => None,
    };
    let parents = match registry {
        Some(agent) if args.parents.is_empty() && args.role.as_deref() != Some("origin") => {
            Parents::Control(agent)
        }
        _ => Parents::Static(
            args.parents
                .iter()
                .map(|(name, addr)| ParentAddr {
                    name: name.clone(),
                    addr: *addr,
                })
                .collect(),
        ),
    };
    Relay {
        node: node.clone(),
        endpoint,
        me: identity.id,
        parents,
        downstream: relay::Downstream::default(),
        metrics,
        demand: Default::default(),
    }
    .spawn(requests);
    Ok(())
}
