//! The worker's side of transcoded ladders (`crate::process`, `--ladder`): a single-layer
//! VP8 or H.264 publisher's packets go to its ladder's thread (a `try_send`), the rungs' packets
//! come back as [`Command::LadderMedia`] on this worker's own command queue and are routed
//! as more encodings of the publisher, a viewer's keyframe request for a rung goes to the
//! ladder's encoder, and the housekeeping tick starts and stops the ladder on demand. A
//! publisher whose channel turned the ladder off (its grant, `Node::publish`) never gets one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use super::{Command, Worker};
use crate::codec::Codec;
use crate::forward::{Kind, MediaPacket};
use crate::ids::{SessionId, StreamId};
use crate::process::thread::{LadderHandle, LadderOut, LadderSink};
use crate::process::{coding, Change, Demand, LadderConfig};
use crate::record::assemble::RecPacket;
use crate::router::Endpoint;

/// A publisher the ladder may run for, and its ladder while it does.
#[derive(Debug)]
pub(crate) struct LadderSource {
    stream: StreamId,
    /// Its channel lets the node ladder it (read once, at go-live).
    allowed: bool,
    /// It sends more than one video encoding, or neither VP8 nor H.264: nothing to ladder.
    unfit: bool,
    /// The codec of its video, once seen (the ladder's, when it starts).
    codec: Option<Codec>,
    demand: Demand,
    running: Option<LadderHandle>,
    /// Its place among the node's running ladders, held while it runs.
    slot: Option<LadderSlot>,
    /// Wanted but refused a place (logged once).
    refused: bool,
}

/// How many ladders the node runs at once: each takes about a core at 720p, so at most
/// half the cores, and never so many that the media workers starve.
#[derive(Debug)]
pub(crate) struct LadderSlots {
    running: Arc<AtomicUsize>,
    max: usize,
}

impl LadderSlots {
    /// Half the machine's cores, at least one.
    pub(crate) fn for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        LadderSlots::new((cores / 2).max(1))
    }

    pub(crate) fn new(max: usize) -> Self {
        LadderSlots {
            running: Arc::new(AtomicUsize::new(0)),
            max,
        }
    }

    /// Ladders running now.
    pub(crate) fn running(&self) -> usize {
        self.running.load(Ordering::Acquire)
    }

    /// A place, if one is free.
    fn take(&self) -> Option<LadderSlot> {
        self.running
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| LadderSlot(self.running.clone()))
    }
}

/// A running ladder's place, given back when dropped (stopped, or its publisher gone).
#[derive(Debug)]
struct LadderSlot(Arc<AtomicUsize>);

impl Drop for LadderSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The rungs' way back: this worker's command queue, never waited on.
struct ToWorker {
    tx: mpsc::Sender<Command>,
    id: SessionId,
}

impl LadderSink for ToWorker {
    fn try_send(&self, out: LadderOut) -> Result<(), LadderOut> {
        self.tx
            .try_send(Command::LadderMedia { id: self.id, out })
            .map_err(|e| match e.into_inner() {
                Command::LadderMedia { out, .. } => out,
                _ => LadderOut::SourceKeyframe,
            })
    }
}

/// The ladders of this worker's publishers.
pub(crate) type Ladders = HashMap<SessionId, LadderSource>;

impl Worker {
    /// A publisher opened here: a ladder may run for it when the node ladders, and only
    /// once wanted, and only if `allowed` (its channel's setting).
    pub(super) fn ladder_open(&mut self, id: SessionId, stream: StreamId, allowed: bool) {
        if !self.shared.ladder {
            return;
        }
        self.ladders.insert(
            id,
            LadderSource {
                stream,
                allowed,
                unfit: false,
                codec: None,
                demand: Demand::default(),
                running: None,
                slot: None,
                refused: false,
            },
        );
    }

    /// A publisher's packet: noted, and handed to its ladder when one runs.
    pub(super) fn ladder_in(&mut self, id: SessionId, pkt: &MediaPacket) {
        if pkt.kind != Kind::Video {
            return;
        }
        // Not a publisher opened here with the node laddering.
        let Some(l) = self.ladders.get_mut(&id) else {
            return;
        };
        if pkt.source.encoding != 0 || !coding::ladders(pkt.codec) {
            l.unfit = true;
            l.running = None;
            l.slot = None;
            return;
        }
        if l.codec != Some(pkt.codec) {
            // Its first video packet, or a codec change (a renegotiation): a running ladder
            // of the other codec stops, and the next tick starts one of this codec if wanted.
            l.codec = Some(pkt.codec);
            if l.running.take().is_some() {
                l.slot = None;
                l.demand = Demand::default();
            }
        }
        if let Some(h) = &l.running {
            h.send(RecPacket {
                codec: pkt.codec,
                generation: pkt.source.generation,
                encoding: 0,
                seq: pkt.seq as u16,
                ts: pkt.ts,
                marker: pkt.marker,
                keyframe: pkt.keyframe,
                // The packet's own bytes, shared, not copied.
                payload: bytes::Bytes::from_owner(pkt.payload.clone()),
            });
        }
    }

    /// The housekeeping tick: each ladder started or stopped as its viewers want.
    pub(super) fn ladder_demand(&mut self, now: Instant) {
        if !self.shared.ladder {
            return;
        }
        // Viewers here of a source elsewhere: the source's worker decides.
        for (stream, on) in self.router.poll_ladder_wants() {
            let worker = self.id;
            self.tell_peers(|| Command::LadderWant { stream, worker, on });
        }
        for (id, l) in self.ladders.iter_mut() {
            let Some(codec) = l.codec else {
                // No video yet: nothing to ladder.
                continue;
            };
            let wanted = l.allowed && !l.unfit && self.router.ladder_wanted(l.stream);
            match l.demand.update(wanted, now) {
                Some(Change::Start) => {
                    let Some(slot) = self.shared.ladder_slots.take() else {
                        // Asked again on the next tick, when a place may be free.
                        l.demand = Demand::default();
                        if !l.refused {
                            l.refused = true;
                            tracing::warn!(session = %id, "ladder not started: the node runs as many as it may");
                        }
                        continue;
                    };
                    l.refused = false;
                    let sink = ToWorker {
                        tx: self.shared.peers[self.id.0].clone(),
                        id: *id,
                    };
                    let dropped = self
                        .shared
                        .metrics
                        .forward_drops
                        .with_label_values(&["ladder_queue_full"]);
                    match LadderHandle::start(
                        codec,
                        LadderConfig::default(),
                        self.shared.ladder_watermark.clone(),
                        id.0 as u32,
                        sink,
                        dropped,
                    ) {
                        Ok(h) => {
                            tracing::info!(session = %id, "ladder started");
                            l.running = Some(h);
                            l.slot = Some(slot);
                        }
                        Err(e) => tracing::warn!(error = %e, "ladder thread not started"),
                    }
                }
                Some(Change::Stop) => {
                    tracing::info!(session = %id, "ladder stopped");
                    // Dropping the handle ends its thread; not waited for here.
                    l.running = None;
                    l.slot = None;
                }
                None => {}
            }
        }
    }

    /// What a publisher's ladder thread handed back.
    pub(super) fn ladder_media(&mut self, id: SessionId, out: LadderOut) {
        let now = Instant::now();
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        let stream = s.stream;
        match out {
            LadderOut::Packets(pkts) => {
                for p in &pkts {
                    let Some(s) = self.sessions.get_mut(&id) else {
                        return;
                    };
                    if let Some(m) = s.rung_packet(p, now) {
                        self.route_from_source(stream, Arc::new(m), Endpoint::Session(id));
                    }
                }
                self.apply_upstream(now);
            }
            LadderOut::SourceKeyframe => {
                s.request_keyframe(0, now, &mut self.batch, &mut self.effects);
            }
        }
    }

    /// A viewer's keyframe request for rung `rung` of publisher `id`'s ladder.
    pub(super) fn ladder_keyframe(&mut self, id: SessionId, rung: u8) {
        if let Some(h) = self.ladders.get(&id).and_then(|l| l.running.as_ref()) {
            h.request_keyframe(rung);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ladders_take_places_up_to_the_limit_and_give_them_back() {
        let slots = LadderSlots::new(2);
        let a = slots.take().expect("a first place");
        let b = slots.take().expect("a second place");
        assert!(slots.take().is_none(), "no third");
        drop(a);
        let c = slots.take().expect("the freed place");
        drop((b, c));
        assert_eq!(slots.running(), 0);
    }
}
