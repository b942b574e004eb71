//! The MP4 (ISO BMFF) half of the check, with `re_mp4`: the boxes parsed (a plain file;
//! `re_mp4` reads fragmented ones too, untested here), the codecs Chromium plays (H.264, VP8, VP9, AV1 video; AAC or Opus
//! sound), every sample inside the file (a truncated file fails here: its `moov` is
//! missing, or its samples point past the end), the duration from the samples' times, and
//! the first video keyframe for the video's still ([`first_keyframe`]).

use std::io::{Read, Seek, SeekFrom};

use re_mp4::{Mp4, StsdBoxContent, Track, TrackKind};

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
    // re_mp4 builds a record per sample its tables declare, unchecked: a file of a few
    // bytes could declare billions. Counted first, by a walk that allocates nothing.
    let declared =
        declared_samples(&mut r, 0, size, 0).map_err(|e| Bad::Truncated(e.to_string()))?;
    if declared > MAX_DECLARED_SAMPLES {
        return Err(Bad::Truncated(format!(
            "its tables declare {declared} samples; at most {MAX_DECLARED_SAMPLES} are read"
        )));
    }
    r.seek(SeekFrom::Start(0))
        .map_err(|e| Bad::Truncated(e.to_string()))?;
    // A parser of untrusted bytes: should it panic, the file is refused, not the server.
    let mp4 = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Mp4::read(&mut r, size)))
        .map_err(|_| Bad::Truncated("its boxes cannot be read".into()))?
        .map_err(|e| Bad::Truncated(e.to_string()))?;
    let mut video = None;
    let mut audio = None;
    let (mut first_ms, mut end_ms) = (i64::MAX, 0i64);
    for track in mp4.tracks().values() {
        let trak = track.trak(&mp4);
        let kind = track_kind(track.kind, &trak.mdia.hdlr.handler_type.to_string());
        let codec = match (&kind, &trak.mdia.minf.stbl.stsd.contents) {
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
        if matches!(kind, Some(TrackKind::Video)) {
            if samples == 0 {
                return Err(Bad::Empty);
            }
            video = Some((
                codec,
                i64::from(track.width),
                i64::from(track.height),
                track,
            ));
        } else {
            audio = Some(codec);
        }
    }
    let (video_codec, width, height, track) = video.ok_or(Bad::NoVideo)?;
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
        keyframe: first_keyframe(&mut r, &mp4, track, size),
    })
}

/// The first keyframe (sync sample) of a video track, as the still maker takes it: an
/// H.264 one as an access unit in AVC form (4-byte lengths) behind its `avcC`'s parameter
/// sets, a VP8 one as it is; `None` for other codecs or a keyframe over
/// [`MAX_KEYFRAME_BYTES`](super::stills::MAX_KEYFRAME_BYTES) or past the file's end.
fn first_keyframe<R: Read + Seek>(
    r: &mut R,
    mp4: &Mp4,
    track: &Track,
    size: u64,
) -> Option<Vec<u8>> {
    let max = super::stills::MAX_KEYFRAME_BYTES;
    let s = track.samples.iter().find(|s| s.is_sync)?;
    if s.size > max as u64 || s.offset.saturating_add(s.size) > size {
        return None;
    }
    // At most MAX_KEYFRAME_BYTES, checked above.
    let mut sample = vec![0; s.size as usize];
    r.seek(SeekFrom::Start(s.offset)).ok()?;
    r.read_exact(&mut sample).ok()?;
    match &track.trak(mp4).mdia.minf.stbl.stsd.contents {
        StsdBoxContent::Vp08(_) => Some(sample),
        StsdBoxContent::Avc1(avc1) => {
            let avcc = &avc1.avcc.contents;
            let sets = avcc.sequence_parameter_sets.iter();
            let sets = sets.chain(&avcc.picture_parameter_sets);
            let n = usize::from(avcc.length_size_minus_one) + 1;
            avc_access_unit(sets.map(|s| &s.bytes[..]), n, &sample).filter(|au| au.len() <= max)
        }
        _ => None,
    }
}

/// An `avc1` sample (NAL units each after an `n`-byte length, `avcC`'s 1 to 4) as an
/// access unit whose NAL units each follow a 4-byte length, the `avcC`'s parameter `sets`
/// (SPS, then PPS) first: a decoder needs them before the picture, and a recording's
/// samples carrying them again does no harm. `None` when a length runs past the end.
fn avc_access_unit<'a>(
    sets: impl Iterator<Item = &'a [u8]>,
    n: usize,
    sample: &[u8],
) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(sample.len() + 64);
    let mut push = |nal: &[u8]| -> Option<()> {
        out.extend_from_slice(&u32::try_from(nal.len()).ok()?.to_be_bytes());
        out.extend_from_slice(nal);
        Some(())
    };
    for set in sets {
        push(set)?;
    }
    let mut rest = sample;
    while !rest.is_empty() {
        let len = rest
            .get(..n)?
            .iter()
            .fold(0usize, |len, b| len << 8 | usize::from(*b));
        push(rest.get(n..n.checked_add(len)?)?)?;
        rest = &rest[n + len..];
    }
    Some(out)
}

/// A track's kind: `re_mp4` tells it from the sample entries it knows, and has none for an
/// `Opus` entry (what Chromium's MediaRecorder and Cascade's recorder write): the handler
/// (`soun`, `vide`) tells it then.
fn track_kind(known: Option<TrackKind>, handler: &str) -> Option<TrackKind> {
    known.or(match handler {
        "soun" => Some(TrackKind::Audio),
        "vide" => Some(TrackKind::Video),
        _ => None,
    })
}

/// Samples a file's tables may declare in all (`stsz`, `stts` and `trun` counted, so a
/// sample counts about twice): two hours of 60 fps video with its audio fit; re_mp4's
/// records for them take about 100 MB at most.
const MAX_DECLARED_SAMPLES: u64 = 2_000_000;

/// Boxes that hold the sample tables, descended into.
const CONTAINERS: [&[u8; 4]; 7] = [
    b"moov", b"trak", b"mdia", b"minf", b"stbl", b"moof", b"traf",
];

/// The samples declared by the `stsz`, `stts` and `trun` boxes between `start` and `end`
/// (saturating). A box that does not fit is left for the parser to refuse.
fn declared_samples<R: Read + Seek>(
    r: &mut R,
    start: u64,
    end: u64,
    depth: u32,
) -> std::io::Result<u64> {
    let u32_at = |r: &mut R, at: u64| -> std::io::Result<u64> {
        let mut b = [0u8; 4];
        r.seek(SeekFrom::Start(at))?;
        r.read_exact(&mut b)?;
        Ok(u64::from(u32::from_be_bytes(b)))
    };
    let mut total = 0u64;
    let mut pos = start;
    while pos.saturating_add(8) <= end {
        let mut h = [0u8; 8];
        r.seek(SeekFrom::Start(pos))?;
        r.read_exact(&mut h)?;
        let kind = [h[4], h[5], h[6], h[7]];
        let (len, header) = match u32::from_be_bytes([h[0], h[1], h[2], h[3]]) {
            0 => (end - pos, 8),
            1 => {
                let mut b = [0u8; 8];
                r.read_exact(&mut b)?;
                (u64::from_be_bytes(b), 16)
            }
            n => (u64::from(n), 8),
        };
        if len < header || pos.saturating_add(len) > end {
            break;
        }
        let body = pos + header;
        if CONTAINERS.contains(&&kind) && depth < 8 {
            total = total.saturating_add(declared_samples(r, body, pos + len, depth + 1)?);
        } else if (&kind == b"stsz" && len >= header + 12)
            || (&kind == b"trun" && len >= header + 8)
        {
            // After version and flags: stsz's sample size, then its count; trun's count.
            let at = if &kind == b"stsz" { body + 8 } else { body + 4 };
            total = total.saturating_add(u32_at(r, at)?);
        } else if &kind == b"stts" && len >= header + 8 {
            let entries = u32_at(r, body + 4)?.min((len - header - 8) / 8);
            for i in 0..entries {
                total = total.saturating_add(u32_at(r, body + 8 + i * 8)?);
                if total > MAX_DECLARED_SAMPLES {
                    return Ok(total);
                }
            }
        }
        if total > MAX_DECLARED_SAMPLES {
            return Ok(total);
        }
        pos += len;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// A recording as Cascade's recorder writes an H.264 live (sfu/src/record/mp4.rs):
    /// fragmented, ten frames of 160×120 H.264 (two keyframes) and 20 ms Opus frames.
    const RECORDING: &[u8] = include_bytes!("testdata/h264-opus-recording.mp4");

    #[test]
    fn a_fragmented_h264_and_opus_recording_checks() {
        let p = probe(Cursor::new(RECORDING), Rules::FINISHED_RECORDING).unwrap();
        assert_eq!(p.content_type, "video/mp4");
        assert_eq!(
            (p.video_codec.as_str(), p.audio_codec.as_deref()),
            ("h264", Some("opus"))
        );
        assert_eq!((p.width, p.height), (160, 120));
        assert!((320..=340).contains(&p.duration_ms), "{}", p.duration_ms);
        // Cut by a crash in its last fragment: it passes as a cut recording, with less.
        let cut = &RECORDING[..RECORDING.len() - 300];
        let p = probe(Cursor::new(cut), Rules::CUT_RECORDING).unwrap();
        assert!(p.duration_ms < 320, "{}", p.duration_ms);
        assert!(probe(Cursor::new(cut), Rules::FINISHED_RECORDING).is_err());
    }

    /// The NAL unit types of an access unit whose NAL units each follow a 4-byte length.
    fn nal_types(au: &[u8]) -> Vec<u8> {
        let mut types = Vec::new();
        let mut rest = au;
        while let Some(len) = rest.get(..4) {
            let len = u32::from_be_bytes(len.try_into().unwrap()) as usize;
            types.push(rest[4] & 0x1f);
            rest = &rest[4 + len..];
        }
        types
    }

    #[test]
    fn an_h264_mp4s_first_keyframe_comes_with_its_parameter_sets() {
        let p = probe(Cursor::new(RECORDING), Rules::FINISHED_RECORDING).unwrap();
        let keyframe = p.keyframe.expect("a keyframe for the still");
        // The avcC's SPS and PPS, then the sample's own (the recorder keeps them in band)
        // and its IDR picture.
        assert_eq!(nal_types(&keyframe), [7, 8, 7, 8, 5]);
        // A sample in 2-byte lengths (an avcC may say so) comes out in 4-byte ones.
        let sets: [&[u8]; 2] = [&[0x67, 1, 2, 3], &[0x68, 4]];
        let sample = [0, 3, 0x65, 9, 9, 0, 1, 0x06];
        let au = avc_access_unit(sets.into_iter(), 2, &sample).unwrap();
        assert_eq!(nal_types(&au), [7, 8, 5, 6]);
        assert_eq!(&au[14..21], &[0, 0, 0, 3, 0x65, 9, 9]);
        // A length past the sample's end: no keyframe.
        assert_eq!(avc_access_unit(sets.into_iter(), 2, &[0, 9, 0x65, 9]), None);
    }

    #[test]
    fn an_ftyp_without_the_rest_is_truncated() {
        // ftyp (isom), then nothing: no moov.
        let mut b = vec![0, 0, 0, 16];
        b.extend_from_slice(b"ftypisom\0\0\x02\0");
        assert!(is_mp4(&b));
        let r = probe(Cursor::new(b), Rules::upload(60_000));
        assert!(matches!(r, Err(Bad::Truncated(_))), "{r:?}");
    }

    /// A box: its size, its type, its body.
    fn mp4_box(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut b = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.extend_from_slice(body);
        b
    }

    /// A file of a few hundred bytes whose tables declare four billion samples (re_mp4
    /// would build a record for each, and the process run out of memory): refused first.
    #[test]
    fn tables_declaring_billions_of_samples_are_refused_before_parsing() {
        let stts = mp4_box(
            b"stts",
            &[0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1],
        );
        let stsz = mp4_box(b"stsz", &[0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff]);
        let stbl = mp4_box(b"stbl", &[stts, stsz].concat());
        let minf = mp4_box(b"minf", &stbl);
        let mdia = mp4_box(b"mdia", &minf);
        let trak = mp4_box(b"trak", &mdia);
        let moov = mp4_box(b"moov", &trak);
        let mut file = mp4_box(b"ftyp", b"isom\0\0\x02\0");
        file.extend_from_slice(&moov);
        let n = declared_samples(&mut Cursor::new(&file), 0, file.len() as u64, 0).unwrap();
        assert!(n > MAX_DECLARED_SAMPLES, "{n}");
        let r = probe(Cursor::new(file), Rules::upload(60_000));
        assert!(
            matches!(&r, Err(Bad::Truncated(m)) if m.contains("declare")),
            "{r:?}"
        );
        // A trun in a movie fragment counts too.
        let trun = mp4_box(b"trun", &[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
        let moof = mp4_box(b"moof", &mp4_box(b"traf", &trun));
        assert_eq!(
            declared_samples(&mut Cursor::new(&moof), 0, moof.len() as u64, 0).unwrap(),
            u64::from(u32::MAX)
        );
    }
}
