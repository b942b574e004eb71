//! The cluster's brain: the registry of media nodes (`/api/v1/cluster/...`), placement of
//! viewers on edges and of nodes in each stream's tree, and the WHEP redirect.
//!
//! Nodes register, then report their stats every second ([`registry`]); a node is dead
//! when its last report is older than [`Tuning::node_timeout_ms`], judged when the table
//! is read, so nothing sweeps. Control-plane replicas share the table and decide on their
//! own: each keeps the view it loaded for [`Tuning::view_ttl_ms`] and counts its own
//! placements into it until the next load. [`placement`] is the pure core every decision
//! runs through (and `cascade simulate` runs at scale); [`view`] is the data it reads;
//! [`redirect`] answers `POST /whep/{stream}` with a 307 to an edge.
//!
//! Nodes also report their audience every second ([`audience`]); the replica holding the
//! `audience` lease merges the live nodes' reports ([`merge`], pure) and feeds webhooks
//! and analytics with them (`observe.rs`), as `serve` does with its own node.
//!
//! A node whose publisher's channel records asks [`recordings`] and hands it the finished
//! files, which go to the content library as `serve`'s do; a node's live thumbnails (a
//! keyframe it decoded) go through [`thumbnails`] to the same rule as `serve`'s.

pub mod audience;
pub(crate) mod auth;
pub mod ingest;
pub mod merge;
mod observe;
pub mod placement;
mod receipts;
pub mod recordings;
pub mod redirect;
pub mod registry;
mod streams;
#[cfg(test)]
mod tests;
pub mod thumbnails;
pub mod view;

pub use audience::{Audience, StreamHere};
pub use auth::ClusterToken;
pub use placement::{
    join_tree, parent_for, place_viewer, reparent_after_loss, Parents, PlaceError,
};
pub use redirect::Redirect;
pub use view::{ClusterView, Ingest, Limits, Node, NodeId, Role};

/// How the registry and the redirect behave.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// A node with no stats for this long is dead (milliseconds).
    pub node_timeout_ms: i64,
    /// How long a replica reuses the view it loaded (milliseconds; 0: every request
    /// reads the table).
    pub view_ttl_ms: u64,
    /// Lifetime of the viewer token put in a redirect's URL (seconds).
    pub redirect_token_ttl_secs: i64,
    /// Most nodes registered at once.
    pub max_nodes: i64,
    /// A node dead this long leaves the registry at the next registration (milliseconds):
    /// nodes that come and go under new names (autoscaling) neither fill `max_nodes` nor
    /// stay listed for ever.
    pub forget_dead_after_ms: i64,
    /// Load limits and fan-out.
    pub limits: Limits,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            node_timeout_ms: 3000,
            view_ttl_ms: 200,
            redirect_token_ttl_secs: 60,
            max_nodes: 10_000,
            forget_dead_after_ms: 24 * 3600 * 1000,
            limits: Limits::default(),
        }
    }
}
