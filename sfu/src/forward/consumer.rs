//! One viewer's egress: a continuous audio stream and a continuous video stream, fed by
//! whatever publisher and layer is current. Decide (target from preference), select, then
//! rewrite, each by its own part.

use std::sync::Arc;
use std::time::Instant;

use super::allocator::{Allocation, Allocator, AllocatorConfig, PathReport};
#[cfg(test)]
use super::layers::EncodingInfo;
use super::layers::{LayerPref, LayerRanker, LayerTable};
use super::rewrite::SeqRewriter;
use super::selector::{LayerSelector, Selected};
use super::temporal::{TemporalFilter, ALL};
use super::timeline::{Anchor, TimelineEstimator};
use super::vp8::{Vp8Munger, Vp8Rewrite};
use super::{DropReason, MediaPacket, SourceKey};
use crate::budget::Pressure;
use crate::codec::Codec;

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Audio.
    Audio,
    /// Video.
    Video,
}

/// A packet ready for the viewer's outgoing stream of `kind`.
#[derive(Debug, Clone)]
pub struct Forward {
    /// Which outgoing stream.
    pub kind: Kind,
    /// Codec, to pick the viewer's payload type.
    pub codec: Codec,
    /// Outgoing extended sequence number.
    pub seq: u64,
    /// Outgoing RTP timestamp.
    pub ts: u32,
    /// Marker bit.
    pub marker: bool,
    /// Payload, shared with the publisher's packet.
    pub payload: Arc<[u8]>,
    /// VP8 descriptor rewrite to apply while serialising.
    pub vp8: Option<Vp8Rewrite>,
    /// First packet after a layer or publisher switch.
    pub switched: bool,
    /// The publisher and encoding it came from (what a pipe's far side tells layers and
    /// publisher restarts by).
    pub source: SourceKey,
    /// It starts a keyframe (a pipe's far side need not parse the payload again).
    pub keyframe: bool,
}

#[derive(Debug)]
struct VideoOut {
    selector: LayerSelector,
    temporal: TemporalFilter,
    rewriter: SeqRewriter,
    vp8: Vp8Munger,
    /// Where the outgoing timestamps stand on the node's clock.
    timeline: TimelineEstimator,
    /// The table the current target was resolved against.
    resolved_against: Option<Arc<LayerTable>>,
}

#[derive(Debug)]
struct AudioOut {
    source: Option<SourceKey>,
    rewriter: SeqRewriter,
}

/// The rank of `key` in `table` (its position low to high).
fn rank_of(table: &LayerTable, key: SourceKey) -> Option<usize> {
    table.active.iter().position(|e| e.encoding == key.encoding)
}

/// At most this many choices: every encoding with every temporal layer.
const MAX_STEPS: usize = LayerRanker::MAX_ENCODINGS * 4;

/// What the allocator chooses among, lowest first: each layer without its top temporal
/// layer, then whole, so that the frame rate halves before the resolution goes down; the
/// lowest layer also at each of its lower temporal layers, down to the base alone (a
/// quarter of the frame rate with L1T3), before video pauses.
struct Steps {
    /// Each step's bitrate.
    bps: [u64; MAX_STEPS],
    /// Each step's rank and highest temporal layer ([`ALL`] for every one).
    layer: [(usize, u8); MAX_STEPS],
    len: usize,
}

impl Steps {
    fn of(table: &LayerTable) -> Self {
        let mut s = Steps {
            bps: [0; MAX_STEPS],
            layer: [(0, ALL); MAX_STEPS],
            len: 0,
        };
        let push = |s: &mut Steps, bps, layer| {
            if s.len < MAX_STEPS {
                s.bps[s.len] = bps;
                s.layer[s.len] = layer;
                s.len += 1;
            }
        };
        for (rank, e) in table.active.iter().enumerate() {
            let below_top = e.temporal.len().saturating_sub(1);
            let lowest = if rank == 0 {
                0
            } else {
                below_top.saturating_sub(1)
            };
            for tid in lowest as u8..below_top as u8 {
                push(&mut s, e.bitrate_up_to(Some(tid)), (rank, tid));
            }
            push(&mut s, e.bitrate_bps, (rank, ALL));
        }
        s
    }

    fn bps(&self) -> &[u64] {
        &self.bps[..self.len]
    }

    /// The highest step at or below `step` (the lowest when none is).
    fn at_or_below(&self, step: (usize, u8)) -> usize {
        self.layer[..self.len]
            .iter()
            .rposition(|&s| s <= step)
            .unwrap_or(0)
    }

    /// The highest step of `rank`.
    fn top_of(&self, rank: usize) -> usize {
        self.layer[..self.len]
            .iter()
            .rposition(|&(r, _)| r <= rank)
            .unwrap_or(0)
    }
}

/// One viewer's forwarding state.
#[derive(Debug)]
pub struct Consumer {
    /// The viewer's own choice: a cap on what the allocator gives.
    pref: LayerPref,
    alloc: Allocator,
    /// The allocator's last target; unrestricted until its first decision.
    allocation: Allocation,
    video: VideoOut,
    audio: AudioOut,
    /// Kept below the top layer by the node's budget (it joined while the node was over
    /// it, or the top layer was shed) until the node is back within it. `None` before the
    /// first allocation.
    capped: Option<bool>,
    /// The encoding and the (rank, temporal layer) of the allocator's target, which its
    /// index into the steps stands for.
    step: Option<(u8, (usize, u8))>,
}

/// What one [`Consumer::allocate`] decided, for the driver to apply to the viewer's
/// transport and to tell the player.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allocated {
    /// The target now.
    pub target: Allocation,
    /// The highest temporal layer sent, when fewer than all (the frame rate is reduced).
    pub temporal: Option<u8>,
    /// Whether it changed.
    pub changed: bool,
    /// The viewer's first decision.
    pub initial: bool,
    /// The rate the viewer's estimator should probe towards.
    pub desired_bps: u64,
    /// The least the viewer's transport should keep sending, padding included.
    pub minimum_bps: u64,
    /// Reset the estimator to this rate and probe again (while paused).
    pub reset_bps: Option<u64>,
    /// The path no longer carries what the viewer had (a lower layer, or paused): what it
    /// was sent before is not worth sending again.
    pub stepped_down: bool,
}

impl Consumer {
    /// A consumer whose outgoing streams start at the given (random) origins.
    pub fn new(pref: LayerPref, seq_origin: [u16; 2], ts_origin: [u32; 2]) -> Self {
        Consumer {
            pref,
            alloc: Allocator::new(AllocatorConfig::default()),
            allocation: Allocation::Layer(usize::MAX),
            video: VideoOut {
                selector: LayerSelector::default(),
                temporal: TemporalFilter::default(),
                rewriter: SeqRewriter::new(90_000, seq_origin[0], ts_origin[0]),
                vp8: Vp8Munger::default(),
                timeline: TimelineEstimator::new(90_000),
                resolved_against: None,
            },
            audio: AudioOut {
                source: None,
                rewriter: SeqRewriter::new(48_000, seq_origin[1], ts_origin[1]),
            },
            capped: None,
            step: None,
        }
    }

    /// Changes the wanted layer; takes effect at the next keyframe of that layer.
    pub fn set_pref(&mut self, pref: LayerPref) {
        self.pref = pref;
        self.video.resolved_against = None;
    }

    /// The viewer's wanted layer.
    pub fn pref(&self) -> &LayerPref {
        &self.pref
    }

    /// The video source now flowing to the viewer.
    pub fn current_video(&self) -> Option<SourceKey> {
        self.video.selector.current()
    }

    /// The video source this viewer should end up on (its demand on the source).
    pub fn target_video(&self) -> Option<SourceKey> {
        self.video.selector.target()
    }

    /// The source whose keyframe this viewer is waiting for.
    pub fn waiting_for_keyframe(&self) -> Option<SourceKey> {
        self.video.selector.waiting_for()
    }

    /// The anchor of the viewer's video timeline, when it moved since last taken (see
    /// [`super::timeline`]).
    pub fn take_timeline(&mut self) -> Option<Anchor> {
        self.video.timeline.take()
    }

    /// Whether the allocator paused this viewer's video (audio goes on).
    pub fn paused(&self) -> bool {
        self.allocation == Allocation::Paused
    }

    /// Runs the allocator with what the viewer's session reports of its `path` (the
    /// estimate, none without congestion control; what it sent; its pacer queue; its loss
    /// over the last second), against the layers its last packet carried, under the node's
    /// budget `pressure`, and retargets the video when the decision changes. `None` until
    /// the layers are known.
    pub fn allocate(
        &mut self,
        now: Instant,
        path: PathReport,
        pressure: Pressure,
    ) -> Option<Allocated> {
        let table = self.video.resolved_against.clone()?;
        let steps = Steps::of(&table);
        let rank = table
            .resolve_rank(&self.pref)?
            .min(self.node_cap(&table, pressure));
        let cap = steps.top_of(rank);
        // The steps may have been renumbered since the last decision (a layer, or a layer's
        // temporal layers, came or went): the target keeps what it stood for, its encoding
        // at the rank it has now (a layer added below, a transcoded rung, moves it up a
        // rank), or the best step under its old place if it is gone.
        if let (Some((encoding, was)), Some(Allocation::Layer(i))) =
            (self.step, self.alloc.target())
        {
            let now_at = table.active.iter().position(|e| e.encoding == encoding);
            let want = now_at.map_or(was, |rank| (rank, was.1));
            if steps.layer[..steps.len].get(i) != Some(&want) {
                self.alloc
                    .retarget(Allocation::Layer(steps.at_or_below(want)));
            }
        }
        if let Some(bps) = path.estimate {
            self.alloc.set_estimate(bps);
        }
        self.alloc.set_sent(path.sent_bps);
        self.alloc.set_unpadded(path.unpadded);
        self.alloc.set_queue_delay(path.queue_delay);
        self.alloc.set_loss(path.loss);
        self.alloc.set_base(steps.at_or_below((0, ALL)));
        let d = self.alloc.decide(now, steps.bps(), cap);
        let (target, temporal) = match d.target {
            Allocation::Layer(i) => {
                let (rank, tid) = steps.layer[i.min(steps.len.saturating_sub(1))];
                self.step = table.active.get(rank).map(|e| (e.encoding, (rank, tid)));
                (Allocation::Layer(rank), tid)
            }
            Allocation::Paused => {
                self.step = None;
                (Allocation::Paused, ALL)
            }
        };
        let mut stepped_down = false;
        if d.changed {
            // What flows now, not what was targeted: a step down is one below it.
            let flowing = self.video.selector.current();
            self.allocation = target;
            self.video.temporal.set_target(temporal);
            if target == Allocation::Paused {
                // The stream resumes as a switch: at a keyframe, numbering continuous.
                self.video.selector.pause();
            }
            let target = self.target_in(&table);
            let down = match (flowing, target) {
                (Some(f), Some(t)) => rank_of(&table, t) < rank_of(&table, f),
                _ => false,
            };
            if down {
                // The path no longer carries the current layer.
                self.video.selector.set_target_shedding(target);
            } else {
                self.video.selector.set_target(target);
            }
            stepped_down = down || self.allocation == Allocation::Paused;
        }
        Some(Allocated {
            target,
            temporal: (temporal != ALL).then_some(temporal),
            changed: d.changed,
            initial: d.initial,
            desired_bps: d.desired_bps,
            minimum_bps: d.minimum_bps,
            reset_bps: d.reset_estimate.then(|| self.alloc.reset_bps(steps.bps())),
            stepped_down,
        })
    }

    /// The highest rank the node's budget allows this viewer: the top layer is shed for
    /// everyone from [`Pressure::ShedTop`], for viewers who joined under pressure from
    /// [`Pressure::CapNew`]; a viewer once capped stays so until [`Pressure::Normal`]
    /// (giving the layer back on the way down would bring the node over again).
    fn node_cap(&mut self, table: &LayerTable, pressure: Pressure) -> usize {
        let joined = self.capped.is_none() && pressure >= Pressure::CapNew;
        let capped = match pressure {
            Pressure::Normal => false,
            Pressure::CapNew => joined || self.capped == Some(true),
            Pressure::ShedTop | Pressure::Refuse => true,
        };
        self.capped = Some(capped);
        let top = table.active.len().saturating_sub(1);
        top.saturating_sub(usize::from(capped))
    }

    /// The video source for `table`: the viewer's choice, capped by the allocation.
    fn target_in(&self, table: &LayerTable) -> Option<SourceKey> {
        let rank = table.resolve_rank(&self.pref)?;
        match self.allocation {
            Allocation::Layer(r) => table.key(rank.min(r)),
            Allocation::Paused => None,
        }
    }

    /// Decides, selects and rewrites one packet for this viewer.
    pub fn forward(&mut self, pkt: &MediaPacket, now: Instant) -> Result<Forward, DropReason> {
        match pkt.kind {
            super::Kind::Audio => self.forward_audio(pkt, now),
            super::Kind::Video => self.forward_video(pkt, now),
        }
    }

    fn forward_audio(&mut self, pkt: &MediaPacket, now: Instant) -> Result<Forward, DropReason> {
        let a = &mut self.audio;
        let switched = a.source != Some(pkt.source);
        if switched {
            a.source = Some(pkt.source);
            a.rewriter.switch_source(pkt.seq, pkt.ts, now);
        }
        let out = a
            .rewriter
            .rewrite(pkt.seq, pkt.ts, now)
            .ok_or(DropReason::Stale)?;
        Ok(Forward {
            kind: Kind::Audio,
            codec: pkt.codec,
            seq: out.seq,
            ts: out.ts,
            marker: pkt.marker,
            payload: pkt.payload.clone(),
            vp8: None,
            switched,
            source: pkt.source,
            keyframe: pkt.keyframe,
        })
    }

    /// Targets the video source for `table`, unless it was resolved against it already.
    fn resolve(&mut self, table: &Arc<LayerTable>) {
        let stale = self
            .video
            .resolved_against
            .as_ref()
            .is_none_or(|t| !Arc::ptr_eq(t, table));
        if stale {
            // Renumbered layers (one came or went): the allocation keeps the encoding it
            // stood for, at its rank now (a transcoded rung added under a single-layer
            // source moves the source up a rank, and its viewer stays on it); if that
            // encoding is gone, the best one under it that is still there (not the one
            // that took its place in the list, which is higher).
            if let (Some(old), Allocation::Layer(r)) =
                (&self.video.resolved_against, self.allocation)
            {
                // (`usize::MAX` before the first allocation: unrestricted, kept so.)
                let kept = (old.generation == table.generation && r < old.active.len())
                    .then(|| old.active.get(..=r))
                    .flatten()
                    .and_then(|under| {
                        under.iter().rev().find_map(|e| {
                            let now_at =
                                table.active.iter().position(|n| n.encoding == e.encoding)?;
                            Some((e.encoding, now_at))
                        })
                    });
                if let Some((encoding, now_at)) = kept {
                    self.allocation = Allocation::Layer(now_at);
                    // The allocator's target follows it (`allocate` maps it by encoding).
                    if let Some((e, (rank, _))) = &mut self.step {
                        if old.active.get(r).is_some_and(|o| o.encoding == *e) {
                            *e = encoding;
                            *rank = now_at;
                        }
                    }
                }
            }
            let target = self.target_in(table);
            self.video.selector.set_target(target);
            self.video.resolved_against = Some(table.clone());
        }
    }

    /// The video source this viewer starts on, given the stream's newest layer `table`,
    /// before any packet reached it: what a cached group of pictures is looked up by.
    pub fn start(&mut self, table: &Arc<LayerTable>) -> Option<SourceKey> {
        self.resolve(table);
        self.video.selector.waiting_for()
    }

    /// Sends `gop` (a keyframe of the source this viewer waits for and every packet of
    /// that source since, oldest first) through `emit`, so the viewer can decode from now
    /// on. The frames keep their order and content; their timestamps are squeezed to one
    /// tick apart, ending on the newest frame's, so a player shows them at once and goes
    /// on live (with their own spacing it would play the cached time out behind live).
    /// Late copies of replayed packets are dropped afterwards. Returns the packets sent.
    ///
    /// `gop` may be of a lower layer of the same publisher than the one waited for (its
    /// group of pictures was too large to send at once, see [`super::GopCache::join_replay`]):
    /// the viewer starts on that layer and still waits for the other's keyframe, and moves
    /// onto it then, as at any switch.
    pub fn replay(
        &mut self,
        gop: &[Arc<MediaPacket>],
        now: Instant,
        emit: impl FnMut(Forward),
    ) -> usize {
        let Some(first) = gop.first() else {
            return 0;
        };
        let target = self.video.selector.waiting_for();
        match target {
            Some(t) if t == first.source => self.replay_waited(gop, now, emit),
            // A lower layer, only as a start.
            Some(t)
                if t.generation == first.source.generation
                    && self.video.selector.current().is_none() =>
            {
                self.video.selector.set_target(Some(first.source));
                let sent = self.replay_waited(gop, now, emit);
                self.video.selector.set_target(target);
                sent
            }
            _ => 0,
        }
    }

    /// [`Self::replay`] of the source the viewer waits for.
    fn replay_waited(
        &mut self,
        gop: &[Arc<MediaPacket>],
        now: Instant,
        mut emit: impl FnMut(Forward),
    ) -> usize {
        let Some(first) = gop.first() else {
            return 0;
        };
        if !first.keyframe || self.video.selector.waiting_for() != Some(first.source) {
            return 0;
        }
        // The newest frame: the furthest after the keyframe (arrival order may differ).
        let newest = gop
            .iter()
            .map(|p| p.ts)
            .max_by_key(|ts| ts.wrapping_sub(first.ts))
            .unwrap_or(first.ts);
        // Each frame's distance back from the newest, oldest first, once each.
        let back = |ts: u32| newest.wrapping_sub(ts);
        let mut frames: Vec<u32> = gop.iter().map(|p| back(p.ts)).collect();
        frames.sort_unstable_by(|a, b| b.cmp(a));
        frames.dedup();
        let mut sent = 0;
        let mut highest = first.seq;
        for p in gop {
            let Ok(i) = frames.binary_search_by(|d| back(p.ts).cmp(d)) else {
                continue;
            };
            let later_frames = (frames.len() - 1 - i) as u32;
            let mut q = MediaPacket::clone(p);
            q.ts = newest.wrapping_sub(later_frames);
            // The target was chosen from the newest table (`start`); an older packet's
            // table (perhaps not yet ranked) must not move it.
            q.layers = None;
            if let Ok(f) = self.forward_video(&q, now) {
                emit(f);
                sent += 1;
                highest = highest.max(p.seq);
            }
        }
        if sent > 0 {
            self.video.rewriter.drop_before(highest + 1);
            // Their timestamps were squeezed: they say nothing of the stream's timeline.
            self.video.timeline.reset();
        }
        sent
    }

    fn forward_video(&mut self, pkt: &MediaPacket, now: Instant) -> Result<Forward, DropReason> {
        if let Some(table) = &pkt.layers {
            self.resolve(table);
        }
        if self.allocation == Allocation::Paused {
            return Err(DropReason::Paused);
        }
        let v = &mut self.video;
        let switched = match v.selector.select(pkt.source, pkt.keyframe) {
            Selected::Forward { switched } => switched,
            Selected::Drop(reason) => return Err(reason),
        };
        if switched {
            v.rewriter.switch_source(pkt.seq, pkt.ts, now);
            v.vp8.switch_source();
            v.temporal.splice();
            v.timeline.reset();
        }
        if v.rewriter.is_late(pkt.seq) {
            // Reordered, or repaired upstream: its frame was decided when it was due (a
            // skipped one stays out), and the filter follows the newest frames only.
            if pkt.codec == Codec::Vp8 && v.vp8.was_skipped(&pkt.payload) {
                return Err(DropReason::Temporal);
            }
        } else if !v.temporal.select(pkt.temporal, pkt.keyframe) {
            // Closed up: the viewer sees a lower frame rate, not a loss.
            v.rewriter.skip(pkt.seq);
            if pkt.codec == Codec::Vp8 {
                v.vp8.skip(&pkt.payload);
            }
            return Err(DropReason::Temporal);
        }
        let out = v
            .rewriter
            .rewrite(pkt.seq, pkt.ts, now)
            .ok_or(DropReason::Stale)?;
        v.timeline.observe(pkt.arrival, out.ts);
        let vp8 = match pkt.codec {
            Codec::Vp8 => v.vp8.munge(&pkt.payload),
            _ => None,
        };
        Ok(Forward {
            kind: Kind::Video,
            codec: pkt.codec,
            seq: out.seq,
            ts: out.ts,
            marker: pkt.marker,
            payload: pkt.payload.clone(),
            vp8,
            switched,
            source: pkt.source,
            keyframe: pkt.keyframe,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn layer(encoding: u8, bitrate_bps: u64, temporal: &[u16]) -> EncodingInfo {
        EncodingInfo {
            encoding,
            rid: None,
            bitrate_bps,
            temporal: temporal.to_vec(),
        }
    }

    fn table(temporal: &[u16]) -> Arc<LayerTable> {
        Arc::new(LayerTable {
            generation: 1,
            active: vec![
                layer(0, 150_000, temporal),
                layer(1, 500_000, temporal),
                layer(2, 1_200_000, temporal),
            ],
            settled: true,
        })
    }

    fn key(t: &Arc<LayerTable>, now: Instant) -> MediaPacket {
        MediaPacket {
            kind: super::super::Kind::Video,
            source: SourceKey {
                generation: 1,
                encoding: 2,
            },
            codec: Codec::Vp8,
            seq: 1,
            ts: 0,
            marker: true,
            keyframe: true,
            payload: Arc::from(vec![0x10, 0, 0, 0]),
            arrival: now,
            layers: Some(t.clone()),
            temporal: None,
        }
    }

    /// A path that carries 5 Mbit/s and has carried it.
    fn wide_open() -> PathReport {
        PathReport {
            estimate: Some(5_000_000),
            sent_bps: 5_000_000,
            ..PathReport::default()
        }
    }

    #[test]
    fn the_target_keeps_its_meaning_when_temporal_layers_come_and_go() {
        let t0 = Instant::now();
        let mut c = Consumer::new(LayerPref::Auto, [0, 0], [0, 0]);
        let plain = table(&[]);
        let _ = c.forward(&key(&plain, t0), t0);
        let a = c.allocate(t0, wide_open(), Pressure::Normal).unwrap();
        assert_eq!((a.target, a.temporal), (Allocation::Layer(2), None));
        // The same layers, now with temporal layers measured: more steps below the top.
        let layered = table(&[500, 750, 1000]);
        let _ = c.forward(&key(&layered, t0), t0);
        for ms in [100, 200, 300] {
            let now = t0 + Duration::from_millis(ms);
            let a = c.allocate(now, wide_open(), Pressure::Normal).unwrap();
            assert_eq!((a.target, a.temporal), (Allocation::Layer(2), None));
            assert!(!a.changed, "nothing changed for the viewer");
        }
        // And back.
        let _ = c.forward(&key(&plain, t0), t0);
        let a = c
            .allocate(
                t0 + Duration::from_millis(400),
                wide_open(),
                Pressure::Normal,
            )
            .unwrap();
        assert_eq!(
            (a.target, a.temporal, a.changed),
            (Allocation::Layer(2), None, false)
        );
    }

    /// A transcoded ladder's rungs come under a single-layer source a viewer watches: it
    /// stays on the source, now the top of three, not on what took the source's rank.
    #[test]
    fn the_target_keeps_its_layer_when_layers_come_below_it() {
        let t0 = Instant::now();
        let mut c = Consumer::new(LayerPref::Auto, [0, 0], [0, 0]);
        let one = Arc::new(LayerTable {
            generation: 1,
            active: vec![layer(2, 1_200_000, &[])],
            settled: true,
        });
        let _ = c.forward(&key(&one, t0), t0);
        let a = c.allocate(t0, wide_open(), Pressure::Normal).unwrap();
        assert_eq!(a.target, Allocation::Layer(0));
        let _ = c.forward(&key(&table(&[]), t0), t0);
        let a = c
            .allocate(
                t0 + Duration::from_millis(100),
                wide_open(),
                Pressure::Normal,
            )
            .unwrap();
        assert_eq!(a.target, Allocation::Layer(2), "still encoding 2");
        assert!(!a.changed, "nothing changed for the viewer");
        assert_eq!(c.target_in(&table(&[])).map(|k| k.encoding), Some(2));
    }

    #[test]
    fn a_viewer_whose_layer_goes_away_moves_down_not_up() {
        let t0 = Instant::now();
        let mut c = Consumer::new(LayerPref::Auto, [0, 0], [0, 0]);
        // The path carries the middle layer (500 kbit/s) and not the top.
        let middle = PathReport {
            estimate: Some(900_000),
            sent_bps: 900_000,
            ..PathReport::default()
        };
        let three = table(&[]);
        let _ = c.forward(&key(&three, t0), t0);
        let a = c.allocate(t0, middle, Pressure::Normal).unwrap();
        assert_eq!(a.target, Allocation::Layer(1));
        // The publisher stops sending the middle layer: the viewer goes to the one under
        // it, not to the top one that took its place in the list.
        let two = Arc::new(LayerTable {
            generation: 1,
            active: vec![layer(0, 150_000, &[]), layer(2, 1_200_000, &[])],
            settled: true,
        });
        let _ = c.forward(&key(&two, t0), t0);
        let a = c
            .allocate(t0 + Duration::from_millis(100), middle, Pressure::Normal)
            .unwrap();
        assert_eq!(
            a.target,
            Allocation::Layer(0),
            "encoding 0, under the one gone"
        );
        assert_eq!(c.target_in(&two).map(|k| k.encoding), Some(0));
    }

    #[test]
    fn a_viewer_not_yet_allocated_stays_unrestricted_when_layers_change() {
        let t0 = Instant::now();
        let mut c = Consumer::new(LayerPref::Auto, [0, 0], [0, 0]);
        let three = table(&[]);
        let _ = c.forward(&key(&three, t0), t0);
        assert_eq!(c.target_in(&three).map(|k| k.encoding), Some(2));
        // The middle layer goes before the first allocation: still the top, not a layer
        // the viewer never had chosen for it.
        let two = Arc::new(LayerTable {
            generation: 1,
            active: vec![layer(0, 150_000, &[]), layer(2, 1_200_000, &[])],
            settled: true,
        });
        let _ = c.forward(&key(&two, t0), t0);
        assert_eq!(c.target_in(&two).map(|k| k.encoding), Some(2));
        assert_eq!(c.allocation, Allocation::Layer(usize::MAX));
    }

    #[test]
    fn frame_rate_halves_before_the_resolution_goes_down() {
        let l1t3 = [500, 750, 1000];
        let table = LayerTable {
            generation: 1,
            active: vec![
                layer(0, 200_000, &l1t3),
                layer(1, 600_000, &l1t3),
                layer(2, 2_000_000, &[]),
            ],
            settled: true,
        };
        let s = Steps::of(&table);
        assert_eq!(
            &s.layer[..s.len],
            [(0, 0), (0, 1), (0, ALL), (1, 1), (1, ALL), (2, ALL)]
        );
        assert_eq!(
            s.bps(),
            [100_000, 150_000, 200_000, 450_000, 600_000, 2_000_000]
        );
        assert_eq!(s.top_of(1), 4);
        assert_eq!(s.top_of(9), 5);
        // What a step stood for, in a list renumbered without it.
        assert_eq!(s.at_or_below((1, 0)), 2);
        assert_eq!(s.at_or_below((2, 1)), 4);
        assert_eq!(s.at_or_below((0, 0)), 0);
    }

    /// A layer switch splices the viewer's timestamps onto another layer's: its timeline
    /// starts afresh, and a wall-clock instant still names the frame that reaches the node
    /// then, in the viewer's own timestamps (the layers' own timestamps differ and wrap).
    #[test]
    fn the_timeline_names_the_same_frame_across_a_layer_switch() {
        use crate::forward::timeline::Timeline;
        const WALL0_US: u64 = 1_700_000_000_000_000;
        let t0 = Instant::now();
        let t = table(&[]);
        let capture = |k: u32| t0 + Duration::from_micros(u64::from(k) * 33_333);
        // Layer 2 arrives 20 ms after capture (4 ms of jitter), layer 0 35 ms after: the
        // splice's timestamps, made from the wall time between the two layers' packets, put
        // the frames 15 ms later than layer 2's anchor says.
        let delay = |enc: u8, k: u32| match enc {
            2 => Duration::from_millis(20 + u64::from(k * 7 % 5)),
            _ => Duration::from_millis(35 + u64::from(k * 3 % 4)),
        };
        let base = |enc: u8| {
            if enc == 2 {
                1_000_000u32
            } else {
                u32::MAX - 100_000
            }
        };
        let pkt = |enc: u8, k: u32| MediaPacket {
            source: SourceKey {
                generation: 1,
                encoding: enc,
            },
            seq: u64::from(k) + 1 + u64::from(enc) * 10_000,
            ts: base(enc).wrapping_add(k * 3_000),
            keyframe: k.is_multiple_of(30),
            arrival: capture(k) + delay(enc, k),
            ..key(&t, t0)
        };
        let mut c = Consumer::new(LayerPref::Rank(2), [0, 0], [0, 7]);
        let mut out_ts = std::collections::HashMap::new();
        let mut timeline = None;
        let wall_ms = |at: Instant| (WALL0_US + at.duration_since(t0).as_micros() as u64) / 1000;
        for k in 0..90u32 {
            if k == 40 {
                c.set_pref(LayerPref::Rank(0));
            }
            for enc in [0u8, 2] {
                let p = pkt(enc, k);
                if let Ok(f) = c.forward(&p, p.arrival) {
                    out_ts.insert(k, f.ts);
                    assert_eq!(f.source.encoding, if k < 60 { 2 } else { 0 }, "frame {k}");
                }
                if let Some(a) = c.take_timeline() {
                    timeline = Some(Timeline::on_wall_clock(a, 90_000, t0, WALL0_US));
                }
            }
            if k == 50 {
                // On layer 2: frame 50 reaches the node 20 ms after its capture at best.
                let tl = timeline.unwrap();
                let at = wall_ms(capture(50) + Duration::from_millis(20));
                let d = tl.ts_at(at).wrapping_sub(out_ts[&50]) as i32;
                assert!(d.abs() <= 180, "layer 2: {d} ticks off frame 50");
            }
        }
        // Switched at layer 0's keyframe (frame 60): frame 80 reaches the node 35 ms
        // after its capture at best, and the viewer's timestamps of it are spliced ones.
        let tl = timeline.unwrap();
        let at = wall_ms(capture(80) + Duration::from_millis(35));
        let d = tl.ts_at(at).wrapping_sub(out_ts[&80]) as i32;
        assert!(d.abs() <= 180, "layer 0: {d} ticks off frame 80");
        assert_ne!(out_ts[&80], pkt(0, 80).ts, "the viewer's own numbering");
    }
}
