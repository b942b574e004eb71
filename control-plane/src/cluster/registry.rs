//! The node registry in the database (`cluster_nodes`) and its endpoints: register,
//! stats, drain, list, and the two placement questions (a node's parents, a viewer's
//! edge), answered on a [`ClusterView`] loaded from the table and kept for
//! [`super::Tuning::view_ttl_ms`], so a thousand nodes asking do not each read it. A
//! node's stream list is kept apart from its load, and sent only when it changed
//! (`streams.rs`).

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{NodeAuth, Operator};
use super::placement::{parent_for, place_viewer, PlaceError};
use super::streams::Lists;
use super::view::{ClusterView, Ingest, Node, NodeId, Role};
use crate::db::now_ms;
use crate::error::{ApiResult, Problem};
use crate::extract::{Json, Path, Query};
use crate::tokens::random_id;
use crate::{ControlPlane, Error};

/// Most streams one stats report may list.
pub const MAX_STREAMS_PER_NODE: usize = 10_000;
/// Largest stats report, bytes: [`MAX_STREAMS_PER_NODE`] streams of a 100-character name,
/// an ingest and two node ids each fit (the API's own 16 KiB limit held about 170 streams,
/// and a node carrying more was refused its every report and counted dead).
pub const MAX_STATS_BODY: usize = 4 * 1024 * 1024;

/// `POST /api/v1/cluster/nodes`
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewNode {
    /// Unique name; registering it again replaces the old registration.
    #[schema(min_length = 1, max_length = 64)]
    pub name: String,
    /// What the node does.
    pub role: Role,
    /// Its failure zone.
    #[schema(min_length = 1, max_length = 64)]
    pub zone: String,
    /// Where viewers reach it, `http(s)://host[:port]`.
    #[schema(max_length = 200)]
    pub http_url: String,
    /// Where children reach it over QUIC, `host:port`.
    #[schema(max_length = 200)]
    pub relay_addr: String,
    /// Most viewers it serves.
    #[schema(minimum = 1, maximum = 10000000)]
    pub capacity: u32,
}

/// A registration.
#[derive(Debug, Serialize, ToSchema)]
pub struct Registered {
    /// The node's id for its stats and questions (new at every registration).
    pub id: String,
}

/// One stream in a stats report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StreamStat {
    /// Stream name.
    #[schema(max_length = 100)]
    pub name: String,
    /// On an origin holding its publisher: which ingest.
    #[serde(default)]
    pub publishing: Option<Ingest>,
    /// The node id it pulls the stream from.
    #[serde(default)]
    pub parent: Option<String>,
    /// The node id of its backup parent.
    #[serde(default)]
    pub backup: Option<String>,
}

/// `PUT /api/v1/cluster/nodes/{id}/stats`, every second.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NodeStats {
    /// CPU busy, 0 to 1.
    #[schema(minimum = 0, maximum = 1)]
    pub cpu: f64,
    /// Bits per second sent.
    pub egress_bps: u64,
    /// Viewers connected.
    pub viewers: u32,
    /// Its budget's level: 0 within it, 1 capping new viewers, 2 shedding the top layer, 3
    /// refusing viewers (placement sends them elsewhere).
    #[serde(default)]
    #[schema(maximum = 3)]
    pub pressure: u8,
    /// The streams it carries: sent when they changed, with a new `streams_rev` (and again
    /// while the answer's `streams_rev` is not that number), or at every report by a node
    /// that numbers none. Absent: the list the control plane holds stays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_items = 10000)]
    pub streams: Option<Vec<StreamStat>>,
    /// The node's number for its stream list, rising with each new list of one
    /// registration (sent with every report, `streams` or not). A list with a number at or
    /// below the stored list's is not written (the same list again, or a late copy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(maximum = 9223372036854775807_u64)]
    pub streams_rev: Option<u64>,
}

/// A registered node as the registry sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeInfo {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Zone.
    pub zone: String,
    /// Viewers' URL.
    pub http_url: String,
    /// QUIC address.
    pub relay_addr: String,
    /// Most viewers.
    pub capacity: u32,
    /// The last stats report: its load, and the stream list the control plane holds with
    /// its number.
    pub stats: NodeStats,
    /// Reported within the liveness window.
    pub alive: bool,
    /// Takes nothing new.
    pub draining: bool,
    /// Unix milliseconds of the last report.
    pub last_seen: i64,
}

/// A node to connect to.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeRef {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Where to connect over QUIC.
    pub relay_addr: String,
}

/// Where a node pulls a stream from.
#[derive(Debug, Serialize, ToSchema)]
pub struct ParentsView {
    /// Pull from this one now.
    pub primary: NodeRef,
    /// Move to this one if the primary fails (connect ahead).
    pub backup: Option<NodeRef>,
}

/// The node chosen for a viewer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Placement {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Where the viewer goes (`{http_url}/whep/{stream}`).
    pub http_url: String,
}

/// `?node=&stream=`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ParentsQuery {
    /// The asking node's id.
    pub node: String,
    /// The stream it needs.
    pub stream: String,
}

/// `?stream=`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PlaceQuery {
    /// The stream the viewer wants.
    pub stream: String,
}

#[derive(sqlx::FromRow)]
struct NodeRow {
    id: String,
    name: String,
    role: String,
    zone: String,
    http_url: String,
    relay_addr: String,
    capacity: i64,
    stats: String,
    draining: i64,
    last_seen: i64,
    streams_rev: Option<i64>,
    streams_version: Option<i64>,
}

const NODE_COLUMNS: &str = "n.id, n.name, n.role, n.zone, n.http_url, n.relay_addr, \
     n.capacity, n.stats, n.draining, n.last_seen, s.rev AS streams_rev, \
     s.version AS streams_version";

fn idle() -> NodeStats {
    NodeStats {
        cpu: 0.0,
        egress_bps: 0,
        viewers: 0,
        pressure: 0,
        streams: None,
        streams_rev: None,
    }
}

impl NodeRow {
    fn info(self, now: i64, timeout: i64) -> NodeInfo {
        NodeInfo {
            alive: now - self.last_seen <= timeout,
            draining: self.draining != 0,
            role: Role::parse(&self.role).unwrap_or(Role::Edge),
            capacity: u32::try_from(self.capacity).unwrap_or(0),
            stats: NodeStats {
                streams_rev: self.streams_rev.and_then(|r| u64::try_from(r).ok()),
                // The load alone: the list is in its own row (`super::streams`).
                streams: None,
                ..serde_json::from_str(&self.stats).unwrap_or_else(|_| idle())
            },
            id: self.id,
            name: self.name,
            zone: self.zone,
            http_url: self.http_url,
            relay_addr: self.relay_addr,
            last_seen: self.last_seen,
        }
    }
}

/// Every registered node without its streams, and `lists` brought to their stored lists.
async fn all_nodes(cp: &ControlPlane, lists: &mut Lists) -> ApiResult<Vec<NodeInfo>> {
    let rows: Vec<NodeRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {NODE_COLUMNS} FROM cluster_nodes n \
         LEFT JOIN cluster_node_streams s ON s.node_id = n.id ORDER BY n.name"
    )))
    .fetch_all(cp.pool())
    .await?;
    let versions: Vec<(&str, Option<i64>)> = rows
        .iter()
        .map(|r| (r.id.as_str(), r.streams_version))
        .collect();
    lists.refresh(cp, &versions).await?;
    let (now, timeout) = (now_ms(), cp.config().cluster_tuning.node_timeout_ms);
    Ok(rows.into_iter().map(|r| r.info(now, timeout)).collect())
}

/// Builds the view placement reads from the registry's rows and their stream lists. A dead
/// node's last list is left out: it carries nothing now, so it neither roots a stream (a
/// publisher back on another origin) nor holds a place under a parent.
pub(crate) fn build_view(nodes: &[NodeInfo], lists: &Lists, limits: super::Limits) -> ClusterView {
    let mut view = ClusterView::new(limits);
    for n in nodes {
        let mut node = Node::new(&n.id, n.role, &n.zone, n.capacity);
        node.name.clone_from(&n.name);
        node.http_url.clone_from(&n.http_url);
        node.relay_addr.clone_from(&n.relay_addr);
        node.cpu = n.stats.cpu;
        node.egress_bps = n.stats.egress_bps;
        node.viewers = n.stats.viewers;
        node.pressure = n.stats.pressure;
        node.alive = n.alive;
        node.draining = n.draining;
        view.add(node);
    }
    for (i, n) in nodes.iter().enumerate().filter(|(_, n)| n.alive) {
        let me = NodeId(i as u32);
        for s in lists.of(&n.id) {
            if let Some(ingest) = s.publishing.filter(|_| n.role == Role::Origin) {
                view.set_ingest(me, &s.name, ingest);
            }
            let find = |id: &Option<String>| id.as_deref().and_then(|k| view.find(k));
            match find(&s.parent).filter(|p| *p != me) {
                Some(p) => {
                    let backup = find(&s.backup).filter(|b| *b != me);
                    view.attach(me, &s.name, p, backup);
                }
                None => view.mark_carrying(me, &s.name),
            }
        }
    }
    view
}

/// A replica's loaded view, reused for a short while, and its random source.
pub(crate) struct ViewCache(tokio::sync::Mutex<Cached>);

struct Cached {
    loaded: Option<Instant>,
    view: ClusterView,
    /// The nodes' stream lists as parsed at the last load.
    lists: Lists,
    rng: SmallRng,
}

impl ViewCache {
    pub(crate) fn new() -> ViewCache {
        ViewCache(tokio::sync::Mutex::new(Cached {
            loaded: None,
            view: ClusterView::default(),
            lists: Lists::default(),
            rng: SmallRng::from_os_rng(),
        }))
    }
}

impl ControlPlane {
    /// Runs `f` on the cluster view (loaded again when older than the TTL, one load at
    /// a time, with the ingests placed but not reported yet: `ingest::apply_placed`);
    /// what `f` changes stays in this replica's view until the next load.
    pub(crate) async fn with_view<T>(
        &self,
        f: impl FnOnce(&mut ClusterView, &mut SmallRng) -> T,
    ) -> ApiResult<T> {
        let mut c = self.cluster_cache().0.lock().await;
        let ttl = Duration::from_millis(self.config().cluster_tuning.view_ttl_ms);
        if c.loaded.is_none_or(|t| t.elapsed() >= ttl) {
            let nodes = all_nodes(self, &mut c.lists).await?;
            let placed = super::ingest::recent_placed(self).await?;
            c.view = build_view(&nodes, &c.lists, self.config().cluster_tuning.limits);
            super::ingest::apply_placed(&mut c.view, &placed, now_ms());
            c.loaded = Some(Instant::now());
        }
        let Cached { view, rng, .. } = &mut *c;
        Ok(f(view, rng))
    }

    /// Runs `f` on the cluster view as this replica has it, without loading it again.
    pub(crate) async fn with_view_as_is<T>(
        &self,
        f: impl FnOnce(&mut ClusterView, &mut SmallRng) -> T,
    ) -> T {
        let mut c = self.cluster_cache().0.lock().await;
        let Cached { view, rng, .. } = &mut *c;
        f(view, rng)
    }

    async fn forget_view(&self) {
        self.cluster_cache().0.lock().await.loaded = None;
    }

    /// Chooses the node for one viewer of `stream` and counts the viewer on it.
    pub async fn place(&self, stream: &str) -> ApiResult<Placement> {
        self.with_view(|view, rng| {
            let n = place_viewer(view, stream, rng).map_err(place_error)?;
            view.add_viewer(n, stream);
            Ok(Placement::of(view.node(n)))
        })
        .await?
    }
}

impl Placement {
    /// Where a client goes: `node`.
    pub(crate) fn of(node: &Node) -> Placement {
        Placement {
            id: node.key.clone(),
            name: node.name.clone(),
            http_url: node.http_url.clone(),
        }
    }
}

fn place_error(e: PlaceError) -> Error {
    match e {
        PlaceError::Full => Error::Busy("the cluster is full", 2),
        PlaceError::NotLive => Error::Missing("the stream is not being published"),
        PlaceError::IsSource => Error::Conflict("this node holds the stream's publisher"),
    }
}

/// `s` trimmed, refused when empty, longer than `max` or holding control characters.
pub(crate) fn checked(field: &str, s: &str, max: usize) -> ApiResult<String> {
    let s = s.trim();
    if s.is_empty() || s.len() > max || s.chars().any(char::is_control) {
        return Err(Error::Invalid(format!(
            "{field} must be 1 to {max} characters without control characters"
        )));
    }
    Ok(s.to_owned())
}

/// Register a media node (the cluster token).
#[utoipa::path(post, path = "/api/v1/cluster/nodes", tag = "cluster", security(("cluster_token" = [])), request_body = NewNode,
    responses((status = 201, body = Registered), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn register(
    State(cp): State<ControlPlane>,
    _: NodeAuth,
    Json(req): Json<NewNode>,
) -> ApiResult<(StatusCode, axum::Json<Registered>)> {
    let name = checked("name", &req.name, 64)?;
    let zone = checked("zone", &req.zone, 64)?;
    let http_url = checked("http_url", &req.http_url, 200)?;
    if !(http_url.starts_with("http://") || http_url.starts_with("https://")) {
        return Err(Error::Invalid("http_url must be an http(s) URL".into()));
    }
    let relay_addr = checked("relay_addr", &req.relay_addr, 200)?;
    if !relay_addr.contains(':') {
        return Err(Error::Invalid("relay_addr must be host:port".into()));
    }
    if !(1..=10_000_000).contains(&req.capacity) {
        return Err(Error::Invalid("capacity must be from 1 to 10000000".into()));
    }
    let now = now_ms();
    let tuning = &cp.config().cluster_tuning;
    sqlx::query("DELETE FROM cluster_nodes WHERE last_seen < $1 AND name <> $2")
        .bind(now.saturating_sub(tuning.forget_dead_after_ms))
        .bind(&name)
        .execute(cp.pool())
        .await?;
    let (others,): (i64,) = sqlx::query_as("SELECT count(*) FROM cluster_nodes WHERE name <> $1")
        .bind(&name)
        .fetch_one(cp.pool())
        .await?;
    if others >= tuning.max_nodes {
        return Err(Error::Conflict("node limit reached"));
    }
    let id = random_id();
    let stats = serde_json::to_string(&idle()).map_err(|e| Error::Internal(e.to_string()))?;
    sqlx::query(
        "INSERT INTO cluster_nodes (id, name, role, zone, http_url, relay_addr, capacity, \
         stats, draining, registered_at, last_seen) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $9) \
         ON CONFLICT (name) DO UPDATE SET id = excluded.id, role = excluded.role, \
         zone = excluded.zone, http_url = excluded.http_url, relay_addr = excluded.relay_addr, \
         capacity = excluded.capacity, stats = excluded.stats, draining = 0, \
         registered_at = excluded.registered_at, last_seen = excluded.last_seen",
    )
    .bind(&id)
    .bind(&name)
    .bind(req.role.as_str())
    .bind(&zone)
    .bind(http_url.trim_end_matches('/'))
    .bind(&relay_addr)
    .bind(i64::from(req.capacity))
    .bind(&stats)
    .bind(now)
    .execute(cp.pool())
    .await?;
    // The list of the name's old registration: the node sends its list anew.
    cp.drop_orphan_streams().await?;
    cp.forget_view().await;
    Ok((StatusCode::CREATED, axum::Json(Registered { id })))
}

/// Report a node's load (every second; dead after the liveness window) and its streams
/// when they changed (or the answer's `streams_rev` asks for them).
#[utoipa::path(put, path = "/api/v1/cluster/nodes/{id}/stats", tag = "cluster", security(("cluster_token" = [])),
    params(("id" = String, Path, description = "Node id")), request_body = NodeStats,
    responses((status = 200, body = StatsReply), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn stats(
    State(cp): State<ControlPlane>,
    _: NodeAuth,
    Path(id): Path<String>,
    Json(mut req): Json<NodeStats>,
) -> ApiResult<axum::Json<StatsReply>> {
    if !(0.0..=1.0).contains(&req.cpu) {
        return Err(Error::Invalid("cpu must be from 0 to 1".into()));
    }
    if req.pressure > 3 {
        return Err(Error::Invalid("pressure must be from 0 to 3".into()));
    }
    let rev = req
        .streams_rev
        .map(i64::try_from)
        .transpose()
        .map_err(|_| Error::Invalid("streams_rev must be at most 2^63 - 1".into()))?;
    let streams = req.streams.take();
    if let Some(streams) = &streams {
        if streams.len() > MAX_STREAMS_PER_NODE {
            return Err(Error::Invalid(format!(
                "at most {MAX_STREAMS_PER_NODE} streams"
            )));
        }
        for s in streams {
            checked("stream name", &s.name, 100)?;
        }
        cp.store_streams(&id, rev, streams).await?;
    }
    req.streams_rev = None;
    let load = serde_json::to_string(&req).map_err(|e| Error::Internal(e.to_string()))?;
    let row: Option<(i64, String, Option<i64>)> = sqlx::query_as(
        "UPDATE cluster_nodes SET stats = $2, last_seen = $3 WHERE id = $1 \
         RETURNING draining, role, (SELECT rev FROM cluster_node_streams WHERE node_id = $1)",
    )
    .bind(&id)
    .bind(&load)
    .bind(now_ms())
    .fetch_optional(cp.pool())
    .await?;
    let Some((draining, role, held)) = row else {
        return Err(Error::Missing("no such node: register again"));
    };
    // Only an origin holds ingests: its standbys from the list it sent, else from the
    // list the view holds for it.
    let in_charge = match (&streams, Role::parse(&role)) {
        (Some(streams), _) => {
            let standbys: Vec<&str> = streams
                .iter()
                .filter(|s| s.publishing == Some(Ingest::Backup))
                .map(|s| s.name.as_str())
                .collect();
            if standbys.is_empty() {
                Vec::new()
            } else {
                cp.with_view(|view, _| super::ingest::standbys_in_charge(view, &standbys))
                    .await?
            }
        }
        (None, Some(Role::Origin)) => {
            cp.with_view(|view, _| {
                let Some(me) = view.find(&id) else {
                    return Vec::new();
                };
                let standbys: Vec<&str> = view
                    .node(me)
                    .streams
                    .iter()
                    .filter(|(_, c)| c.ingest == Some(Ingest::Backup) && !c.placed)
                    .map(|(name, _)| name.as_str())
                    .collect();
                super::ingest::standbys_in_charge(view, &standbys)
            })
            .await?
        }
        (None, _) => Vec::new(),
    };
    Ok(axum::Json(StatsReply {
        draining: draining != 0,
        in_charge,
        streams_rev: held.and_then(|r| u64::try_from(r).ok()),
    }))
}

/// The answer to a stats report: what the node must do.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StatsReply {
    /// The node is drained: it tells its viewers to move, lets its children go to other
    /// parents, and takes no new viewers or children.
    pub draining: bool,
    /// The standby ingests on the node that the cluster takes their stream from now (its
    /// primary ingest is on no live origin): the node records them and makes their live
    /// stills as a primary's.
    #[serde(default)]
    pub in_charge: Vec<String>,
    /// The number of this node's stream list the control plane holds (null: none, or a
    /// list sent without a number). A node whose current list has another number sends
    /// it with its next report: after a lost answer, a registration, a restored database.
    #[serde(default)]
    pub streams_rev: Option<u64>,
}

/// Drain a node: it keeps what it has and takes no new viewers or children.
#[utoipa::path(post, path = "/api/v1/cluster/nodes/{id}/drain", tag = "cluster", security(("cluster_token" = []), ("access_token" = [])),
    params(("id" = String, Path, description = "Node id")),
    responses((status = 204), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn drain(
    State(cp): State<ControlPlane>,
    _: Operator,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let updated = sqlx::query("UPDATE cluster_nodes SET draining = 1 WHERE id = $1")
        .bind(&id)
        .execute(cp.pool())
        .await?
        .rows_affected();
    if updated == 0 {
        return Err(Error::Missing("no such node"));
    }
    cp.forget_view().await;
    Ok(StatusCode::NO_CONTENT)
}

/// Every registered node, alive or not.
#[utoipa::path(get, path = "/api/v1/cluster/nodes", tag = "cluster", security(("cluster_token" = []), ("access_token" = [])),
    responses((status = 200, body = [NodeInfo]), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn list(
    State(cp): State<ControlPlane>,
    _: Operator,
) -> ApiResult<axum::Json<Vec<NodeInfo>>> {
    // With this replica's parsed lists (brought up to date, the view is not rebuilt).
    let mut c = cp.cluster_cache().0.lock().await;
    let mut nodes = all_nodes(&cp, &mut c.lists).await?;
    for n in &mut nodes {
        n.stats.streams = Some(c.lists.of(&n.id).to_vec());
    }
    Ok(axum::Json(nodes))
}

/// Where a node should pull a stream from, and its backup parent.
#[utoipa::path(get, path = "/api/v1/cluster/parents", tag = "cluster", security(("cluster_token" = [])), params(ParentsQuery),
    responses((status = 200, body = ParentsView), (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn parents(
    State(cp): State<ControlPlane>,
    _: NodeAuth,
    Query(q): Query<ParentsQuery>,
) -> ApiResult<axum::Json<ParentsView>> {
    cp.with_view(|view, rng| {
        let me = view.find(&q.node).ok_or(Error::Missing("no such node"))?;
        let p = parent_for(view, me, &q.stream, rng).map_err(place_error)?;
        view.attach(me, &q.stream, p.primary, p.backup);
        let node_ref = |n: NodeId| {
            let n = view.node(n);
            NodeRef {
                id: n.key.clone(),
                name: n.name.clone(),
                relay_addr: n.relay_addr.clone(),
            }
        };
        Ok(axum::Json(ParentsView {
            primary: node_ref(p.primary),
            backup: p.backup.map(node_ref),
        }))
    })
    .await?
}

/// The node a viewer of this stream should go to.
#[utoipa::path(get, path = "/api/v1/cluster/place", tag = "cluster", security(("cluster_token" = [])), params(PlaceQuery),
    responses((status = 200, body = Placement), (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn place(
    State(cp): State<ControlPlane>,
    _: NodeAuth,
    Query(q): Query<PlaceQuery>,
) -> ApiResult<axum::Json<Placement>> {
    Ok(axum::Json(cp.place(&q.stream).await?))
}
