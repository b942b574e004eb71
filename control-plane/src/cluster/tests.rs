//! Placement on small hand-built clusters with a seeded random source.

use rand::rngs::SmallRng;
use rand::SeedableRng;

use super::placement::{
    fan_out, join_tree, parent_for, place_viewer, reparent_after_loss, PlaceError,
};
use super::view::{ClusterView, Ingest, Limits, Node, NodeId, Role};

fn rng() -> SmallRng {
    SmallRng::seed_from_u64(7)
}

/// `origins` origins, `relays` relays and `edges` edges, zones round-robin over 3; stream
/// "s" published on origin 0 (backup ingest on origin 1 when there is one).
fn cluster(origins: usize, relays: usize, edges: usize) -> ClusterView {
    let mut v = ClusterView::new(Limits::default());
    let mut k = 0;
    for (role, n) in [
        (Role::Origin, origins),
        (Role::Relay, relays),
        (Role::Edge, edges),
    ] {
        for i in 0..n {
            let zone = format!("z{}", k % 3);
            v.add(Node::new(
                &format!("{}{i}", role.as_str()),
                role,
                &zone,
                100,
            ));
            k += 1;
        }
    }
    v.set_ingest(NodeId(0), "s", Ingest::Primary);
    if origins > 1 {
        v.set_ingest(NodeId(1), "s", Ingest::Backup);
    }
    v
}

fn edge(v: &ClusterView, i: usize) -> NodeId {
    v.with_role(Role::Edge)[i]
}

fn relay(v: &ClusterView, i: usize) -> NodeId {
    v.with_role(Role::Relay)[i]
}

#[test]
fn a_carrying_edge_with_room_is_preferred() {
    let mut v = cluster(1, 1, 10);
    let e = edge(&v, 3);
    v.add_viewer(e, "s");
    for _ in 0..50 {
        assert_eq!(place_viewer(&v, "s", &mut rng()), Ok(e));
    }
    // Full (load limit 0.9 of 100 viewers): the others take the next viewers.
    v.set_load(e, 0.1, 90, 0);
    assert_ne!(place_viewer(&v, "s", &mut rng()), Ok(e));
}

#[test]
fn power_of_two_picks_the_lighter() {
    let mut v = cluster(1, 1, 2);
    let (a, b) = (edge(&v, 0), edge(&v, 1));
    v.set_load(a, 0.1, 50, 0);
    v.set_load(b, 0.1, 10, 0);
    let mut r = rng();
    for _ in 0..20 {
        assert_eq!(place_viewer(&v, "s", &mut r), Ok(b));
    }
    // Among many, the chosen one is lighter than the median most of the time.
    let mut v = cluster(1, 1, 100);
    for i in 0..100 {
        let e = edge(&v, i);
        v.set_load(e, 0.0, i as u32 % 80, 0);
    }
    let light = (0..1000)
        .filter(|_| v.node(place_viewer(&v, "new", &mut r).unwrap()).viewers < 40)
        .count();
    assert!(light > 650, "{light}");
}

#[test]
fn full_draining_and_dead_edges_are_never_chosen() {
    let mut v = cluster(1, 1, 4);
    v.set_load(edge(&v, 0), 0.1, 95, 0);
    v.set_load(edge(&v, 1), 0.95, 0, 0);
    v.set_state(edge(&v, 2), true, true);
    v.set_state(edge(&v, 3), false, false);
    assert_eq!(place_viewer(&v, "s", &mut rng()), Err(PlaceError::Full));
    v.set_state(edge(&v, 3), true, false);
    assert_eq!(place_viewer(&v, "s", &mut rng()), Ok(edge(&v, 3)));
}

#[test]
fn without_edges_relays_then_origins_serve() {
    let v = cluster(1, 2, 0);
    let n = place_viewer(&v, "s", &mut rng()).unwrap();
    assert_eq!(v.node(n).role, Role::Relay);
    let v = cluster(2, 0, 0);
    // The origin holding the stream is preferred.
    assert_eq!(place_viewer(&v, "s", &mut rng()), Ok(NodeId(0)));
}

/// Joins every edge to the tree in turn (and the relays they activate).
fn grow(v: &mut ClusterView, edges: usize) -> Vec<(NodeId, Result<(), PlaceError>)> {
    let mut r = rng();
    (0..edges)
        .map(|i| {
            let e = edge(v, i);
            (e, join_tree(v, e, "s", &mut r).map(drop))
        })
        .collect()
}

fn assert_tree(v: &ClusterView) {
    for (i, n) in v.nodes().iter().enumerate() {
        let Some(c) = n.streams.get("s") else {
            continue;
        };
        let mut kinds = [0usize; 2];
        for ch in &c.children {
            kinds[usize::from(v.node(*ch).role == Role::Edge)] += 1;
            assert_eq!(v.carry(*ch, "s").unwrap().parent, Some(NodeId(i as u32)));
        }
        assert!(kinds[0] <= fan_out(&v.limits, n.role, Role::Relay), "{i}");
        assert!(kinds[1] <= fan_out(&v.limits, n.role, Role::Edge), "{i}");
        if n.alive && c.ingest.is_none() && c.parent.is_some() {
            // Every attached node reaches the root, and no loop.
            assert!(
                matches!(v.ancestry(NodeId(i as u32), "s", &[]), Some((_, true))),
                "{i}"
            );
        }
        if let (Some(p), Some(b)) = (c.parent, c.backup) {
            assert_ne!(p, b);
        }
    }
}

#[test]
fn fan_out_bound_holds_and_relays_form_their_own_tree() {
    let mut v = cluster(1, 30, 200);
    let res = grow(&mut v, 200);
    assert!(res.iter().all(|(_, r)| r.is_ok()), "{res:?}");
    assert_tree(&v);
    // 200 edges at 8 per relay need 25 relays; the origin feeds 8, relays feed the rest.
    let carrying = v
        .with_role(Role::Relay)
        .iter()
        .filter(|r| v.carry(**r, "s").is_some())
        .count();
    assert!(carrying >= 25, "{carrying}");
    let deepest = (0..200)
        .map(|i| v.ancestry(edge(&v, i), "s", &[]).unwrap().0)
        .max()
        .unwrap();
    assert!(deepest <= 3, "{deepest}");
    // Beyond the relays' capacity: Full, never a broken bound.
    let mut small = cluster(1, 2, 40);
    let res = grow(&mut small, 40);
    assert!(res.iter().any(|(_, r)| *r == Err(PlaceError::Full)));
    assert_tree(&small);
}

#[test]
fn with_no_relays_edges_hang_off_the_origins() {
    let mut v = cluster(2, 0, 5);
    let p = parent_for(&v, edge(&v, 0), "s", &mut rng()).unwrap();
    assert_eq!((p.primary, p.backup), (NodeId(0), Some(NodeId(1))));
    v.set_state(NodeId(0), false, false);
    let p = parent_for(&v, edge(&v, 0), "s", &mut rng()).unwrap();
    assert_eq!((p.primary, p.backup), (NodeId(1), None));
    assert_eq!(
        parent_for(&v, NodeId(1), "s", &mut rng()),
        Err(PlaceError::IsSource)
    );
    v.set_state(NodeId(1), false, false);
    assert_eq!(
        parent_for(&v, edge(&v, 0), "s", &mut rng()),
        Err(PlaceError::NotLive)
    );
    assert_eq!(
        parent_for(&v, edge(&v, 0), "nope", &mut rng()),
        Err(PlaceError::NotLive)
    );
}

#[test]
fn backups_are_in_another_zone_and_not_below_the_primary() {
    let mut v = cluster(1, 12, 60);
    grow(&mut v, 60);
    let mut r = rng();
    for i in 0..60 {
        let e = edge(&v, i);
        let c = v.carry(e, "s").unwrap();
        let (p, b) = (c.parent.unwrap(), c.backup.expect("a backup"));
        assert_ne!(v.node(p).zone, v.node(b).zone, "edge {i}");
        assert_eq!(v.node(b).role, Role::Relay);
    }
    // A relay below another relay has a backup that is not below its primary.
    for &rl in v.with_role(Role::Relay) {
        let Some(c) = v.carry(rl, "s") else { continue };
        if let (Some(p), Some(b)) = (c.parent, c.backup) {
            assert!(v.ancestry(b, "s", &[p, rl]).is_some());
        }
    }
    // A relay with a backup ingest origin uses it as its backup.
    let mut two = cluster(2, 3, 3);
    let p = parent_for(&two, relay(&two, 0), "s", &mut r).unwrap();
    assert_eq!((p.primary, p.backup), (NodeId(0), Some(NodeId(1))));
    two.attach(relay(&two, 0), "s", p.primary, p.backup);
}

#[test]
fn draining_and_dead_parents_are_never_chosen_and_no_loops() {
    let mut v = cluster(1, 6, 20);
    let (r0, r1) = (relay(&v, 0), relay(&v, 1));
    v.set_state(r0, true, true);
    v.set_state(r1, false, false);
    grow(&mut v, 20);
    for i in 0..20 {
        let c = v.carry(edge(&v, i), "s").unwrap();
        for p in [c.parent, c.backup].into_iter().flatten() {
            assert!(p != r0 && p != r1);
        }
    }
    assert_tree(&v);
    // A relay never picks a relay below itself.
    let mut r = rng();
    for &rl in v.with_role(Role::Relay) {
        if let Ok(p) = parent_for(&v, rl, "s", &mut r) {
            assert!(v.ancestry(p.primary, "s", &[rl]).is_some());
        }
    }
}

#[test]
fn a_drained_origin_still_roots_the_stream_published_on_it_and_only_then() {
    // One origin, drained while its broadcaster is live: the stream is nowhere else.
    let mut v = cluster(1, 2, 0);
    let o = NodeId(0);
    v.set_state(o, true, true);
    for i in 0..2 {
        let p = parent_for(&v, relay(&v, i), "s", &mut rng()).unwrap();
        assert_eq!(p.primary, o);
    }
    // With its standby ingest on another origin, the tree goes there instead.
    let mut v = cluster(2, 2, 0);
    v.set_state(o, true, true);
    let p = parent_for(&v, relay(&v, 0), "s", &mut rng()).unwrap();
    assert_eq!(p.primary, NodeId(1));
    // Dead, it roots nothing.
    v.set_state(NodeId(1), false, false);
    v.set_state(o, false, true);
    assert!(parent_for(&v, relay(&v, 0), "s", &mut rng()).is_err());
}

#[test]
fn losses_are_repaired_through_backups_and_fresh_choices() {
    let mut v = cluster(1, 20, 100);
    grow(&mut v, 100);
    let busy: Vec<NodeId> = v
        .with_role(Role::Relay)
        .iter()
        .copied()
        .filter(|r| v.carry(*r, "s").is_some_and(|c| !c.children.is_empty()))
        .take(3)
        .collect();
    let moved = reparent_after_loss(&mut v, &busy, &mut rng());
    assert!(moved.iter().any(|m| m.lost_primary));
    assert!(moved.iter().all(|m| m.result.is_ok()), "{moved:?}");
    for m in &moved {
        let p = m.result.unwrap();
        assert!(!busy.contains(&p.primary));
        assert!(p.backup.is_none_or(|b| !busy.contains(&b)));
    }
    assert_tree(&v);
    for i in 0..100 {
        let c = v.carry(edge(&v, i), "s").unwrap();
        assert!(v.node(c.parent.unwrap()).alive);
    }
}

#[test]
fn a_node_over_its_own_budget_gets_new_viewers_last_and_none_once_it_refuses() {
    let mut v = cluster(1, 0, 2);
    let (a, b) = (edge(&v, 0), edge(&v, 1));
    // b sheds its top layer: a, though busier, takes the viewers.
    v.set_load(a, 0.5, 50, 0);
    v.set_pressure(b, 2);
    for _ in 0..20 {
        assert_eq!(place_viewer(&v, "s", &mut rng()), Ok(a));
    }
    // a refuses viewers, b sheds: b, which still takes them.
    v.set_pressure(a, 3);
    for _ in 0..20 {
        assert_eq!(place_viewer(&v, "s", &mut rng()), Ok(b));
    }
    v.set_pressure(b, 3);
    assert_eq!(place_viewer(&v, "s", &mut rng()), Err(PlaceError::Full));
}
