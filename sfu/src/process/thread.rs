//! The ladder's driver: one thread per laddered stream. A media worker hands it the
//! source's packets with [`LadderHandle::send`] (a `try_send` on a bounded queue: a full
//! queue drops the packet and counts it, the worker never waits); the thread runs the
//! [`Ladder`] and hands each batch of rung packets, and any keyframe request for the
//! publisher, to a bounded channel the hosting worker drains (again never blocking: a full
//! channel drops the batch, counts it, and the rung restarts on a keyframe). The time its
//! work takes and its queue's length feed a [`Pressure`], which lowers the ladder's level
//! (half rate, then fewer rungs) when it falls behind and raises it when it keeps up. A
//! packet that waited longer than [`MAX_LAG`] is not transcoded: the ladder drops it and
//! starts again at the source's next keyframe, so its layers never run seconds behind the
//! source (a viewer moved from the source onto a rung would see its picture stop until the
//! rung's timestamps caught up with what it had shown).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use prometheus::IntCounter;

use super::ladder::{Ladder, LadderConfig, LadderStats, RungPacket};
use super::pressure::Pressure;
use super::watermark::Watermark;
use crate::codec::Codec;
use crate::record::assemble::RecPacket;

/// Source packets waiting for the ladder: about a second of a 2.5 Mbit/s stream.
pub const QUEUE_PACKETS: usize = 512;
/// Batches waiting for the hosting worker.
pub const OUT_BATCHES: usize = 256;
/// The longest a source packet may wait for the ladder and still be transcoded.
pub const MAX_LAG: Duration = Duration::from_millis(400);
/// How often the thread gives up stale holes and looks at the stop flag.
const TICK: Duration = Duration::from_millis(50);

/// What the ladder thread hands back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LadderOut {
    /// The rungs' packets made from one source packet (in order).
    Packets(Vec<RungPacket>),
    /// The source should send a keyframe (the ladder lost its picture).
    SourceKeyframe,
}

/// Where the ladder thread's output goes: a bounded queue it never waits on (a full or
/// closed one gives the output back, and it is dropped and counted).
pub trait LadderSink: Send + 'static {
    /// Hands `out` over without waiting.
    fn try_send(&self, out: LadderOut) -> Result<(), LadderOut>;
}

impl LadderSink for Sender<LadderOut> {
    fn try_send(&self, out: LadderOut) -> Result<(), LadderOut> {
        Sender::try_send(self, out).map_err(TrySendError::into_inner)
    }
}

enum LadderIn {
    /// A source packet and when it was handed over.
    Packet(RecPacket, Instant),
    Keyframe(u8),
}

/// A running ladder; [`LadderHandle::stop`] (or dropping it) ends its thread.
pub struct LadderHandle {
    tx: Sender<LadderIn>,
    dropped: IntCounter,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<LadderStats>>,
}

impl std::fmt::Debug for LadderHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LadderHandle")
    }
}

impl LadderHandle {
    /// Starts a ladder thread for a `codec` source (its rungs marked with `watermark`, if
    /// any); its output goes to `out`, and packets dropped on either queue are counted in
    /// `dropped`.
    pub fn start(
        codec: Codec,
        config: LadderConfig,
        watermark: Option<Arc<Watermark>>,
        seed: u32,
        out: impl LadderSink,
        dropped: IntCounter,
    ) -> std::io::Result<Self> {
        let (tx, rx) = crossbeam_channel::bounded(QUEUE_PACKETS);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let counter = dropped.clone();
        let thread = std::thread::Builder::new()
            .name("ladder".into())
            .spawn(move || {
                run(
                    Ladder::new(codec, config, seed).with_watermark(watermark),
                    &rx,
                    &out,
                    &counter,
                    &flag,
                )
            })?;
        Ok(LadderHandle {
            tx,
            dropped,
            stop,
            thread: Some(thread),
        })
    }

    /// Hands a source packet over, never waiting.
    pub fn send(&self, pkt: RecPacket) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.tx.try_send(LadderIn::Packet(pkt, Instant::now()))
        {
            self.dropped.inc();
        }
    }

    /// A viewer of `rung` needs a keyframe: the rung's encoder makes one.
    pub fn request_keyframe(&self, rung: u8) {
        if self.tx.try_send(LadderIn::Keyframe(rung)).is_err() {
            self.dropped.inc();
        }
    }

    /// Ends the ladder and waits for its thread; what it counted.
    pub fn stop(mut self) -> LadderStats {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for LadderHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn run(
    mut ladder: Ladder,
    rx: &Receiver<LadderIn>,
    out: &dyn LadderSink,
    dropped: &IntCounter,
    stop: &AtomicBool,
) -> LadderStats {
    let mut batch = Vec::new();
    let mut pressure = Pressure::new();
    while !stop.load(Ordering::Relaxed) {
        match rx.recv_timeout(TICK) {
            Ok(LadderIn::Packet(p, queued)) => {
                let start = Instant::now();
                if start.saturating_duration_since(queued) > MAX_LAG {
                    ladder.skip_late(start);
                } else {
                    ladder.push(&p, start, &mut batch);
                }
                let done = Instant::now();
                if let Some(level) = pressure.observe(done, done - start, rx.len()) {
                    tracing::warn!(level = level.as_i64(), ?level, "ladder level changed");
                    ladder.set_level(level);
                }
            }
            Ok(LadderIn::Keyframe(rung)) => ladder.request_keyframe(rung),
            Err(RecvTimeoutError::Timeout) => ladder.tick(Instant::now(), &mut batch),
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if ladder.take_source_keyframe_request() {
            let _ = out.try_send(LadderOut::SourceKeyframe);
        }
        if batch.is_empty() {
            continue;
        }
        let rungs: Vec<u8> = batch.iter().map(|p| p.rung).collect();
        if let Err(LadderOut::Packets(lost)) =
            out.try_send(LadderOut::Packets(std::mem::take(&mut batch)))
        {
            dropped.inc_by(lost.len() as u64);
            // Its viewers lost part of a frame: the rung starts again on a keyframe.
            for r in rungs {
                ladder.request_keyframe(r);
            }
        }
    }
    ladder.stats()
}
