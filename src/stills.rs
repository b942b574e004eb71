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
