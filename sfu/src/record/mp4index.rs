//! The end of a fragmented MP4 recording: what a player needs to know its length and to
//! seek without reading every fragment.
//!
//! - The `moov` written at the start (durations 0: its fragments were still to come) is
//!   written again in place with the recording's duration (`mvhd`, `mehd`, `tkhd`, `mdhd`),
//!   in the room the `free` box after it kept ([`RESERVE`] bytes).
//! - After it, in the same room, a segment index (`sidx`, ISO/IEC 14496-12 §8.16.3) per
//!   track: one reference per fragment that starts with a video keyframe (with the
//!   fragments up to the next one), its size, duration and first time in the track's time.
//!   Players read them with the `moov` and go straight to the fragment of a far seek
//!   (FFmpeg's demuxer, Chromium's for MP4 played from a URL, does; it ignores the `mfra`);
//!   without them FFmpeg reads every fragment's header before it plays, a range request
//!   each. The audio track gets its own: FFmpeg 5 looks up a track without one in another
//!   track's time unscaled, and seeks its audio to the wrong place. A recording with more
//!   keyframes than the room holds references (about 650 a track: 20 minutes at a keyframe
//!   every 2 s) gets one per run of consecutive ones. The `free` box shrinks by what they
//!   take.
//! - A movie fragment random access box (`mfra`: a `tfra` entry per fragment that starts
//!   with a video keyframe, then `mfro`) closes the file.
//!
//! A crash during these writes leaves the file as it was before them, but for the `moov`
//! rewrite: the room's tail (inside the old `free` body) is written and synced first,
//! then the front (the new `moov`, over the old one and the old `free` header).

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};

use mp4_atom::{Encode, FragmentInfo, Free, Mfra, Mfro, Moov, SegmentReference, Sidx, Tfra};

use super::mp4::{KeyFragment, AUDIO_SCALE, AUDIO_TRACK, VIDEO_SCALE, VIDEO_TRACK};
use super::mux::MuxError;

/// The `free` box's body after the `moov`, bytes: room for the `moov`'s fields that grow
/// to 64 bits and the segment index.
pub const RESERVE: usize = 16 * 1024;

/// What the index is written from: where the media ends (the file's length), the video's
/// end (in its track's time), and the fragments that start with a keyframe.
#[derive(Debug, Clone, Copy)]
pub struct Media<'a> {
    /// The file's length before the index: where the last fragment ends.
    pub end: u64,
    /// The end of the video's last sample, in its track's time.
    pub video_end: u64,
    /// Whether there is an audio track.
    pub audio: bool,
    /// The fragments that start with a video keyframe, in order.
    pub keys: &'a [KeyFragment],
}

/// A track a segment index is written for: its id and time scale.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Track {
    pub(crate) id: u32,
    pub(crate) scale: u32,
}

impl Track {
    /// The video track.
    pub(crate) const VIDEO: Track = Track {
        id: VIDEO_TRACK,
        scale: VIDEO_SCALE,
    };
    /// The audio track.
    pub(crate) const AUDIO: Track = Track {
        id: AUDIO_TRACK,
        scale: AUDIO_SCALE,
    };

    /// A video time in this track's time (both tracks' times count from the same start).
    fn time(self, video: u64) -> u64 {
        (u128::from(video) * u128::from(self.scale) / u128::from(VIDEO_SCALE)) as u64
    }
}

/// Writes the index at the media's end and the `moov` (at `moov_at.0`, with `moov_at.1`
/// bytes of room with its `free` box) with `duration_ms`, and the segment index after it.
pub fn finish(
    file: &mut File,
    media: Media<'_>,
    moov_at: (u64, u64),
    mut moov: Moov,
    duration_ms: u64,
) -> Result<(), MuxError> {
    let (end, keys) = (media.end, media.keys);
    let tfra = Tfra {
        track_id: VIDEO_TRACK,
        entries: keys
            .iter()
            .map(|k| FragmentInfo {
                time: k.time,
                moof_offset: k.moof_offset,
                traf_number: 1,
                trun_number: 1,
                sample_delta: 1,
            })
            .collect(),
    };
    let mut mfra = Mfra {
        tfra: vec![tfra],
        mfro: Mfro { parent_size: 0 },
    };
    let mut measure = Vec::new();
    mfra.encode(&mut measure)?;
    mfra.mfro.parent_size = u32::try_from(measure.len()).map_err(|_| MuxError::Mp4Order)?;
    let mut tail = Vec::with_capacity(measure.len());
    mfra.encode(&mut tail)?;
    file.seek(SeekFrom::Start(end))?;
    file.write_all(&tail)?;

    set_duration(&mut moov, duration_ms);
    let mut head = Vec::new();
    moov.encode(&mut head)?;
    let room = usize::try_from(moov_at.1).map_err(|_| MuxError::Mp4Order)?;
    if head.len() + 8 > room {
        // Cannot happen with RESERVE bytes of room; the file stays as it was (it plays,
        // with no duration before the end).
        tracing::warn!(need = head.len(), room, "recording's moov not rewritten");
        return Ok(());
    }
    let tracks: &[Track] = if media.audio {
        &[Track::VIDEO, Track::AUDIO]
    } else {
        &[Track::VIDEO]
    };
    let share = (room - head.len() - 8) / tracks.len();
    for &track in tracks {
        let at = moov_at.0 + head.len() as u64;
        if let Some(sidx) = segment_index(media, track, at, share) {
            sidx.encode(&mut head)?;
        }
    }
    Free {
        zeroed: (room - head.len() - 8).into(),
    }
    .encode(&mut head)?;
    // In two writes, so that a crash between them (or a torn page) leaves a file that
    // plays: first what lies inside the old `free` box's body (the old file reads it as
    // zeros to skip), synced; then the front, over the old `moov` and `free` header.
    let front = (room - RESERVE).min(head.len());
    file.seek(SeekFrom::Start(moov_at.0 + front as u64))?;
    file.write_all(&head[front..])?;
    file.sync_data()?;
    file.seek(SeekFrom::Start(moov_at.0))?;
    file.write_all(&head[..front])?;
    Ok(())
}

/// Bytes of a `sidx` box but its references, at most (version 1: 64-bit time and offset).
const SIDX_HEAD: usize = 12 + 8 + 16 + 4;
/// Bytes of one reference.
const SIDX_REFERENCE: usize = 12;

/// The segment index of `media`'s `track` for a `sidx` box written at `at` in at most
/// `room` bytes: a reference per run of key fragments (one each when they fit), or `None`
/// without keyframes or room.
pub(crate) fn segment_index(media: Media<'_>, track: Track, at: u64, room: usize) -> Option<Sidx> {
    let keys = media.keys;
    let first = keys.first()?;
    let most = (room.checked_sub(SIDX_HEAD)? / SIDX_REFERENCE).min(usize::from(u16::MAX));
    if most == 0 {
        return None;
    }
    let run = keys.len().div_ceil(most);
    let starts: Vec<&KeyFragment> = keys.iter().step_by(run).collect();
    let references = starts
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let (next_at, next_time) = starts
                .get(i + 1)
                .map_or((media.end, media.video_end), |n| (n.moof_offset, n.time));
            Some(SegmentReference {
                reference_type: false,
                referenced_size: u32::try_from(next_at.checked_sub(k.moof_offset)?)
                    .ok()
                    .filter(|&s| s <= 0x7FFF_FFFF)?,
                subsegment_duration: u32::try_from(
                    track.time(next_time).saturating_sub(track.time(k.time)),
                )
                .ok()?,
                starts_with_sap: true,
                sap_type: 1,
                sap_delta_time: 0,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    let mut sidx = Sidx {
        reference_id: track.id,
        timescale: track.scale,
        earliest_presentation_time: track.time(first.time),
        first_offset: 0,
        references,
    };
    // From the first byte after the box to the first fragment (past the `free` box): the
    // box's size depends on whether its time fits 32 bits, so it is measured.
    let mut measure = Vec::new();
    sidx.encode(&mut measure).ok()?;
    sidx.first_offset = first.moof_offset.checked_sub(at + measure.len() as u64)?;
    // Measured again: an offset past 32 bits makes the box 8 bytes longer.
    let mut again = Vec::new();
    sidx.encode(&mut again).ok()?;
    if again.len() != measure.len() {
        sidx.first_offset = first.moof_offset.checked_sub(at + again.len() as u64)?;
    }
    Some(sidx)
}

/// Sets every duration of the movie box to `duration_ms`.
fn set_duration(moov: &mut Moov, duration_ms: u64) {
    moov.mvhd.duration = duration_ms * u64::from(moov.mvhd.timescale) / 1000;
    if let Some(mehd) = moov.mvex.as_mut().and_then(|m| m.mehd.as_mut()) {
        mehd.fragment_duration = moov.mvhd.duration;
    }
    for t in &mut moov.trak {
        t.tkhd.duration = moov.mvhd.duration;
        t.mdia.mdhd.duration = duration_ms * u64::from(t.mdia.mdhd.timescale) / 1000;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(time: u64, moof_offset: u64) -> KeyFragment {
        KeyFragment { time, moof_offset }
    }

    #[test]
    fn a_reference_per_key_fragment_and_runs_of_them_when_the_room_is_short() {
        let keys = [
            key(0, 1000),
            key(9000, 2000),
            key(18000, 3500),
            key(27000, 4000),
            key(36000, 6000),
        ];
        let media = Media {
            end: 7000,
            video_end: 45000,
            audio: true,
            keys: &keys,
        };
        let sizes = |s: &Sidx| -> Vec<(u32, u32)> {
            s.references
                .iter()
                .map(|r| (r.referenced_size, r.subsegment_duration))
                .collect()
        };
        let all = segment_index(media, Track::VIDEO, 100, 1000).unwrap();
        assert_eq!(
            sizes(&all),
            [
                (1000, 9000),
                (1500, 9000),
                (500, 9000),
                (2000, 9000),
                (1000, 9000)
            ]
        );
        // Version 0 (32-bit time): 32 bytes and 12 a reference; the first fragment is 1000
        // - (100 + 92) bytes past the box's end.
        assert_eq!(all.first_offset, 808);
        assert!(all
            .references
            .iter()
            .all(|r| r.starts_with_sap && r.sap_type == 1));
        // Room for two references: runs of three.
        let room = SIDX_HEAD + 2 * SIDX_REFERENCE;
        let short = segment_index(media, Track::VIDEO, 100, room).unwrap();
        assert_eq!(sizes(&short), [(3000, 27000), (3000, 18000)]);
        // The audio's: the same fragments, in its own time (48 kHz).
        let audio = segment_index(media, Track::AUDIO, 100, 1000).unwrap();
        assert_eq!((audio.reference_id, audio.timescale), (AUDIO_TRACK, 48_000));
        assert_eq!(audio.references.len(), 5);
        assert!(audio
            .references
            .iter()
            .all(|r| r.subsegment_duration == 4800));
        // No room, or no keyframe: none.
        assert!(segment_index(media, Track::VIDEO, 100, SIDX_HEAD).is_none());
        let none = Media { keys: &[], ..media };
        assert!(segment_index(none, Track::VIDEO, 100, 1000).is_none());
    }
}
