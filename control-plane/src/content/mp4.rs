//! The MP4 (ISO BMFF) half of the check, with `re_mp4`: the boxes parsed (a plain file;
//! `re_mp4` reads fragmented ones too, untested here), the codecs Chromium plays (H.264, VP8, VP9, AV1 video; AAC or Opus
//! sound), every sample inside the file (a truncated file fails here: its `moov` is
//! missing, or its samples point past the end), the duration from the samples' times.

use std::io::{Read, Seek, SeekFrom};

use re_mp4::{Mp4, StsdBoxContent, TrackKind};

use super::check::{Bad, Probe, Rules};

/// `ftyp` at bytes 4..8: the first box of every MP4 file.
pub fn is_mp4(first: &[u8]) -> bool {
    first.get(4..8) == Some(b"ftyp")
}

/// Reads an MP4 whose first box is `ftyp` under `rules`.
pub fn probe<R: Read + Seek>(mut r: R, rules: Rules) -> Result<Probe, Bad> {
    let size = r
        .seek(SeekFrom::End(0))
        .and_then(|size| r.seek(SeekFrom::Start(0)).map(|_| size))
        .map_err(|e| Bad::Truncated(e.to_string()))?;
    // A parser of untrusted bytes: should it panic, the file is refused, not the server.
    let mp4 = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Mp4::read(r, size)))
        .map_err(|_| Bad::Truncated("its boxes cannot be read".into()))?
        .map_err(|e| Bad::Truncated(e.to_string()))?;
    let mut video = None;
    let mut audio = None;
    let (mut first_ms, mut end_ms) = (i64::MAX, 0i64);
    for track in mp4.tracks().values() {
        let codec = match (&track.kind, &track.trak(&mp4).mdia.minf.stbl.stsd.contents) {
            (Some(TrackKind::Video), StsdBoxContent::Avc1(_)) => "h264",
            (Some(TrackKind::Video), StsdBoxContent::Vp08(_)) => "vp8",
            (Some(TrackKind::Video), StsdBoxContent::Vp09(_)) => "vp9",
            (Some(TrackKind::Video), StsdBoxContent::Av01(_)) => "av1",
            (Some(TrackKind::Audio), StsdBoxContent::Mp4a(_)) => "aac",
            (Some(TrackKind::Audio), StsdBoxContent::Unknown(c)) if c.to_string() == "Opus" => {
                "opus"
            }
            (_, StsdBoxContent::Unknown(c)) => return Err(Bad::Codec(c.to_string())),
            (_, other) => {
                let name = other.codec_string().unwrap_or_else(|| "unknown".into());
                return Err(Bad::Codec(name));
            }
        };
        let timescale = i64::try_from(track.timescale.max(1)).unwrap_or(i64::MAX);
        let ms = |t: i64| t.saturating_mul(1000) / timescale;
        let mut samples = 0u64;
        for s in &track.samples {
            if s.offset.saturating_add(s.size) > size {
                // Cut by a crash: what came before the cut plays.
                if rules.cut_end_ok && samples > 0 {
                    break;
                }
                return Err(Bad::Truncated(format!(
                    "a sample of track {} ends at byte {}, the file at {size}",
                    track.track_id,
                    s.offset.saturating_add(s.size)
                )));
            }
            samples += 1;
            let dur = i64::try_from(s.duration).unwrap_or(0);
            first_ms = first_ms.min(ms(s.decode_timestamp));
            end_ms = end_ms.max(ms(s.decode_timestamp.saturating_add(dur)));
        }
        if matches!(track.kind, Some(TrackKind::Video)) {
            if samples == 0 {
                return Err(Bad::Empty);
            }
            video = Some((codec, i64::from(track.width), i64::from(track.height)));
        } else {
            audio = Some(codec);
        }
    }
    let (video_codec, width, height) = video.ok_or(Bad::NoVideo)?;
    let duration_ms = end_ms - first_ms.min(end_ms);
    if let Some(max) = rules.max_duration_ms.filter(|max| duration_ms > *max) {
        return Err(Bad::TooLong(duration_ms / 1000, max / 1000));
    }
    Ok(Probe {
        content_type: "video/mp4",
        video_codec: video_codec.to_owned(),
        audio_codec: audio.map(str::to_owned),
        width,
        height,
        duration_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn an_ftyp_without_the_rest_is_truncated() {
        // ftyp (isom), then nothing: no moov.
        let mut b = vec![0, 0, 0, 16];
        b.extend_from_slice(b"ftypisom\0\0\x02\0");
        assert!(is_mp4(&b));
        let r = probe(Cursor::new(b), Rules::upload(60_000));
        assert!(matches!(r, Err(Bad::Truncated(_))), "{r:?}");
    }
}
