//! A publisher's simulcast encodings, ranked low to high by the bitrate they carry, and
//! how a viewer's preference maps onto them.
//!
//! Publishers name their RIDs as they like ("q/h/f", "l/m/h", "0/1/2"), so the rank comes
//! from what each encoding measurably carries over the last second, not from its name.
//! An encoding that has sent nothing for [`INACTIVE_AFTER`] drops out of the ranking, so a
//! viewer on "high" falls back to the best layer still flowing. The rungs of a transcoded
//! ladder ([`RUNG_RIDS`], `crate::process`) rank below the publisher's own encodings and by
//! their size, whatever they carry: a still picture's source may carry less than a rung
//! made from it (a 720p test card at 120 kbit/s under a 640-wide rung's keyframes), and the
//! original stays the top layer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::SourceKey;

/// The RIDs of a publisher's transcoded rungs, the largest first (`~` is no RID's
/// character, RFC 8851, so no publisher's encoding takes one).
pub const RUNG_RIDS: [&str; crate::process::ladder::MAX_RUNGS] = ["~ladder0", "~ladder1"];

/// Where an encoding ranks before its bitrate counts: the smallest rung lowest, the
/// publisher's own encodings above every rung.
fn rank_class(rid: Option<&str>) -> usize {
    let rung = RUNG_RIDS.iter().position(|r| Some(*r) == rid);
    rung.map_or(RUNG_RIDS.len(), |i| RUNG_RIDS.len() - 1 - i)
}

/// An encoding that sent nothing for this long is inactive.
pub const INACTIVE_AFTER: Duration = Duration::from_millis(1500);
/// How often the ranking is recomputed.
pub const RANK_EVERY: Duration = Duration::from_secs(1);
/// The first ranking comes this soon after the first packet, so early viewers wait little.
pub const FIRST_RANK_AFTER: Duration = Duration::from_millis(250);

/// Which layer a viewer wants.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LayerPref {
    /// The highest active layer.
    #[default]
    Auto,
    /// By rank: 0 is the lowest; clamped to the layers there are.
    Rank(u8),
    /// A publisher's RID by name; falls back to the highest layer if absent.
    Rid(String),
}

/// One encoding as viewers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodingInfo {
    /// Index in the publisher's session (stable for its lifetime).
    pub encoding: u8,
    /// RID, if the publisher sends simulcast.
    pub rid: Option<String>,
    /// Measured bitrate over the last ranking period.
    pub bitrate_bps: u64,
    /// What the encoding's temporal layers carry of that bitrate, from the base up and
    /// cumulative (layers 0, 0–1, 0–2…), in thousandths: the last is 1000. Empty when it has
    /// no temporal layers.
    pub temporal: Vec<u16>,
}

impl EncodingInfo {
    /// The bitrate of the temporal layers up to `tid` (all of them for `None`).
    pub fn bitrate_up_to(&self, tid: Option<u8>) -> u64 {
        match tid.and_then(|t| self.temporal.get(usize::from(t))) {
            Some(&share) => self.bitrate_bps * u64::from(share) / 1000,
            None => self.bitrate_bps,
        }
    }
}

/// A publisher's active encodings, lowest first. Shared by reference with every packet,
/// so viewers on any worker resolve their preference against the same table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayerTable {
    /// The publisher this table describes.
    pub generation: u32,
    /// Active encodings ordered low to high.
    pub active: Vec<EncodingInfo>,
    /// Whether bitrates were measured; until then several layers cannot be told apart.
    pub settled: bool,
}

impl LayerTable {
    /// The source a viewer with `pref` should receive.
    pub fn resolve(&self, pref: &LayerPref) -> Option<SourceKey> {
        self.resolve_rank(pref).and_then(|rank| self.key(rank))
    }

    /// The rank (0 is the lowest) a viewer with `pref` should receive; `None` before the
    /// layers are settled.
    pub fn resolve_rank(&self, pref: &LayerPref) -> Option<usize> {
        let top = self.active.len().checked_sub(1)?;
        if !self.settled {
            // The other encodings may not have shown up yet.
            return None;
        }
        Some(match pref {
            LayerPref::Auto => top,
            LayerPref::Rank(r) => usize::from(*r).min(top),
            LayerPref::Rid(rid) => self
                .active
                .iter()
                .position(|e| e.rid.as_deref() == Some(rid))
                .unwrap_or(top),
        })
    }

    /// The source of the layer of `rank`.
    pub fn key(&self, rank: usize) -> Option<SourceKey> {
        self.active.get(rank).map(|e| SourceKey {
            generation: self.generation,
            encoding: e.encoding,
        })
    }
}

/// Temporal layers counted per encoding (VP8 carries at most four).
const MAX_TEMPORAL: usize = 4;

#[derive(Debug, Clone)]
struct Counter {
    rid: Option<String>,
    bytes: u64,
    /// This period's bytes by temporal layer.
    tid_bytes: [u64; MAX_TEMPORAL],
    last_bitrate: u64,
    /// The last period's cumulative temporal shares ([`EncodingInfo::temporal`]).
    last_temporal: Vec<u16>,
    last_packet: Option<Instant>,
}

impl Counter {
    /// Ends a period: the cumulative share of each temporal layer seen, if more than one.
    fn temporal_shares(&mut self) -> Vec<u16> {
        let bytes = std::mem::take(&mut self.tid_bytes);
        let total: u64 = bytes.iter().sum();
        let Some(top) = bytes.iter().rposition(|&b| b > 0).filter(|&t| t > 0) else {
            return Vec::new();
        };
        let mut sum = 0;
        bytes[..=top]
            .iter()
            .map(|&b| {
                sum += b;
                (sum * 1000 / total) as u16
            })
            .collect()
    }
}

/// Ranks one publisher's encodings; lives on the publisher's worker.
#[derive(Debug)]
pub struct LayerRanker {
    generation: u32,
    counters: Vec<Counter>,
    table: Arc<LayerTable>,
    last_rank: Option<Instant>,
    first_packet: Option<Instant>,
    /// Layers told by an upstream node (a relay link's parent), flowing here or not: they
    /// make the table instead of what is measured here.
    known: Option<Vec<EncodingInfo>>,
    /// Ranked only by an upstream node's list, never by what is measured here (a relay
    /// child pulls only the layers its sinks want: the lowest it measures need not be the
    /// lowest there is).
    listed_only: bool,
}

impl LayerRanker {
    /// Upper bound on encodings per publisher (3 simulcast layers plus slack).
    pub const MAX_ENCODINGS: usize = 4;

    /// A ranker for the publisher `generation`.
    pub fn new(generation: u32) -> Self {
        LayerRanker {
            generation,
            counters: Vec::new(),
            table: Arc::new(LayerTable {
                generation,
                active: Vec::new(),
                settled: false,
            }),
            last_rank: None,
            first_packet: None,
            known: None,
            listed_only: false,
        }
    }

    /// Ranks only by the upstream node's lists ([`LayerRanker::set_known`]).
    pub fn set_listed_only(&mut self) {
        self.listed_only = true;
    }

    /// The layers as an upstream node has them (encoding and bitrate), flowing here or
    /// not: a relay link's child lists a layer it let go, so a viewer can want it again.
    /// Returns whether the table changed.
    pub fn set_known(&mut self, now: Instant, layers: &[(u8, u64)]) -> bool {
        let known = layers
            .iter()
            .filter(|(e, _)| usize::from(*e) < self.counters.len())
            .map(|&(encoding, bitrate_bps)| EncodingInfo {
                encoding,
                rid: self.counters[usize::from(encoding)].rid.clone(),
                bitrate_bps,
                temporal: self.counters[usize::from(encoding)].last_temporal.clone(),
            })
            .collect();
        self.known = Some(known);
        self.rank(now, false)
    }

    /// The encoding index for `rid`, registering it on first sight; `None` past the bound.
    pub fn encoding_for(&mut self, rid: Option<&str>) -> Option<u8> {
        if let Some(i) = self.counters.iter().position(|c| c.rid.as_deref() == rid) {
            return Some(i as u8);
        }
        if self.counters.len() >= Self::MAX_ENCODINGS {
            return None;
        }
        self.counters.push(Counter {
            rid: rid.map(str::to_owned),
            bytes: 0,
            tid_bytes: [0; MAX_TEMPORAL],
            last_bitrate: 0,
            last_temporal: Vec::new(),
            last_packet: None,
        });
        Some((self.counters.len() - 1) as u8)
    }

    /// Counts a packet (of temporal layer `tid`, if the stream has them); returns the
    /// current table. A newly seen encoding re-ranks at once so the first viewer does not
    /// wait a full period for a layer.
    pub fn on_packet(
        &mut self,
        now: Instant,
        encoding: u8,
        bytes: usize,
        tid: Option<u8>,
    ) -> &Arc<LayerTable> {
        self.first_packet.get_or_insert(now);
        let mut fresh = false;
        if let Some(c) = self.counters.get_mut(usize::from(encoding)) {
            fresh = c
                .last_packet
                .is_none_or(|t| now.saturating_duration_since(t) > INACTIVE_AFTER);
            c.bytes += bytes as u64;
            if let Some(t) = tid {
                c.tid_bytes[usize::from(t).min(MAX_TEMPORAL - 1)] += bytes as u64;
            }
            c.last_packet = Some(now);
        }
        if fresh {
            self.rank(now, false);
        }
        &self.table
    }

    /// Re-ranks when a period has passed. Returns whether the table changed.
    pub fn handle_timeout(&mut self, now: Instant) -> bool {
        let due = match (self.last_rank, self.first_packet) {
            (Some(t), _) => now.saturating_duration_since(t) >= RANK_EVERY,
            (None, Some(t)) => now.saturating_duration_since(t) >= FIRST_RANK_AFTER,
            (None, None) => false,
        };
        due && self.rank(now, true)
    }

    /// Keeps the ranking under a new `generation`: a source that moved (a relay link to
    /// another parent, the same upstream encodings) keeps its measured layers, so its
    /// viewers need not wait for a first ranking.
    pub fn renumber(&mut self, generation: u32) {
        self.generation = generation;
        self.table = Arc::new(LayerTable {
            generation,
            ..LayerTable::clone(&self.table)
        });
    }

    /// Forgets the ranking: the upstream node no longer knows its layers (its publisher
    /// left or restarted, and the next one may number its encodings in another order, by
    /// their first packets). Nothing is ranked until the upstream node lists them again (or,
    /// unless listed only, this node has measured them: [`FIRST_RANK_AFTER`]).
    pub fn forget(&mut self) {
        self.known = None;
        self.last_rank = None;
        self.first_packet = None;
        for c in &mut self.counters {
            c.bytes = 0;
            c.tid_bytes = [0; MAX_TEMPORAL];
            c.last_bitrate = 0;
            c.last_temporal.clear();
            c.last_packet = None;
        }
        self.table = Arc::new(LayerTable {
            generation: self.generation,
            active: Vec::new(),
            settled: false,
        });
    }

    /// The current table.
    pub fn table(&self) -> &Arc<LayerTable> {
        &self.table
    }

    fn rank(&mut self, now: Instant, period_end: bool) -> bool {
        let elapsed = self.last_rank.map(|t| now.saturating_duration_since(t));
        if period_end {
            let since = elapsed.or(self.first_packet.map(|t| now.saturating_duration_since(t)));
            let secs = since.map_or(1.0, |d| d.as_secs_f64().max(0.001));
            for c in &mut self.counters {
                c.last_bitrate = (c.bytes as f64 * 8.0 / secs) as u64;
                c.bytes = 0;
                c.last_temporal = c.temporal_shares();
            }
            self.last_rank = Some(now);
        }
        let mut active: Vec<EncodingInfo> = match &self.known {
            // The upstream node's layers, with the temporal shares measured here.
            Some(known) => known
                .iter()
                .map(|k| EncodingInfo {
                    temporal: self
                        .counters
                        .get(usize::from(k.encoding))
                        .map_or_else(Vec::new, |c| c.last_temporal.clone()),
                    ..k.clone()
                })
                .collect(),
            None => self
                .counters
                .iter()
                .enumerate()
                .filter(|(_, c)| {
                    c.last_packet
                        .is_some_and(|t| now.saturating_duration_since(t) <= INACTIVE_AFTER)
                })
                .map(|(i, c)| EncodingInfo {
                    encoding: i as u8,
                    rid: c.rid.clone(),
                    bitrate_bps: c.last_bitrate,
                    temporal: c.last_temporal.clone(),
                })
                .collect(),
        };
        // Stable sort: before any rate is measured, the publisher's own order stands. An
        // upstream node's list is in its rank already (its rungs below its source, which a
        // relay child cannot tell by their names here): kept as it is.
        if self.known.is_none() {
            active.sort_by_key(|e| (rank_class(e.rid.as_deref()), e.bitrate_bps));
        }
        let order = |t: &LayerTable| t.active.iter().map(|e| e.encoding).collect::<Vec<_>>();
        let changed = order(&self.table) != active.iter().map(|e| e.encoding).collect::<Vec<_>>();
        let settled = self.known.is_some() || (self.last_rank.is_some() && !self.listed_only);
        let same = self.table.active == active && self.table.settled == settled;
        if !same {
            self.table = Arc::new(LayerTable {
                generation: self.generation,
                active,
                settled,
            });
        }
        changed || !same
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn ranks_by_measured_bitrate_not_by_name() {
        let t0 = Instant::now();
        let mut r = LayerRanker::new(7);
        // The publisher lists its high layer first.
        let h = r.encoding_for(Some("h")).unwrap();
        let l = r.encoding_for(Some("l")).unwrap();
        let m = r.encoding_for(Some("m")).unwrap();
        for i in 0..100 {
            r.on_packet(ms(t0, i * 10), h, 1200, None);
            r.on_packet(ms(t0, i * 10), l, 100, None);
            r.on_packet(ms(t0, i * 10), m, 500, None);
        }
        assert_eq!(
            r.table().resolve(&LayerPref::Auto),
            None,
            "unsettled: wait for rates"
        );
        assert!(r.handle_timeout(ms(t0, 1000)));
        let t = r.table().clone();
        let rids: Vec<_> = t.active.iter().map(|e| e.rid.clone().unwrap()).collect();
        assert_eq!(rids, ["l", "m", "h"]);
        assert_eq!(
            t.resolve(&LayerPref::Rank(0)),
            Some(SourceKey {
                generation: 7,
                encoding: l
            })
        );
        assert_eq!(
            t.resolve(&LayerPref::Auto),
            Some(SourceKey {
                generation: 7,
                encoding: h
            })
        );
        assert_eq!(
            t.resolve(&LayerPref::Rank(9)),
            Some(SourceKey {
                generation: 7,
                encoding: h
            })
        );
        assert_eq!(
            t.resolve(&LayerPref::Rid("m".into())),
            Some(SourceKey {
                generation: 7,
                encoding: m
            })
        );
    }

    #[test]
    fn the_ladders_rungs_rank_below_the_source_whatever_they_carry() {
        let t0 = Instant::now();
        let mut r = LayerRanker::new(1);
        let source = r.encoding_for(None).unwrap();
        let small = r.encoding_for(Some(RUNG_RIDS[1])).unwrap();
        let half = r.encoding_for(Some(RUNG_RIDS[0])).unwrap();
        // A still source (a test card) carries less than its rungs' keyframes.
        for i in 0..100 {
            r.on_packet(ms(t0, i * 10), source, 150, None);
            r.on_packet(ms(t0, i * 10), half, 900, None);
            r.on_packet(ms(t0, i * 10), small, 1200, None);
        }
        assert!(r.handle_timeout(ms(t0, 1000)));
        let order: Vec<u8> = r.table().active.iter().map(|e| e.encoding).collect();
        assert_eq!(order, [small, half, source]);
        assert_eq!(
            r.table().resolve(&LayerPref::Auto),
            Some(SourceKey {
                generation: 1,
                encoding: source
            })
        );
    }

    #[test]
    fn a_relay_child_keeps_its_parents_rank_whatever_the_layers_carry() {
        // The parent lists its source on top of a rung that carries more (a still test
        // card under its ladder): the child's wire layers "0" and "1" keep that order.
        let t0 = Instant::now();
        let mut r = LayerRanker::new(1);
        let rung = r.encoding_for(Some("0")).unwrap();
        let source = r.encoding_for(Some("1")).unwrap();
        assert!(r.set_known(t0, &[(rung, 900_000), (source, 150_000)]));
        let order: Vec<u8> = r.table().active.iter().map(|e| e.encoding).collect();
        assert_eq!(order, [rung, source]);
        assert_eq!(
            r.table().resolve(&LayerPref::Auto).unwrap().encoding,
            source
        );
    }

    #[test]
    fn silent_layer_drops_out_and_viewer_falls_back() {
        let t0 = Instant::now();
        let mut r = LayerRanker::new(1);
        let lo = r.encoding_for(Some("q")).unwrap();
        let hi = r.encoding_for(Some("f")).unwrap();
        r.on_packet(t0, lo, 100, None);
        r.on_packet(t0, hi, 1000, None);
        r.handle_timeout(ms(t0, 1000));
        // Only the low layer keeps sending.
        for i in 0..30 {
            r.on_packet(ms(t0, 1000 + i * 100), lo, 100, None);
        }
        r.handle_timeout(ms(t0, 4000));
        let t = r.table();
        assert_eq!(t.active.len(), 1);
        assert_eq!(t.resolve(&LayerPref::Auto).unwrap().encoding, lo);
    }

    #[test]
    fn temporal_layers_are_measured_as_cumulative_shares() {
        let t0 = Instant::now();
        let mut r = LayerRanker::new(1);
        let e = r.encoding_for(None).unwrap();
        // L1T3's pattern 0 2 1 2: the base carries the most.
        for i in 0..100u64 {
            let (tid, bytes) = match i % 4 {
                0 => (0, 400),
                2 => (1, 200),
                _ => (2, 100),
            };
            r.on_packet(ms(t0, i * 10), e, bytes, Some(tid));
        }
        r.handle_timeout(ms(t0, 1000));
        let info = &r.table().active[0];
        assert_eq!(info.temporal, [500, 750, 1000]);
        assert_eq!(info.bitrate_up_to(Some(0)), info.bitrate_bps / 2);
        assert_eq!(info.bitrate_up_to(Some(2)), info.bitrate_bps);
        assert_eq!(info.bitrate_up_to(None), info.bitrate_bps);
        // Without temporal layers (or only the base), no shares.
        for i in 0..100u64 {
            r.on_packet(ms(t0, 1000 + i * 10), e, 300, Some(0));
        }
        r.handle_timeout(ms(t0, 2000));
        assert!(r.table().active[0].temporal.is_empty());
    }

    #[test]
    fn bounded_encodings_and_empty_table() {
        let mut r = LayerRanker::new(1);
        for i in 0..LayerRanker::MAX_ENCODINGS {
            assert!(r.encoding_for(Some(&i.to_string())).is_some());
        }
        assert_eq!(r.encoding_for(Some("extra")), None);
        assert_eq!(LayerTable::default().resolve(&LayerPref::Auto), None);
        // Even one layer waits for the first measurement: others may be on their way.
        let t0 = Instant::now();
        let mut one = LayerRanker::new(2);
        let e = one.encoding_for(None).unwrap();
        let t = one.on_packet(t0, e, 100, None).clone();
        assert_eq!(t.resolve(&LayerPref::Rank(0)), None);
        assert!(!one.handle_timeout(ms(t0, 100)));
        assert!(one.handle_timeout(ms(t0, FIRST_RANK_AFTER.as_millis() as u64)));
        assert_eq!(
            one.table().resolve(&LayerPref::Rank(0)).unwrap().encoding,
            e
        );
    }
}
