//! The recording's file for H.264 publishers: a fragmented MP4 (ISO BMFF), its boxes
//! encoded by `mp4-atom` (see sfu/Cargo.toml for the choice).
//!
//! Layout: `ftyp` and a `moov` whose `mvex` says that movie fragments follow (an `avc1`
//! track whose `avcC` holds the first keyframe's SPS and PPS, and an `Opus` track with its
//! `dOps`), then one `moof` + `mdat` per fragment, written to the file as each completes:
//! a fragment ends before every video keyframe and at the latest [`FRAGMENT`] after it
//! began. A node killed mid-recording leaves whole fragments up to the last one written
//! (what came after it, at most [`FRAGMENT`] of media, is lost), and the file plays that
//! far. [`Mp4File::finish`] writes what is still held and the seek index ([`super::mp4index`]).
//!
//! Times: video at 90 kHz, audio at 48 kHz; a sample's duration is the time to the next
//! sample of its track (each sample waits for the next one), the last one's the one before.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use mp4_atom::{
    Audio, Avc1, Avcc, Dinf, Dops, Dref, Encode, Free, Ftyp, Hdlr, Matrix, Mdat, Mdhd, Mdia, Mehd,
    Mfhd, Minf, Moof, Moov, Mvex, Mvhd, Opus, Smhd, Stbl, Stco, Stsd, Tfdt, Tfhd, Tkhd, Traf, Trak,
    Trex, Trun, TrunEntry, TrunSamples, Url, Visual, Vmhd,
};

use super::core::MuxFrame;
use super::mux::MuxError;

/// The longest a fragment runs: what a crash may lose at most.
pub const FRAGMENT: std::time::Duration = std::time::Duration::from_secs(1);
/// A fragment also ends when it holds this many samples or payload bytes, whatever the
/// frames' timestamps say (a publisher's timestamps are its own: ones that barely advance
/// must not keep every sample in memory, nor leave it out of the file until the end).
pub const FRAGMENT_SAMPLES: usize = 600;
/// See [`FRAGMENT_SAMPLES`].
pub const FRAGMENT_BYTES: usize = 8 << 20;
/// The video track's id.
pub const VIDEO_TRACK: u32 = 1;
/// The audio track's id.
pub const AUDIO_TRACK: u32 = 2;
pub(crate) const VIDEO_SCALE: u32 = 90_000;
pub(crate) const AUDIO_SCALE: u32 = 48_000;
/// `sample_flags` (ISO/IEC 14496-12 §8.8.3.1): a sync sample (depends on no other), and
/// one that depends on others.
const SYNC: u32 = 0x0200_0000;
const NON_SYNC: u32 = 0x0101_0000;

/// One sample held until its duration is known, or until its fragment is written.
#[derive(Debug)]
struct Sample {
    dts: u64,
    duration: u32,
    key: bool,
    data: Vec<u8>,
}

/// A track's samples on their way to the file.
#[derive(Debug)]
struct TrackBuf {
    id: u32,
    scale: u32,
    /// Samples whose duration is known, for the next fragment.
    done: Vec<Sample>,
    /// Their bytes.
    done_bytes: usize,
    /// The newest sample, waiting for the next one's time.
    pending: Option<Sample>,
    /// The last duration given (for the last sample at the end).
    last_duration: u32,
    /// The newest sample's end, in the track's time.
    end: u64,
}

impl TrackBuf {
    fn new(id: u32, scale: u32, default_duration: u32) -> Self {
        TrackBuf {
            id,
            scale,
            done: Vec::new(),
            done_bytes: 0,
            pending: None,
            last_duration: default_duration,
            end: 0,
        }
    }

    /// `ns` in the track's time, to the nearest tick (the recording's times are whole
    /// nanoseconds, an RTP tick's are not).
    fn ticks(&self, ns: u64) -> u64 {
        ((u128::from(ns) * u128::from(self.scale) + 500_000_000) / 1_000_000_000) as u64
    }

    /// The decode time of a sample at `ns`: after the pending one's.
    fn dts(&self, ns: u64) -> u64 {
        self.ticks(ns)
            .max(self.pending.as_ref().map_or(0, |p| p.dts + 1))
    }

    /// Gives the pending sample its duration (up to `next`, else the last one's).
    fn close_pending(&mut self, next: Option<u64>) {
        if let Some(mut p) = self.pending.take() {
            p.duration = match next {
                Some(n) => u32::try_from(n - p.dts).unwrap_or(u32::MAX).max(1),
                None => self.last_duration,
            };
            self.last_duration = p.duration;
            self.end = p.dts + u64::from(p.duration);
            self.done_bytes += p.data.len();
            self.done.push(p);
        }
    }

    /// Forgets the samples for the next fragment (written, or dropped).
    fn clear_done(&mut self) {
        self.done.clear();
        self.done_bytes = 0;
    }
}

/// Where the fragments that start with a video keyframe are (the seek index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyFragment {
    /// The keyframe's decode time, 90 kHz.
    pub time: u64,
    /// The `moof`'s offset in the file.
    pub moof_offset: u64,
}

/// One fragmented MP4 file being written.
#[derive(Debug)]
pub struct Mp4File {
    file: File,
    /// Bytes written so far.
    pos: u64,
    video: TrackBuf,
    audio: Option<TrackBuf>,
    sequence: u32,
    frag_start_ns: Option<u64>,
    frames: u64,
    last_ns: u64,
    /// Where `moov` starts and how long it is with the `free` box after it (rewritten at
    /// the end with the duration).
    moov_at: (u64, u64),
    header: Moov,
    keys: Vec<KeyFragment>,
}

impl Mp4File {
    /// Creates `path` with an H.264 track of `width`×`height` described by `sps` and `pps`
    /// and, when `audio`, an Opus track; `ftyp` and `moov` are written at once.
    pub fn create(
        path: &Path,
        width: u32,
        height: u32,
        (sps, pps): (&[u8], &[u8]),
        audio: bool,
    ) -> Result<Self, MuxError> {
        let mut head = Vec::new();
        Ftyp {
            major_brand: b"isom".into(),
            minor_version: 512,
            compatible_brands: vec![
                b"isom".into(),
                b"iso6".into(),
                b"avc1".into(),
                b"mp41".into(),
            ],
        }
        .encode(&mut head)?;
        let moov_at = head.len() as u64;
        let header = moov(width, height, Avcc::new(sps, pps)?, audio, 0);
        header.encode(&mut head)?;
        // Room for the moov rewritten at the end (its durations may need wider fields).
        Free {
            zeroed: super::mp4index::RESERVE.into(),
        }
        .encode(&mut head)?;
        let moov_len = head.len() as u64 - moov_at;
        let mut file = File::create(path)?;
        file.write_all(&head)?;
        Ok(Mp4File {
            file,
            pos: head.len() as u64,
            video: TrackBuf::new(VIDEO_TRACK, VIDEO_SCALE, VIDEO_SCALE / 30),
            audio: audio.then(|| TrackBuf::new(AUDIO_TRACK, AUDIO_SCALE, AUDIO_SCALE / 50)),
            sequence: 0,
            frag_start_ns: None,
            frames: 0,
            last_ns: 0,
            moov_at: (moov_at, moov_len),
            header,
            keys: Vec::new(),
        })
    }

    /// Frames written (or held for the next fragment).
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// The newest frame's time.
    pub fn duration_ns(&self) -> u64 {
        self.last_ns
    }

    /// The fragments that start with a keyframe, so far.
    pub fn key_fragments(&self) -> &[KeyFragment] {
        &self.keys
    }

    /// Takes a frame at `ns` in the file (an audio frame of a file without audio is
    /// skipped); a fragment is written before a video keyframe and once [`FRAGMENT`] has
    /// passed.
    pub fn write(&mut self, f: &MuxFrame, ns: u64) -> Result<(), MuxError> {
        if !f.video && self.audio.is_none() {
            return Ok(());
        }
        let start = *self.frag_start_ns.get_or_insert(ns);
        let (samples, bytes) = std::iter::once(&self.video)
            .chain(self.audio.as_ref())
            .fold((0, 0), |(n, b), t| (n + t.done.len(), b + t.done_bytes));
        let long = ns.saturating_sub(start) >= FRAGMENT.as_nanos() as u64
            || samples >= FRAGMENT_SAMPLES
            || bytes >= FRAGMENT_BYTES;
        let track = self.track(f.video)?;
        let dts = track.dts(ns);
        track.close_pending(Some(dts));
        if (f.video && f.keyframe) || long {
            self.flush()?;
            self.frag_start_ns = Some(ns);
        }
        self.track(f.video)?.pending = Some(Sample {
            dts,
            duration: 0,
            key: f.keyframe || !f.video,
            data: f.data.clone(),
        });
        self.last_ns = self.last_ns.max(ns);
        self.frames += 1;
        Ok(())
    }

    fn track(&mut self, video: bool) -> Result<&mut TrackBuf, MuxError> {
        if video {
            Ok(&mut self.video)
        } else {
            self.audio.as_mut().ok_or(MuxError::Mp4Order)
        }
    }

    /// Writes the samples whose durations are known as one `moof` + `mdat`.
    fn flush(&mut self) -> Result<(), MuxError> {
        let tracks: Vec<&mut TrackBuf> = std::iter::once(&mut self.video)
            .chain(self.audio.as_mut())
            .filter(|t| !t.done.is_empty())
            .collect();
        if tracks.is_empty() {
            return Ok(());
        }
        self.sequence += 1;
        let mut moof = Moof {
            mfhd: Mfhd {
                sequence_number: self.sequence,
            },
            traf: tracks
                .iter()
                .map(|t| Traf {
                    tfhd: Tfhd {
                        track_id: t.id,
                        default_base_is_moof: true,
                        ..Default::default()
                    },
                    tfdt: Some(Tfdt {
                        base_media_decode_time: t.done[0].dts,
                    }),
                    trun: vec![Trun {
                        data_offset: Some(0),
                        samples: TrunSamples::Explicit(
                            t.done
                                .iter()
                                .map(|s| TrunEntry {
                                    duration: Some(s.duration),
                                    size: Some(s.data.len() as u32),
                                    flags: Some(if s.key { SYNC } else { NON_SYNC }),
                                    cts: None,
                                })
                                .collect(),
                        ),
                    }],
                    ..Default::default()
                })
                .collect(),
        };
        // The data offsets (from the moof's start) need the moof's size: encoded once to
        // measure it (the offsets' width does not change it), then with them.
        let mut measure = Vec::new();
        moof.encode(&mut measure)?;
        let mut offset = measure.len() as u64 + 8;
        for (traf, t) in moof.traf.iter_mut().zip(&tracks) {
            traf.trun[0].data_offset = Some(i32::try_from(offset).map_err(|_| MuxError::Mp4Order)?);
            offset += t.done_bytes as u64;
        }
        let key = tracks[0].id == VIDEO_TRACK && tracks[0].done[0].key;
        let time = tracks[0].done[0].dts;
        let mut data = Vec::with_capacity(offset as usize);
        for t in &tracks {
            for s in &t.done {
                data.extend_from_slice(&s.data);
            }
        }
        let mut out = Vec::with_capacity(offset as usize + 16);
        moof.encode(&mut out)?;
        Mdat { data }.encode(&mut out)?;
        if let Err(e) = self.file.write_all(&out) {
            // Nothing torn stays (a full disk): the file ends where its last whole fragment
            // did, the seek index stays true, and these samples are dropped, not held.
            let _ = self.file.set_len(self.pos);
            let _ = self.file.seek(SeekFrom::Start(self.pos));
            for t in tracks {
                t.clear_done();
            }
            return Err(e.into());
        }
        if key {
            self.keys.push(KeyFragment {
                time,
                moof_offset: self.pos,
            });
        }
        self.pos += out.len() as u64;
        for t in tracks {
            t.clear_done();
        }
        Ok(())
    }

    /// Ends the file: the samples still held are written (the last of each track lasting
    /// as long as the one before it), then the seek index.
    pub fn finish(mut self) -> Result<(), MuxError> {
        self.video.close_pending(None);
        if let Some(a) = self.audio.as_mut() {
            a.close_pending(None);
        }
        self.flush()?;
        let end = self.video.end * 1000 / u64::from(VIDEO_SCALE);
        let end = self
            .audio
            .as_ref()
            .map_or(end, |a| end.max(a.end * 1000 / u64::from(AUDIO_SCALE)));
        let media = super::mp4index::Media {
            end: self.pos,
            video_end: self.video.end,
            audio: self.audio.is_some(),
            keys: &self.keys,
        };
        super::mp4index::finish(&mut self.file, media, self.moov_at, self.header, end)?;
        self.file.sync_data()?;
        Ok(())
    }
}

/// The identity matrix of `mvhd` and `tkhd`.
fn identity() -> Matrix {
    Matrix {
        a: 0x0001_0000,
        b: 0,
        u: 0,
        c: 0,
        d: 0x0001_0000,
        v: 0,
        x: 0,
        y: 0,
        w: 0x4000_0000,
    }
}

/// The movie box: its tracks, and `mvex` (fragments follow, lasting `duration_ms` in all;
/// 0 while they are written).
pub(crate) fn moov(width: u32, height: u32, avcc: Avcc, audio: bool, duration_ms: u64) -> Moov {
    let trex = |track_id| Trex {
        track_id,
        default_sample_description_index: 1,
        ..Default::default()
    };
    let track = |track_id, scale, handler: &[u8; 4], minf: Minf, w: u32, h: u32| Trak {
        tkhd: Tkhd {
            track_id,
            duration: duration_ms,
            enabled: true,
            in_movie: true,
            volume: u8::from(track_id == AUDIO_TRACK).into(),
            matrix: identity(),
            width: (w as u16).into(),
            height: (h as u16).into(),
            ..Default::default()
        },
        mdia: Mdia {
            mdhd: Mdhd {
                timescale: scale,
                duration: duration_ms * u64::from(scale) / 1000,
                language: "und".into(),
                ..Default::default()
            },
            hdlr: Hdlr {
                handler: handler.into(),
                name: "cascade".into(),
            },
            minf,
        },
        ..Default::default()
    };
    let stbl = |codec: mp4_atom::Codec| Stbl {
        stsd: Stsd {
            codecs: vec![codec],
        },
        stco: Some(Stco::default()),
        ..Default::default()
    };
    let dinf = || Dinf {
        dref: Dref {
            entries: vec![Url::default().into()],
        },
    };
    let avc1 = Avc1 {
        visual: Visual {
            data_reference_index: 1,
            width: width as u16,
            height: height as u16,
            horizresolution: 72.into(),
            vertresolution: 72.into(),
            frame_count: 1,
            compressor: "".into(),
            depth: 24,
        },
        avcc,
        btrt: None,
        colr: None,
        pasp: None,
        taic: None,
        fiel: None,
        spatial: None,
    };
    let mut trak = vec![track(
        VIDEO_TRACK,
        VIDEO_SCALE,
        b"vide",
        Minf {
            vmhd: Some(Vmhd::default()),
            dinf: dinf(),
            stbl: stbl(avc1.into()),
            ..Default::default()
        },
        width,
        height,
    )];
    if audio {
        let opus = Opus {
            audio: Audio {
                data_reference_index: 1,
                channel_count: 2,
                sample_size: 16,
                sample_rate: 48_000.into(),
            },
            dops: Dops {
                output_channel_count: 2,
                pre_skip: 0,
                input_sample_rate: 48_000,
                output_gain: 0,
                channel_mapping: None,
            },
            btrt: None,
        };
        trak.push(track(
            AUDIO_TRACK,
            AUDIO_SCALE,
            b"soun",
            Minf {
                smhd: Some(Smhd::default()),
                dinf: dinf(),
                stbl: stbl(opus.into()),
                ..Default::default()
            },
            0,
            0,
        ));
    }
    Moov {
        mvhd: Mvhd {
            timescale: 1000,
            duration: duration_ms,
            next_track_id: if audio { 3 } else { 2 },
            ..Default::default()
        },
        mvex: Some(Mvex {
            mehd: Some(Mehd {
                fragment_duration: duration_ms,
            }),
            trex: std::iter::once(trex(VIDEO_TRACK))
                .chain(audio.then(|| trex(AUDIO_TRACK)))
                .collect(),
        }),
        trak,
        ..Default::default()
    }
}
