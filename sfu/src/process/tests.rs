//! The ladder end to end, on real libvpx: a VP8 source made here, its packets through a
//! [`Ladder`], the rungs' packets reassembled and decoded as a viewer's browser would. The
//! source and viewer here take either codec; the H.264 cases are in `tests_h264.rs`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use prometheus::IntCounter;

use super::coding::{EncoderConfig, Payloader, RungEncoder, SourceDecoder};
use super::ladder::{Ladder, LadderConfig, RungPacket, MAX_SOURCE_PIXELS};
use super::packetize::{LayerPacket, Vp8Payloader};
use super::scale::I420;
use super::thread::{LadderHandle, LadderOut};
use super::vpx::{Decoder, Encoder};
use crate::codec::Codec;
use crate::record::assemble::{Assembler, RecPacket, REORDER_WAIT};

/// A moving picture, so that frames differ.
pub(super) fn picture(w: usize, h: usize, t: usize) -> I420 {
    let mut p = I420::filled(w, h, 0, 128, 128);
    for y in 0..h {
        for x in 0..w {
            p.y[y * w + x] = ((x + 2 * y + 5 * t) % 256) as u8;
        }
    }
    p
}

/// A single-layer VP8 (or H.264) publisher: pictures in, RTP packets (as the recorder and
/// ladder take them) out.
pub(super) struct Source {
    codec: Codec,
    enc: RungEncoder,
    pay: Payloader,
    t: usize,
    size: (usize, usize),
}

impl Source {
    fn new(w: usize, h: usize) -> Self {
        Source::of(Codec::Vp8, w, h)
    }

    /// A publisher of `codec` at `w × h`.
    pub(super) fn of(codec: Codec, w: usize, h: usize) -> Self {
        Source {
            codec,
            enc: RungEncoder::new(codec, EncoderConfig::realtime(w, h)).unwrap(),
            pay: Payloader::new(codec, 1000, 1),
            t: 0,
            size: (w, h),
        }
    }

    pub(super) fn resize(&mut self, w: usize, h: usize) {
        self.enc = RungEncoder::new(self.codec, EncoderConfig::realtime(w, h)).unwrap();
        self.size = (w, h);
    }

    fn ts(&self) -> u32 {
        (self.t as u32)
            .wrapping_mul(3000)
            .wrapping_add(u32::MAX - 10_000)
    }

    /// The next frame's packets; a keyframe when `key`.
    pub(super) fn next(&mut self, key: bool) -> Vec<RecPacket> {
        let (w, h) = self.size;
        let frames = self
            .enc
            .encode(&picture(w, h, self.t), self.t as i64 * 3000, key)
            .unwrap();
        let mut out = Vec::new();
        for f in frames {
            self.pay.packetize(&f.data, self.ts(), f.keyframe, &mut out);
        }
        self.t += 1;
        out.into_iter().map(|p| p.into_rec(self.codec)).collect()
    }

    /// A frame whose data is garbage (its VP8 descriptor is sound; for H.264, a non-IDR
    /// slice's NAL header before it).
    pub(super) fn corrupt(&mut self) -> Vec<RecPacket> {
        let mut out = Vec::new();
        let mut junk: Vec<u8> = (0..900).map(|i| (i * 31 + 7) as u8 | 1).collect();
        if self.codec == Codec::H264 {
            junk.splice(0..0, [0, 0, 0, 1, 0x41]);
        }
        self.pay.packetize(&junk, self.ts(), false, &mut out);
        self.t += 1;
        out.into_iter().map(|p| p.into_rec(self.codec)).collect()
    }
}

fn rec(p: LayerPacket) -> RecPacket {
    p.into_rec(Codec::Vp8)
}

/// A decoded frame: its size, and whether it was a keyframe.
type Shown = ((usize, usize), bool);

/// What a viewer of each rung sees: its frames decoded (size, keyframe), and whether its
/// sequence numbers ran on with no gap; and each rung's frames as they came (for a look at
/// what they hold).
#[derive(Default)]
pub(super) struct Viewer {
    asm: BTreeMap<u8, Assembler>,
    dec: BTreeMap<u8, SourceDecoder>,
    last_seq: BTreeMap<u8, u16>,
    pub(super) gaps: usize,
    pub(super) frames: BTreeMap<u8, Vec<Shown>>,
    pub(super) data: BTreeMap<u8, Vec<Vec<u8>>>,
}

impl Viewer {
    pub(super) fn take(&mut self, pkts: &[RungPacket]) {
        let now = Instant::now();
        for p in pkts {
            if let Some(last) = self.last_seq.insert(p.rung, p.packet.seq) {
                if p.packet.seq != last.wrapping_add(1) {
                    self.gaps += 1;
                }
            }
            let mut frames = Vec::new();
            self.asm
                .entry(p.rung)
                .or_insert_with(|| Assembler::new(p.codec))
                .push(&p.packet.clone().into_rec(p.codec), now, &mut frames);
            let dec = self
                .dec
                .entry(p.rung)
                .or_insert_with(|| SourceDecoder::new(p.codec, MAX_SOURCE_PIXELS).unwrap());
            for f in frames {
                let pic = dec.decode(&f.data).unwrap().unwrap();
                assert_eq!(
                    (pic.width, pic.height),
                    (usize::from(p.width), usize::from(p.height))
                );
                self.frames
                    .entry(p.rung)
                    .or_default()
                    .push(((pic.width, pic.height), f.keyframe));
                self.data.entry(p.rung).or_default().push(f.data);
            }
        }
    }

    pub(super) fn sizes(&self, rung: u8) -> Vec<(usize, usize)> {
        let mut s: Vec<_> = self.frames[&rung].iter().map(|f| f.0).collect();
        s.dedup();
        s
    }
}

pub(super) fn feed(ladder: &mut Ladder, pkts: &[RecPacket], viewer: &mut Viewer) {
    let mut out = Vec::new();
    for p in pkts {
        ladder.push(p, Instant::now(), &mut out);
    }
    viewer.take(&out);
}

#[test]
fn a_720p_source_gets_640_and_320_wide_layers() {
    source_720p_gets_two_rungs(Codec::Vp8);
}

/// Six frames of a 720p `codec` source: 640- and 320-wide rungs in the source's codec, one
/// frame out per frame in, each rung starting on a keyframe. The ladder, what a viewer
/// decoded and the rungs' packets.
pub(super) fn source_720p_gets_two_rungs(codec: Codec) -> (Ladder, Viewer, Vec<RungPacket>) {
    let mut src = Source::of(codec, 1280, 720);
    let mut ladder = Ladder::new(codec, LadderConfig::default(), 7);
    let mut viewer = Viewer::default();
    let mut out = Vec::new();
    for i in 0..6 {
        for p in src.next(i == 0) {
            ladder.push(&p, Instant::now(), &mut out);
        }
    }
    assert!(out.iter().all(|p| p.codec == codec), "the source's codec");
    viewer.take(&out);
    assert_eq!(ladder.rung_sizes(), vec![(640, 360), (320, 180)]);
    assert_eq!(viewer.sizes(0), vec![(640, 360)]);
    assert_eq!(viewer.sizes(1), vec![(320, 180)]);
    for rung in [0, 1] {
        let f = &viewer.frames[&rung];
        assert_eq!(f.len(), 6, "one frame out per frame in, rung {rung}");
        assert!(f[0].1, "each rung starts on a keyframe");
        assert!(f[1..].iter().all(|f| !f.1), "and then only on request");
    }
    assert_eq!(viewer.gaps, 0);
    (ladder, viewer, out)
}

#[test]
fn a_viewers_keyframe_request_is_the_encoders() {
    let mut src = Source::new(640, 360);
    let mut ladder = Ladder::new(Codec::Vp8, LadderConfig::default(), 1);
    let mut viewer = Viewer::default();
    for i in 0..4 {
        feed(&mut ladder, &src.next(i == 0), &mut viewer);
    }
    ladder.request_keyframe(1);
    feed(&mut ladder, &src.next(false), &mut viewer);
    assert!(
        viewer.frames[&1][4].1,
        "the rung asked for sends a keyframe"
    );
    assert!(!viewer.frames[&0][4].1, "the other does not");
    assert_eq!(viewer.sizes(0), vec![(320, 180)]);
    assert_eq!(viewer.sizes(1), vec![(160, 90)]);
}

/// A keyframe declaring a picture larger than 1080p is not decoded (libvpx would allocate
/// for it); the ladder waits for the next keyframe that fits.
#[test]
fn an_oversized_keyframe_is_not_decoded() {
    let mut enc = Encoder::new(EncoderConfig::realtime(640, 360)).unwrap();
    let key = enc.encode(&picture(640, 360, 0), 0, true).unwrap();
    let data = key[0].data.clone();
    assert_eq!(super::ladder::keyframe_size(&data), Some((640, 360)));
    // The same keyframe, its header saying 16000x16000.
    let mut big = data.to_vec();
    big[6..10].copy_from_slice(&[0x80, 0x3e, 0x80, 0x3e]);
    assert_eq!(super::ladder::keyframe_size(&big), Some((16000, 16000)));
    let mut pay = Vp8Payloader::new(1000, 1);
    let mut pkts = Vec::new();
    pay.packetize(&big, 90_000, true, &mut pkts);
    let mut ladder = Ladder::new(Codec::Vp8, LadderConfig::default(), 2);
    let mut viewer = Viewer::default();
    feed(
        &mut ladder,
        &pkts.into_iter().map(rec).collect::<Vec<_>>(),
        &mut viewer,
    );
    assert_eq!(ladder.stats().oversize, 1);
    assert_eq!(ladder.stats().decoded, 0);
    assert!(ladder.rung_sizes().is_empty(), "no rung built for it");
    let key = enc.encode(&picture(640, 360, 1), 3000, true).unwrap();
    let mut pkts = Vec::new();
    pay.packetize(&key[0].data, 93_000, true, &mut pkts);
    feed(
        &mut ladder,
        &pkts.into_iter().map(rec).collect::<Vec<_>>(),
        &mut viewer,
    );
    assert_eq!(ladder.stats().decoded, 1, "the next keyframe that fits is");
}

#[test]
fn a_corrupt_frame_waits_for_the_next_keyframe_and_goes_on() {
    corrupt_frame_waits_for_the_next_keyframe(Codec::Vp8);
}

/// A corrupt frame of a `codec` source: the ladder waits for the next keyframe (asking for
/// one) and goes on, its rungs unbroken.
pub(super) fn corrupt_frame_waits_for_the_next_keyframe(codec: Codec) {
    let mut src = Source::of(codec, 640, 360);
    let mut ladder = Ladder::new(codec, LadderConfig::default(), 2);
    let mut viewer = Viewer::default();
    feed(&mut ladder, &src.next(true), &mut viewer);
    assert!(ladder.take_source_keyframe_request(), "asks at the start");
    for _ in 0..3 {
        feed(&mut ladder, &src.next(false), &mut viewer);
    }
    assert!(!ladder.take_source_keyframe_request());
    feed(&mut ladder, &src.corrupt(), &mut viewer);
    assert_eq!(ladder.stats().decode_errors, 1);
    assert!(
        ladder.take_source_keyframe_request(),
        "asks the publisher for a keyframe"
    );
    // Delta frames after it reference a picture the ladder lost: skipped.
    for _ in 0..3 {
        feed(&mut ladder, &src.next(false), &mut viewer);
    }
    assert_eq!(ladder.stats().skipped, 3);
    assert_eq!(viewer.frames[&0].len(), 4);
    feed(&mut ladder, &src.next(true), &mut viewer);
    feed(&mut ladder, &src.next(false), &mut viewer);
    assert_eq!(viewer.frames[&0].len(), 6, "back at the keyframe");
    assert_eq!(viewer.gaps, 0, "the rungs' streams ran on unbroken");
}

#[test]
fn a_ladder_waiting_for_a_keyframe_asks_again_every_second() {
    use super::ladder::KEY_RETRY;
    let mut src = Source::new(640, 360);
    // The source's keyframe went by before the ladder started: it sees only deltas.
    let _ = src.next(true);
    let mut ladder = Ladder::new(Codec::Vp8, LadderConfig::default(), 3);
    let t0 = Instant::now();
    let mut out = Vec::new();
    let mut asks = Vec::new();
    // 3.5 s of a 30 fps source, on the ladder's clock.
    for i in 0..105u32 {
        let at = t0 + Duration::from_millis(u64::from(i) * 1000 / 30);
        for p in src.next(false) {
            ladder.push(&p, at, &mut out);
        }
        if ladder.take_source_keyframe_request() {
            asks.push(at - t0);
        }
    }
    assert_eq!(
        asks.len(),
        4,
        "at the start, then every {KEY_RETRY:?}: {asks:?}"
    );
    assert!(
        asks.windows(2).all(|w| w[1] - w[0] >= KEY_RETRY),
        "{asks:?}"
    );
    assert!(out.is_empty(), "nothing decodes without a keyframe");
    // The keyframe comes: no more asking.
    for p in src.next(true) {
        ladder.push(&p, t0 + Duration::from_secs(4), &mut out);
    }
    // (Asked once more as its first packet came, a second after the last ask.)
    let _ = ladder.take_source_keyframe_request();
    for p in src.next(false) {
        ladder.push(&p, t0 + Duration::from_secs(6), &mut out);
    }
    assert!(!ladder.take_source_keyframe_request());
    assert!(!out.is_empty(), "the rungs run");
}

#[test]
fn late_packets_are_dropped_and_the_ladder_goes_on_at_the_next_keyframe() {
    let mut src = Source::new(640, 360);
    let mut ladder = Ladder::new(Codec::Vp8, LadderConfig::default(), 4);
    let mut viewer = Viewer::default();
    feed(&mut ladder, &src.next(true), &mut viewer);
    feed(&mut ladder, &src.next(false), &mut viewer);
    let _ = ladder.take_source_keyframe_request();
    // A frame's packets come too late (the thread fell behind): not transcoded.
    for _ in src.next(false) {
        ladder.skip_late(Instant::now());
    }
    assert!(ladder.stats().late > 0);
    assert!(ladder.take_source_keyframe_request(), "asks for a keyframe");
    // Deltas after it reference what was skipped: held until the keyframe. (The hole
    // the skipped packets left is given up once the assembler's reorder wait is over.)
    let mut at = Instant::now();
    let mut out = Vec::new();
    for key in [false, true, false] {
        for p in src.next(key) {
            ladder.push(&p, at, &mut out);
        }
        at += 2 * REORDER_WAIT;
        ladder.tick(at, &mut out);
    }
    viewer.take(&out);
    assert_eq!(viewer.frames[&0].len(), 4, "back at the keyframe");
    assert_eq!(viewer.gaps, 0, "the rungs' streams ran on unbroken");
}

#[test]
fn a_resolution_change_rebuilds_the_rungs_at_the_new_halves() {
    resolution_change_rebuilds_the_rungs(Codec::Vp8);
}

/// A `codec` source changes its size: the rungs are rebuilt at the new halves.
pub(super) fn resolution_change_rebuilds_the_rungs(codec: Codec) {
    let mut src = Source::of(codec, 640, 360);
    let mut ladder = Ladder::new(codec, LadderConfig::default(), 3);
    let mut viewer = Viewer::default();
    for i in 0..3 {
        feed(&mut ladder, &src.next(i == 0), &mut viewer);
    }
    src.resize(480, 270);
    for i in 0..3 {
        feed(&mut ladder, &src.next(i == 0), &mut viewer);
    }
    assert_eq!(ladder.stats().resizes, 1);
    // 240×134; a quarter (120 wide) is under the smallest rung made.
    assert_eq!(ladder.rung_sizes(), vec![(240, 134)]);
    assert_eq!(viewer.sizes(0), vec![(320, 180), (240, 134)]);
    assert!(viewer.frames[&0][3].1, "the new size starts on a keyframe");
    assert_eq!(viewer.frames[&1].len(), 3, "the quarter rung stopped");
    assert_eq!(viewer.gaps, 0, "the half rung's numbering went on");
}

#[test]
fn the_thread_hands_packets_back_and_stops() {
    let (tx, rx) = crossbeam_channel::bounded(super::thread::OUT_BATCHES);
    let dropped = IntCounter::new("ladder_test_dropped", "test").unwrap();
    let handle = LadderHandle::start(
        Codec::Vp8,
        LadderConfig::default(),
        None,
        9,
        tx,
        dropped.clone(),
    )
    .unwrap();
    let mut src = Source::new(640, 360);
    for i in 0..5 {
        for p in src.next(i == 0) {
            handle.send(p);
        }
    }
    let mut viewer = Viewer::default();
    let mut asked = false;
    let deadline = Instant::now() + Duration::from_secs(10);
    while viewer.frames.get(&1).map_or(0, Vec::len) < 5 && Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(LadderOut::Packets(p)) => viewer.take(&p),
            Ok(LadderOut::SourceKeyframe) => asked = true,
            Err(_) => {}
        }
    }
    assert!(asked);
    assert_eq!(viewer.sizes(0), vec![(320, 180)]);
    assert_eq!(viewer.frames[&1].len(), 5);
    let stats = handle.stop();
    assert_eq!(stats.decoded, 5);
    assert_eq!(dropped.get(), 0);
}

/// The picture ids of one rung's frames, in order (RFC 7741, 15-bit, from each frame's
/// first packet).
fn picture_ids(pkts: &[RungPacket], rung: u8) -> Vec<u16> {
    pkts.iter()
        .filter(|p| p.rung == rung && p.packet.payload[0] & 0x10 != 0)
        .map(|p| (u16::from(p.packet.payload[2] & 0x7f) << 8) | u16::from(p.packet.payload[3]))
        .collect()
}

#[test]
fn under_pressure_half_rate_then_fewer_rungs_keep_streams_valid() {
    use super::pressure::Level;
    let mut src = Source::new(640, 360);
    let mut ladder = Ladder::new(Codec::Vp8, LadderConfig::default(), 3);
    let mut viewer = Viewer::default();
    let mut all = Vec::new();
    let mut step =
        |ladder: &mut Ladder, viewer: &mut Viewer, n: usize, all: &mut Vec<RungPacket>| {
            let mut out = Vec::new();
            for i in 0..n {
                for p in src.next(all.is_empty() && i == 0) {
                    ladder.push(&p, Instant::now(), &mut out);
                }
            }
            viewer.take(&out);
            all.extend(out);
        };
    let count = |v: &Viewer, r: u8| v.frames.get(&r).map_or(0, Vec::len);
    step(&mut ladder, &mut viewer, 4, &mut all);
    assert_eq!((count(&viewer, 0), count(&viewer, 1)), (4, 4));
    ladder.set_level(Level::HalfRate);
    step(&mut ladder, &mut viewer, 6, &mut all);
    assert_eq!(
        (count(&viewer, 0), count(&viewer, 1)),
        (7, 7),
        "every other frame"
    );
    ladder.set_level(Level::FewerRungs);
    step(&mut ladder, &mut viewer, 4, &mut all);
    assert_eq!(
        (count(&viewer, 0), count(&viewer, 1)),
        (7, 9),
        "the largest rung stops, the smallest goes on"
    );
    ladder.set_level(Level::Full);
    step(&mut ladder, &mut viewer, 2, &mut all);
    assert_eq!((count(&viewer, 0), count(&viewer, 1)), (9, 11));
    assert!(viewer.frames[&0][7].1, "the rung back starts on a keyframe");
    assert!(!viewer.frames[&1][9].1, "the other goes on");
    assert_eq!(viewer.gaps, 0, "sequence numbers run on");
    for rung in [0, 1] {
        let ids = picture_ids(&all, rung);
        assert!(
            ids.windows(2).all(|w| w[1] == (w[0] + 1) & 0x7fff),
            "rung {rung}'s picture ids run on: {ids:?}"
        );
    }
    assert_eq!(ladder.stats().thinned, 5);
}

/// Rung 0's first picture as a viewer decodes it, from a ladder marked with `watermark`.
fn first_rung_picture(watermark: Option<std::sync::Arc<super::watermark::Watermark>>) -> I420 {
    let mut src = Source::new(640, 360);
    let mut ladder = Ladder::new(Codec::Vp8, LadderConfig::default(), 5).with_watermark(watermark);
    let mut out = Vec::new();
    for p in src.next(true) {
        ladder.push(&p, Instant::now(), &mut out);
    }
    let mut asm = Assembler::new(Codec::Vp8);
    let mut frames = Vec::new();
    for p in out.iter().filter(|p| p.rung == 0) {
        asm.push(&rec(p.packet.clone()), Instant::now(), &mut frames);
    }
    Decoder::new()
        .unwrap()
        .decode(&frames[0].data)
        .unwrap()
        .unwrap()
}

#[test]
fn a_watermark_marks_the_rungs_corner_and_nothing_else() {
    use super::watermark::Watermark;
    let mark = Watermark::solid(16, 8, [255, 255, 255, 255]);
    let (x0, y0, w, h) = mark.place(320, 180).unwrap();
    let plain = first_rung_picture(None);
    let marked = first_rung_picture(Some(std::sync::Arc::new(mark)));
    let (mut inside, mut n_in, mut outside, mut n_out) = (0u64, 0u64, 0u64, 0u64);
    for y in 0..180 {
        for x in 0..320 {
            let d = u64::from(plain.y[y * 320 + x].abs_diff(marked.y[y * 320 + x]));
            if (x0..x0 + w).contains(&x) && (y0..y0 + h).contains(&y) {
                inside += d;
                n_in += 1;
                assert!(marked.y[y * 320 + x] > 200, "white at ({x}, {y})");
            } else if x + 8 < x0 || y + 8 < y0 {
                // Away from the corner (the codec's blocks round its edge).
                outside += d;
                n_out += 1;
            }
        }
    }
    assert!(inside / n_in > 40, "the corner changed: {}", inside / n_in);
    assert!(
        outside * 10 / n_out < 20,
        "the rest did not: {}",
        outside as f64 / n_out as f64
    );
}
