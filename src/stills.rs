//! Where the content library's stills meet the decoders: `control_plane::content::Stills`
//! made by `sfu::process::still` (VP8 keyframes with libvpx, H.264 with OpenH264; nothing
//! for other codecs), and the live streams' thumbnails made the same way.

use crate::recording::Library;

/// The still maker `serve` and `control` install.
#[derive(Debug)]
pub struct Decoders;

impl control_plane::content::Stills for Decoders {
    fn still(&self, codec: &str, keyframe: &[u8]) -> Option<Vec<u8>> {
        sfu::process::still::still_png(codec, keyframe)
    }
}

/// How long a keyframe is waited for.
const KEYFRAME_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Streams whose thumbnail is being made at once, at most: each waits up to
/// [`KEYFRAME_WAIT`] for a keyframe, decodes it on a blocking thread and sends it.
const AT_ONCE: usize = 8;

/// Every `every`, a thumbnail of each live stream published here: a keyframe of its first
/// encoding taken from the node, decoded and handed to `library` (the control plane in
/// this process, or over the cluster API on a media-only node), which writes it as the
/// channel's thumbnail unless the studio posted a newer one
/// (`discovery::thumbs::put_server_still`). The primary ingest's only, or a standby's
/// once its primary is gone (`Node::ingesting`): a standby publisher sends the same
/// picture. Streams side by side ([`AT_ONCE`]), so that one whose keyframe is slow or
/// whose upload hangs does not hold back the others; a round ends when all of its
/// streams are done.
pub fn live(node: sfu::Node, library: Library, every: std::time::Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let turns = std::sync::Arc::new(tokio::sync::Semaphore::new(AT_ONCE));
        loop {
            tick.tick().await;
            let mut round = tokio::task::JoinSet::new();
            for stream in node.ingesting() {
                let (node, library, turns) = (node.clone(), library.clone(), turns.clone());
                round.spawn(async move {
                    // The semaphore is never closed: a turn always comes.
                    let _turn = turns.acquire_owned().await;
                    still_of(node, &library, stream).await;
                });
            }
            while round.join_next().await.is_some() {}
        }
    });
}

/// One stream's live thumbnail, made and handed to `library`.
async fn still_of(node: sfu::Node, library: &Library, stream: String) {
    let s = stream.clone();
    let jpeg = tokio::task::spawn_blocking(move || {
        let frame = node.keyframe_of(&s, KEYFRAME_WAIT).ok()??;
        sfu::process::still::still_jpeg(frame.codec.name(), &frame.data)
    })
    .await
    .ok()
    .flatten();
    let Some(jpeg) = jpeg else { return };
    match library.still(&stream, jpeg).await {
        Ok(still) => tracing::debug!(stream, ?still, "a live thumbnail"),
        Err(e) => tracing::warn!(stream, "a live thumbnail not stored: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use control_plane::content::check::{probe_with, Rules};
    use control_plane::content::Stills;

    /// An upload as GStreamer writes an H.264 MP4: one red 160×120 picture, a plain file
    /// with its `moov` at the end (`gst-launch-1.0 videotestsrc num-buffers=1 pattern=red
    /// ! video/x-raw,width=160,height=120,framerate=30/1 ! openh264enc ! h264parse
    /// ! video/x-h264,stream-format=avc ! mp4mux ! filesink location=red-160x120.mp4`).
    const RED: &[u8] = include_bytes!("../control-plane/src/content/testdata/red-160x120.mp4");

    #[test]
    fn an_uploaded_h264_mp4_gets_a_still_of_its_picture() {
        let p = probe_with(std::io::Cursor::new(RED), Rules::upload(60_000)).unwrap();
        assert_eq!(p.video_codec, "h264");
        let keyframe = p.keyframe.expect("its first keyframe");
        let png = Decoders.still(&p.video_codec, &keyframe).expect("a still");
        let mut reader = png::Decoder::new(std::io::Cursor::new(png))
            .read_info()
            .unwrap();
        let mut rgb = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut rgb).unwrap();
        assert_eq!((info.width, info.height), (160, 120));
        let mid = ((60 * 160 + 80) * 3) as usize;
        let (r, g, b) = (rgb[mid], rgb[mid + 1], rgb[mid + 2]);
        assert!(r > 230 && g < 30 && b < 30, "red came out as {r},{g},{b}");
    }
}
