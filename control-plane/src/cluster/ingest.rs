//! Where a broadcaster publishes: `POST /whip/{stream}` on the control plane answers 307
//! to an origin (RFC 9725 §4.5), as `POST /whep/{stream}` sends a viewer to an edge.
//!
//! A stream's primary ingest goes back to the origin that holds it (a publisher that
//! restarts lands where the tree is rooted; while the old session lives, that origin
//! refuses the second one with 409); a new stream goes to the better of two random
//! origins with room. A standby ingest (`?backup=1`) goes to another origin than the
//! primary's, in another zone when there is one, so that losing a zone loses one ingest.
//!
//! A standby whose primary is on no live origin (the origin died, or its publisher left)
//! is what the cluster takes the stream from: [`standbys_in_charge`] names them to their
//! node in its stats answer, and the node records them and makes their live stills as a
//! primary's (the standby stays a standby in the view: when the primary comes back, the
//! recording there starts again and the standby's ends).
//!
//! A placement is the cluster's until the origin's own report says so: it is written to
//! `cluster_ingest_placements`, and every replica's view, when it is loaded, takes the
//! placements of the last [`PLACED_HOLD_MS`] that no usable origin reports yet
//! ([`apply_placed`]). Without it a standby sent a moment after its primary (by another
//! replica, or after this one reloaded its view) could land on the primary's origin.
//! A placement also reads its stream's rows afresh, in a transaction that holds that
//! stream's placements back (SQLite: the write lock; PostgreSQL: an advisory lock on the
//! stream's name) until its own row is written, so that an encoder starting its primary
//! and standby outputs at once, on two replicas, still gets two origins: the second
//! placement sees the first.

use rand::Rng;

use super::placement::{has_room, pick, PlaceError};
use super::registry::Placement;
use super::view::{ClusterView, Ingest, NodeId, Role};
use crate::db::{begin_write, now_ms, Backend};
use crate::error::ApiResult;
use crate::ControlPlane;

/// How long a placement stands in for its origin's report (milliseconds): a broadcaster
/// sent there has this long to connect and be reported (nodes report every second).
pub const PLACED_HOLD_MS: i64 = 10_000;
/// Placements kept in the table (milliseconds); older rows go at the next placement.
const PLACED_KEPT_MS: i64 = 60_000;
/// At most this many placements (the newest) are read into one view.
const PLACED_READ: i64 = 10_000;

/// An ingest a replica placed (a row of `cluster_ingest_placements`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    /// The stream.
    pub stream: String,
    /// Its primary or standby ingest.
    pub ingest: Ingest,
    /// The origin's registry id.
    pub node: String,
    /// When (Unix ms).
    pub at_ms: i64,
}

/// Puts into `view` the placements its nodes do not report yet: each younger than
/// [`PLACED_HOLD_MS`], on a node of the view, for a stream whose ingest of that kind no
/// usable node reports (a report from a usable origin is the truth; one from a dead or
/// draining origin is what the placement moved away from).
pub fn apply_placed(view: &mut ClusterView, placed: &[Placed], now_ms: i64) {
    for p in placed {
        if now_ms.saturating_sub(p.at_ms) > PLACED_HOLD_MS {
            continue;
        }
        let Some(n) = view.find(&p.node) else {
            continue;
        };
        let reported = view.stream(&p.stream).and_then(|ix| match p.ingest {
            Ingest::Primary => ix.primary,
            Ingest::Backup => ix.backup,
        });
        if reported.is_some_and(|r| view.node(r).usable()) {
            continue;
        }
        view.place_ingest(n, &p.stream, p.ingest);
    }
}

fn ingest_name(i: Ingest) -> &'static str {
    match i {
        Ingest::Primary => "primary",
        Ingest::Backup => "backup",
    }
}

/// The placements of the last [`PLACED_HOLD_MS`], newest first.
pub(crate) async fn recent_placed(cp: &ControlPlane) -> ApiResult<Vec<Placed>> {
    let rows: Vec<PlacedRow> = sqlx::query_as(
        "SELECT stream, ingest, node_id, placed_at FROM cluster_ingest_placements \
         WHERE placed_at >= $1 ORDER BY placed_at DESC LIMIT $2",
    )
    .bind(now_ms() - PLACED_HOLD_MS)
    .bind(PLACED_READ)
    .fetch_all(cp.pool())
    .await?;
    Ok(placed_of(rows))
}

type PlacedRow = (String, String, String, i64);

fn placed_of(rows: Vec<PlacedRow>) -> Vec<Placed> {
    rows.into_iter()
        .filter_map(|(stream, ingest, node, at_ms)| {
            let ingest = match ingest.as_str() {
                "primary" => Ingest::Primary,
                "backup" => Ingest::Backup,
                _ => return None,
            };
            Some(Placed {
                stream,
                ingest,
                node,
                at_ms,
            })
        })
        .collect()
}

/// Removes the placements past keeping (outside a placement's transaction, where it would
/// make placements of other streams wait on each other's rows).
async fn prune_placed(cp: &ControlPlane) -> ApiResult<()> {
    sqlx::query("DELETE FROM cluster_ingest_placements WHERE placed_at < $1")
        .bind(now_ms() - PLACED_KEPT_MS)
        .execute(cp.pool())
        .await?;
    Ok(())
}

/// Writes a placement for every replica's next view.
async fn record_placed(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    stream: &str,
    ingest: Ingest,
    node: &str,
) -> ApiResult<()> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO cluster_ingest_placements (stream, ingest, node_id, placed_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (stream, ingest) DO UPDATE SET \
         node_id = excluded.node_id, placed_at = excluded.placed_at",
    )
    .bind(stream)
    .bind(ingest_name(ingest))
    .bind(node)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The origin for `stream`'s primary ingest, or its standby when `backup`.
pub fn place_publisher<R: Rng + ?Sized>(
    view: &ClusterView,
    stream: &str,
    backup: bool,
    rng: &mut R,
) -> Result<NodeId, PlaceError> {
    let usable = |n: &NodeId| view.node(*n).usable();
    let ix = view.stream(stream);
    let primary = ix.and_then(|i| i.primary).filter(usable);
    let standby = ix.and_then(|i| i.backup).filter(usable);
    match (backup, primary, standby) {
        (false, Some(p), _) => return Ok(p),
        (true, _, Some(b)) => return Ok(b),
        _ => {}
    }
    let origins = view.with_role(Role::Origin);
    // The other ingest's origin, kept off (a primary placed after its standby too: an
    // encoder may start both at once).
    let other = if backup { primary } else { standby };
    let ok = |n: NodeId| Some(n) != other && has_room(view, n);
    let load = |n: NodeId| view.node(n).load();
    let zone = primary.map(|p| view.node(p).zone.as_str());
    let elsewhere = |n: NodeId| ok(n) && Some(view.node(n).zone.as_str()) != zone;
    if backup {
        if let Some(n) = pick(origins, rng, elsewhere, load) {
            return Ok(n);
        }
    }
    if let Some(n) = pick(origins, rng, ok, load) {
        return Ok(n);
    }
    // A primary whose standby holds the only origin with room goes there all the same:
    // a broadcast on one origin is better than none.
    if !backup {
        return pick(origins, rng, |n| has_room(view, n), load).ok_or(PlaceError::Full);
    }
    Err(PlaceError::Full)
}

/// Of the standby ingests `node` holds (`standbys`), those whose stream's primary ingest
/// is on no live origin, as the origins report (a primary placed but not reported, sent
/// and never arrived or gone since, keeps no standby out of charge).
pub fn standbys_in_charge(view: &ClusterView, standbys: &[&str]) -> Vec<String> {
    let primary_live = |stream: &str| {
        view.stream(stream).is_some_and(|ix| {
            ix.carriers.iter().any(|n| {
                view.node(*n).alive
                    && view
                        .carry(*n, stream)
                        .is_some_and(|c| c.ingest == Some(Ingest::Primary) && !c.placed)
            })
        })
    };
    standbys
        .iter()
        .filter(|s| !primary_live(s))
        .map(|s| (*s).to_owned())
        .collect()
}

impl ControlPlane {
    /// Chooses the origin for a publisher of `stream` (its standby when `backup`) and
    /// counts the ingest there, in this replica's view and for every replica's next one
    /// ([`record_placed`]), until the node's report says so itself.
    pub async fn place_ingest(&self, stream: &str, backup: bool) -> ApiResult<Placement> {
        let ingest = if backup {
            Ingest::Backup
        } else {
            Ingest::Primary
        };
        // A copy of the view, taken before the transaction: inside it nothing waits for
        // the cache (whose holder may be waiting for one of the pool's connections to load
        // it again, while the transactions hold them all).
        let mut view = self.with_view(|v, _| v.clone()).await?;
        prune_placed(self).await?;
        let mut tx = begin_write(self.pool(), self.db().backend()).await?;
        if self.db().backend() == Backend::Postgres {
            // Held to the commit: this stream's placements, one at a time.
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))::text")
                .bind(stream)
                .execute(&mut *tx)
                .await?;
        }
        let rows: Vec<PlacedRow> = sqlx::query_as(
            "SELECT stream, ingest, node_id, placed_at FROM cluster_ingest_placements \
             WHERE stream = $1 AND placed_at >= $2 ORDER BY placed_at DESC",
        )
        .bind(stream)
        .bind(now_ms() - PLACED_HOLD_MS)
        .fetch_all(&mut *tx)
        .await?;
        apply_placed(&mut view, &placed_of(rows), now_ms());
        let n = place_publisher(&view, stream, backup, &mut rand::rng())
            .map_err(|_| crate::Error::Busy("no origin has room", 2))?;
        let placed = Placement::of(view.node(n));
        record_placed(&mut tx, stream, ingest, &placed.id).await?;
        tx.commit().await?;
        // This replica's view counts it at once (unless its origin reports it already:
        // marked placed, it would no longer keep its standby out of charge).
        self.with_view_as_is(|v, _| {
            let Some(m) = v.find(&placed.id) else {
                return;
            };
            let reported = v.stream(stream).is_some_and(|ix| match ingest {
                Ingest::Primary => ix.primary == Some(m),
                Ingest::Backup => ix.backup == Some(m),
            }) && v.carry(m, stream).is_some_and(|c| !c.placed);
            if !reported {
                v.place_ingest(m, stream, ingest);
            }
        })
        .await;
        Ok(placed)
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    use super::*;
    use crate::cluster::view::{Limits, Node};

    /// Origins in zones a, a, b, and an edge.
    fn cluster() -> ClusterView {
        let mut v = ClusterView::new(Limits::default());
        for (key, role, zone) in [
            ("o0", Role::Origin, "a"),
            ("o1", Role::Origin, "a"),
            ("o2", Role::Origin, "b"),
            ("e0", Role::Edge, "a"),
        ] {
            v.add(Node::new(key, role, zone, 100));
        }
        v
    }

    #[test]
    fn a_new_stream_goes_to_the_least_loaded_origin_and_a_restart_to_its_own() {
        let mut v = cluster();
        let mut rng = SmallRng::seed_from_u64(3);
        // o0 is full; of o1 and o2, o1 is the less loaded.
        v.set_load(NodeId(0), 0.2, 95, 0);
        v.set_load(NodeId(2), 0.2, 50, 0);
        for _ in 0..20 {
            assert_eq!(place_publisher(&v, "s", false, &mut rng), Ok(NodeId(1)));
        }
        v.set_ingest(NodeId(2), "s", Ingest::Primary);
        assert_eq!(place_publisher(&v, "s", false, &mut rng), Ok(NodeId(2)));
        // Never an edge, even when every origin is full.
        for o in 0..3 {
            v.set_load(NodeId(o), 0.99, 100, 0);
        }
        assert_eq!(
            place_publisher(&v, "t", false, &mut rng),
            Err(PlaceError::Full)
        );
    }

    #[test]
    fn a_new_primary_keeps_off_its_standbys_origin() {
        // The standby was placed first (an encoder starting both at once).
        let mut v = cluster();
        let mut rng = SmallRng::seed_from_u64(7);
        v.set_ingest(NodeId(1), "s", Ingest::Backup);
        v.set_load(NodeId(0), 0.2, 60, 0);
        v.set_load(NodeId(2), 0.2, 60, 0);
        for _ in 0..20 {
            let n = place_publisher(&v, "s", false, &mut rng).unwrap();
            assert_ne!(n, NodeId(1), "the least loaded, but its standby's");
        }
        // The standby's origin is the only one with room: the primary goes there too.
        v.set_load(NodeId(0), 0.99, 100, 0);
        v.set_load(NodeId(2), 0.99, 100, 0);
        assert_eq!(place_publisher(&v, "s", false, &mut rng), Ok(NodeId(1)));
        // A standby never shares its primary's origin: none has room elsewhere.
        v.set_ingest(NodeId(1), "u", Ingest::Primary);
        assert_eq!(
            place_publisher(&v, "u", true, &mut rng),
            Err(PlaceError::Full)
        );
    }

    #[test]
    fn a_standby_goes_to_another_origin_in_another_zone_first() {
        let mut v = cluster();
        let mut rng = SmallRng::seed_from_u64(5);
        v.set_ingest(NodeId(0), "s", Ingest::Primary);
        for _ in 0..20 {
            assert_eq!(place_publisher(&v, "s", true, &mut rng), Ok(NodeId(2)));
        }
        // Zone b gone: the other origin of zone a, never the primary's.
        v.set_state(NodeId(2), false, false);
        for _ in 0..20 {
            assert_eq!(place_publisher(&v, "s", true, &mut rng), Ok(NodeId(1)));
        }
        // A standby already placed keeps its origin.
        v.set_ingest(NodeId(1), "s", Ingest::Backup);
        assert_eq!(place_publisher(&v, "s", true, &mut rng), Ok(NodeId(1)));
        // A dead primary's stream starts afresh elsewhere.
        v.set_state(NodeId(0), false, false);
        assert_ne!(place_publisher(&v, "s", false, &mut rng), Ok(NodeId(0)));
    }

    #[test]
    fn a_standby_is_in_charge_while_its_primary_is_on_no_live_origin() {
        let mut v = cluster();
        v.set_ingest(NodeId(0), "s", Ingest::Primary);
        v.set_ingest(NodeId(2), "s", Ingest::Backup);
        v.set_ingest(NodeId(2), "t", Ingest::Backup);
        // "t" has no primary anywhere; "s" has one, alive.
        assert_eq!(standbys_in_charge(&v, &["s", "t"]), vec!["t".to_owned()]);
        // The primary's origin dies: the standby carries "s" too.
        v.set_state(NodeId(0), false, false);
        assert_eq!(standbys_in_charge(&v, &["s", "t"]), ["s", "t"]);
        // A primary placed on a live origin but not reported there: still in charge.
        v.place_ingest(NodeId(1), "s", Ingest::Primary);
        assert_eq!(standbys_in_charge(&v, &["s"]), ["s"]);
        // Reported there (the publisher back, elsewhere).
        v.set_ingest(NodeId(1), "s", Ingest::Primary);
        assert_eq!(standbys_in_charge(&v, &["s"]), Vec::<String>::new());
    }

    #[test]
    fn a_placement_stands_in_for_its_report_until_a_usable_origin_reports() {
        let placed = |ingest, node: &str, at_ms| Placed {
            stream: "s".into(),
            ingest,
            node: node.into(),
            at_ms,
        };
        let now = 100_000;
        // Not reported yet: the placement is the view's.
        let mut v = cluster();
        apply_placed(&mut v, &[placed(Ingest::Backup, "o2", now - 500)], now);
        assert_eq!(v.stream("s").and_then(|ix| ix.backup), Some(NodeId(2)));
        // Too old, or on a node the view does not have: nothing.
        let mut v = cluster();
        let stale = now - PLACED_HOLD_MS - 1;
        apply_placed(
            &mut v,
            &[
                placed(Ingest::Primary, "o1", stale),
                placed(Ingest::Backup, "gone", now),
            ],
            now,
        );
        assert!(v.stream("s").is_none());
        // A usable origin reports the primary: its report wins over a placement elsewhere.
        let mut v = cluster();
        v.set_ingest(NodeId(0), "s", Ingest::Primary);
        apply_placed(&mut v, &[placed(Ingest::Primary, "o1", now)], now);
        assert_eq!(v.stream("s").and_then(|ix| ix.primary), Some(NodeId(0)));
        // Its origin died: the placement made since (elsewhere) is the one that counts.
        v.set_state(NodeId(0), false, false);
        apply_placed(&mut v, &[placed(Ingest::Primary, "o1", now)], now);
        assert_eq!(v.stream("s").and_then(|ix| ix.primary), Some(NodeId(1)));
    }
}
