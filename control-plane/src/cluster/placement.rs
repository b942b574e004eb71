//! Placement: which node a viewer is sent to, and which node a node pulls a stream from.
//! Pure functions of a [`ClusterView`] and a random source: no database, no clock, no I/O.
//!
//! **Viewers** go to an edge already carrying the stream with room (load under
//! [`Limits::load`], CPU under [`Limits::cpu`]), else to the better of two random edges
//! with room ("power of two choices"): no scan of the cluster on the common path, and no
//! herd onto the single least-loaded node when many replicas decide at once. A cluster
//! with no live edge serves viewers from its relays, and with no relay either from its
//! origins (one box, or a small cluster, as `cascade serve`); when edges exist and all
//! are full the answer is [`PlaceError::Full`], never a relay: relays' egress is the tree's.
//!
//! **The tree of one stream** is rooted at the origins holding its publisher (primary
//! ingest, and the backup ingest if there is one). A relay pulls from an ingest origin with
//! room, else from a relay already attached to a root (the shallower, then less loaded of
//! two random), so relays form their own tree below the origins. An edge pulls from a
//! rooted relay already carrying the stream with room, else it activates the less loaded
//! of two random relays not carrying it (only when that relay will find a parent in turn);
//! with no relay, edges hang off the ingest origins. Fan-out is bounded per node and
//! stream, separately for relay children and edge children ([`Limits`]), so edges never
//! take the slots the relays' own tree needs. Nothing ever attaches below itself.
//!
//! **The backup parent** is ready for failover: for an origin or relay, the other ingest
//! origin when there is one; else a rooted relay that is not below the primary (so one
//! loss does not take both), in another zone than the primary when one exists. A relay
//! hanging directly off the only ingest origin has no backup: everything else's copy of
//! the stream comes through that origin too. For an edge, another relay (another zone
//! first), or the other ingest origin when there are no relays. A backup is chosen with
//! room at the time; it is not counted in the fan-out until the child moves to it.

use rand::Rng;

use super::view::{ClusterView, Limits, NodeId, Role};

/// Why no node could be chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PlaceError {
    /// Every candidate is dead, draining, at its load limit or at its fan-out.
    #[error("no node has room")]
    Full,
    /// No live origin holds the stream's publisher.
    #[error("the stream is not being published")]
    NotLive,
    /// The node asking holds the stream's publisher: it is the root.
    #[error("this node holds the stream's publisher")]
    IsSource,
}

/// Where a node pulls a stream from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parents {
    /// The parent to pull from now.
    pub primary: NodeId,
    /// The parent to move to if the primary fails.
    pub backup: Option<NodeId>,
}

/// One node's new parents after a loss ([`reparent_after_loss`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reparent {
    /// The node that lost its parent or its backup.
    pub child: NodeId,
    /// For this stream.
    pub stream: String,
    /// Whether its primary parent died (else only its backup did).
    pub lost_primary: bool,
    /// Its parents now, or why it has none.
    pub result: Result<Parents, PlaceError>,
}

/// Random tries before a power-of-two pick falls back to a scan.
const SAMPLES: usize = 16;

/// The better (lower `key`) of two random distinct candidates passing `ok`; the only one
/// if just one passes. Samples first, so a large list with room costs no scan.
pub fn pick<R: Rng + ?Sized, K: PartialOrd>(
    cands: &[NodeId],
    rng: &mut R,
    ok: impl Fn(NodeId) -> bool,
    key: impl Fn(NodeId) -> K,
) -> Option<NodeId> {
    let better = |a: NodeId, b: NodeId| if key(b) < key(a) { b } else { a };
    if cands.len() > 2 * SAMPLES {
        let mut first = None;
        for _ in 0..SAMPLES {
            let c = cands[rng.random_range(0..cands.len())];
            if first == Some(c) || !ok(c) {
                continue;
            }
            match first {
                None => first = Some(c),
                Some(a) => return Some(better(a, c)),
            }
        }
        if first.is_some() {
            return first;
        }
    }
    let eligible: Vec<NodeId> = cands.iter().copied().filter(|c| ok(*c)).collect();
    match eligible.len() {
        0 => None,
        1 => Some(eligible[0]),
        n => {
            let i = rng.random_range(0..n);
            let mut j = rng.random_range(0..n - 1);
            if j >= i {
                j += 1;
            }
            Some(better(eligible[i], eligible[j]))
        }
    }
}

/// The role that serves viewers: edges, else relays, else origins (the first with a live
/// node).
pub fn serving_role(view: &ClusterView) -> Option<Role> {
    [Role::Edge, Role::Relay, Role::Origin]
        .into_iter()
        .find(|r| view.with_role(*r).iter().any(|n| view.node(*n).alive))
}

/// Whether `n` is usable (alive, not drained) and within the load limits.
pub(crate) fn has_room(view: &ClusterView, n: NodeId) -> bool {
    view.node(n).usable() && within_limits(view, n)
}

/// Whether `n`'s load, CPU and budget pressure are within the limits.
fn within_limits(view: &ClusterView, n: NodeId) -> bool {
    let node = view.node(n);
    node.load() < view.limits.load && node.cpu < view.limits.cpu && node.pressure < 3
}

/// Children of `child`'s kind a `parent` may feed per stream.
pub fn fan_out(limits: &Limits, parent: Role, child: Role) -> usize {
    match (parent, child) {
        (Role::Edge, _) => 0,
        (Role::Origin, Role::Edge) => limits.origin_edges,
        (Role::Origin, _) => limits.origin_relays,
        (Role::Relay, Role::Edge) => limits.relay_edges,
        (Role::Relay, _) => limits.relay_relays,
    }
}

/// Whether `parent` may take one more child of role `child` for `stream`.
fn child_room(view: &ClusterView, parent: NodeId, stream: &str, child: Role) -> bool {
    let node = view.node(parent);
    // A drained origin still serves a stream published on it (see `roots`).
    let serves = node.usable()
        || (node.alive
            && view
                .carry(parent, stream)
                .is_some_and(|c| c.ingest.is_some()));
    if !(serves && within_limits(view, parent)) {
        return false;
    }
    let bound = fan_out(&view.limits, view.node(parent).role, child);
    let taken = view.carry(parent, stream).map_or(0, |c| {
        c.children
            .iter()
            .filter(|k| (view.node(**k).role == Role::Edge) == (child == Role::Edge))
            .count()
    });
    taken < bound
}

/// Places one viewer of `stream`.
pub fn place_viewer<R: Rng + ?Sized>(
    view: &ClusterView,
    stream: &str,
    rng: &mut R,
) -> Result<NodeId, PlaceError> {
    let role = serving_role(view).ok_or(PlaceError::Full)?;
    let ok = |n: NodeId| view.node(n).role == role && has_room(view, n);
    // A node over its own budget caps or sheds what it sends: one within it first.
    let load = |n: NodeId| (view.node(n).pressure, view.node(n).load());
    if let Some(ix) = view.stream(stream) {
        if let Some(n) = pick(&ix.carriers, rng, ok, load) {
            return Ok(n);
        }
    }
    pick(view.with_role(role), rng, ok, load).ok_or(PlaceError::Full)
}

/// The live, non-draining ingest origins of `stream`, primary first; without one, the live
/// draining ones: a drained origin keeps serving the streams published on it, which are
/// nowhere else.
fn roots(view: &ClusterView, stream: &str) -> Vec<NodeId> {
    let Some(ix) = view.stream(stream) else {
        return Vec::new();
    };
    let ingests = [ix.primary, ix.backup].into_iter().flatten();
    let usable: Vec<NodeId> = ingests.clone().filter(|o| view.node(*o).usable()).collect();
    if !usable.is_empty() {
        return usable;
    }
    ingests.filter(|o| view.node(*o).alive).collect()
}

fn relays_exist(view: &ClusterView) -> bool {
    view.with_role(Role::Relay)
        .iter()
        .any(|r| view.node(*r).usable())
}

/// A relay carrying `stream` whose chain reaches a root without passing `avoid`.
fn rooted_relay(view: &ClusterView, c: NodeId, stream: &str, avoid: &[NodeId]) -> bool {
    view.node(c).role == Role::Relay
        && view.carry(c, stream).is_some()
        && matches!(view.ancestry(c, stream, avoid), Some((_, true)))
}

/// Where `node` should pull `stream` from, and its backup.
pub fn parent_for<R: Rng + ?Sized>(
    view: &ClusterView,
    node: NodeId,
    stream: &str,
    rng: &mut R,
) -> Result<Parents, PlaceError> {
    let ix = view.stream(stream).ok_or(PlaceError::NotLive)?;
    if view.carry(node, stream).is_some_and(|c| c.ingest.is_some()) {
        return Err(PlaceError::IsSource);
    }
    let live = [ix.primary, ix.backup]
        .into_iter()
        .flatten()
        .any(|o| view.node(o).alive);
    if !live {
        return Err(PlaceError::NotLive);
    }
    let primary = if view.node(node).role == Role::Edge && relays_exist(view) {
        edge_parent(view, node, stream, rng)?
    } else {
        tree_parent(view, node, stream, rng)?
    };
    Ok(Parents {
        primary,
        backup: backup_for(view, node, stream, primary, rng),
    })
}

/// A root with room, else (for a relay or origin) a rooted relay with room.
fn tree_parent<R: Rng + ?Sized>(
    view: &ClusterView,
    node: NodeId,
    stream: &str,
    rng: &mut R,
) -> Result<NodeId, PlaceError> {
    let role = view.node(node).role;
    if let Some(r) = roots(view, stream)
        .into_iter()
        .find(|r| *r != node && child_room(view, *r, stream, role))
    {
        return Ok(r);
    }
    if role == Role::Edge {
        return Err(PlaceError::Full);
    }
    // The shallowest level with room, then the less loaded of two there: the relays'
    // tree fills level by level and stays log(fan-out) deep.
    let ix = view.stream(stream).ok_or(PlaceError::NotLive)?;
    let depth = |c: NodeId| match view.ancestry(c, stream, &[node]) {
        Some((d, true)) => Some(d),
        _ => None,
    };
    let ok = |c: NodeId| {
        view.node(c).role == Role::Relay && child_room(view, c, stream, role) && depth(c).is_some()
    };
    let top = ix
        .carriers
        .iter()
        .filter(|c| ok(**c))
        .filter_map(|c| depth(*c))
        .min();
    let top = top.ok_or(PlaceError::Full)?;
    let level = |c: NodeId| ok(c) && depth(c) == Some(top);
    pick(&ix.carriers, rng, level, |c| view.node(c).load()).ok_or(PlaceError::Full)
}

/// Whether a relay newly carrying `stream` would find a parent.
fn relay_can_attach(view: &ClusterView, stream: &str) -> bool {
    roots(view, stream)
        .iter()
        .any(|r| child_room(view, *r, stream, Role::Relay))
        || view.stream(stream).is_some_and(|ix| {
            ix.carriers.iter().any(|c| {
                rooted_relay(view, *c, stream, &[]) && child_room(view, *c, stream, Role::Relay)
            })
        })
}

/// A rooted relay carrying `stream` with room, else a relay to start carrying it.
fn edge_parent<R: Rng + ?Sized>(
    view: &ClusterView,
    node: NodeId,
    stream: &str,
    rng: &mut R,
) -> Result<NodeId, PlaceError> {
    let load = |c: NodeId| view.node(c).load();
    if let Some(ix) = view.stream(stream) {
        let ok = |c: NodeId| {
            rooted_relay(view, c, stream, &[node]) && child_room(view, c, stream, Role::Edge)
        };
        if let Some(p) = pick(&ix.carriers, rng, ok, load) {
            return Ok(p);
        }
    }
    if !relay_can_attach(view, stream) {
        return Err(PlaceError::Full);
    }
    let fresh =
        |c: NodeId| view.carry(c, stream).is_none() && child_room(view, c, stream, Role::Edge);
    pick(view.with_role(Role::Relay), rng, fresh, load).ok_or(PlaceError::Full)
}

/// A backup parent for `node`'s `stream`, given its `primary` (see the module docs).
pub fn backup_for<R: Rng + ?Sized>(
    view: &ClusterView,
    node: NodeId,
    stream: &str,
    primary: NodeId,
    rng: &mut R,
) -> Option<NodeId> {
    let role = view.node(node).role;
    let avoid = [node, primary];
    let zone = view.node(primary).zone.as_str();
    let load = |c: NodeId| view.node(c).load();
    let prefer_zone = |rng: &mut R, cands: &[NodeId], ok: &dyn Fn(NodeId) -> bool| {
        pick(cands, rng, |c| ok(c) && view.node(c).zone != zone, load)
            .or_else(|| pick(cands, rng, ok, load))
    };
    if role == Role::Edge && relays_exist(view) {
        let ok = |c: NodeId| {
            c != primary
                && child_room(view, c, stream, Role::Edge)
                && match view.carry(c, stream) {
                    None => true,
                    Some(_) => rooted_relay(view, c, stream, &avoid),
                }
        };
        return prefer_zone(rng, view.with_role(Role::Relay), &ok);
    }
    if let Some(r) = roots(view, stream)
        .into_iter()
        .find(|r| !avoid.contains(r) && child_room(view, *r, stream, role))
    {
        return Some(r);
    }
    if role == Role::Edge {
        return None;
    }
    let ok = |c: NodeId| rooted_relay(view, c, stream, &avoid) && child_room(view, c, stream, role);
    let carriers = view.stream(stream).map(|ix| ix.carriers.clone())?;
    prefer_zone(rng, &carriers, &ok)
}

/// Attaches `node` to `stream`'s tree with [`parent_for`], then the relay it chose if that
/// relay was not attached yet, and so on up: what each node does on its own when it gets
/// its first subscription. Returns each attachment made, `node`'s first.
pub fn join_tree<R: Rng + ?Sized>(
    view: &mut ClusterView,
    node: NodeId,
    stream: &str,
    rng: &mut R,
) -> Result<Vec<(NodeId, Parents)>, PlaceError> {
    let mut made = Vec::new();
    let mut at = node;
    loop {
        let p = parent_for(view, at, stream, rng)?;
        view.attach(at, stream, p.primary, p.backup);
        made.push((at, p));
        let attached = view
            .carry(p.primary, stream)
            .is_some_and(|c| c.ingest.is_some() || c.parent.is_some());
        // A relay is chosen unattached only by an edge, and picks an attached parent
        // itself, so this ends after two steps.
        if attached || made.len() > 2 {
            return Ok(made);
        }
        at = p.primary;
    }
}

fn rank(role: Role) -> u8 {
    match role {
        Role::Origin => 0,
        Role::Relay => 1,
        Role::Edge => 2,
    }
}

/// Marks `dead` nodes dead and finds new parents for every live node that pulled a
/// stream from one (its backup first, when it is alive, rooted and has room) or had one
/// as backup. Applies the answers to `view` as it goes, relays before edges, so later
/// choices see earlier ones. Viewers of dead edges are the caller's to re-place.
pub fn reparent_after_loss<R: Rng + ?Sized>(
    view: &mut ClusterView,
    dead: &[NodeId],
    rng: &mut R,
) -> Vec<Reparent> {
    for d in dead {
        let draining = view.node(*d).draining;
        view.set_state(*d, false, draining);
        // Its parents' slots are free again.
        let streams: Vec<String> = view.node(*d).streams.keys().cloned().collect();
        for s in streams {
            view.detach(*d, &s);
        }
    }
    let alive = |v: &ClusterView, n: Option<NodeId>| n.is_none_or(|n| v.node(n).alive);
    let mut todo = Vec::new();
    for (i, n) in view.nodes().iter().enumerate() {
        if !n.alive {
            continue;
        }
        for (stream, c) in &n.streams {
            if !alive(view, c.parent) || !alive(view, c.backup) {
                todo.push((rank(n.role), NodeId(i as u32), stream.clone()));
            }
        }
    }
    todo.sort();
    let mut out = Vec::with_capacity(todo.len());
    for (_, child, stream) in todo {
        let Some(c) = view.carry(child, &stream).cloned() else {
            continue;
        };
        let role = view.node(child).role;
        let (lost_primary, result) = match c.parent {
            Some(p) if view.node(p).alive => {
                let b = backup_for(view, child, &stream, p, rng);
                view.set_backup(child, &stream, b);
                (
                    false,
                    Ok(Parents {
                        primary: p,
                        backup: b,
                    }),
                )
            }
            _ => {
                view.detach(child, &stream);
                let ready = c.backup.filter(|b| {
                    view.node(*b).alive
                        && child_room(view, *b, &stream, role)
                        && matches!(view.ancestry(*b, &stream, &[child]), Some((_, true)))
                });
                let result = match ready {
                    Some(b) => {
                        let p = Parents {
                            primary: b,
                            backup: backup_for(view, child, &stream, b, rng),
                        };
                        view.attach(child, &stream, p.primary, p.backup);
                        Ok(p)
                    }
                    None => join_tree(view, child, &stream, rng).map(|path| path[0].1),
                };
                (true, result)
            }
        };
        out.push(Reparent {
            child,
            stream,
            lost_primary,
            result,
        });
    }
    out
}
