//! The recorder's core, sans-I/O: a stream's packets (every layer, unrewritten, as a pipe
//! gets them) in, the frames of one recording out, in time order, with continuous times.
//!
//! - Layer: [`Layers::Top`] follows the largest picture: it starts on the first video
//!   keyframe and moves to another encoding at that encoding's keyframe when its picture is
//!   larger (a browser adds its upper simulcast layers as its estimate grows), and after a
//!   publisher restart starts again the same way. [`Layers::Encoding`] keeps one encoding
//!   (one file per layer).
//! - Losses: a video frame given up stops the video until the next keyframe, which is asked
//!   for ([`Output::Keyframe`]); audio goes on.
//! - Restarts: a new publisher generation continues the same timeline ([`Timeline`]).

use std::collections::HashMap;
use std::time::Instant;

use super::assemble::{Assembler, Frame, RecPacket};
use super::timeline::{Interleaver, Timeline};
use crate::codec::Codec;

/// Which video layer a recording takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layers {
    /// The largest picture the publisher sends.
    Top,
    /// One encoding (by index in the publisher's session).
    Encoding(u8),
}

/// A frame for the muxer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MuxFrame {
    /// Video (else audio).
    pub video: bool,
    /// The frame's codec.
    pub codec: Codec,
    /// Time from the recording's start.
    pub ns: u64,
    /// A keyframe (every audio frame is one).
    pub keyframe: bool,
    /// A video keyframe's picture size.
    pub size: Option<(u32, u32)>,
    /// The codec's frame.
    pub data: Vec<u8>,
}

/// What the core asks of its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Write this frame.
    Frame(MuxFrame),
    /// Ask the publisher for a keyframe of this encoding.
    Keyframe(u8),
}

/// What the core counted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CoreStats {
    /// Frames given up (losses), over all tracks.
    pub lost_frames: u64,
    /// Video frames dropped while waiting for a keyframe.
    pub awaiting_keyframe: u64,
}

#[derive(Debug, Clone, Copy)]
struct Chosen {
    generation: u32,
    encoding: u8,
    area: u32,
}

/// One recording's core.
#[derive(Debug)]
pub struct RecorderCore {
    layers: Layers,
    /// Assembly per (video, encoding) of the current generation.
    streams: HashMap<(bool, u8), Assembler>,
    generation: Option<u32>,
    retired: Vec<u32>,
    timeline: Timeline,
    interleaver: Interleaver<MuxFrame>,
    chosen: Option<Chosen>,
    /// The chosen layer lost a frame: its video waits for a keyframe.
    awaiting_key: bool,
    /// The video moved to another layer whose first frame is still to come: the frames
    /// of the old layer from that frame's time on are taken back.
    switched: bool,
    frames: Vec<Frame>,
    stats: CoreStats,
    lost_before: u64,
}

/// Replaced generations remembered (their late packets are dropped).
const RETIRED_KEPT: usize = 8;

impl RecorderCore {
    /// A recording of `layers`.
    pub fn new(layers: Layers) -> Self {
        RecorderCore {
            layers,
            streams: HashMap::new(),
            generation: None,
            retired: Vec::new(),
            timeline: Timeline::default(),
            interleaver: Interleaver::default(),
            chosen: None,
            awaiting_key: false,
            switched: false,
            frames: Vec::new(),
            stats: CoreStats::default(),
            lost_before: 0,
        }
    }

    /// What it counted.
    pub fn stats(&self) -> CoreStats {
        let live: u64 = self.streams.values().map(|a| a.stats().lost_frames).sum();
        CoreStats {
            lost_frames: self.lost_before + live,
            ..self.stats
        }
    }

    /// Publisher generations recorded so far.
    pub fn generations(&self) -> u32 {
        self.timeline.generations()
    }

    /// The encoding the video follows now.
    pub fn chosen(&self) -> Option<u8> {
        self.chosen.map(|c| c.encoding)
    }

    /// Takes one packet; what is ready goes to `out`.
    pub fn push(&mut self, pkt: &RecPacket, now: Instant, out: &mut Vec<Output>) {
        if self.retired.contains(&pkt.generation) {
            return;
        }
        if self.generation != Some(pkt.generation) {
            self.new_generation(pkt.generation);
        }
        let video = pkt.codec.is_video();
        let encoding = if video { pkt.encoding } else { 0 };
        if video && !self.takes(pkt) {
            return;
        }
        let mut frames = std::mem::take(&mut self.frames);
        self.streams
            .entry((video, encoding))
            .or_insert_with(|| Assembler::new(pkt.codec))
            .push(pkt, now, &mut frames);
        self.place(pkt.generation, video, encoding, pkt.codec, &mut frames, out);
        self.frames = frames;
        self.drain(false, out);
    }

    /// Gives up holes that waited too long (call when packets stop coming).
    pub fn tick(&mut self, now: Instant, out: &mut Vec<Output>) {
        let Some(generation) = self.generation else {
            return;
        };
        let mut frames = std::mem::take(&mut self.frames);
        let keys: Vec<(bool, u8)> = self.streams.keys().copied().collect();
        for (video, encoding) in keys {
            let Some(a) = self.streams.get_mut(&(video, encoding)) else {
                continue;
            };
            a.tick(now, &mut frames);
            let codec = a.codec();
            self.place(generation, video, encoding, codec, &mut frames, out);
        }
        self.frames = frames;
        self.drain(false, out);
    }

    /// The end of the recording: every frame still held goes out.
    pub fn finish(&mut self, out: &mut Vec<Output>) {
        self.drain(true, out);
    }

    fn new_generation(&mut self, generation: u32) {
        if let Some(old) = self.generation {
            if self.retired.len() >= RETIRED_KEPT {
                self.retired.remove(0);
            }
            self.retired.push(old);
        }
        self.lost_before += self
            .streams
            .values()
            .map(|a| a.stats().lost_frames)
            .sum::<u64>();
        self.streams.clear();
        self.generation = Some(generation);
        self.awaiting_key = false;
    }

    /// Whether a video packet belongs to the layer recorded, switching layer at a keyframe
    /// of a larger picture (top) or of a new generation.
    fn takes(&mut self, pkt: &RecPacket) -> bool {
        let current = self
            .chosen
            .filter(|c| c.generation == pkt.generation)
            .map(|c| c.encoding);
        if let Layers::Encoding(e) = self.layers {
            if pkt.encoding != e {
                return false;
            }
        }
        if current == Some(pkt.encoding) {
            return true;
        }
        if !pkt.keyframe {
            return false;
        }
        let area = keyframe_size(pkt.codec, &pkt.payload).map_or(0, |(w, h)| w.saturating_mul(h));
        let better = match self.chosen {
            Some(c) if c.generation == pkt.generation => area > c.area,
            _ => true,
        };
        if better {
            self.chosen = Some(Chosen {
                generation: pkt.generation,
                encoding: pkt.encoding,
                area,
            });
            self.awaiting_key = false;
            self.switched = current.is_some();
            // The layer left: its assembly goes (it would hold packets for nothing).
            if let Some(old) = current {
                if let Some(a) = self.streams.remove(&(true, old)) {
                    self.lost_before += a.stats().lost_frames;
                }
            }
        }
        better
    }

    fn place(
        &mut self,
        generation: u32,
        video: bool,
        encoding: u8,
        codec: Codec,
        frames: &mut Vec<Frame>,
        out: &mut Vec<Output>,
    ) {
        let lost = self
            .streams
            .get_mut(&(video, encoding))
            .is_some_and(Assembler::take_loss);
        if video && lost && !self.awaiting_key {
            self.awaiting_key = true;
            out.push(Output::Keyframe(encoding));
        }
        for f in frames.drain(..) {
            if video {
                if f.keyframe {
                    self.awaiting_key = false;
                } else if self.awaiting_key {
                    self.stats.awaiting_keyframe += 1;
                    continue;
                }
            }
            let Some(ns) = self.timeline.map(
                generation,
                (video, encoding),
                codec.clock_rate(),
                f.ts,
                f.arrival,
            ) else {
                continue;
            };
            let size = if video && f.keyframe {
                frame_size(codec, &f.data)
            } else {
                None
            };
            if let (Some((w, h)), Some(c)) = (size, self.chosen.as_mut()) {
                c.area = w.saturating_mul(h);
            }
            if video && f.keyframe && std::mem::take(&mut self.switched) {
                self.interleaver.retain(|t, f| !f.video || t < ns);
            }
            self.interleaver.push(
                ns,
                MuxFrame {
                    video,
                    codec,
                    ns,
                    keyframe: f.keyframe || !video,
                    size,
                    data: f.data,
                },
            );
        }
    }

    fn drain(&mut self, all: bool, out: &mut Vec<Output>) {
        while let Some((ns, mut f)) = self.interleaver.pop(all) {
            f.ns = ns;
            out.push(Output::Frame(f));
        }
    }
}

/// The picture size of a VP8 frame, when it is a keyframe (RFC 6386 §9.1).
pub fn vp8_frame_size(frame: &[u8]) -> Option<(u32, u32)> {
    if frame.len() < 10 || frame[0] & 1 != 0 || frame[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let w = u32::from(u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff);
    let h = u32::from(u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff);
    (w > 0 && h > 0).then_some((w, h))
}

/// The picture size of a keyframe (a VP8 or VP9 frame, an H.264 access unit, an AV1
/// temporal unit).
fn frame_size(codec: Codec, frame: &[u8]) -> Option<(u32, u32)> {
    match codec {
        Codec::Vp8 => vp8_frame_size(frame),
        Codec::Vp9 => super::vp9::keyframe_size(frame),
        Codec::H264 => super::h264::frame_size(frame),
        Codec::Av1 => super::av1::frame_size(frame),
        Codec::Opus => None,
    }
}

/// The picture size of a keyframe from its first RTP payload.
fn keyframe_size(codec: Codec, payload: &[u8]) -> Option<(u32, u32)> {
    use str0m::format::CodecExtra;
    use str0m::unversioned::{Depacketizer, Vp8Depacketizer};
    match codec {
        Codec::H264 => super::h264::payload_size(payload),
        Codec::Vp9 => super::vp9::payload_size(payload),
        Codec::Av1 => super::av1::payload_size(payload),
        Codec::Vp8 => {
            let mut data = Vec::with_capacity(payload.len());
            Vp8Depacketizer::default()
                .depacketize(payload, &mut data, &mut CodecExtra::None)
                .ok()?;
            vp8_frame_size(&data)
        }
        Codec::Opus => None,
    }
}
