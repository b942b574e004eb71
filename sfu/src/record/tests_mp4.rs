//! H.264 + Opus recordings end to end inside the recorder: a real H.264 stream (ten frames
//! of GStreamer's bouncing ball, 160×120, encoded once with
//! `gst-launch-1.0 videotestsrc num-buffers=10 pattern=ball ! video/x-raw,width=160,height=120,framerate=30/1 ! openh264enc gop-size=5 ! video/x-h264,stream-format=byte-stream,alignment=au,profile=constrained-baseline ! filesink location=ball-160x120.h264`)
//! packetized by str0m as a publisher's browser would (STAP-A, FU-A), through the core and
//! the MP4 file, read back with `re_mp4` (the control plane's reader).

use std::io::Cursor;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use re_mp4::{Mp4, StsdBoxContent};
use str0m::unversioned::{H264Packetizer, Packetizer};

use super::assemble::RecPacket;
use super::container::MuxFile;
use super::core::{Layers, MuxFrame, Output, RecorderCore};
use super::h264;
use crate::codec::Codec;

const STREAM: &[u8] = include_bytes!("testdata/ball-160x120.h264");
const FRAME_TS: u32 = 3000;

/// The NAL units of an Annex B stream.
fn annex_b_nals(b: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= b.len() {
        if b[i..i + 3] == [0, 0, 1] {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut nals = Vec::new();
    for (k, &s) in starts.iter().enumerate() {
        let mut end = starts.get(k + 1).map_or(b.len(), |n| n - 3);
        while end > s && b[end - 1] == 0 {
            end -= 1;
        }
        nals.push(&b[s..end]);
    }
    nals
}

/// The stream's access units, as NAL unit lists (an SPS, or a slice after a slice, starts
/// one).
fn access_units() -> Vec<Vec<&'static [u8]>> {
    access_units_of(STREAM)
}

fn access_units_of(stream: &[u8]) -> Vec<Vec<&[u8]>> {
    let mut aus: Vec<Vec<&[u8]>> = Vec::new();
    let mut has_slice = false;
    for nal in annex_b_nals(stream) {
        let t = nal[0] & 0x1f;
        let slice = t == 1 || t == 5;
        if aus.is_empty() || t == 7 || (slice && has_slice) {
            aus.push(Vec::new());
            has_slice = false;
        }
        has_slice |= slice;
        aus.last_mut().unwrap().push(nal);
    }
    aus
}

/// The RTP packets of the stream (publisher `generation`, sequence numbers from `seq`, RTP
/// time from `ts0`), audio (an Opus packet each 20 ms) between its frames.
fn packets(generation: u32, seq: &mut u16, ts0: u32) -> Vec<(Duration, RecPacket)> {
    // A small MTU: the IDR pictures go in FU-A fragments.
    packets_of(&access_units(), 120, generation, seq, ts0)
}

fn packets_of(
    aus: &[Vec<&[u8]>],
    mtu: usize,
    generation: u32,
    seq: &mut u16,
    ts0: u32,
) -> Vec<(Duration, RecPacket)> {
    let mut out = Vec::new();
    let mut packetizer = H264Packetizer::default();
    let mut audio_seq = 0u16;
    let mut audio_ms = 0u64;
    for (i, au) in aus.iter().enumerate() {
        let at = Duration::from_millis(i as u64 * 1000 / 30);
        while Duration::from_millis(audio_ms) <= at {
            out.push((
                Duration::from_millis(audio_ms),
                RecPacket {
                    codec: Codec::Opus,
                    generation,
                    encoding: 0,
                    seq: audio_seq,
                    ts: ts0.wrapping_add(audio_ms as u32 * 48),
                    marker: false,
                    keyframe: false,
                    // A silent Opus frame (CELT, 20 ms).
                    payload: Bytes::from_static(&[0xf8, 0xff, 0xfe]),
                },
            ));
            audio_seq += 1;
            audio_ms += 20;
        }
        let mut annex = Vec::new();
        for n in au {
            annex.extend_from_slice(&[0, 0, 0, 1]);
            annex.extend_from_slice(n);
        }
        let payloads = packetizer.packetize(mtu, &annex).unwrap();
        let last = payloads.len() - 1;
        for (k, p) in payloads.into_iter().enumerate() {
            out.push((
                at,
                RecPacket {
                    codec: Codec::H264,
                    generation,
                    encoding: 0,
                    seq: *seq,
                    ts: ts0.wrapping_add(i as u32 * FRAME_TS),
                    marker: k == last,
                    keyframe: Codec::H264.starts_keyframe(&p),
                    payload: Bytes::from(p),
                },
            ));
            *seq = seq.wrapping_add(1);
        }
    }
    out
}

/// The core's frames for `generations` runs of the stream, one after the other.
fn record(generations: u32) -> Vec<MuxFrame> {
    let mut seq = 100;
    let runs = (0..generations).flat_map(|g| {
        let base = Duration::from_secs(u64::from(g) * 2);
        packets(g + 1, &mut seq, 7_000 + g * 1_000_000)
            .into_iter()
            .map(move |(at, p)| (base + at, p))
    });
    record_packets(runs.collect())
}

/// The core's frames for packets arriving at their times from the start.
fn record_packets(packets: Vec<(Duration, RecPacket)>) -> Vec<MuxFrame> {
    let mut core = RecorderCore::new(Layers::Top);
    let start = Instant::now();
    let mut out = Vec::new();
    for (at, p) in packets {
        core.push(&p, start + at, &mut out);
    }
    core.finish(&mut out);
    out.into_iter()
        .filter_map(|o| match o {
            Output::Frame(f) => Some(f),
            Output::Keyframe(_) => None,
        })
        .collect()
}

/// Writes `frames` as the recorder's thread does (the file opens at the first keyframe);
/// `finish` or not (a crash).
fn write(dir: &Path, frames: &[MuxFrame], finish: bool) -> std::path::PathBuf {
    let first = frames.iter().find(|f| f.video && f.size.is_some()).unwrap();
    let (mut file, path) = MuxFile::create(&dir.join("rec"), first, true).unwrap();
    for f in frames.iter().skip_while(|f| !std::ptr::eq(*f, first)) {
        file.write(f).unwrap();
    }
    if finish {
        file.finish().unwrap();
    }
    path
}

fn read(path: &Path) -> Mp4 {
    let bytes = std::fs::read(path).unwrap();
    let len = bytes.len() as u64;
    Mp4::read(Cursor::new(bytes), len).unwrap()
}

fn tracks(mp4: &Mp4) -> (&re_mp4::Track, &re_mp4::Track) {
    let mut video = None;
    let mut audio = None;
    for t in mp4.tracks().values() {
        // re_mp4 knows no Opus sample entry: the handler tells the audio track.
        match t.trak(mp4).mdia.hdlr.handler_type.to_string().as_str() {
            "vide" => video = Some(t),
            "soun" => audio = Some(t),
            _ => {}
        }
    }
    (video.unwrap(), audio.unwrap())
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("cascade-mp4-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn an_h264_stream_records_to_an_mp4_that_reads_back_frame_for_frame() {
    let aus = access_units();
    assert_eq!(aus.len(), 10, "the fixture's access units");
    let frames = record(1);
    let video: Vec<&MuxFrame> = frames.iter().filter(|f| f.video).collect();
    assert_eq!(video.len(), 10);
    assert_eq!(video[0].size, Some((160, 120)));
    assert_eq!(h264::frame_size(&video[5].data), Some((160, 120)));

    let dir = temp_dir("whole");
    let path = write(&dir, &frames, true);
    assert_eq!(path.extension().unwrap(), "mp4");
    let bytes = std::fs::read(&path).unwrap();
    let mp4 = read(&path);
    let (v, a) = tracks(&mp4);
    assert!(matches!(
        v.trak(&mp4).mdia.minf.stbl.stsd.contents,
        StsdBoxContent::Avc1(_)
    ));
    assert!(
        matches!(&a.trak(&mp4).mdia.minf.stbl.stsd.contents, StsdBoxContent::Unknown(c) if c.to_string() == "Opus")
    );
    assert_eq!((v.width, v.height), (160, 120));
    assert_eq!(v.samples.len(), 10);
    let sync: Vec<usize> = (0..10).filter(|&i| v.samples[i].is_sync).collect();
    assert_eq!(sync, [0, 5], "keyframes are the IDR pictures");
    for (i, s) in v.samples.iter().enumerate() {
        assert_eq!(s.duration, u64::from(FRAME_TS), "sample {i}");
        assert_eq!(s.decode_timestamp as u64, i as u64 * u64::from(FRAME_TS));
        let data = &bytes[s.offset as usize..(s.offset + s.size) as usize];
        assert_eq!(data, h264::avc(&aus[i]), "sample {i} is the access unit");
    }
    // Audio from the first keyframe on: 20 ms each.
    assert!(a.samples.len() >= 15, "{}", a.samples.len());
    assert!(a.samples.iter().all(|s| s.duration == 960));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_recording_that_joins_between_keyframes_starts_at_its_first_keyframe() {
    // The stream from its third picture on, audio from the first packet: the recorder waits
    // 100 ms for the next IDR picture.
    let aus = access_units();
    let frames = record_packets(packets_of(&aus[2..], 120, 1, &mut 100, 7_000));
    let key = frames.iter().find(|f| f.video && f.size.is_some()).unwrap();
    assert!(key.ns >= 90_000_000, "placed {} ms in", key.ns / 1_000_000);

    let dir = temp_dir("joined");
    let mp4 = read(&write(&dir, &frames, true));
    let (v, a) = tracks(&mp4);
    assert_eq!(v.samples.len(), 5, "from the IDR on");
    assert!(v.samples[0].is_sync);
    assert_eq!(v.samples[0].decode_timestamp, 0, "no blank lead");
    assert_eq!(
        v.samples[4].decode_timestamp as u64,
        4 * u64::from(FRAME_TS)
    );
    // The audio from the keyframe on (48 kHz): it starts with the picture.
    assert!(
        a.samples[0].decode_timestamp <= 960,
        "{}",
        a.samples[0].decode_timestamp
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The top-level boxes of a file: (offset, size, type).
fn top_boxes(bytes: &[u8]) -> Vec<(usize, usize, [u8; 4])> {
    let (mut at, mut out) = (0, Vec::new());
    while at + 8 <= bytes.len() {
        let size = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        out.push((at, size, bytes[at + 4..at + 8].try_into().unwrap()));
        if size < 8 {
            break;
        }
        at += size;
    }
    out
}

#[test]
fn a_finished_recording_has_a_segment_index_of_its_keyframes() {
    use mp4_atom::{Decode, Sidx};
    let frames = record(2);
    let dir = temp_dir("sidx");
    let path = write(&dir, &frames, true);
    let bytes = std::fs::read(&path).unwrap();
    let boxes = top_boxes(&bytes);
    let kinds: Vec<&[u8; 4]> = boxes.iter().map(|(_, _, k)| k).take(4).collect();
    assert_eq!(kinds, [b"ftyp", b"moov", b"sidx", b"sidx"]);
    let (at, size, _) = boxes[2];
    let sidx = Sidx::decode(&mut &bytes[at..at + size]).unwrap();
    // The audio's, the same fragments in its own time.
    let (a_at, a_size, _) = boxes[3];
    let audio = Sidx::decode(&mut &bytes[a_at..a_at + a_size]).unwrap();
    assert_eq!((audio.reference_id, audio.timescale), (2, 48_000));
    assert_eq!(audio.references.len(), 4);
    assert_eq!(
        a_at + a_size + audio.first_offset as usize,
        at + size + sidx.first_offset as usize
    );
    let mp4 = read(&path);
    let (v, _) = tracks(&mp4);
    // A reference per keyframe (frames 0, 5, 10 and 15), each from its fragment to the
    // next one's, lasting until the next keyframe.
    let sync: Vec<&re_mp4::Sample> = v.samples.iter().filter(|s| s.is_sync).collect();
    assert_eq!(sidx.references.len(), 4);
    assert_eq!(sidx.timescale, 90_000);
    assert_eq!(
        sidx.earliest_presentation_time,
        sync[0].decode_timestamp as u64
    );
    let moofs = moof_offsets(&bytes);
    let mut offset = at + size + sidx.first_offset as usize;
    let mut time = sidx.earliest_presentation_time;
    for (i, r) in sidx.references.iter().enumerate() {
        assert!(
            moofs.contains(&offset),
            "reference {i} starts on a fragment"
        );
        assert_eq!(
            time, sync[i].decode_timestamp as u64,
            "reference {i}'s time"
        );
        // Its keyframe is in it.
        assert!((offset..offset + r.referenced_size as usize).contains(&(sync[i].offset as usize)));
        offset += r.referenced_size as usize;
        time += u64::from(r.subsegment_duration);
    }
    let mfra = boxes.iter().find(|(_, _, k)| k == b"mfra").unwrap().0;
    assert_eq!(offset, mfra, "the references end where the media does");
    let last = v.samples.last().unwrap();
    assert_eq!(time, last.decode_timestamp as u64 + last.duration);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_publisher_restart_continues_the_same_file_on_one_timeline() {
    let frames = record(2);
    let dir = temp_dir("restart");
    let path = write(&dir, &frames, true);
    let mp4 = read(&path);
    let (v, _) = tracks(&mp4);
    assert_eq!(v.samples.len(), 20);
    let times: Vec<i64> = v.samples.iter().map(|s| s.decode_timestamp).collect();
    assert!(times.windows(2).all(|w| w[1] > w[0]), "{times:?}");
    // The second run starts 40 ms after the first one's last frame: no gap of the two
    // seconds the publisher was away.
    let gap = times[10] - times[9];
    assert!((3_000..=3_700).contains(&gap), "{gap}");
    assert!(v.samples[10].is_sync);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_recording_cut_by_a_crash_keeps_the_fragments_written() {
    let frames = record(1);
    let dir = temp_dir("crash");
    // Never finished: the fragment before the second keyframe is on disk, the frames
    // after it were still held.
    let path = write(&dir, &frames, false);
    let mp4 = read(&path);
    let (v, a) = tracks(&mp4);
    assert_eq!(v.samples.len(), 5);
    assert!(v.samples[0].is_sync);
    assert!(!a.samples.is_empty());
    let len = std::fs::metadata(&path).unwrap().len();
    assert!(v.samples.iter().all(|s| s.offset + s.size <= len));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A publisher's fragmented unit that never ends (its last packet marked, as a frame's)
/// neither grows the depacketizer's buffer across frames nor begins the next frame.
#[test]
fn an_unended_fragmented_unit_does_not_leak_into_the_next_frame() {
    use super::assemble::Assembler;
    let mut a = Assembler::new(Codec::H264);
    let t0 = Instant::now();
    let pkt = |seq: u16, ts: u32, marker: bool, payload: &[u8]| RecPacket {
        codec: Codec::H264,
        generation: 1,
        encoding: 0,
        seq,
        ts,
        marker,
        keyframe: Codec::H264.starts_keyframe(payload),
        payload: Bytes::copy_from_slice(payload),
    };
    let mut frames = Vec::new();
    // FU-A (indicator 0x7c: NRI 3, type 28): an IDR unit's start with no end, marked.
    let mut seq = 1;
    for ts in (0..50u32).map(|i| i * FRAME_TS) {
        a.push(
            &pkt(seq, ts, true, &[0x7c, 0x85, 0xaa, 0xaa, 0xaa, 0xaa]),
            t0,
            &mut frames,
        );
        seq += 1;
    }
    // Then a whole unit in two parts: a non-IDR slice (header 0x61).
    a.push(
        &pkt(seq, 50 * FRAME_TS, false, &[0x7c, 0x81, 0xbb]),
        t0,
        &mut frames,
    );
    a.push(
        &pkt(seq + 1, 50 * FRAME_TS, true, &[0x7c, 0x41, 0xcc]),
        t0,
        &mut frames,
    );
    a.tick(t0 + Duration::from_secs(1), &mut frames);
    let last = frames
        .iter()
        .find(|f| f.ts == 50 * FRAME_TS)
        .expect("the whole unit's frame");
    assert_eq!(last.data, h264::avc(&[&[0x61, 0xbb, 0xcc]]));
}

/// The offsets of a file's top-level `moof` boxes.
fn moof_offsets(bytes: &[u8]) -> Vec<usize> {
    top_boxes(bytes)
        .into_iter()
        .filter(|(_, _, k)| k == b"moof")
        .map(|(at, _, _)| at)
        .collect()
}

/// Set in the child process of [`a_failed_write_leaves_the_file_at_its_last_whole_fragment`]:
/// the file to write, and the size the process may make files.
const FULL_DISK_CHILD: &str = "CASCADE_TEST_MP4_FULL_DISK";

/// A disk that fills mid-fragment (here a file size limit, `RLIMIT_FSIZE`, in a child
/// process of the test binary: the write stops short, the next one fails) leaves the file
/// where its last whole fragment ended, readable, and the write reports the error.
#[test]
fn a_failed_write_leaves_the_file_at_its_last_whole_fragment() {
    let frames = record(2);
    if let Ok(spec) = std::env::var(FULL_DISK_CHILD) {
        let (limit, dir) = spec.split_once(':').unwrap();
        let limit: u64 = limit.parse().unwrap();
        // SAFETY: plain libc calls on this child process, which runs only this test.
        unsafe {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let lim = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &lim), 0);
        }
        let first = frames.iter().find(|f| f.video && f.size.is_some()).unwrap();
        let (mut file, _) = MuxFile::create(&Path::new(dir).join("rec"), first, true).unwrap();
        let failed = frames
            .iter()
            .skip_while(|f| !std::ptr::eq(*f, first))
            .position(|f| file.write(f).is_err());
        assert!(failed.is_some(), "no write failed under the limit");
        return;
    }
    // Where the fragments begin when nothing stops the writes (never finished: three
    // fragments written, the fourth held).
    let dir = temp_dir("full-disk");
    let whole = std::fs::read(write(&dir, &frames, false)).unwrap();
    let moofs = moof_offsets(&whole);
    assert_eq!(moofs.len(), 3, "{moofs:?}");
    std::fs::remove_file(dir.join("rec.mp4")).unwrap();
    // The third fragment is torn 20 bytes in.
    let limit = moofs[2] + 20;
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "record::tests_mp4::a_failed_write_leaves_the_file_at_its_last_whole_fragment",
            "--test-threads=1",
        ])
        .env(FULL_DISK_CHILD, format!("{limit}:{}", dir.display()))
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );
    let path = dir.join("rec.mp4");
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes.len(), moofs[2], "cut back to the last whole fragment");
    assert_eq!(bytes[..], whole[..moofs[2]]);
    let mp4 = read(&path);
    let (v, _) = tracks(&mp4);
    assert_eq!(v.samples.len(), 10, "the two whole fragments' pictures");
    let _ = std::fs::remove_dir_all(&dir);
}
