//! The ladder's core for one single-layer stream (VP8 or H.264): its packets in, the
//! packets of the lower layers out, in the source's codec. Reassembles frames
//! ([`Assembler`], the recorder's), decodes them, halves the picture once per rung and
//! encodes each rung, then packetizes it; what differs per codec is behind
//! [`super::coding`]. Sans-I/O: time is an argument; the CPU work is the caller's
//! thread's (never a media worker's).
//!
//! Bad input does not stop it: a frame that does not decode, or a hole in the source,
//! makes it wait for the source's next keyframe (with a fresh decoder) and ask for one
//! ([`Ladder::take_source_keyframe_request`]); the rungs' encoders go on, their streams
//! stay continuous (the picture holds still). A change of the source's size rebuilds the
//! encoders at the new halves, each starting on a keyframe.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::coding::{declares_over, EncoderConfig, Payloader, RungEncoder, SourceDecoder};
use super::packetize::LayerPacket;
use super::pressure::Level;
use super::scale::half_size;
use super::watermark::Watermark;
use crate::codec::Codec;
use crate::record::assemble::{Assembler, Frame, RecPacket};

/// Rungs made at most (a 720p source gives 640×360 and 320×180).
pub const MAX_RUNGS: usize = 2;
/// A rung is made only while its width is at least this.
pub const MIN_WIDTH: usize = 128;

/// How often a ladder waiting for the source's keyframe asks again: a request can be lost,
/// or refused by the publisher's keyframe throttle (a viewer had just asked).
pub const KEY_RETRY: Duration = Duration::from_secs(1);

/// How a ladder is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LadderConfig {
    /// Rungs wanted (at most [`MAX_RUNGS`]).
    pub rungs: usize,
    /// libvpx `cpu-used` of the rungs' encoders.
    pub cpu_used: i32,
}

impl Default for LadderConfig {
    fn default() -> Self {
        LadderConfig {
            rungs: MAX_RUNGS,
            cpu_used: 12,
        }
    }
}

/// A packet of one rung (0 = half the source, 1 = a quarter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RungPacket {
    /// Which rung.
    pub rung: u8,
    /// The rung's picture width.
    pub width: u16,
    /// The rung's picture height.
    pub height: u16,
    /// Its codec: the source's.
    pub codec: Codec,
    /// The packet.
    pub packet: LayerPacket,
}

/// What a ladder counted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LadderStats {
    /// Source frames decoded.
    pub decoded: u64,
    /// Source frames that did not decode.
    pub decode_errors: u64,
    /// Source frames skipped while waiting for a keyframe.
    pub skipped: u64,
    /// Frames encoded, all rungs.
    pub encoded: u64,
    /// Pictures an encoder refused.
    pub encode_errors: u64,
    /// Times the source's size changed.
    pub resizes: u64,
    /// Source frames decoded but not encoded (half rate under CPU pressure).
    pub thinned: u64,
    /// Source keyframes larger than [`MAX_SOURCE_PIXELS`], not laddered.
    pub oversize: u64,
    /// Source packets that came too late to transcode (the thread fell behind).
    pub late: u64,
}

struct Rung {
    encoder: RungEncoder,
    payloader: Payloader,
    force_key: bool,
}

/// The ladder of one stream.
pub struct Ladder {
    codec: Codec,
    config: LadderConfig,
    assembler: Assembler,
    decoder: Option<SourceDecoder>,
    rungs: Vec<Rung>,
    /// The source size the rungs were made for.
    source_size: Option<(usize, usize)>,
    /// Payloaders kept across a rebuild, so that each rung's stream goes on.
    payloaders: Vec<Payloader>,
    waiting_key: bool,
    ask_source_key: bool,
    /// When the source was last asked for a keyframe, while waiting for one.
    asked_at: Option<Instant>,
    last_ts: Option<(u32, i64)>,
    stats: LadderStats,
    frames: Vec<Frame>,
    /// The degradation in use ([`super::pressure`]).
    level: Level,
    /// Decoded frames since the level changed (at half rate the odd ones are not encoded).
    parity: u64,
    /// Blended into each rung's picture before it is encoded (`--ladder-watermark`).
    watermark: Option<Arc<Watermark>>,
}

impl std::fmt::Debug for Ladder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ladder")
            .field("codec", &self.codec)
            .field("source_size", &self.source_size)
            .field("stats", &self.stats)
            .finish()
    }
}

impl Ladder {
    /// A ladder of a `codec` source (one [`super::coding::ladders`] takes; packets of
    /// another codec are ignored); `seed` starts its rungs' sequence numbers and picture
    /// ids.
    pub fn new(codec: Codec, config: LadderConfig, seed: u32) -> Self {
        let payloaders = (0..MAX_RUNGS as u32)
            .map(|i| {
                let s = seed.wrapping_mul(2_654_435_761).wrapping_add(i * 7919);
                Payloader::new(codec, s as u16, (s >> 16) as u16)
            })
            .collect();
        Ladder {
            codec,
            config,
            assembler: Assembler::new(codec),
            decoder: None,
            rungs: Vec::new(),
            source_size: None,
            payloaders,
            waiting_key: true,
            ask_source_key: true,
            asked_at: None,
            last_ts: None,
            stats: LadderStats::default(),
            frames: Vec::new(),
            level: Level::Full,
            parity: 0,
            watermark: None,
        }
    }

    /// This ladder with `watermark` in a corner of each rung (the source stays untouched).
    pub fn with_watermark(mut self, watermark: Option<Arc<Watermark>>) -> Self {
        self.watermark = watermark;
        self
    }

    /// Degrades (or restores) the ladder: at half rate every other decoded frame is not
    /// encoded (the rungs' picture ids stay consecutive, only timestamps jump); with fewer
    /// rungs the largest one (the costliest to encode) is not encoded either, and starts
    /// again on a keyframe. The smallest stays: it is what the weakest paths step down to.
    pub fn set_level(&mut self, level: Level) {
        if level.fewer_rungs() != self.level.fewer_rungs() {
            if let Some(first) = self.rungs.first_mut() {
                first.force_key = true;
            }
        }
        self.level = level;
        self.parity = 0;
    }

    /// The degradation in use.
    pub fn level(&self) -> Level {
        self.level
    }

    /// What it counted.
    pub fn stats(&self) -> LadderStats {
        self.stats
    }

    /// The codec of its source and rungs.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The rungs' sizes now (empty before the first keyframe decoded).
    pub fn rung_sizes(&self) -> Vec<(usize, usize)> {
        self.rungs
            .iter()
            .map(|r| (r.encoder.config().width, r.encoder.config().height))
            .collect()
    }

    /// A viewer of `rung` needs a keyframe: its next frame is one.
    pub fn request_keyframe(&mut self, rung: u8) {
        if let Some(r) = self.rungs.get_mut(usize::from(rung)) {
            r.force_key = true;
        }
    }

    /// Whether the source should be asked for a keyframe: once when the need arises, then
    /// every [`KEY_RETRY`] while it lasts.
    pub fn take_source_keyframe_request(&mut self) -> bool {
        std::mem::take(&mut self.ask_source_key)
    }

    /// Takes one source packet; the rungs' packets go to `out`.
    pub fn push(&mut self, pkt: &RecPacket, now: Instant, out: &mut Vec<RungPacket>) {
        if pkt.codec != self.codec {
            return;
        }
        let mut frames = std::mem::take(&mut self.frames);
        self.assembler.push(pkt, now, &mut frames);
        self.run(&mut frames, out);
        self.frames = frames;
        self.keep_asking(now);
    }

    /// Gives up stale holes (call when no packet comes for a while).
    pub fn tick(&mut self, now: Instant, out: &mut Vec<RungPacket>) {
        let mut frames = std::mem::take(&mut self.frames);
        self.assembler.tick(now, &mut frames);
        self.run(&mut frames, out);
        self.frames = frames;
        self.keep_asking(now);
    }

    /// A source packet that came too late to be transcoded in real time: dropped, and the
    /// ladder starts again at the source's next keyframe (the rungs' streams go on, their
    /// picture held still meanwhile).
    pub fn skip_late(&mut self, now: Instant) {
        self.stats.late += 1;
        self.lose();
        self.keep_asking(now);
    }

    /// While waiting for the source's keyframe, asks again every [`KEY_RETRY`].
    fn keep_asking(&mut self, now: Instant) {
        if !self.waiting_key {
            self.asked_at = None;
            return;
        }
        match self.asked_at {
            // Asked when the need arose (at the start, or by `lose`).
            None => self.asked_at = Some(now),
            Some(t) if now.saturating_duration_since(t) >= KEY_RETRY => {
                self.ask_source_key = true;
                self.asked_at = Some(now);
            }
            Some(_) => {}
        }
    }

    fn run(&mut self, frames: &mut Vec<Frame>, out: &mut Vec<RungPacket>) {
        if self.assembler.take_loss() {
            self.lose();
        }
        for f in frames.drain(..) {
            self.frame(&f, out);
        }
    }

    /// The source broke: wait for its next keyframe, with a fresh decoder.
    fn lose(&mut self) {
        if !self.waiting_key {
            self.ask_source_key = true;
        }
        self.waiting_key = true;
        self.decoder = None;
    }

    fn frame(&mut self, f: &Frame, out: &mut Vec<RungPacket>) {
        if self.waiting_key && !f.keyframe {
            self.stats.skipped += 1;
            return;
        }
        if declares_over(self.codec, &f.data, f.keyframe, MAX_SOURCE_PIXELS) {
            // A decoder would allocate for whatever size a keyframe declares (libvpx up to
            // 16383x16383, an H.264 SPS more): a source this large is not laddered, up to
            // its next keyframe that fits.
            self.stats.oversize += 1;
            self.waiting_key = true;
            self.decoder = None;
            return;
        }
        let decoder = match self.decoder.as_mut() {
            Some(d) => d,
            None => match SourceDecoder::new(self.codec, MAX_SOURCE_PIXELS) {
                Ok(d) => self.decoder.insert(d),
                Err(_) => return,
            },
        };
        let pic = match decoder.decode(&f.data) {
            Ok(Some(p)) => p,
            Ok(None) => return,
            Err(_) => {
                self.stats.decode_errors += 1;
                self.lose();
                return;
            }
        };
        self.waiting_key = false;
        self.stats.decoded += 1;
        let pts = self.pts(f.ts);
        if self.source_size != Some((pic.width, pic.height)) {
            if self.source_size.is_some() {
                self.stats.resizes += 1;
            }
            self.rebuild(pic.width, pic.height);
        }
        let skip = self.level.half_rate() && self.parity % 2 == 1;
        self.parity += 1;
        if skip {
            self.stats.thinned += 1;
            return;
        }
        let shed_first = self.level.fewer_rungs() && self.rungs.len() > 1;
        let mut pic = pic;
        for (i, rung) in self.rungs.iter_mut().enumerate() {
            pic = pic.half();
            if shed_first && i == 0 {
                continue;
            }
            // Marked on a copy: the next rung is halved from the clean picture.
            let marked = self.watermark.as_ref().map(|w| {
                let mut m = pic.clone();
                w.apply(&mut m);
                m
            });
            let key = std::mem::take(&mut rung.force_key);
            match rung
                .encoder
                .encode(marked.as_ref().unwrap_or(&pic), pts, key)
            {
                Ok(encoded) => {
                    let (w, h, codec) = (pic.width as u16, pic.height as u16, self.codec);
                    let mut pkts = Vec::new();
                    for e in encoded {
                        self.stats.encoded += 1;
                        rung.payloader
                            .packetize(&e.data, f.ts, e.keyframe, &mut pkts);
                    }
                    out.extend(pkts.into_iter().map(|packet| RungPacket {
                        rung: i as u8,
                        width: w,
                        height: h,
                        codec,
                        packet,
                    }));
                }
                Err(_) => {
                    self.stats.encode_errors += 1;
                    rung.force_key = true;
                }
            }
        }
    }

    /// The source's RTP timestamp extended to 64 bits (the encoder's clock).
    fn pts(&mut self, ts: u32) -> i64 {
        let ext = match self.last_ts {
            None => i64::from(ts),
            Some((last, ext)) => ext + i64::from(ts.wrapping_sub(last) as i32),
        };
        self.last_ts = Some((ts, ext));
        ext
    }

    /// New encoders for a source of `w × h`; the rungs' payloaders carry on.
    fn rebuild(&mut self, w: usize, h: usize) {
        for (i, r) in std::mem::take(&mut self.rungs).into_iter().enumerate() {
            self.payloaders[i] = r.payloader;
        }
        self.source_size = Some((w, h));
        let (mut rw, mut rh) = (w, h);
        for i in 0..self.config.rungs.min(MAX_RUNGS) {
            (rw, rh) = half_size(rw, rh);
            if rw < MIN_WIDTH {
                break;
            }
            let mut cfg = EncoderConfig::realtime(rw, rh);
            cfg.cpu_used = self.config.cpu_used;
            let Ok(encoder) = RungEncoder::new(self.codec, cfg) else {
                self.stats.encode_errors += 1;
                break;
            };
            self.rungs.push(Rung {
                encoder,
                payloader: self.payloaders[i].clone(),
                force_key: true,
            });
        }
    }
}

/// The largest source picture laddered: 1920x1088 (a 1080p publish).
pub const MAX_SOURCE_PIXELS: usize = 1920 * 1088;

/// A VP8 keyframe's declared picture size (RFC 6386 §9.1: a 3-byte frame tag, the start
/// code 9d 01 2a, then 14-bit width and height, little-endian), before any decoding.
pub fn keyframe_size(data: &[u8]) -> Option<(usize, usize)> {
    let h = data.get(..10)?;
    if h[0] & 1 != 0 || h[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let w = usize::from(u16::from_le_bytes([h[6], h[7]]) & 0x3fff);
    let ht = usize::from(u16::from_le_bytes([h[8], h[9]]) & 0x3fff);
    Some((w, ht))
}
