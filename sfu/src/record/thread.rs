//! The recorder's driver: a thread per recording that takes the pipe's batches from a
//! bounded queue, runs the [`RecorderCore`]s (one, or one per encoding) and writes their
//! files. Nothing here runs on a media worker but [`RecorderQueue::send`], a `try_send`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use prometheus::{IntCounter, IntCounterVec};

use super::assemble::RecPacket;
use super::container::MuxFile;
use super::core::{Layers, MuxFrame, Output, RecorderCore};
use super::mux::MuxError;
use super::{LayerMode, RecordConfig, RecordingMeta, RecordingSink};
use crate::codec::Codec;
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
        skipped: IntCounterVec,
    ) -> std::io::Result<Recording> {
        std::fs::create_dir_all(&cfg.dir)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let stream = stream.to_owned();
        let thread = std::thread::Builder::new()
            .name("recorder".into())
            .spawn(move || {
                let mut skips = Skips::new(skipped);
                run(&stream, &cfg, &pipe, &rx, &*sink, &flag, &mut skips)
            })?;
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
    skips: &mut Skips,
) {
    let started_at = SystemTime::now();
    let stamp = started_at
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let base = format!("{}-{stamp}", file_stem(stream));
    let at = Place {
        pipe,
        dir: &cfg.dir,
        base: &base,
        stream,
    };
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
                        apply(t, &mut out, &at, skips);
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
                apply(t, &mut out, &at, skips);
            }
        }
    }
    for mut t in tracks {
        t.core.finish(&mut out);
        apply(&mut t, &mut out, &at, skips);
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

/// Where a recording's files go and its keyframe requests.
struct Place<'a> {
    pipe: &'a Pipe,
    dir: &'a Path,
    base: &'a str,
    stream: &'a str,
}

/// Why a video frame could not be recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skip {
    /// The file could not start on the keyframe: an H.264 one without its SPS and PPS in
    /// band, an AV1 one without its sequence header.
    NoParameterSets,
    /// After a publisher restart, a video codec other than the file's.
    CodecChanged,
}

/// A recording's frames skipped: counted (`cascade_recording_video_skipped_total`) and
/// told once per recording and reason at warn, so that an operator learns the broadcaster
/// is not being recorded (or not wholly).
struct Skips {
    counter: IntCounterVec,
    told: Vec<Skip>,
}

impl Skips {
    fn new(counter: IntCounterVec) -> Self {
        Skips {
            counter,
            told: Vec::new(),
        }
    }

    fn skip(&mut self, stream: &str, codec: Codec, why: Skip) {
        let reason = match why {
            Skip::NoParameterSets => "no_parameter_sets",
            Skip::CodecChanged => "codec_changed",
        };
        self.counter.with_label_values(&[reason]).inc();
        if self.told.contains(&why) {
            return;
        }
        self.told.push(why);
        match why {
            Skip::NoParameterSets => tracing::warn!(
                stream,
                codec = codec.name(),
                "recording: the keyframes carry no parameter sets (H.264 SPS and PPS, AV1 \
                 sequence header) in band; the video is not recorded until one does"
            ),
            Skip::CodecChanged => tracing::warn!(
                stream,
                codec = codec.name(),
                "recording: the publisher came back in another video codec than the \
                 file's; its video is left out of this recording (its audio is kept)"
            ),
        }
    }
}

/// Writes a core's frames (opening the file at the first video keyframe) and passes its
/// keyframe requests to the pipe.
fn apply(t: &mut Track, out: &mut Vec<Output>, at: &Place<'_>, skips: &mut Skips) {
    for o in out.drain(..) {
        match o {
            Output::Keyframe(encoding) => at.pipe.keyframe(encoding),
            Output::Frame(f) => write(t, &f, at, skips),
        }
    }
}

fn write(t: &mut Track, f: &MuxFrame, at: &Place<'_>, skips: &mut Skips) {
    let (dir, base) = (at.dir, at.base);
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
            Err(MuxError::NoParameterSets) => {
                skips.skip(at.stream, f.codec, Skip::NoParameterSets);
                return;
            }
            Err(e) => {
                tracing::warn!(path = %stem.display(), error = %e, "recording file not created");
                t.failed = true;
                return;
            }
        }
    }
    if let Some((file, _, _)) = t.file.as_mut() {
        let written = file.write(f);
        if matches!(written, Ok(false)) {
            skips.skip(at.stream, f.codec, Skip::CodecChanged);
        }
        if let Err(e) = written {
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
