//! A keyframe of a live stream, for its thumbnail: a pipe like the recorder's, wanting the
//! first video encoding only, attached for at most a few seconds. It asks for a keyframe
//! at once (a publisher answers within a round trip), reassembles the frames of that
//! encoding's codec (VP8, VP9 or H.264: those a still is made of) with the recorder's [`Assembler`] and gives the first
//! whole keyframe with its codec; the pipe goes when it returns. The caller runs it on a
//! blocking thread; the worker never waits on it (a full queue drops the batch, as the
//! recorder's does).

use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::assemble::Assembler;
use super::thread::decode;
use crate::codec::Codec;
use crate::relay::{Pipe, RelayPacket};

/// The encoding taken (the pipe's wanted bit): the first, the smallest in a simulcast.
pub(crate) const ENCODING: u8 = 0;

/// A whole keyframe of a live stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyframe {
    /// Its codec: [`Codec::Vp8`], [`Codec::Vp9`] or [`Codec::H264`].
    pub codec: Codec,
    /// The codec's frame: a VP8 or VP9 frame, or an H.264 access unit in AVC form with the
    /// parameter sets the publisher sent before its IDR picture
    /// ([`crate::record::h264`]).
    pub data: Vec<u8>,
}

/// Reads `rx` for up to `wait`: the first whole VP8, VP9 or H.264 keyframe of [`ENCODING`], or
/// `None`.
pub(crate) fn take(
    pipe: &Pipe,
    rx: &Receiver<Vec<RelayPacket>>,
    wait: Duration,
) -> Option<Keyframe> {
    let deadline = Instant::now() + wait;
    // Made for the codec of the first packet (and again should a restarted publisher
    // send another).
    let mut assembler: Option<Assembler> = None;
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
            if !matches!(pkt.codec, Codec::Vp8 | Codec::Vp9 | Codec::H264)
                || pkt.encoding != ENCODING
            {
                continue;
            }
            let a = match assembler.as_mut() {
                Some(a) if a.codec() == pkt.codec => a,
                _ => assembler.insert(Assembler::new(pkt.codec)),
            };
            a.push(&pkt, now, &mut frames);
            if let Some(f) = frames.drain(..).find(|f| f.keyframe) {
                return Some(Keyframe {
                    codec: pkt.codec,
                    data: f.data,
                });
            }
        }
    }
}
