//! A keyframe of a live stream, for its thumbnail: a pipe like the recorder's, wanting the
//! first video encoding only, attached for at most a few seconds. It asks for a keyframe
//! at once (a publisher answers within a round trip), reassembles VP8 frames with the
//! recorder's [`Assembler`] and gives the first whole keyframe; the pipe goes when it
//! returns. The caller runs it on a blocking thread; the worker never waits on it (a full
//! queue drops the batch, as the recorder's does).

use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::assemble::Assembler;
use super::thread::decode;
use crate::codec::Codec;
use crate::relay::{Pipe, RelayPacket};

/// The encoding taken (the pipe's wanted bit): the first, the smallest in a simulcast.
pub(crate) const ENCODING: u8 = 0;

/// Reads `rx` for up to `wait`: the first whole VP8 keyframe of [`ENCODING`], or `None`.
pub(crate) fn take(
    pipe: &Pipe,
    rx: &Receiver<Vec<RelayPacket>>,
    wait: Duration,
) -> Option<Vec<u8>> {
    let deadline = Instant::now() + wait;
    let mut assembler = Assembler::new(Codec::Vp8);
    let mut frames = Vec::new();
    pipe.keyframe(ENCODING);
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        let batch = match rx.recv_timeout(left.min(Duration::from_millis(50))) {
            Ok(batch) => batch,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return None,
        };
        let now = Instant::now();
        for p in &batch {
            let Some(pkt) = decode(p) else { continue };
            if pkt.codec != Codec::Vp8 || pkt.encoding != ENCODING {
                continue;
            }
            assembler.push(&pkt, now, &mut frames);
            if let Some(f) = frames.drain(..).find(|f| f.keyframe) {
                return Some(f.data);
            }
        }
    }
}
