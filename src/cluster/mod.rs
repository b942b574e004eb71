//! A node in a cluster: relay links to parents and children (`relay`), and the commands
//! that make a cluster's certificates.

pub mod relay;
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
    /// Start a local cluster of `cascade serve` processes (origin, relays, edges).
    Up(up::UpArgs),
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
        ClusterCommand::Up(args) => up::run(args)?,
    }
    Ok(())
}

/// Starts the node's relay links, if it has any (`--relay-listen`).
pub async fn start(args: &ClusterArgs, node: &sfu::Node, _http: SocketAddr) -> Result<(), String> {
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
    let parents = Parents::Static(
        args.parents
            .iter()
            .map(|(name, addr)| ParentAddr {
                name: name.clone(),
                addr: *addr,
            })
            .collect(),
    );
    Relay {
        node: node.clone(),
        endpoint,
        me: identity.id,
        parents,
    }
    .spawn(requests);
    Ok(())
}
