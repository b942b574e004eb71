//! The end of a fragmented MP4 recording: what a player needs to know its length and to
//! seek without reading every fragment.
//!
//! - The `moov` written at the start (durations 0: its fragments were still to come) is
//!   written again in place with the recording's duration (`mvhd`, `mehd`, `tkhd`, `mdhd`),
//!   in the room the `free` box after it kept ([`RESERVE`] bytes, for fields that grow to
//!   64 bits); the `free` box shrinks by what it grew.
//! - A movie fragment random access box (`mfra`: a `tfra` entry per fragment that starts
//!   with a video keyframe, then `mfro`) closes the file.
//!
//! A crash during these writes leaves the file as it was before them, but for the `moov`
//! rewrite, which is one write of the same length over the old one.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};

use mp4_atom::{Encode, FragmentInfo, Free, Mfra, Mfro, Moov, Tfra};

use super::mp4::{KeyFragment, VIDEO_TRACK};
use super::mux::MuxError;

/// The `free` box's body after the `moov`, bytes.
pub const RESERVE: usize = 64;

/// Writes the index at `end` (the file's length) and the `moov` (at `moov_at.0`, with
/// `moov_at.1` bytes of room with its `free` box) with `duration_ms`.
pub fn finish(
    file: &mut File,
    end: u64,
    moov_at: (u64, u64),
    mut moov: Moov,
    duration_ms: u64,
    keys: &[KeyFragment],
) -> Result<(), MuxError> {
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
    Free {
        zeroed: (room - head.len() - 8).into(),
    }
    .encode(&mut head)?;
    file.seek(SeekFrom::Start(moov_at.0))?;
    file.write_all(&head)?;
    Ok(())
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
