//! One recording's clock: every frame's RTP timestamp mapped to nanoseconds from the
//! recording's start, continuous across publisher restarts, and frames of every track put
//! in one order (a muxer takes them in time order across tracks).
//!
//! Within a publisher generation, a track's time is its RTP timestamp since its first frame,
//! placed at that first frame's arrival after the generation's first arrival (so audio and
//! video stay as close as they arrived). A new generation starts [`RESTART_STEP`] after the
//! newest frame written: the time the publisher was away is closed, never a jump back.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

/// Where a new publisher generation starts after the last frame of the one before.
pub const RESTART_STEP: Duration = Duration::from_millis(40);
/// Frames are held this long (in media time) so that a late frame of another track can
/// still go before them.
pub const INTERLEAVE_HOLD: Duration = Duration::from_millis(300);

/// A track of the recording within a generation (audio, or a video encoding).
pub type TrackKey = (bool, u8);

#[derive(Debug)]
struct TrackClock {
    base_ns: u64,
    /// The extended timestamp of its first frame, and the last one seen.
    base_ts: i64,
    last_ts: i64,
    clock: u32,
}

#[derive(Debug)]
struct Generation {
    id: u32,
    start_ns: u64,
    first_arrival: Instant,
    tracks: HashMap<TrackKey, TrackClock>,
}

/// The mapping of RTP time to the recording's time.
#[derive(Debug, Default)]
pub struct Timeline {
    current: Option<Generation>,
    /// The newest time handed out.
    newest_ns: u64,
    /// Publisher generations seen.
    generations: u32,
    /// The last generations replaced: their late frames are dropped.
    retired: Vec<u32>,
}

/// Replaced generations remembered.
const RETIRED_KEPT: usize = 8;

impl Timeline {
    /// Publisher generations seen so far.
    pub fn generations(&self) -> u32 {
        self.generations
    }

    /// The recording time of a frame of `track` in publisher `generation`, whose RTP
    /// timestamp (of a `clock` Hz clock) is `ts` and whose first packet arrived at `arrival`.
    /// Frames of a generation already replaced give `None`.
    pub fn map(
        &mut self,
        generation: u32,
        track: TrackKey,
        clock: u32,
        ts: u32,
        arrival: Instant,
    ) -> Option<u64> {
        match &self.current {
            Some(g) if g.id == generation => {}
            _ if self.retired.contains(&generation) => return None,
            _ => {
                if let Some(old) = self.current.as_ref().map(|g| g.id) {
                    if self.retired.len() >= RETIRED_KEPT {
                        self.retired.remove(0);
                    }
                    self.retired.push(old);
                }
                let start_ns = match self.current {
                    None => 0,
                    Some(_) => self.newest_ns + RESTART_STEP.as_nanos() as u64,
                };
                self.generations += 1;
                self.current = Some(Generation {
                    id: generation,
                    start_ns,
                    first_arrival: arrival,
                    tracks: HashMap::new(),
                });
            }
        }
        let g = self.current.as_mut()?;
        let (start_ns, first_arrival) = (g.start_ns, g.first_arrival);
        let t = g.tracks.entry(track).or_insert_with(|| {
            let offset = arrival.saturating_duration_since(first_arrival).as_nanos() as u64;
            TrackClock {
                base_ns: start_ns + offset,
                base_ts: i64::from(ts),
                last_ts: i64::from(ts),
                clock: clock.max(1),
            }
        });
        // Extend the 32-bit timestamp from the last one seen.
        let delta = i64::from(ts.wrapping_sub(t.last_ts as u32) as i32);
        let ext = t.last_ts + delta;
        t.last_ts = t.last_ts.max(ext);
        let since = (ext - t.base_ts).max(0) as u128;
        let ns = t.base_ns + (since * 1_000_000_000 / u128::from(t.clock)) as u64;
        self.newest_ns = self.newest_ns.max(ns);
        Some(ns)
    }
}

/// Frames of every track put in time order: a frame leaves once a frame
/// [`INTERLEAVE_HOLD`] newer has come, or at the end; times never go back (a frame later
/// than one already out is moved up to it).
#[derive(Debug)]
pub struct Interleaver<T> {
    heap: BinaryHeap<Reverse<(u64, u64, Slot<T>)>>,
    order: u64,
    newest: u64,
    last_out: u64,
}

/// A frame in the heap, ordered only by its time and arrival order.
#[derive(Debug)]
struct Slot<T>(T);

impl<T> PartialEq for Slot<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl<T> Eq for Slot<T> {}
impl<T> PartialOrd for Slot<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Slot<T> {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

impl<T> Default for Interleaver<T> {
    fn default() -> Self {
        Interleaver {
            heap: BinaryHeap::new(),
            order: 0,
            newest: 0,
            last_out: 0,
        }
    }
}

impl<T> Interleaver<T> {
    /// Frames waiting.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Takes a frame of time `ns`.
    pub fn push(&mut self, ns: u64, frame: T) {
        self.order += 1;
        self.newest = self.newest.max(ns);
        self.heap.push(Reverse((ns, self.order, Slot(frame))));
    }

    /// Keeps only the waiting frames for which `keep(time, frame)` holds.
    pub fn retain(&mut self, mut keep: impl FnMut(u64, &T) -> bool) {
        self.heap.retain(|Reverse((ns, _, Slot(f)))| keep(*ns, f));
    }

    /// The next frame whose time has passed the hold (all of them when `all`), with its
    /// time.
    pub fn pop(&mut self, all: bool) -> Option<(u64, T)> {
        let hold = INTERLEAVE_HOLD.as_nanos() as u64;
        let Reverse((ns, _, _)) = self.heap.peek()?;
        if !all && ns.saturating_add(hold) > self.newest {
            return None;
        }
        let Reverse((ns, _, Slot(frame))) = self.heap.pop()?;
        let ns = ns.max(self.last_out);
        self.last_out = ns;
        Some((ns, frame))
    }
}
