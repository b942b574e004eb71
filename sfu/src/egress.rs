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
    /// Sends `fwd` on the link `id`: `None` for no such link, else whether it was queued.
    fn send(&mut self, id: LinkId, fwd: &Forward) -> Option<bool>;
}

impl Pipes for HashMap<LinkId, Arc<dyn PipeOut>> {
    fn send(&mut self, id: LinkId, fwd: &Forward) -> Option<bool> {
        let out = self.get(&id)?;
        let layer = match fwd.kind {
            Kind::Audio => AUDIO_LAYER,
            Kind::Video => fwd.source.encoding,
        };
        Some(out.send(RelayPacket {
            layer,
            keyframe: fwd.keyframe,
            rtp: rtp::encode(fwd),
        }))
    }
}

/// No relay links (a benchmark's node).
impl Pipes for () {
    fn send(&mut self, _: LinkId, _: &Forward) -> Option<bool> {
        None
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
    /// Packets queued on relay links to children.
    pub piped: u64,
    /// Packets a relay link's full queue refused.
    pub pipe_drops: u64,
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
                match pipes.send(link, &fwd) {
                    Some(true) => w.piped += 1,
                    Some(false) => w.pipe_drops += 1,
                    None => {}
                }
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
