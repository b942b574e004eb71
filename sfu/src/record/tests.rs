//! The recorder's core on synthetic VP8 and Opus packets: losses, reordering, publisher
//! restarts and layer choice, checked on the frames and times that come out.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::assemble::RecPacket;
use super::core::{vp8_frame_size, Layers, MuxFrame, Output, RecorderCore};
use super::timeline::{INTERLEAVE_HOLD, RESTART_STEP};
use crate::codec::Codec;

const FRAME_TS: u32 = 3000; // 30 fps at 90 kHz
const FRAME_MS: u64 = 33;

/// A VP8 frame (a keyframe carries its size) split into two RTP packets.
fn video(
    generation: u32,
    encoding: u8,
    seq: u16,
    ts: u32,
    key: bool,
    size: (u16, u16),
) -> [RecPacket; 2] {
    let mut frame = if key {
        let mut f = vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a];
        f.extend_from_slice(&size.0.to_le_bytes());
        f.extend_from_slice(&size.1.to_le_bytes());
        f
    } else {
        vec![0x11, 0x02, 0x00]
    };
    frame.extend_from_slice(&[seq as u8; 40]);
    let (a, b) = frame.split_at(frame.len() / 2);
    let pkt = |seq: u16, head: bool, marker: bool, body: &[u8]| {
        let mut payload = vec![if head { 0x10 } else { 0x00 }];
        payload.extend_from_slice(body);
        RecPacket {
            codec: Codec::Vp8,
            generation,
            encoding,
            seq,
            ts,
            marker,
            keyframe: key && head,
            payload: Bytes::from(payload),
        }
    };
    [
        pkt(seq, true, false, a),
        pkt(seq.wrapping_add(1), false, true, b),
    ]
}

fn audio(generation: u32, seq: u16, ts: u32) -> RecPacket {
    RecPacket {
        codec: Codec::Opus,
        generation,
        encoding: 0,
        seq,
        ts,
        marker: false,
        keyframe: false,
        payload: Bytes::from(vec![0xfc, seq as u8, 3]),
    }
}

fn frames(out: &[Output]) -> Vec<&MuxFrame> {
    out.iter()
        .filter_map(|o| match o {
            Output::Frame(f) => Some(f),
            _ => None,
        })
        .collect()
}

fn video_times(out: &[Output]) -> Vec<u64> {
    frames(out)
        .iter()
        .filter(|f| f.video)
        .map(|f| f.ns / 1_000_000)
        .collect()
}

/// A publisher of one layer: `n` video frames (a keyframe every `gop`) and the audio of
/// the same span, from `t0`, numbered from `seq0`/`ts0`; `skip` drops packets by index.
struct Publisher {
    generation: u32,
    seq: u16,
    ts: u32,
    aseq: u16,
    ats: u32,
    t: Instant,
}

impl Publisher {
    fn new(generation: u32, seq: u16, ts: u32, t: Instant) -> Self {
        Publisher {
            generation,
            seq,
            ts,
            aseq: seq ^ 0x5555,
            ats: ts ^ 0x1234_5678,
            t,
        }
    }

    /// The packets of the next frame (two video packets, and about 33 ms of audio).
    fn next(&mut self, key: bool) -> (Instant, Vec<RecPacket>) {
        let mut v = video(self.generation, 0, self.seq, self.ts, key, (640, 360)).to_vec();
        self.seq = self.seq.wrapping_add(2);
        self.ts = self.ts.wrapping_add(FRAME_TS);
        v.push(audio(self.generation, self.aseq, self.ats));
        self.aseq = self.aseq.wrapping_add(1);
        self.ats = self.ats.wrapping_add(1584); // 33 ms at 48 kHz
        let t = self.t;
        self.t += Duration::from_millis(FRAME_MS);
        (t, v)
    }
}

fn run(core: &mut RecorderCore, batches: Vec<(Instant, Vec<RecPacket>)>) -> Vec<Output> {
    let mut out = Vec::new();
    for (t, pkts) in batches {
        for p in pkts {
            core.push(&p, t, &mut out);
        }
    }
    core.finish(&mut out);
    out
}

#[test]
fn a_clean_stream_comes_out_frame_by_frame_in_time() {
    let t0 = Instant::now();
    // Sequence numbers and timestamps wrap during the stream.
    let mut p = Publisher::new(1, 65_500, u32::MAX - 10 * FRAME_TS, t0);
    let batches = (0..60).map(|i| p.next(i % 30 == 0)).collect();
    let mut core = RecorderCore::new(Layers::Top);
    let out = run(&mut core, batches);
    let times = video_times(&out);
    assert_eq!(times.len(), 60, "every frame");
    for (i, t) in times.iter().enumerate() {
        assert_eq!(*t, i as u64 * 1000 / 30, "frame {i} at its RTP time");
    }
    let all = frames(&out);
    assert!(
        all.windows(2).all(|w| w[0].ns <= w[1].ns),
        "one order over tracks"
    );
    assert_eq!(
        all.iter().filter(|f| !f.video).count(),
        60,
        "every audio frame"
    );
    let first = all.iter().find(|f| f.video).unwrap();
    assert_eq!(first.size, Some((640, 360)));
    assert_eq!(
        vp8_frame_size(&first.data),
        Some((640, 360)),
        "descriptor stripped"
    );
    assert_eq!(core.stats().lost_frames, 0);
}

#[test]
fn reordered_packets_make_the_same_frames() {
    let t0 = Instant::now();
    let mut p = Publisher::new(7, 100, 5000, t0);
    let clean: Vec<_> = (0..20).map(|i| p.next(i == 0)).collect();
    let mut shuffled = clean.clone();
    // Swap the two packets of frame 3, and frame 6's second packet with frame 7's first.
    shuffled[3].1.swap(0, 1);
    let late = shuffled[6].1.remove(1);
    shuffled[7].1.insert(1, late);
    let a = run(&mut RecorderCore::new(Layers::Top), clean);
    let b = run(&mut RecorderCore::new(Layers::Top), shuffled);
    assert_eq!(video_times(&a), video_times(&b));
    let data = |o: &[Output]| {
        frames(o)
            .iter()
            .filter(|f| f.video)
            .map(|f| f.data.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(data(&a), data(&b));
}

#[test]
fn a_lost_packet_stops_the_video_until_a_keyframe_which_is_asked_for() {
    let t0 = Instant::now();
    let mut p = Publisher::new(1, 0, 0, t0);
    let mut batches: Vec<_> = (0..40).map(|i| p.next(i == 0 || i == 25)).collect();
    batches[10].1.remove(1); // frame 10's second packet never comes
    let mut core = RecorderCore::new(Layers::Top);
    let out = run(&mut core, batches);
    assert!(out.contains(&Output::Keyframe(0)), "a keyframe asked for");
    let times = video_times(&out);
    let expect: Vec<u64> = (0..10).chain(25..40).map(|i| i * 1000 / 30).collect();
    assert_eq!(
        times, expect,
        "frames 10 to 24 dropped, the rest at their times"
    );
    assert_eq!(
        frames(&out).iter().filter(|f| !f.video).count(),
        40,
        "audio goes on"
    );
    assert!(core.stats().lost_frames >= 1);
    assert_eq!(core.stats().awaiting_keyframe, 14);
}

#[test]
fn a_publisher_restart_continues_the_timeline() {
    let t0 = Instant::now();
    let mut first = Publisher::new(1, 1000, 90_000, t0);
    let mut batches: Vec<_> = (0..30).map(|i| first.next(i == 0)).collect();
    // The publisher comes back 5 s later with new numbering (a lower timestamp).
    let mut second = Publisher::new(2, 7, 12, first.t + Duration::from_secs(5));
    batches.extend((0..30).map(|i| second.next(i == 0)));
    let mut core = RecorderCore::new(Layers::Top);
    let out = run(&mut core, batches);
    let times = video_times(&out);
    assert_eq!(times.len(), 60);
    assert!(
        times.windows(2).all(|w| w[0] < w[1]),
        "never back: {times:?}"
    );
    let last_first = 29 * 1000 / 30;
    let gap = times[30] - times[29];
    assert!(
        gap <= FRAME_MS + RESTART_STEP.as_millis() as u64 + 5,
        "the 5 s away are closed up: gap {gap} ms after {last_first} ms"
    );
    assert_eq!(core.generations(), 2);
    let all = frames(&out);
    assert!(
        all.windows(2).all(|w| w[0].ns <= w[1].ns),
        "one order over tracks"
    );
    // A late packet of the first publisher after the restart is dropped, not written.
    let mut out = Vec::new();
    let stale = video(1, 0, 1100, 90_000 + 40 * FRAME_TS, true, (640, 360));
    core.push(&stale[0], second.t, &mut out);
    core.finish(&mut out);
    assert!(frames(&out).is_empty());
}

#[test]
fn top_layer_follows_the_largest_picture_from_its_keyframe() {
    let t0 = Instant::now();
    let mut out = Vec::new();
    let mut core = RecorderCore::new(Layers::Top);
    let (mut lseq, mut hseq) = (10u16, 500u16);
    for i in 0..30u32 {
        let t = t0 + Duration::from_millis(u64::from(i) * FRAME_MS);
        let ts = i * FRAME_TS;
        for p in video(1, 0, lseq, ts, i == 0, (320, 180)) {
            core.push(&p, t, &mut out);
        }
        lseq += 2;
        // The upper layer starts at frame 10 (a browser's estimate grew).
        if i >= 10 {
            for p in video(1, 2, hseq, ts, i == 10, (1280, 720)) {
                core.push(&p, t, &mut out);
            }
            hseq += 2;
        }
    }
    core.finish(&mut out);
    assert_eq!(core.chosen(), Some(2));
    let v: Vec<_> = frames(&out).into_iter().filter(|f| f.video).collect();
    assert_eq!(v.len(), 30, "one frame per picture time: {}", v.len());
    let sizes: Vec<_> = v.iter().filter_map(|f| f.size).collect();
    assert_eq!(sizes, vec![(320, 180), (1280, 720)]);
    assert!(v.windows(2).all(|w| w[0].ns < w[1].ns));
    // One layer only, by encoding.
    let mut out = Vec::new();
    let mut core = RecorderCore::new(Layers::Encoding(0));
    for p in video(1, 2, 1, 0, true, (1280, 720)) {
        core.push(&p, t0, &mut out);
    }
    core.finish(&mut out);
    assert!(frames(&out).is_empty());
}

#[test]
fn frames_wait_for_the_hold_then_leave_in_order() {
    let t0 = Instant::now();
    let mut p = Publisher::new(1, 0, 0, t0);
    let mut core = RecorderCore::new(Layers::Top);
    let mut out = Vec::new();
    let hold = INTERLEAVE_HOLD.as_millis() as u64 / FRAME_MS;
    for i in 0..(hold + 3) {
        let (t, pkts) = p.next(i == 0);
        for pkt in pkts {
            core.push(&pkt, t, &mut out);
        }
    }
    let n = frames(&out).len();
    assert!(
        n > 0 && n < 2 * (hold as usize + 3),
        "some out, the newest held: {n}"
    );
}

/// Random packets (any codec, numbering, flags and payload bytes) never panic the core,
/// and whatever comes out is in time order.
#[test]
fn random_packets_never_panic_the_core() {
    let t0 = Instant::now();
    let mut s = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    for layers in [Layers::Top, Layers::Encoding(1)] {
        let mut core = RecorderCore::new(layers);
        let mut out = Vec::new();
        let mut last = 0;
        for i in 0..100_000u64 {
            let r = next();
            let codec = [Codec::Vp8, Codec::Opus, Codec::Vp9, Codec::H264][(r % 4) as usize];
            let len = (r >> 8) as usize % 40;
            let payload: Vec<u8> = (0..len).map(|k| (next() >> (k % 8)) as u8).collect();
            let pkt = RecPacket {
                codec,
                generation: (r >> 16) as u32 % 3,
                encoding: (r >> 20) as u8 % 3,
                seq: (i as u16).wrapping_add((r >> 24) as u16 % 8),
                ts: (i as u32 / 3).wrapping_mul(3000) ^ ((r >> 32) as u32 % 2),
                marker: r & (1 << 40) != 0,
                keyframe: r & (1 << 41) != 0,
                payload: Bytes::from(payload),
            };
            let t = t0 + Duration::from_millis(i / 4);
            core.push(&pkt, t, &mut out);
            if i % 500 == 0 {
                core.tick(t, &mut out);
            }
            for f in frames(&out) {
                assert!(f.ns >= last, "time went back");
                last = f.ns;
            }
            out.clear();
        }
        core.finish(&mut out);
    }
}
