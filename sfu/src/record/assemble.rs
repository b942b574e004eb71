//! One RTP stream (a publisher generation's audio, or one of its video encodings) back into
//! frames: packets are held in sequence order for a short while (reordering), a frame goes
//! out once every packet from its first to its marker is in, and a hole that does not fill
//! within [`REORDER_WAIT`] (or [`MAX_HELD`] packets) is given up: what follows is taken from
//! the next frame start. str0m's depacketizers strip the payload descriptor (VP8) or undo
//! the packetization (H.264: single NAL units, STAP-A, FU-A) into an access unit in AVC
//! form (each NAL unit after its 4-byte length, an MP4 sample); [`super::vp9`] strips
//! VP9's descriptors (a picture: the packets of one timestamp to the marker, its base
//! spatial layer kept), [`super::av1`] rebuilds an AV1 temporal unit's OBUs with their
//! sizes; Opus payloads are frames as they are. An H.264 access unit may span several NAL
//! units each starting a packet (an AV1 temporal unit several OBUs): its packets are those
//! of one timestamp up to the marker. Sans-I/O: time is an argument.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use str0m::format::CodecExtra;
use str0m::unversioned::{Depacketizer, H264Depacketizer, Vp8Depacketizer};

use crate::codec::Codec;

/// How long a hole may wait for a late packet before the frame is given up.
pub const REORDER_WAIT: Duration = Duration::from_millis(150);
/// Packets held at most while waiting for a hole to fill.
pub const MAX_HELD: usize = 512;
/// A frame larger than this is given up (more than [`MAX_HELD`] full packets hold).
pub const MAX_FRAME_BYTES: usize = 1 << 20;

/// Whether a codec's frame is told only by its timestamp and marker: a packet may start a
/// unit (an H.264 NAL unit, an AV1 OBU) in the middle of a frame.
fn by_timestamp(codec: Codec) -> bool {
    matches!(codec, Codec::H264 | Codec::Av1)
}

/// One packet of a stream, as the recorder receives it.
#[derive(Debug, Clone)]
pub struct RecPacket {
    /// Codec of the payload.
    pub codec: Codec,
    /// The publisher generation.
    pub generation: u32,
    /// The video encoding (0 for audio).
    pub encoding: u8,
    /// The publisher's sequence number.
    pub seq: u16,
    /// The publisher's RTP timestamp.
    pub ts: u32,
    /// Marker bit (end of a video frame).
    pub marker: bool,
    /// It starts a keyframe.
    pub keyframe: bool,
    /// The RTP payload.
    pub payload: Bytes,
}

/// A whole frame, its payload descriptors removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The RTP timestamp of its packets.
    pub ts: u32,
    /// When its first packet arrived.
    pub arrival: Instant,
    /// A keyframe.
    pub keyframe: bool,
    /// The codec's frame (what a decoder takes).
    pub data: Vec<u8>,
}

/// What one stream's assembly counted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AssembleStats {
    /// Frames given up (a packet never came, or its payload did not parse).
    pub lost_frames: u64,
    /// Packets that came after their frame was written or given up.
    pub late: u64,
}

#[derive(Debug)]
struct Held {
    ts: u32,
    marker: bool,
    keyframe: bool,
    head: bool,
    arrival: Instant,
    payload: Bytes,
}

/// The reassembly of one RTP stream.
#[derive(Debug)]
pub struct Assembler {
    codec: Codec,
    vp8: Vp8Depacketizer,
    h264: H264Depacketizer,
    held: BTreeMap<u64, Held>,
    /// The last extended sequence number seen (for extending the next).
    last: Option<u64>,
    /// The next sequence number a frame must start at.
    next: Option<u64>,
    /// A hole was given up since the last call of [`Self::take_loss`].
    lost: bool,
    stats: AssembleStats,
}

impl Assembler {
    /// The assembly of a stream of `codec`.
    pub fn new(codec: Codec) -> Self {
        Assembler {
            codec,
            vp8: Vp8Depacketizer::default(),
            h264: super::h264::depacketizer(),
            held: BTreeMap::new(),
            last: None,
            next: None,
            lost: false,
            stats: AssembleStats::default(),
        }
    }

    /// The codec of its stream.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// What it counted.
    pub fn stats(&self) -> AssembleStats {
        self.stats
    }

    /// Whether a frame was given up since the last call (a video stream then needs a
    /// keyframe: the frames after it reference what is missing).
    pub fn take_loss(&mut self) -> bool {
        std::mem::take(&mut self.lost)
    }

    fn extend(&mut self, seq: u16) -> u64 {
        let ext = match self.last {
            // Start well above zero so that a packet from before the first stays positive.
            None => (1 << 32) + u64::from(seq),
            Some(last) => {
                let delta = seq.wrapping_sub(last as u16) as i16;
                last.saturating_add_signed(i64::from(delta))
            }
        };
        self.last = Some(self.last.map_or(ext, |l| l.max(ext)));
        ext
    }

    fn is_head(&self, payload: &[u8]) -> bool {
        match self.codec {
            Codec::Vp8 => self.vp8.is_partition_head(payload),
            Codec::H264 => self.h264.is_partition_head(payload),
            Codec::Vp9 => super::vp9::is_head(payload),
            Codec::Av1 => super::av1::is_head(payload),
            Codec::Opus => true,
        }
    }

    /// Takes one packet; whole frames go to `out`, in order.
    pub fn push(&mut self, pkt: &RecPacket, now: Instant, out: &mut Vec<Frame>) {
        let seq = self.extend(pkt.seq);
        let head = self.is_head(&pkt.payload);
        if self.next.is_none() {
            if !head {
                // The middle of a frame: wait for the start of the next one.
                return;
            }
            self.next = Some(seq);
        }
        if self.next.is_some_and(|n| seq < n) {
            self.stats.late += 1;
            return;
        }
        self.held.entry(seq).or_insert(Held {
            ts: pkt.ts,
            marker: pkt.marker,
            keyframe: pkt.keyframe,
            head,
            arrival: now,
            payload: pkt.payload.clone(),
        });
        self.release(now, out);
    }

    /// Gives up holes older than [`REORDER_WAIT`] (called when no packet comes).
    pub fn tick(&mut self, now: Instant, out: &mut Vec<Frame>) {
        self.release(now, out);
    }

    fn release(&mut self, now: Instant, out: &mut Vec<Frame>) {
        loop {
            let Some(next) = self.next else { return };
            match self.frame_at(next) {
                Some(Ok(end)) => {
                    self.emit(next, end, out);
                    self.next = Some(end + 1);
                }
                Some(Err(())) => self.give_up(next + 1),
                None => {
                    let Some((_, oldest)) = self.held.first_key_value() else {
                        return;
                    };
                    let stale = now.saturating_duration_since(oldest.arrival) > REORDER_WAIT;
                    if !stale && self.held.len() < MAX_HELD {
                        return;
                    }
                    self.give_up(next + 1);
                }
            }
        }
    }

    /// Whether the frame starting at `start` is complete (`Ok(last seq)`), broken
    /// (`Err`: its start is missing, or another frame begins before its marker), or not yet
    /// known (`None`).
    fn frame_at(&self, start: u64) -> Option<Result<u64, ()>> {
        let first = self.held.get(&start)?;
        if !first.head {
            return Some(Err(()));
        }
        if self.codec == Codec::Opus {
            return Some(Ok(start));
        }
        let mut seq = start;
        loop {
            let p = self.held.get(&seq)?;
            // An H.264 access unit's NAL units (an AV1 temporal unit's OBUs) each may start
            // a packet; its end is the marker.
            let new_frame = seq != start && p.head && !by_timestamp(self.codec);
            if p.ts != first.ts || new_frame {
                return Some(Err(()));
            }
            if p.marker {
                return Some(Ok(seq));
            }
            seq += 1;
        }
    }

    /// Drops what is held before the first frame start at or after `from`, and counts the
    /// frame given up.
    fn give_up(&mut self, from: u64) {
        self.stats.lost_frames += 1;
        self.lost = true;
        let by_ts = by_timestamp(self.codec);
        let held = &self.held;
        // An H.264 NAL unit's start (an AV1 OBU's) is a frame's only after the end of one
        // (a marker) or at a new timestamp, as far as what is held tells.
        let starts_frame = |s: u64, p: &Held| {
            p.head && (!by_ts || held.get(&(s - 1)).is_none_or(|b| b.marker || b.ts != p.ts))
        };
        let start = self
            .held
            .range(from..)
            .find(|(s, p)| starts_frame(**s, p))
            .map(|(s, _)| *s);
        match start {
            Some(s) => {
                self.held = self.held.split_off(&s);
                self.next = Some(s);
            }
            None => {
                self.held.clear();
                self.next = None;
            }
        }
    }

    fn emit(&mut self, start: u64, end: u64, out: &mut Vec<Frame>) {
        let rest = self.held.split_off(&(end + 1));
        let packets = std::mem::replace(&mut self.held, rest);
        let Some(first) = packets.get(&start) else {
            return;
        };
        let (ts, arrival) = (first.ts, first.arrival);
        let mut data = Vec::new();
        let Some(keyframe) = self.depacketize(&packets, &mut data) else {
            self.stats.lost_frames += 1;
            self.lost = true;
            return;
        };
        if !data.is_empty() {
            out.push(Frame {
                ts,
                arrival,
                keyframe,
                data,
            });
        }
    }

    /// A frame's packets (in order, the first at the start) into the codec's frame in
    /// `data`; whether it is a keyframe, or `None` when the packets do not make a frame.
    fn depacketize(&mut self, packets: &BTreeMap<u64, Held>, data: &mut Vec<u8>) -> Option<bool> {
        let payloads = || packets.values().map(|p| &p.payload[..]);
        let first_key = packets.values().next().is_some_and(|p| p.keyframe);
        let keyframe = match self.codec {
            Codec::Vp8 => {
                let mut extra = CodecExtra::None;
                for p in payloads() {
                    self.vp8.depacketize(p, data, &mut extra).ok()?;
                    if data.len() > MAX_FRAME_BYTES {
                        return None;
                    }
                }
                first_key
            }
            Codec::H264 => {
                // Each frame starts afresh: str0m's H.264 depacketizer keeps a fragmented
                // unit's parts until a packet ends it, and a unit never ended (a
                // publisher's fault, or a frame given up half-way) would grow without
                // bound and begin the next frame.
                self.h264 = super::h264::depacketizer();
                let mut extra = CodecExtra::None;
                for p in payloads() {
                    self.h264.depacketize(p, data, &mut extra).ok()?;
                    if data.len() > MAX_FRAME_BYTES {
                        return None;
                    }
                }
                // An IDR picture, whatever its first packet held.
                super::h264::is_idr(data)
            }
            Codec::Vp9 => {
                super::vp9::depacketize(payloads(), data).ok()?;
                super::vp9::is_keyframe(data)
            }
            Codec::Av1 => {
                super::av1::depacketize(payloads(), data).ok()?;
                // A new coded video sequence (N) that carries its sequence header.
                first_key && super::av1::sequence_header(data).is_some()
            }
            Codec::Opus => {
                data.extend(payloads().flatten());
                true
            }
        };
        (data.len() <= MAX_FRAME_BYTES).then_some(keyframe)
    }
}
