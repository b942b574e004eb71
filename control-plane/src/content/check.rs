//! The check a file passes before it is listed: a WebM container that parses to its end
//! (every frame read: a truncated file fails here), or an MP4 ([`super::mp4`]), told apart
//! by their first bytes (EBML or `ftyp`), never by a name; allowed codecs, a video track, a
//! duration within the limit. Recordings follow their own [`Rules`]: no duration limit
//! (a recording is as long as its live), and a file cut by a node's crash passes with the
//! frames before the cut. Pure over any `Read + Seek`; the caller runs it on a blocking
//! thread.

use std::io::{Read, Seek, SeekFrom};

use matroska_demuxer::{DemuxError, Frame, MatroskaFile, TrackType};

/// The first bytes of every EBML (Matroska, WebM) file.
const EBML_MAGIC: [u8; 4] = [0x1A, 0x45, 0xDF, 0xA3];

/// Video codecs a WebM may carry (Matroska codec ids) and their names here.
const VIDEO: [(&str, &str); 3] = [("V_VP8", "vp8"), ("V_VP9", "vp9"), ("V_AV1", "av1")];
/// Audio codecs a WebM may carry.
const AUDIO: [(&str, &str); 1] = [("A_OPUS", "opus")];

/// What the check found in a good file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The MIME type it is served with.
    pub content_type: &'static str,
    /// `vp8`, `vp9`, `av1` or (MP4) `h264`.
    pub video_codec: String,
    /// `opus`, if it has sound.
    pub audio_codec: Option<String>,
    /// Pixels.
    pub width: i64,
    /// Pixels.
    pub height: i64,
    /// From the first frame to the end of the last, ms.
    pub duration_ms: i64,
    /// The first video keyframe (at most [`super::stills::MAX_KEYFRAME_BYTES`]), for the
    /// video's still picture: a WebM's frame, or an MP4's sample (an H.264 one with its
    /// parameter sets, [`super::mp4`]).
    pub keyframe: Option<Vec<u8>>,
}

/// Why a file is refused; the message is what the uploader reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Bad {
    /// Not a WebM or MP4 file at all.
    #[error("the file is not a WebM or MP4 video ({0})")]
    NotVideo(String),
    /// A codec outside the allowed set.
    #[error(
        "codec {0} is not allowed (WebM with VP8, VP9 or AV1 video and Opus audio; \
         MP4 with H.264, VP8, VP9 or AV1 video and AAC or Opus audio)"
    )]
    Codec(String),
    /// No video track.
    #[error("the file has no video track")]
    NoVideo,
    /// It ends before its last frame, or a frame cannot be read.
    #[error("the file is truncated or damaged ({0})")]
    Truncated(String),
    /// No frame of video.
    #[error("the file has no video frames")]
    Empty,
    /// Longer than allowed.
    #[error("the video lasts {0} s; at most {1} s are allowed")]
    TooLong(i64, i64),
}

/// What a file must be to pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// The longest allowed, ms; `None`: any length.
    pub max_duration_ms: Option<i64>,
    /// A file that ends in the middle of its frames (its writer was killed) passes with
    /// the frames before the cut, if it has at least one picture.
    pub cut_end_ok: bool,
}

impl Rules {
    /// An upload: whole, at most `max_duration_ms` long.
    pub fn upload(max_duration_ms: i64) -> Rules {
        Rules {
            max_duration_ms: Some(max_duration_ms),
            cut_end_ok: false,
        }
    }

    /// A recording the node finished: whole, any length.
    pub const FINISHED_RECORDING: Rules = Rules {
        max_duration_ms: None,
        cut_end_ok: false,
    };

    /// A recording a node's crash cut: any length, its frames up to the cut.
    pub const CUT_RECORDING: Rules = Rules {
        max_duration_ms: None,
        cut_end_ok: true,
    };
}

/// [`probe_with`] of a file, off the async threads: an I/O error is the server's
/// (`Error::Internal`), a bad file the inner `Err`.
pub async fn probe_file(
    path: std::path::PathBuf,
    rules: Rules,
) -> Result<Result<Probe, Bad>, crate::error::Error> {
    let internal = |e: String| crate::error::Error::Internal(format!("checking a video: {e}"));
    tokio::task::spawn_blocking(move || {
        let f = std::fs::File::open(&path)?;
        Ok::<_, std::io::Error>(probe_with(std::io::BufReader::new(f), rules))
    })
    .await
    .map_err(|e| internal(e.to_string()))?
    .map_err(|e| internal(e.to_string()))
}

/// Reads the whole file; `max_duration_ms` is the longest allowed (an upload's rules).
pub fn probe<R: Read + Seek>(r: R, max_duration_ms: i64) -> Result<Probe, Bad> {
    probe_with(r, Rules::upload(max_duration_ms))
}

/// Reads the whole file under `rules`.
pub fn probe_with<R: Read + Seek>(mut r: R, rules: Rules) -> Result<Probe, Bad> {
    let mut magic = [0u8; 8];
    let read = r.read_exact(&mut magic).is_ok();
    let ebml = read && magic[..4] == EBML_MAGIC;
    r.seek(SeekFrom::Start(0))
        .map_err(|e| Bad::Truncated(e.to_string()))?;
    if read && super::mp4::is_mp4(&magic) {
        return super::mp4::probe(r, rules);
    }
    let mut mkv = MatroskaFile::open(r).map_err(|e| match e {
        DemuxError::InvalidEbmlHeader(why) | DemuxError::UnsupportedDocType(why) => {
            Bad::NotVideo(why.replace('\0', ""))
        }
        e if ebml => {
            // An EBML file whose header or segment cannot be read to its end.
            Bad::Truncated(format!("{e:?}"))
        }
        _ => Bad::NotVideo("it starts as neither a Matroska nor an MP4 file".into()),
    })?;
    // EBML strings may be padded with NULs (GStreamer's muxer pads the doc type).
    if mkv.ebml_header().doc_type().trim_end_matches('\0') != "webm" {
        return Err(Bad::NotVideo(format!(
            "document type {:?}",
            mkv.ebml_header().doc_type()
        )));
    }
    let mut video = None;
    let mut audio = None;
    for t in mkv.tracks() {
        match t.track_type() {
            TrackType::Video => {
                let name = allowed(&VIDEO, t.codec_id())?;
                let v = t.video().ok_or(Bad::NoVideo)?;
                video = Some((
                    t.track_number().get(),
                    name,
                    v.pixel_width().get(),
                    v.pixel_height().get(),
                ));
            }
            TrackType::Audio => {
                audio = Some(allowed(&AUDIO, t.codec_id())?);
            }
            _ => return Err(Bad::Codec(t.codec_id().to_owned())),
        }
    }
    let (track, video_codec, width, height) = video.ok_or(Bad::NoVideo)?;
    let scale = mkv.info().timestamp_scale().get();
    let declared = mkv.info().duration();
    let mut frame = Frame::default();
    let (mut first, mut last, mut frames) = (u64::MAX, 0u64, 0u64);
    let mut keyframe = None;
    loop {
        match mkv.next_frame(&mut frame) {
            Ok(true) => {}
            Ok(false) => break,
            // Cut by a crash: what came before the cut plays.
            Err(_) if rules.cut_end_ok && frames > 0 => break,
            Err(e) => return Err(Bad::Truncated(e.to_string())),
        }
        if frame.track == track {
            frames += 1;
            if keyframe.is_none()
                && frame.is_keyframe != Some(false)
                && frame.data.len() <= super::stills::MAX_KEYFRAME_BYTES
            {
                keyframe = Some(std::mem::take(&mut frame.data));
            }
        }
        first = first.min(frame.timestamp);
        last = last.max(frame.timestamp + frame.duration.unwrap_or(0));
    }
    if frames == 0 {
        return Err(Bad::Empty);
    }
    let ms = |ticks: f64| (ticks * scale as f64 / 1e6) as i64;
    let read_ms = ms((last - first) as f64);
    // A file that may be cut is as long as the frames it holds, whatever it declares (a
    // writer killed before its end declares a placeholder, or the length it meant).
    let declared = declared.filter(|_| !rules.cut_end_ok);
    if let Some(d) = declared {
        // A muxer that wrote the duration wrote every frame before it: a file that ends
        // more than a second short of it was cut.
        if ms(d) > ms(last as f64) + 1000 {
            return Err(Bad::Truncated(format!(
                "it says {} ms, its frames end at {} ms",
                ms(d),
                ms(last as f64)
            )));
        }
    }
    let duration_ms = declared.map_or(read_ms, |d| ms(d).max(read_ms));
    if let Some(max) = rules.max_duration_ms.filter(|max| duration_ms > *max) {
        return Err(Bad::TooLong(duration_ms / 1000, max / 1000));
    }
    Ok(Probe {
        content_type: "video/webm",
        video_codec: video_codec.to_owned(),
        audio_codec: audio.map(str::to_owned),
        width: i64::try_from(width).unwrap_or(i64::MAX),
        height: i64::try_from(height).unwrap_or(i64::MAX),
        duration_ms,
        keyframe,
    })
}

fn allowed(list: &[(&str, &'static str)], id: &str) -> Result<&'static str, Bad> {
    let id = id.trim_end_matches('\0');
    list.iter()
        .find(|(c, _)| *c == id)
        .map(|(_, n)| *n)
        .ok_or_else(|| Bad::Codec(id.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn garbage_is_not_webm() {
        let r = probe(Cursor::new(b"hello, this is not a video".to_vec()), 60_000);
        assert!(matches!(r, Err(Bad::NotVideo(_))), "{r:?}");
        let r = probe(Cursor::new(Vec::new()), 60_000);
        assert!(matches!(r, Err(Bad::NotVideo(_))), "{r:?}");
    }
}
