//! The cluster as placement sees it: nodes, their load, and each stream's tree (who
//! carries it, who is whose parent). Plain data in memory: the registry loads one from
//! the database, `cascade simulate` builds one by hand, and [`super::placement`] reads it.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A node's place in a [`ClusterView`] (an index, valid for that view only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u32);

impl NodeId {
    fn ix(self) -> usize {
        self.0 as usize
    }
}

/// What a media node does in the cluster.
// Named apart in the OpenAPI document: a user's `Role` (admin, moderator…) is another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = NodeRole)]
pub enum Role {
    /// Takes publishers (WHIP); the root of its streams' trees.
    Origin,
    /// Pulls streams from origins or relays and feeds relays and edges.
    Relay,
    /// Pulls streams from relays (or origins) and serves viewers (WHEP).
    Edge,
}

impl Role {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Origin => "origin",
            Role::Relay => "relay",
            Role::Edge => "edge",
        }
    }

    /// The role named `s`, if any.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "origin" => Some(Role::Origin),
            "relay" => Some(Role::Relay),
            "edge" => Some(Role::Edge),
            _ => None,
        }
    }
}

/// Which copy of a stream's publisher an origin holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Ingest {
    /// The publisher's main WHIP session.
    Primary,
    /// A second, redundant ingest of the same stream.
    Backup,
}

/// One stream on one node.
#[derive(Debug, Clone, Default)]
pub struct Carry {
    /// Where the node pulls it from (`None` on an ingest origin, or not attached yet).
    pub parent: Option<NodeId>,
    /// The pre-chosen parent to move to if `parent` fails.
    pub backup: Option<NodeId>,
    /// Set on an origin holding the stream's publisher.
    pub ingest: Option<Ingest>,
    /// `ingest` is a placement the node has not reported (yet): a publisher sent there,
    /// perhaps never arrived ([`ClusterView::place_ingest`]).
    pub placed: bool,
    /// Nodes pulling it from this one.
    pub children: Vec<NodeId>,
}

/// A media node and what it last reported.
#[derive(Debug, Clone)]
pub struct Node {
    /// The registry's id of the node.
    pub key: String,
    /// Its unique name.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Its failure zone (a rack, a data centre).
    pub zone: String,
    /// Where viewers reach it (`https://edge-3.example.com`).
    pub http_url: String,
    /// Where children connect to it over QUIC (`host:port`).
    pub relay_addr: String,
    /// Most viewers it serves (a child link counts as one viewer of load).
    pub capacity: u32,
    /// CPU busy, 0 to 1.
    pub cpu: f64,
    /// Bits per second sent.
    pub egress_bps: u64,
    /// Viewers connected.
    pub viewers: u32,
    /// Reported within the liveness window.
    pub alive: bool,
    /// Asked to take nothing new.
    pub draining: bool,
    /// Its own budget's level (0 within it; 1 capping new viewers, 2 shedding the top
    /// layer, 3 refusing viewers).
    pub pressure: u8,
    /// The streams it carries.
    pub streams: BTreeMap<String, Carry>,
    /// Child links over all its streams.
    links: u32,
}

impl Node {
    /// A live, idle node carrying nothing.
    pub fn new(key: &str, role: Role, zone: &str, capacity: u32) -> Node {
        Node {
            key: key.to_owned(),
            name: key.to_owned(),
            role,
            zone: zone.to_owned(),
            http_url: String::new(),
            relay_addr: String::new(),
            capacity,
            cpu: 0.0,
            egress_bps: 0,
            viewers: 0,
            alive: true,
            draining: false,
            pressure: 0,
            streams: BTreeMap::new(),
            links: 0,
        }
    }

    /// Viewers and child links against capacity, or CPU, whichever is higher.
    pub fn load(&self) -> f64 {
        let sessions = f64::from(self.viewers) + f64::from(self.links);
        (sessions / f64::from(self.capacity.max(1))).max(self.cpu)
    }

    /// Child links over all its streams.
    pub fn links(&self) -> u32 {
        self.links
    }

    /// Alive and not draining: may take something new.
    pub fn usable(&self) -> bool {
        self.alive && !self.draining
    }
}

/// How full a node may get, and the fan-out of a stream's tree.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// A node takes new viewers or children while its load is under this (0 to 1).
    pub load: f64,
    /// ... and its CPU under this.
    pub cpu: f64,
    /// Relays (or non-ingest origins) one origin feeds, per stream.
    pub origin_relays: usize,
    /// Edges one origin feeds per stream when the cluster has no relays.
    pub origin_edges: usize,
    /// Relays one relay feeds, per stream (the relays' own tree).
    pub relay_relays: usize,
    /// Edges one relay feeds, per stream.
    pub relay_edges: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            load: 0.9,
            cpu: 0.9,
            origin_relays: 8,
            origin_edges: 32,
            relay_relays: 8,
            relay_edges: 8,
        }
    }
}

/// Where a stream enters the cluster and which nodes carry it.
#[derive(Debug, Clone, Default)]
pub struct StreamIndex {
    /// Every node that carries it (dead ones included: callers filter).
    pub carriers: Vec<NodeId>,
    /// The origin holding its publisher.
    pub primary: Option<NodeId>,
    /// The origin holding its backup ingest.
    pub backup: Option<NodeId>,
}

/// The whole cluster in memory.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    /// The limits placement works within.
    pub limits: Limits,
    nodes: Vec<Node>,
    by_role: [Vec<NodeId>; 3],
    streams: HashMap<String, StreamIndex>,
    by_key: HashMap<String, NodeId>,
}

fn role_ix(r: Role) -> usize {
    match r {
        Role::Origin => 0,
        Role::Relay => 1,
        Role::Edge => 2,
    }
}

impl ClusterView {
    /// An empty cluster.
    pub fn new(limits: Limits) -> ClusterView {
        ClusterView {
            limits,
            ..Default::default()
        }
    }

    /// Adds a node (its `streams` are ignored: use [`ClusterView::set_ingest`] and
    /// [`ClusterView::attach`]).
    pub fn add(&mut self, mut node: Node) -> NodeId {
        let id = NodeId(u32::try_from(self.nodes.len()).unwrap_or(u32::MAX));
        node.streams.clear();
        node.links = 0;
        self.by_role[role_ix(node.role)].push(id);
        self.by_key.insert(node.key.clone(), id);
        self.nodes.push(node);
        id
    }

    /// The node `id` (ids come from this view).
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.ix()]
    }

    /// Every node, in id order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The node registered as `key`.
    pub fn find(&self, key: &str) -> Option<NodeId> {
        self.by_key.get(key).copied()
    }

    /// The nodes of one role.
    pub fn with_role(&self, role: Role) -> &[NodeId] {
        &self.by_role[role_ix(role)]
    }

    /// Where `stream` enters and who carries it.
    pub fn stream(&self, stream: &str) -> Option<&StreamIndex> {
        self.streams.get(stream)
    }

    /// The names of every stream in the view.
    pub fn stream_names(&self) -> impl Iterator<Item = &str> {
        self.streams.keys().map(String::as_str)
    }

    /// `node`'s state for `stream`, if it carries it.
    pub fn carry(&self, node: NodeId, stream: &str) -> Option<&Carry> {
        self.nodes[node.ix()].streams.get(stream)
    }

    fn carry_mut(&mut self, node: NodeId, stream: &str) -> &mut Carry {
        let n = &mut self.nodes[node.ix()];
        if !n.streams.contains_key(stream) {
            self.streams
                .entry(stream.to_owned())
                .or_default()
                .carriers
                .push(node);
            n.streams.insert(stream.to_owned(), Carry::default());
        }
        // Inserted just above when missing.
        n.streams.get_mut(stream).expect("carry present")
    }

    /// Counts a publisher (or its backup) of `stream` sent to `node`, as
    /// [`ClusterView::set_ingest`] but marked as not reported.
    pub fn place_ingest(&mut self, node: NodeId, stream: &str, ingest: Ingest) {
        self.set_ingest(node, stream, ingest);
        self.carry_mut(node, stream).placed = true;
    }

    /// Marks `node` as holding the publisher (or its backup) of `stream`.
    pub fn set_ingest(&mut self, node: NodeId, stream: &str, ingest: Ingest) {
        let carry = self.carry_mut(node, stream);
        carry.ingest = Some(ingest);
        carry.placed = false;
        let ix = self.streams.entry(stream.to_owned()).or_default();
        match ingest {
            Ingest::Primary => ix.primary = Some(node),
            Ingest::Backup => ix.backup = Some(node),
        }
    }

    /// Marks `node` as carrying `stream` (with no parent yet, if it had none).
    pub fn mark_carrying(&mut self, node: NodeId, stream: &str) {
        self.carry_mut(node, stream);
    }

    /// Counts one more viewer of `stream` on `node`, which then carries it.
    pub fn add_viewer(&mut self, node: NodeId, stream: &str) {
        self.carry_mut(node, stream);
        let n = &mut self.nodes[node.ix()];
        n.viewers = n.viewers.saturating_add(1);
    }

    /// Sets a node's reported load.
    pub fn set_load(&mut self, node: NodeId, cpu: f64, viewers: u32, egress_bps: u64) {
        let n = &mut self.nodes[node.ix()];
        n.cpu = cpu;
        n.viewers = viewers;
        n.egress_bps = egress_bps;
    }

    /// Sets the level of a node's own budget, as it reported.
    pub fn set_pressure(&mut self, node: NodeId, pressure: u8) {
        self.nodes[node.ix()].pressure = pressure;
    }

    /// Sets a node's liveness and draining flags.
    pub fn set_state(&mut self, node: NodeId, alive: bool, draining: bool) {
        let n = &mut self.nodes[node.ix()];
        n.alive = alive;
        n.draining = draining;
    }

    /// `child` pulls `stream` from `primary` (leaving its previous parent), with `backup`
    /// ready. The parent carries the stream from now on.
    pub fn attach(&mut self, child: NodeId, stream: &str, primary: NodeId, backup: Option<NodeId>) {
        self.detach(child, stream);
        let c = self.carry_mut(child, stream);
        c.parent = Some(primary);
        c.backup = backup;
        self.carry_mut(primary, stream).children.push(child);
        self.nodes[primary.ix()].links += 1;
    }

    /// `child` stops pulling `stream` from its parent (it keeps carrying it, unattached).
    pub fn detach(&mut self, child: NodeId, stream: &str) {
        let Some(old) = self.carry_mut(child, stream).parent.take() else {
            return;
        };
        if let Some(p) = self.nodes[old.ix()].streams.get_mut(stream) {
            let before = p.children.len();
            p.children.retain(|c| *c != child);
            if p.children.len() < before {
                let n = &mut self.nodes[old.ix()];
                n.links = n.links.saturating_sub(1);
            }
        }
    }

    /// Changes only the backup parent of `child` for `stream`.
    pub fn set_backup(&mut self, child: NodeId, stream: &str, backup: Option<NodeId>) {
        self.carry_mut(child, stream).backup = backup;
    }

    /// Walks `from`'s parents for `stream`: `None` if `avoid` is on the way (`from`
    /// included) or the chain loops, else the number of hops and whether it reaches an
    /// alive ingest origin.
    pub fn ancestry(&self, from: NodeId, stream: &str, avoid: &[NodeId]) -> Option<(u32, bool)> {
        let mut at = from;
        for depth in 0..=self.nodes.len() as u32 {
            if avoid.contains(&at) {
                return None;
            }
            let n = &self.nodes[at.ix()];
            if !n.alive {
                return Some((depth, false));
            }
            let Some(c) = n.streams.get(stream) else {
                return Some((depth, false));
            };
            if c.ingest.is_some() {
                return Some((depth, true));
            }
            match c.parent {
                Some(p) => at = p,
                None => return Some((depth, false)),
            }
        }
        None
    }
}
