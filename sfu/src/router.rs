//! The Router: which viewers on this worker receive a stream, and what each gets.
//!
//! One Router per worker, holding that worker's consumers keyed by session. A packet
//! (from a local publisher or from another worker) fans out to the stream's consumers;
//! each result is a [`Forward`] for that viewer's session or a counted drop. Sources and
//! sinks are not tied to WebRTC: the Router sees only [`MediaPacket`]s and session ids.

use std::collections::HashMap;
use std::time::Instant;

use crate::forward::{Consumer, DropReason, Forward, LayerPref, MediaPacket, SourceKey};
use crate::ids::{SessionId, StreamId};

/// Counts of packets not forwarded, by reason.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Drops {
    /// Waiting for a keyframe after a join or switch.
    pub awaiting_keyframe: u64,
    /// Other simulcast layer.
    pub other_layer: u64,
    /// Late packet of a replaced source.
    pub stale: u64,
    /// Codec the viewer cannot take.
    pub codec_unsupported: u64,
}

impl Drops {
    fn count(&mut self, reason: DropReason) {
        match reason {
            DropReason::AwaitingKeyframe => self.awaiting_keyframe += 1,
            DropReason::OtherLayer => self.other_layer += 1,
            DropReason::Stale => self.stale += 1,
            DropReason::CodecUnsupported => self.codec_unsupported += 1,
        }
    }
}

#[derive(Debug)]
struct Entry {
    stream: StreamId,
    consumer: Consumer,
}

/// Fan-out of streams to the consumers on one worker.
#[derive(Debug, Default)]
pub struct Router {
    streams: HashMap<StreamId, Vec<SessionId>>,
    consumers: HashMap<SessionId, Entry>,
}

impl Router {
    /// Starts forwarding `stream` to the viewer `id`.
    pub fn add_consumer(&mut self, id: SessionId, stream: StreamId, consumer: Consumer) {
        self.remove_consumer(id);
        self.streams.entry(stream).or_default().push(id);
        self.consumers.insert(id, Entry { stream, consumer });
    }

    /// Stops forwarding to `id`. Returns the stream it watched.
    pub fn remove_consumer(&mut self, id: SessionId) -> Option<StreamId> {
        let entry = self.consumers.remove(&id)?;
        if let Some(list) = self.streams.get_mut(&entry.stream) {
            list.retain(|s| *s != id);
            if list.is_empty() {
                self.streams.remove(&entry.stream);
            }
        }
        Some(entry.stream)
    }

    /// Changes a viewer's wanted layer. Returns false for an unknown viewer.
    pub fn set_pref(&mut self, id: SessionId, pref: LayerPref) -> bool {
        match self.consumers.get_mut(&id) {
            Some(e) => {
                e.consumer.set_pref(pref);
                true
            }
            None => false,
        }
    }

    /// Consumers of `stream` on this worker.
    pub fn consumer_count(&self, stream: StreamId) -> usize {
        self.streams.get(&stream).map_or(0, Vec::len)
    }

    /// The video source a viewer now receives.
    pub fn current_video(&self, id: SessionId) -> Option<SourceKey> {
        self.consumers.get(&id)?.consumer.current_video()
    }

    /// Fans `pkt` of `stream` out to its consumers: results go to `out`, keyframe needs
    /// (deduplicated) to `wants`, drops are counted.
    pub fn route(
        &mut self,
        stream: StreamId,
        pkt: &MediaPacket,
        now: Instant,
        out: &mut Vec<(SessionId, Forward)>,
        wants: &mut Vec<(StreamId, SourceKey)>,
        drops: &mut Drops,
    ) {
        let Some(ids) = self.streams.get(&stream) else {
            return;
        };
        for id in ids {
            // Invariant: every id in `streams` has an entry in `consumers`.
            let Some(entry) = self.consumers.get_mut(id) else {
                continue;
            };
            match entry.consumer.forward(pkt, now) {
                Ok(fwd) => out.push((*id, fwd)),
                Err(reason) => drops.count(reason),
            }
            if let Some(src) = entry.consumer.waiting_for_keyframe() {
                if !wants.contains(&(stream, src)) {
                    wants.push((stream, src));
                }
            }
        }
    }
}
