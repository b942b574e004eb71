//! Where the content library's stills meet libvpx: `control_plane::content::Stills` made
//! by `sfu::process::still` (VP8 and VP9 keyframes; nothing for other codecs).

/// The still maker `serve` and `control` install.
#[derive(Debug)]
pub struct Libvpx;

impl control_plane::content::Stills for Libvpx {
    fn still(&self, codec: &str, keyframe: &[u8]) -> Option<Vec<u8>> {
        sfu::process::still::still_png(codec, keyframe)
    }
}

/// How long a keyframe is waited for.
const KEYFRAME_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Every `every`, a thumbnail of each live stream published here: a keyframe of its first
/// encoding taken from the node, decoded and written as the channel's thumbnail unless
/// the studio posted a newer one (`discovery::thumbs::put_server_still`). One stream at
/// a time, on a blocking thread: a few milliseconds of decoding each.
pub fn live(node: sfu::Node, control: control_plane::ControlPlane, every: std::time::Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            for (stream, _) in node.publishing() {
                let (n, s) = (node.clone(), stream.clone());
                let jpeg = tokio::task::spawn_blocking(move || {
                    let frame = n.keyframe_of(&s, KEYFRAME_WAIT).ok()??;
                    sfu::process::still::still_jpeg("vp8", &frame)
                })
                .await
                .ok()
                .flatten();
                let Some(jpeg) = jpeg else { continue };
                if let Err(e) =
                    control_plane::discovery::thumbs::put_server_still(&control, &stream, &jpeg)
                        .await
                {
                    tracing::warn!(stream, "a live thumbnail not stored: {e}");
                }
            }
        }
    });
}
