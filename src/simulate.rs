//! `cascade simulate`: the control plane's real placement code on a synthetic cluster in
//! memory. Viewers join streams of Zipf-like popularity; each is placed on an edge
//! (`place_viewer`), and an edge that starts carrying a stream joins that stream's tree
//! (`join_tree`, which activates a relay when it must). Then a fraction of the relays
//! and edges die (origins hold the publishers; their loss is the backup ingest's story),
//! the real `reparent_after_loss` repairs the trees, and the dead edges' viewers are
//! placed again. Reports what the trees look like and how long decisions took.

use std::time::{Duration, Instant};

use control_plane::cluster::placement::fan_out;
use control_plane::cluster::{
    join_tree, place_viewer, reparent_after_loss, ClusterView, Ingest, Limits, Node, NodeId, Role,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

/// Options of `cascade simulate`.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Viewers to join.
    #[arg(long, default_value_t = 1_000_000)]
    pub viewers: u64,
    /// Edge nodes.
    #[arg(long, default_value_t = 1000)]
    pub edges: usize,
    /// Relay nodes [default: enough for every edge to carry every stream, plus a quarter].
    #[arg(long)]
    pub relays: Option<usize>,
    /// Origin nodes (stream i is published on origin i mod N, its backup ingest on the next).
    #[arg(long, default_value_t = 2)]
    pub origins: usize,
    /// Streams; stream k draws viewers in proportion to 1/(k+1).
    #[arg(long, default_value_t = 20)]
    pub streams: usize,
    /// Failure zones (nodes are spread round-robin).
    #[arg(long, default_value_t = 3)]
    pub zones: usize,
    /// Viewers one edge serves [default: room for all viewers at 60 % of the edges' capacity].
    #[arg(long)]
    pub edge_capacity: Option<u32>,
    /// Fraction of relays and edges killed after the joins.
    #[arg(long, default_value_t = 0.1)]
    pub kill_fraction: f64,
    /// Random seed (the same seed, the same run).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What a run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    pub viewers: u64,
    pub placed: u64,
    pub unplaced: u64,
    pub origins: usize,
    pub relays: usize,
    pub edges: usize,
    pub streams: usize,
    pub edge_capacity: u32,
    pub join_wall_secs: f64,
    pub placements_per_sec: f64,
    pub join_p50_us: f64,
    pub join_p99_us: f64,
    pub join_max_us: f64,
    pub tree_joins: u64,
    pub tree_failures: u64,
    pub relays_carrying: usize,
    pub tree_depth_max: u32,
    pub tree_depth_mean: f64,
    pub fan_out_max: usize,
    pub fan_out_mean: f64,
    pub busiest_load: f64,
    pub busiest_node: String,
    pub killed_relays: usize,
    pub killed_edges: usize,
    pub reparent_secs: f64,
    pub children_reparented: usize,
    pub backups_replaced: usize,
    pub reparent_failures: usize,
    pub viewers_moved: u64,
    pub viewers_moved_secs: f64,
    pub unplaced_after_kill: u64,
    /// Invariants checked after the run (empty: all held).
    pub violations: Vec<String>,
}

struct Sim {
    view: ClusterView,
    rng: SmallRng,
    names: Vec<String>,
    /// Viewers per (node index, stream index).
    counts: Vec<u32>,
    tree_joins: u64,
    tree_failures: u64,
}

impl Sim {
    /// Places one viewer of stream `s`; returns whether it was placed.
    fn join(&mut self, s: usize) -> bool {
        let name = &self.names[s];
        let Ok(edge) = place_viewer(&self.view, name, &mut self.rng) else {
            return false;
        };
        let fresh = self.view.carry(edge, name).is_none();
        self.view.add_viewer(edge, name);
        self.counts[edge.0 as usize * self.names.len() + s] += 1;
        if fresh {
            self.tree_joins += 1;
            if join_tree(&mut self.view, edge, name, &mut self.rng).is_err() {
                self.tree_failures += 1;
            }
        }
        true
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

fn build(o: &Options, limits: Limits) -> (ClusterView, usize, u32) {
    let relays = o
        .relays
        .unwrap_or((o.edges * 5).div_ceil(4 * limits.relay_edges.max(1)));
    let per_edge = o.viewers as f64 / o.edges.max(1) as f64;
    let capacity = o
        .edge_capacity
        .unwrap_or((per_edge / (0.6 * limits.load)).ceil().max(1.0) as u32);
    let mut view = ClusterView::new(limits);
    let mut k = 0;
    for (role, n, cap) in [
        (Role::Origin, o.origins.max(1), 100_000),
        (Role::Relay, relays, 100_000),
        (Role::Edge, o.edges, capacity),
    ] {
        for i in 0..n {
            let zone = format!("zone-{}", k % o.zones.max(1));
            view.add(Node::new(
                &format!("{}-{i}", role.as_str()),
                role,
                &zone,
                cap,
            ));
            k += 1;
        }
    }
    let origins = view.with_role(Role::Origin).to_vec();
    for s in 0..o.streams.max(1) {
        let name = format!("stream-{s}");
        view.set_ingest(origins[s % origins.len()], &name, Ingest::Primary);
        if origins.len() > 1 {
            view.set_ingest(origins[(s + 1) % origins.len()], &name, Ingest::Backup);
        }
    }
    (view, relays, capacity)
}

/// Runs the simulation.
pub fn run(o: &Options) -> Report {
    let limits = Limits::default();
    let (view, relays, capacity) = build(o, limits);
    let streams = o.streams.max(1);
    let mut sim = Sim {
        counts: vec![0; view.nodes().len() * streams],
        view,
        rng: SmallRng::seed_from_u64(o.seed),
        names: (0..streams).map(|s| format!("stream-{s}")).collect(),
        tree_joins: 0,
        tree_failures: 0,
    };
    // Zipf (s = 1): stream k is chosen with weight 1/(k+1).
    let mut cumulative = Vec::with_capacity(streams);
    let mut total = 0.0;
    for k in 0..streams {
        total += 1.0 / (k + 1) as f64;
        cumulative.push(total);
    }
    let mut lat = Vec::with_capacity(o.viewers as usize);
    let (mut placed, mut in_place) = (0u64, Duration::ZERO);
    let wall = Instant::now();
    for _ in 0..o.viewers {
        let u = sim.rng.random::<f64>() * total;
        let s = cumulative.partition_point(|c| *c < u).min(streams - 1);
        let t0 = Instant::now();
        let ok = sim.join(s);
        let took = t0.elapsed();
        in_place += took;
        lat.push(u32::try_from(took.as_nanos()).unwrap_or(u32::MAX));
        placed += u64::from(ok);
    }
    let join_wall = wall.elapsed();
    lat.sort_unstable();
    let mut report = Report {
        viewers: o.viewers,
        placed,
        unplaced: o.viewers - placed,
        origins: o.origins.max(1),
        relays,
        edges: o.edges,
        streams,
        edge_capacity: capacity,
        join_wall_secs: join_wall.as_secs_f64(),
        placements_per_sec: o.viewers as f64 / in_place.as_secs_f64().max(1e-9),
        join_p50_us: percentile(&lat, 0.5),
        join_p99_us: percentile(&lat, 0.99),
        join_max_us: percentile(&lat, 1.0),
        tree_joins: sim.tree_joins,
        tree_failures: sim.tree_failures,
        relays_carrying: 0,
        tree_depth_max: 0,
        tree_depth_mean: 0.0,
        fan_out_max: 0,
        fan_out_mean: 0.0,
        busiest_load: 0.0,
        busiest_node: String::new(),
        killed_relays: 0,
        killed_edges: 0,
        reparent_secs: 0.0,
        children_reparented: 0,
        backups_replaced: 0,
        reparent_failures: 0,
        viewers_moved: 0,
        viewers_moved_secs: 0.0,
        unplaced_after_kill: 0,
        violations: Vec::new(),
    };
    shape(&sim.view, &mut report);
    kill(&mut sim, o, &mut report);
    report.violations = check(&sim);
    report
}

/// Tree depth, fan-out and the busiest node.
fn shape(view: &ClusterView, r: &mut Report) {
    let (mut depths, mut n_depths, mut fans, mut n_fans) = (0u64, 0u64, 0usize, 0usize);
    for (i, n) in view.nodes().iter().enumerate() {
        if !n.alive {
            continue;
        }
        if n.load() > r.busiest_load {
            r.busiest_load = n.load();
            r.busiest_node.clone_from(&n.name);
        }
        if n.role == Role::Relay && !n.streams.is_empty() {
            r.relays_carrying += 1;
        }
        for (stream, c) in &n.streams {
            if !c.children.is_empty() {
                r.fan_out_max = r.fan_out_max.max(c.children.len());
                fans += c.children.len();
                n_fans += 1;
            }
            if n.role == Role::Edge {
                if let Some((d, true)) = view.ancestry(NodeId(i as u32), stream, &[]) {
                    r.tree_depth_max = r.tree_depth_max.max(d);
                    depths += u64::from(d);
                    n_depths += 1;
                }
            }
        }
    }
    r.tree_depth_mean = depths as f64 / n_depths.max(1) as f64;
    r.fan_out_mean = fans as f64 / n_fans.max(1) as f64;
}

fn kill(sim: &mut Sim, o: &Options, r: &mut Report) {
    let pool: Vec<NodeId> = [Role::Relay, Role::Edge]
        .iter()
        .flat_map(|role| sim.view.with_role(*role).to_vec())
        .collect();
    let k = ((pool.len() as f64) * o.kill_fraction.clamp(0.0, 1.0)).round() as usize;
    let dead: Vec<NodeId> = rand::seq::index::sample(&mut sim.rng, pool.len(), k)
        .into_iter()
        .map(|i| pool[i])
        .collect();
    for d in &dead {
        match sim.view.node(*d).role {
            Role::Edge => r.killed_edges += 1,
            _ => r.killed_relays += 1,
        }
    }
    let t0 = Instant::now();
    let moved = reparent_after_loss(&mut sim.view, &dead, &mut sim.rng);
    r.reparent_secs = t0.elapsed().as_secs_f64();
    for m in &moved {
        match (&m.result, m.lost_primary) {
            (Err(_), _) => r.reparent_failures += 1,
            (Ok(_), true) => r.children_reparented += 1,
            (Ok(_), false) => r.backups_replaced += 1,
        }
    }
    let t0 = Instant::now();
    let streams = sim.names.len();
    for d in dead {
        for s in 0..streams {
            let slot = d.0 as usize * streams + s;
            let n = std::mem::take(&mut sim.counts[slot]);
            for _ in 0..n {
                r.viewers_moved += 1;
                if !sim.join(s) {
                    r.unplaced_after_kill += 1;
                }
            }
        }
    }
    r.viewers_moved_secs = t0.elapsed().as_secs_f64();
    r.viewers_moved += r.children_reparented as u64;
}

/// What must hold after a run: no edge over capacity, fan-out within bounds, nothing
/// attached to a dead node, every viewer on a live edge whose tree reaches a root.
fn check(sim: &Sim) -> Vec<String> {
    let v = &sim.view;
    let streams = sim.names.len();
    let mut bad = Vec::new();
    for (i, n) in v.nodes().iter().enumerate() {
        let viewers: u32 = sim.counts[i * streams..(i + 1) * streams].iter().sum();
        if viewers > n.capacity {
            bad.push(format!(
                "{} holds {viewers} viewers over {}",
                n.name, n.capacity
            ));
        }
        if !n.alive {
            if viewers > 0 {
                bad.push(format!("dead {} still has {viewers} viewers", n.name));
            }
            continue;
        }
        for (s, c) in &n.streams {
            let edges = c
                .children
                .iter()
                .filter(|k| v.node(**k).role == Role::Edge)
                .count();
            let others = c.children.len() - edges;
            if edges > fan_out(&v.limits, n.role, Role::Edge)
                || others > fan_out(&v.limits, n.role, Role::Relay)
            {
                bad.push(format!(
                    "{} feeds {edges} edges and {others} relays of {s}",
                    n.name
                ));
            }
            for p in [c.parent, c.backup].into_iter().flatten() {
                if !v.node(p).alive {
                    bad.push(format!("{} uses dead {} for {s}", n.name, v.node(p).name));
                }
            }
            let rooted = matches!(v.ancestry(NodeId(i as u32), s, &[]), Some((_, true)));
            if n.role == Role::Edge && !rooted {
                bad.push(format!("{} carries {s} but reaches no origin", n.name));
            }
        }
    }
    bad.truncate(20);
    bad
}

impl Report {
    /// The report as a few lines of text.
    pub fn text(&self) -> String {
        format!(
            "cluster: {} origins, {} relays ({} carrying), {} edges of {} viewers, {} streams\n\
             joins: {} placed, {} unplaced in {:.2} s; {:.0} placements/s; join p50 {:.2} µs, p99 {:.2} µs, max {:.0} µs\n\
             trees: {} edge joins ({} failed); depth max {} mean {:.2}; fan-out max {} mean {:.2}; busiest {} at {:.0} %\n\
             kill: {} relays + {} edges; re-parented {} children, {} backups, {} failed in {:.1} ms\n\
             moved: {} viewers (re-placed in {:.1} ms, {} unplaced)\n\
             invariants: {}\n",
            self.origins, self.relays, self.relays_carrying, self.edges, self.edge_capacity, self.streams,
            self.placed, self.unplaced, self.join_wall_secs, self.placements_per_sec, self.join_p50_us,
            self.join_p99_us, self.join_max_us,
            self.tree_joins, self.tree_failures, self.tree_depth_max, self.tree_depth_mean,
            self.fan_out_max, self.fan_out_mean, self.busiest_node, self.busiest_load * 100.0,
            self.killed_relays, self.killed_edges, self.children_reparented, self.backups_replaced,
            self.reparent_failures, self.reparent_secs * 1000.0,
            self.viewers_moved, self.viewers_moved_secs * 1000.0, self.unplaced_after_kill,
            if self.violations.is_empty() { "all held".to_string() } else { self.violations.join("; ") },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(seed: u64) -> Options {
        Options {
            viewers: 30_000,
            edges: 60,
            relays: None,
            origins: 2,
            streams: 6,
            zones: 3,
            edge_capacity: None,
            kill_fraction: 0.1,
            seed,
            json: false,
        }
    }

    #[test]
    fn every_viewer_is_placed_and_the_trees_hold_after_a_loss() {
        for seed in [1, 2, 3] {
            let r = run(&small(seed));
            assert_eq!((r.placed, r.unplaced), (30_000, 0), "{}", r.text());
            assert_eq!(r.tree_failures, 0, "{}", r.text());
            assert!(r.busiest_load < 0.91, "{}", r.text());
            assert!(r.killed_edges + r.killed_relays > 0);
            assert!(r.viewers_moved > 0);
            assert_eq!(r.unplaced_after_kill, 0, "{}", r.text());
            assert_eq!(r.reparent_failures, 0, "{}", r.text());
            assert!(r.violations.is_empty(), "{}", r.text());
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_run() {
        let (a, b) = (run(&small(9)), run(&small(9)));
        assert_eq!(
            (
                a.relays_carrying,
                a.tree_depth_max,
                a.viewers_moved,
                a.busiest_node
            ),
            (
                b.relays_carrying,
                b.tree_depth_max,
                b.viewers_moved,
                b.busiest_node
            )
        );
    }
}
