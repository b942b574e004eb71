//! VP8 (and VP9) decoding and VP8 encoding with libvpx (Debian's `libvpx`, through the maintained
//! `env-libvpx-sys` bindings). The unsafe FFI stays in this file: a [`Decoder`] takes a
//! frame and gives an owned [`I420`]; an [`Encoder`] takes an [`I420`] and gives owned
//! frames. Both own their context and free it on drop; neither is shared between threads.
//!
//! The encoder is set for live use: real-time deadline, no lookahead (`g_lag_in_frames` 0),
//! error resilient, CBR, a high `cpu-used`, one thread, keyframes on request (and every
//! few seconds as a floor).

use std::mem::MaybeUninit;
use std::os::raw::{c_int, c_long, c_uint, c_ulong};
use std::ptr;

use vpx_sys::{
    vp8e_enc_control_id, vpx_codec_ctx_t, vpx_codec_cx_pkt_kind, vpx_codec_dec_cfg_t,
    vpx_codec_enc_cfg_t, vpx_codec_err_t, vpx_codec_iter_t, vpx_image_t, vpx_img_fmt, vpx_rc_mode,
};

pub use super::coding::{Encoded, EncoderConfig};
use super::scale::{chroma_size, I420};

/// What libvpx refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum VpxError {
    /// The context could not be set up.
    #[error("libvpx init failed: {0:?}")]
    Init(vpx_codec_err_t),
    /// A frame did not decode (corrupt, or it needs a reference that is missing).
    #[error("libvpx decode failed: {0:?}")]
    Decode(vpx_codec_err_t),
    /// A picture did not encode.
    #[error("libvpx encode failed: {0:?}")]
    Encode(vpx_codec_err_t),
    /// A picture of a size the encoder was not made for.
    #[error("picture is {got:?}, encoder is {want:?}")]
    Size {
        /// The picture's size.
        got: (usize, usize),
        /// The encoder's.
        want: (usize, usize),
    },
}

fn check(e: vpx_codec_err_t, wrap: fn(vpx_codec_err_t) -> VpxError) -> Result<(), VpxError> {
    match e {
        vpx_codec_err_t::VPX_CODEC_OK => Ok(()),
        e => Err(wrap(e)),
    }
}

/// A VP8 decoder.
pub struct Decoder {
    // Boxed: libvpx is handed its address once and it must not move.
    ctx: Box<vpx_codec_ctx_t>,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("vpx::Decoder")
    }
}

// SAFETY: the context is only used through `&mut self`, on one thread at a time; libvpx
// contexts have no thread affinity.
unsafe impl Send for Decoder {}

impl Decoder {
    /// A VP8 decoder on one thread.
    pub fn new() -> Result<Self, VpxError> {
        // SAFETY: libvpx's interface tables are static.
        Self::with_interface(unsafe { vpx_sys::vpx_codec_vp8_dx() })
    }

    /// A VP9 decoder on one thread (the frame's declared size is the caller's to check
    /// first: libvpx allocates for it).
    pub fn vp9() -> Result<Self, VpxError> {
        // SAFETY: libvpx's interface tables are static.
        Self::with_interface(unsafe { vpx_sys::vpx_codec_vp9_dx() })
    }

    fn with_interface(iface: *mut vpx_sys::vpx_codec_iface_t) -> Result<Self, VpxError> {
        // SAFETY: a zeroed context is what vpx_codec_dec_init_ver expects to fill in; the
        // interface and config pointers are valid for the call.
        unsafe {
            let mut ctx: Box<vpx_codec_ctx_t> = Box::new(MaybeUninit::zeroed().assume_init());
            let cfg = vpx_codec_dec_cfg_t {
                threads: 1,
                w: 0,
                h: 0,
            };
            check(
                vpx_sys::vpx_codec_dec_init_ver(
                    &mut *ctx,
                    iface,
                    &cfg,
                    0,
                    vpx_sys::VPX_DECODER_ABI_VERSION as c_int,
                ),
                VpxError::Init,
            )?;
            Ok(Decoder { ctx })
        }
    }

    /// Decodes one frame; `None` when it gives no picture (a frame that is not shown).
    pub fn decode(&mut self, frame: &[u8]) -> Result<Option<I420>, VpxError> {
        let len = c_uint::try_from(frame.len())
            .map_err(|_| VpxError::Decode(vpx_codec_err_t::VPX_CODEC_CORRUPT_FRAME))?;
        // SAFETY: `frame` is valid for `len` bytes for the call; the image libvpx returns is
        // valid until the next decode call, and is copied out before then.
        unsafe {
            check(
                vpx_sys::vpx_codec_decode(&mut *self.ctx, frame.as_ptr(), len, ptr::null_mut(), 0),
                VpxError::Decode,
            )?;
            let mut iter: vpx_codec_iter_t = ptr::null();
            let mut last = None;
            loop {
                let img = vpx_sys::vpx_codec_get_frame(&mut *self.ctx, &mut iter);
                if img.is_null() {
                    break;
                }
                last = copy_out(&*img);
            }
            Ok(last)
        }
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        // SAFETY: the context was initialised in `new` and is destroyed once.
        unsafe {
            vpx_sys::vpx_codec_destroy(&mut *self.ctx);
        }
    }
}

/// Copies a decoded 8-bit I420 image into a packed picture (`None` for other formats).
///
/// # Safety
/// `img`'s planes must be valid for its strides and display size.
unsafe fn copy_out(img: &vpx_image_t) -> Option<I420> {
    if img.fmt != vpx_img_fmt::VPX_IMG_FMT_I420 {
        return None;
    }
    let (w, h) = (img.d_w as usize, img.d_h as usize);
    let (cw, ch) = chroma_size(w, h);
    let plane = |i: usize, pw: usize, ph: usize| -> Vec<u8> {
        let stride = img.stride[i] as usize;
        let mut out = Vec::with_capacity(pw * ph);
        for row in 0..ph {
            // SAFETY: libvpx guarantees `ph` rows of `stride ≥ pw` bytes in plane `i`.
            let src = unsafe { std::slice::from_raw_parts(img.planes[i].add(row * stride), pw) };
            out.extend_from_slice(src);
        }
        out
    };
    Some(I420 {
        width: w,
        height: h,
        y: plane(0, w, h),
        u: plane(1, cw, ch),
        v: plane(2, cw, ch),
    })
}

/// A VP8 encoder in real-time mode.
pub struct Encoder {
    ctx: Box<vpx_codec_ctx_t>,
    config: EncoderConfig,
    pts: i64,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("vpx::Encoder")
            .field("config", &self.config)
            .finish()
    }
}

// SAFETY: as for `Decoder`.
unsafe impl Send for Encoder {}

impl Encoder {
    /// An encoder for `config`.
    pub fn new(config: EncoderConfig) -> Result<Self, VpxError> {
        // SAFETY: the default config is filled in by libvpx before use; the context is
        // zeroed for init; every pointer is valid for its call.
        unsafe {
            let iface = vpx_sys::vpx_codec_vp8_cx();
            let mut cfg: vpx_codec_enc_cfg_t = MaybeUninit::zeroed().assume_init();
            check(
                vpx_sys::vpx_codec_enc_config_default(iface, &mut cfg, 0),
                VpxError::Init,
            )?;
            cfg.g_w = config.width as c_uint;
            cfg.g_h = config.height as c_uint;
            // The RTP clock: presentation times are 90 kHz ticks.
            cfg.g_timebase.num = 1;
            cfg.g_timebase.den = 90_000;
            cfg.g_threads = 1;
            cfg.g_lag_in_frames = 0;
            cfg.g_error_resilient = vpx_sys::VPX_ERROR_RESILIENT_DEFAULT;
            cfg.rc_end_usage = vpx_rc_mode::VPX_CBR;
            cfg.rc_target_bitrate = config.kbps;
            cfg.rc_min_quantizer = 4;
            cfg.rc_max_quantizer = 56;
            cfg.rc_undershoot_pct = 100;
            cfg.rc_overshoot_pct = 15;
            cfg.rc_buf_sz = 1000;
            cfg.rc_buf_initial_sz = 500;
            cfg.rc_buf_optimal_sz = 600;
            cfg.rc_dropframe_thresh = 0;
            cfg.kf_mode = vpx_sys::vpx_kf_mode::VPX_KF_AUTO;
            cfg.kf_max_dist = config.keyframe_max_dist;
            let mut ctx: Box<vpx_codec_ctx_t> = Box::new(MaybeUninit::zeroed().assume_init());
            check(
                vpx_sys::vpx_codec_enc_init_ver(
                    &mut *ctx,
                    iface,
                    &cfg,
                    0,
                    vpx_sys::VPX_ENCODER_ABI_VERSION as c_int,
                ),
                VpxError::Init,
            )?;
            let enc = Encoder {
                ctx,
                config,
                pts: 0,
            };
            let mut enc = enc;
            check(
                vpx_sys::vpx_codec_control_(
                    &mut *enc.ctx,
                    vp8e_enc_control_id::VP8E_SET_CPUUSED as c_int,
                    config.cpu_used as c_int,
                ),
                VpxError::Init,
            )?;
            check(
                vpx_sys::vpx_codec_control_(
                    &mut *enc.ctx,
                    vp8e_enc_control_id::VP8E_SET_NOISE_SENSITIVITY as c_int,
                    0 as c_int,
                ),
                VpxError::Init,
            )?;
            Ok(enc)
        }
    }

    /// Its settings.
    pub fn config(&self) -> EncoderConfig {
        self.config
    }

    /// Encodes one picture at 90 kHz time `pts` (monotonic); a keyframe when `keyframe`.
    pub fn encode(
        &mut self,
        pic: &I420,
        pts: i64,
        keyframe: bool,
    ) -> Result<Vec<Encoded>, VpxError> {
        if let Some((got, want)) = self.config.mismatch(pic) {
            return Err(VpxError::Size { got, want });
        }
        // libvpx wants increasing pts; a source timestamp that jumps back is nudged on.
        let pts = pts.max(self.pts + 1);
        let duration = (pts - self.pts).clamp(1, 90_000) as c_ulong;
        self.pts = pts;
        let (cw, _) = pic.chroma_size();
        let flags: c_long = if keyframe {
            vpx_sys::VPX_EFLAG_FORCE_KF as c_long
        } else {
            0
        };
        // SAFETY: the wrapped image points into `pic`'s planes, which outlive the encode
        // call (libvpx copies the picture in real-time mode with no lookahead); the packets
        // it returns are copied out before the next call.
        unsafe {
            let mut img: vpx_image_t = MaybeUninit::zeroed().assume_init();
            let wrapped = vpx_sys::vpx_img_wrap(
                &mut img,
                vpx_img_fmt::VPX_IMG_FMT_I420,
                pic.width as c_uint,
                pic.height as c_uint,
                1,
                pic.y.as_ptr() as *mut u8,
            );
            if wrapped.is_null() {
                return Err(VpxError::Encode(vpx_codec_err_t::VPX_CODEC_INVALID_PARAM));
            }
            img.planes[0] = pic.y.as_ptr() as *mut u8;
            img.planes[1] = pic.u.as_ptr() as *mut u8;
            img.planes[2] = pic.v.as_ptr() as *mut u8;
            img.stride[0] = pic.width as c_int;
            img.stride[1] = cw as c_int;
            img.stride[2] = cw as c_int;
            check(
                vpx_sys::vpx_codec_encode(
                    &mut *self.ctx,
                    &img,
                    pts,
                    duration,
                    flags,
                    vpx_sys::VPX_DL_REALTIME as c_ulong,
                ),
                VpxError::Encode,
            )?;
            let mut out = Vec::new();
            let mut iter: vpx_codec_iter_t = ptr::null();
            loop {
                let pkt = vpx_sys::vpx_codec_get_cx_data(&mut *self.ctx, &mut iter);
                if pkt.is_null() {
                    break;
                }
                let pkt = &*pkt;
                if pkt.kind != vpx_codec_cx_pkt_kind::VPX_CODEC_CX_FRAME_PKT {
                    continue;
                }
                let f = pkt.data.frame;
                let data = std::slice::from_raw_parts(f.buf as *const u8, f.sz as usize).to_vec();
                out.push(Encoded {
                    data,
                    keyframe: f.flags & vpx_sys::VPX_FRAME_IS_KEY != 0,
                });
            }
            Ok(out)
        }
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        // SAFETY: the context was initialised in `new` and is destroyed once.
        unsafe {
            vpx_sys::vpx_codec_destroy(&mut *self.ctx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A moving gradient, so that frames differ.
    pub(crate) fn picture(w: usize, h: usize, t: usize) -> I420 {
        let mut p = I420::filled(w, h, 0, 128, 128);
        for y in 0..h {
            for x in 0..w {
                p.y[y * w + x] = ((x + y + 4 * t) % 256) as u8;
            }
        }
        p
    }

    #[test]
    fn encodes_and_decodes_round_trip_at_the_size_given() {
        let mut enc = Encoder::new(EncoderConfig::realtime(320, 180)).unwrap();
        let mut dec = Decoder::new().unwrap();
        let mut keys = 0;
        for t in 0..10 {
            let frames = enc
                .encode(&picture(320, 180, t), t as i64 * 3000, t == 5)
                .unwrap();
            assert_eq!(
                frames.len(),
                1,
                "no lookahead: one frame out per picture in"
            );
            keys += usize::from(frames[0].keyframe);
            let pic = dec.decode(&frames[0].data).unwrap().expect("a shown frame");
            assert_eq!((pic.width, pic.height), (320, 180));
            // Lossy, but close: the mean luma error stays small.
            let want = picture(320, 180, t);
            let err: u64 = pic
                .y
                .iter()
                .zip(&want.y)
                .map(|(a, b)| a.abs_diff(*b) as u64)
                .sum();
            assert!(err / (320 * 180) < 12, "mean error {}", err / (320 * 180));
        }
        assert_eq!(keys, 2, "the first frame and the one asked for");
    }

    #[test]
    fn garbage_is_an_error_not_a_crash() {
        let mut dec = Decoder::new().unwrap();
        assert!(dec.decode(&[0xff; 64]).is_err());
        assert!(dec.decode(&[]).is_err() || dec.decode(&[]).unwrap().is_none());
        let mut enc = Encoder::new(EncoderConfig::realtime(320, 180)).unwrap();
        assert!(matches!(
            enc.encode(&picture(640, 360, 0), 0, false),
            Err(VpxError::Size { .. })
        ));
    }
}
