//! Applying the router's forwards: each [`Forward`] written into its sink's transport. The
//! worker and the benchmarks run this same code after [`Router::route`], so a benchmark
//! measures the path the node takes, not a copy of it.
//!
//! [`Router::route`]: crate::router::Router::route

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use crate::forward::{Forward, Kind};
use crate::ids::{LinkId, SessionId};
use crate::relay::{rtp, PipeOut, RelayPacket, AUDIO_LAYER};
use crate::router::Endpoint;
use crate::session::{Effect, Session, Transmitter};

/// The sessions forwards are written into, by id.
pub trait Sessions {
    /// The session `id`, if it is here.
    fn session_mut(&mut self, id: SessionId) -> Option<&mut Session>;
}

impl Sessions for HashMap<SessionId, Session> {
    fn session_mut(&mut self, id: SessionId) -> Option<&mut Session> {
        self.get_mut(&id)
    }
}

/// The relay links forwards to pipes are sent on, by id.
pub trait Pipes {
    /// Queues `fwd` for the link `id`: false for no such link.
    fn send(&mut self, id: LinkId, fwd: &Forward) -> bool;
}

/// A worker's relay links to children, each with the packets this turn gave it: a turn's
/// forwards are encoded as they come and handed to each link at once by [`Self::flush`].
#[derive(Default)]
pub struct PipeLinks {
    links: HashMap<LinkId, (Arc<dyn PipeOut>, Vec<RelayPacket>)>,
}

/// What [`PipeLinks::flush`] handed over.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Piped {
    /// Packets the links took.
    pub sent: u64,
    /// Packets dropped because a link's queue was full.
    pub dropped: u64,
}

impl PipeLinks {
    /// Adds (or replaces) the link `id`.
    pub fn insert(&mut self, id: LinkId, out: Arc<dyn PipeOut>) {
        self.links.insert(id, (out, Vec::new()));
    }

    /// Removes the link `id`; packets not yet flushed go with it.
    pub fn remove(&mut self, id: LinkId) {
        self.links.remove(&id);
    }

    /// Removes every link.
    pub fn clear(&mut self) {
        self.links.clear();
    }

    /// Hands each link the packets queued for it since the last flush.
    pub fn flush(&mut self) -> Piped {
        let mut p = Piped::default();
        for (out, pending) in self.links.values_mut() {
            if pending.is_empty() {
                continue;
            }
            let n = pending.len() as u64;
            let batch = std::mem::replace(pending, Vec::with_capacity(n as usize));
            if out.send(batch) {
                p.sent += n;
            } else {
                p.dropped += n;
            }
        }
        p
    }
}

impl Pipes for PipeLinks {
    fn send(&mut self, id: LinkId, fwd: &Forward) -> bool {
        let Some((_, pending)) = self.links.get_mut(&id) else {
            return false;
        };
        let layer = match fwd.kind {
            Kind::Audio => AUDIO_LAYER,
            Kind::Video => fwd.source.encoding,
        };
        pending.push(RelayPacket {
            layer,
            keyframe: fwd.keyframe,
            rtp: rtp::encode(fwd),
        });
        true
    }
}

/// No relay links (a benchmark's node).
impl Pipes for () {
    fn send(&mut self, _: LinkId, _: &Forward) -> bool {
        false
    }
}

/// What [`write_forwards`] did, summed: the caller adds it to shared counters once.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Packets written into a session.
    pub packets: u64,
    /// Their payload bytes.
    pub bytes: u64,
    /// Video packets that began a new layer or publisher for their viewer.
    pub switches: u64,
    /// Forwards a viewer could not take (no such track or codec).
    pub unsupported: u64,
    /// Packets queued for relay links to children (handed over by [`PipeLinks::flush`]).
    pub piped: u64,
}

/// Writes `forwards` (drained) into their sessions and relay links; `wallclock` is the
/// packet's arrival.
pub fn write_forwards(
    forwards: &mut Vec<(Endpoint, Forward)>,
    sessions: &mut impl Sessions,
    pipes: &mut impl Pipes,
    wallclock: Instant,
    now: Instant,
    tx: &mut dyn Transmitter,
    effects: &mut Vec<Effect>,
) -> Written {
    let mut w = Written::default();
    for (to, fwd) in forwards.drain(..) {
        let id = match to {
            Endpoint::Session(id) => id,
            Endpoint::Relay(link) => {
                w.piped += u64::from(pipes.send(link, &fwd));
                continue;
            }
            Endpoint::Worker(_) => continue,
        };
        let Some(s) = sessions.session_mut(id) else {
            continue;
        };
        if s.write(&fwd, wallclock, now, tx, effects) {
            w.packets += 1;
            w.bytes += fwd.payload.len() as u64;
            w.switches += u64::from(fwd.switched && fwd.kind == Kind::Video);
        } else {
            w.unsupported += 1;
        }
    }
    w
}
