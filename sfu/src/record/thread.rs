//! The recorder's driver: a thread per recording that takes the pipe's batches from a
//! bounded queue, runs the [`RecorderCore`]s (one, or one per encoding) and writes their
//! files. Nothing here runs on a media worker but [`RecorderQueue::send`], a `try_send`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use prometheus::IntCounter;

use super::assemble::RecPacket;
use super::container::MuxFile;
use super::core::{Layers, MuxFrame, Output, RecorderCore};
use super::mux::MuxError;
use super::{LayerMode, RecordConfig, RecordingMeta, RecordingSink};
use crate::relay::{rtp, Pipe, PipeOut, RelayPacket, AUDIO_LAYER};

/// Batches (one per worker turn) waiting for the recorder: about a second of a stream.
pub const QUEUE_BATCHES: usize = 512;
/// How often the thread looks at holes and the stop flag when no packet comes.
const TICK: Duration = Duration::from_millis(50);

/// The pipe's end on the media worker: hands a turn's packets to the recorder's thread,
/// never waiting (a full queue drops the batch and counts it).
pub struct RecorderQueue {
    tx: Sender<Vec<RelayPacket>>,
    dropped: IntCounter,
}

impl RecorderQueue {
    /// A queue of [`QUEUE_BATCHES`] batches, its drops counted in `dropped`.
    pub fn new(dropped: IntCounter) -> (Self, Receiver<Vec<RelayPacket>>) {
        let (tx, rx) = crossbeam_channel::bounded(QUEUE_BATCHES);
        (RecorderQueue { tx, dropped }, rx)
    }
}

impl PipeOut for RecorderQueue {
    fn send(&self, packets: Vec<RelayPacket>) -> bool {
        match self.tx.try_send(packets) {
            Ok(()) => {}
            Err(TrySendError::Full(p) | TrySendError::Disconnected(p)) => {
                self.dropped.inc_by(p.len() as u64);
            }
        }
        // Counted here, not as a relay link's drop.
        true
    }
}

/// A recording running; [`Recording::stop`] (or dropping it) ends it: the files are
/// finished and handed to the sink on the recorder's thread.
pub struct Recording {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Recording {
    pub(crate) fn start(
        stream: &str,
        cfg: RecordConfig,
        pipe: Pipe,
        rx: Receiver<Vec<RelayPacket>>,
        sink: Arc<dyn RecordingSink>,
    ) -> std::io::Result<Recording> {
        std::fs::create_dir_all(&cfg.dir)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let stream = stream.to_owned();
        let thread = std::thread::Builder::new()
            .name("recorder".into())
            .spawn(move || run(&stream, &cfg, &pipe, &rx, &*sink, &flag))?;
        Ok(Recording {
            stop,
            thread: Some(thread),
        })
    }

    /// Ends the recording and waits until its files are finished.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        // Finished on its own thread; not waited for here.
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One file: its core, and the file once its first keyframe came.
struct Track {
    layer: Option<u8>,
    core: RecorderCore,
    file: Option<(MuxFile, PathBuf, (u32, u32))>,
    audio_seen: bool,
    failed: bool,
}

fn run(
    stream: &str,
    cfg: &RecordConfig,
    pipe: &Pipe,
    rx: &Receiver<Vec<RelayPacket>>,
    sink: &dyn RecordingSink,
    stop: &AtomicBool,
) {
    let started_at = SystemTime::now();
    let stamp = started_at
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let base = format!("{}-{stamp}", file_stem(stream));
    let mut tracks: Vec<Track> = Vec::new();
    if cfg.layers == LayerMode::Top {
        tracks.push(new_track(None));
    }
    let mut out = Vec::new();
    let mut last_tick = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        match rx.recv_timeout(TICK) {
            Ok(batch) => {
                let now = Instant::now();
                for p in &batch {
                    let Some(pkt) = decode(p) else { continue };
                    if cfg.layers == LayerMode::All
                        && pkt.codec.is_video()
                        && !tracks.iter().any(|t| t.layer == Some(pkt.encoding))
                        && tracks.len() < 8
                    {
                        tracks.push(new_track(Some(pkt.encoding)));
                    }
                    for t in &mut tracks {
                        t.audio_seen |= !pkt.codec.is_video();
                        t.core.push(&pkt, now, &mut out);
                        apply(t, &mut out, pipe, &cfg.dir, &base);
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        let now = Instant::now();
        if now.duration_since(last_tick) >= TICK {
            last_tick = now;
            for t in &mut tracks {
                t.core.tick(now, &mut out);
                apply(t, &mut out, pipe, &cfg.dir, &base);
            }
        }
    }
    for mut t in tracks {
        t.core.finish(&mut out);
        apply(&mut t, &mut out, pipe, &cfg.dir, &base);
        let Some((file, path, (width, height))) = t.file else {
            continue;
        };
        let meta = RecordingMeta {
            stream: stream.to_owned(),
            layer: t.layer,
            started_at,
            duration: Duration::from_nanos(file.duration_ns()),
            frames: file.frames(),
            width,
            height,
            generations: t.core.generations(),
        };
        match file.finish() {
            Ok(()) => sink.finished(&meta, &path),
            Err(e) => tracing::warn!(stream, error = %e, "recording not finalized"),
        }
    }
}

fn new_track(layer: Option<u8>) -> Track {
    Track {
        layer,
        core: RecorderCore::new(layer.map_or(Layers::Top, Layers::Encoding)),
        file: None,
        audio_seen: false,
        failed: false,
    }
}

/// Writes a core's frames (opening the file at the first video keyframe) and passes its
/// keyframe requests to the pipe.
fn apply(t: &mut Track, out: &mut Vec<Output>, pipe: &Pipe, dir: &Path, base: &str) {
    for o in out.drain(..) {
        match o {
            Output::Keyframe(encoding) => pipe.keyframe(encoding),
            Output::Frame(f) => write(t, &f, dir, base),
        }
    }
}

fn write(t: &mut Track, f: &MuxFrame, dir: &Path, base: &str) {
    if t.failed {
        return;
    }
    if t.file.is_none() {
        let Some((w, h)) = f.size.filter(|_| f.video) else {
            // Nothing before the first keyframe.
            return;
        };
        let stem = match t.layer {
            None => dir.join(base),
            Some(l) => dir.join(format!("{base}-layer{l}")),
        };
        match MuxFile::create(&stem, f, t.audio_seen) {
            Ok((file, path)) => t.file = Some((file, path, (w, h))),
            // The file starts at a keyframe that carries them (a publisher sending its
            // parameter sets only in the SDP is not recorded).
            Err(MuxError::NoParameterSets) => return,
            Err(e) => {
                tracing::warn!(path = %stem.display(), error = %e, "recording file not created");
                t.failed = true;
                return;
            }
        }
    }
    if let Some((file, _, _)) = t.file.as_mut() {
        if let Err(e) = file.write(f) {
            // (A full disk, say.) The file keeps what was written whole and is finished
            // as it is at the end; nothing more is written to it.
            tracing::warn!(error = %e, "recording stopped: a frame could not be written");
            t.failed = true;
        }
    }
}

/// A relay RTP packet as the core takes it.
pub(crate) fn decode(p: &RelayPacket) -> Option<RecPacket> {
    let h = rtp::decode(&p.rtp)?;
    Some(RecPacket {
        codec: h.codec,
        generation: h.generation,
        encoding: if p.layer == AUDIO_LAYER { 0 } else { p.layer },
        seq: h.seq,
        ts: h.ts,
        marker: h.marker,
        keyframe: p.keyframe,
        payload: p.rtp.slice(rtp::HEADER..),
    })
}

/// A stream name as a file name: letters, digits, `-` and `_` kept, anything else `_`.
fn file_stem(stream: &str) -> String {
    let s: String = stream
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        "stream".into()
    } else {
        s
    }
}
