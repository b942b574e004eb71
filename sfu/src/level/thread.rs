//! The leveller's driver: one thread for the node, fed by a bounded queue. A media
//! worker hands it a publisher's Opus packet with one `try_send` ([`Leveller::offer`]);
//! the thread runs the stream's [`LevelCore`] and hands the levelled packet back to that
//! worker as a [`Command::Levelled`] batch, which the worker routes as the publisher's
//! own. Nothing here runs on a media worker but `offer`.

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use prometheus::{Counter, IntCounterVec, Opts, Registry};
use tokio::sync::mpsc;

use super::core::{LevelCore, Outcome};
use super::LevelConfig;
use crate::forward::MediaPacket;
use crate::ids::{SessionId, StreamId, WorkerId};
use crate::worker::Command;

/// Packets waiting for the leveller: about 2 s of 20 streams' audio.
pub(crate) const QUEUE_PACKETS: usize = 2048;
/// Streams levelled at once; the audio of more passes unlevelled (counted). The one
/// thread does about 40 streams (docs/PERFORMANCE.md, on a loaded machine): a margin kept.
pub(crate) const MAX_STREAMS: usize = 32;
/// A stream's state is dropped after this long without a packet.
const IDLE: Duration = Duration::from_secs(10);
/// Packets handled before the batches go back to the workers.
const BATCH: usize = 64;

/// A publisher's audio packet on its way through the leveller.
pub(crate) struct Job {
    pub worker: WorkerId,
    pub stream: StreamId,
    pub session: SessionId,
    pub pkt: Arc<MediaPacket>,
}

/// The leveller's metrics, on the node's registry.
#[derive(Clone)]
struct LevelMetrics {
    packets: IntCounterVec,
    busy: Counter,
}

impl LevelMetrics {
    fn new(r: &Registry) -> Self {
        let packets = IntCounterVec::new(
            Opts::new(
                "audio_level_packets_total",
                "Publishers' audio packets through the loudness leveller, by outcome",
            ),
            &["outcome"],
        )
        .expect("a constant, valid definition"); // Invariant: constant name and labels.
        let busy = Counter::new(
            "audio_level_busy_seconds_total",
            "Time the loudness leveller's thread spent decoding, measuring and encoding",
        )
        .expect("a constant, valid definition"); // Invariant: constant name.
                                                 // A second node on the same registry keeps the first's series.
        let _ = r.register(Box::new(packets.clone()));
        let _ = r.register(Box::new(busy.clone()));
        LevelMetrics { packets, busy }
    }

    fn count(&self, outcome: &str, n: u64) {
        self.packets.with_label_values(&[outcome]).inc_by(n);
    }
}

/// The node's leveller: its queue and thread. Dropping it ends the thread.
pub(crate) struct Leveller {
    tx: Option<Sender<Job>>,
    metrics: LevelMetrics,
    thread: Option<JoinHandle<()>>,
}

impl Leveller {
    /// Starts the thread; levelled packets go back to the worker that offered them.
    pub(crate) fn start(
        cfg: LevelConfig,
        workers: Vec<mpsc::Sender<Command>>,
        registry: &Registry,
    ) -> std::io::Result<Leveller> {
        let (tx, rx) = crossbeam_channel::bounded(QUEUE_PACKETS);
        let metrics = LevelMetrics::new(registry);
        let m = metrics.clone();
        let thread = std::thread::Builder::new()
            .name("audio-leveller".into())
            .spawn(move || run(cfg, &rx, &workers, &m))?;
        Ok(Leveller {
            tx: Some(tx),
            metrics,
            thread: Some(thread),
        })
    }

    /// Hands a packet to the thread without waiting. A full queue (the thread behind) or a
    /// thread gone gives it back (counted): the worker routes it as it came, unlevelled,
    /// rather than lose it.
    pub(crate) fn offer(&self, job: Job) -> Result<(), Job> {
        let Some(tx) = &self.tx else { return Err(job) };
        match tx.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(job)) => {
                self.metrics.count("queue_full", 1);
                Err(job)
            }
            Err(TrySendError::Disconnected(job)) => {
                self.metrics.count("thread_gone", 1);
                Err(job)
            }
        }
    }
}

impl Drop for Leveller {
    fn drop(&mut self) {
        // Closing the queue ends the thread.
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct StreamState {
    core: LevelCore,
    last: Instant,
}

fn run(cfg: LevelConfig, rx: &Receiver<Job>, workers: &[mpsc::Sender<Command>], m: &LevelMetrics) {
    let mut streams: HashMap<(StreamId, u32), StreamState> = HashMap::new();
    let mut out: Vec<Vec<(StreamId, SessionId, Arc<MediaPacket>)>> =
        workers.iter().map(|_| Vec::new()).collect();
    let mut buf = Vec::with_capacity(1500);
    let mut last_sweep = Instant::now();
    loop {
        let first = match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(job) => job,
            Err(RecvTimeoutError::Timeout) => {
                sweep(&mut streams, &mut last_sweep);
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let started = Instant::now();
        for job in std::iter::once(first).chain(rx.try_iter().take(BATCH - 1)) {
            let pkt = level(&cfg, &mut streams, &job, &mut buf, started, m);
            if let Some(batch) = out.get_mut(job.worker.0) {
                batch.push((job.stream, job.session, pkt));
            }
        }
        m.busy.inc_by(started.elapsed().as_secs_f64());
        for (w, batch) in out.iter_mut().enumerate() {
            if batch.is_empty() {
                continue;
            }
            let n = batch.len() as u64;
            if workers[w]
                .try_send(Command::Levelled(std::mem::take(batch)))
                .is_err()
            {
                m.count("worker_queue_full", n);
            }
        }
        sweep(&mut streams, &mut last_sweep);
    }
}

/// One packet through its stream's core; the packet as it goes on (unlevelled when the
/// stream could not have a core).
fn level(
    cfg: &LevelConfig,
    streams: &mut HashMap<(StreamId, u32), StreamState>,
    job: &Job,
    buf: &mut Vec<u8>,
    now: Instant,
    m: &LevelMetrics,
) -> Arc<MediaPacket> {
    let key = (job.stream, job.pkt.source.generation);
    if !streams.contains_key(&key) {
        if streams.len() >= MAX_STREAMS {
            m.count("over_capacity", 1);
            return job.pkt.clone();
        }
        match LevelCore::new(cfg.target_lufs) {
            Ok(core) => {
                streams.insert(key, StreamState { core, last: now });
            }
            Err(e) => {
                tracing::warn!(error = %e, "audio leveller not started for a stream");
                m.count("failed", 1);
                return job.pkt.clone();
            }
        }
    }
    // Invariant: inserted just above when missing.
    let s = streams.get_mut(&key).expect("a stream state");
    s.last = now;
    match s.core.process(&job.pkt.payload, buf) {
        Ok(outcome) => {
            m.count(
                match outcome {
                    Outcome::Levelled => "levelled",
                    Outcome::Concealed => "concealed",
                },
                1,
            );
            let mut pkt = MediaPacket::clone(&job.pkt);
            pkt.payload = Arc::from(&buf[..]);
            Arc::new(pkt)
        }
        Err(e) => {
            tracing::debug!(error = %e, "audio packet not levelled");
            m.count("failed", 1);
            job.pkt.clone()
        }
    }
}

fn sweep(streams: &mut HashMap<(StreamId, u32), StreamState>, last: &mut Instant) {
    let now = Instant::now();
    if now.duration_since(*last) < Duration::from_secs(1) {
        return;
    }
    *last = now;
    streams.retain(|_, s| now.duration_since(s.last) < IDLE);
}
