//! One stream's levelling, sans-I/O: an Opus packet in, an Opus packet of the same
//! duration out. Decoded with libopus, measured (BS.1770 K-weighted momentary loudness,
//! the `ebur128` crate, before the gain: loudness moves with the gain exactly, so the
//! loop is open and does not hunt), the gain of [`GainControl`], the [`Limiter`], and
//! encoded again. The audio's own sample count is the clock.
//!
//! Each output packet lasts as long as its input, so it keeps the input's sequence number
//! and timestamp: what a viewer receives stays continuous. A packet that does not decode
//! becomes the decoder's concealment of the same length (counted as such): garbage never
//! reaches a viewer's decoder and never stops the stream.

use ebur128::{EbuR128, Mode};
use opus::{Application, Bitrate, Channels, Decoder, Encoder};

use super::gain::{GainControl, Limiter, Loudness};

/// Opus in WebRTC: 48 kHz, signalled as two channels.
pub const RATE: u32 = 48_000;
const CHANNELS: usize = 2;
/// The longest Opus packet: 120 ms.
const MAX_FRAME: usize = 5760;
/// How often the momentary loudness is read, in samples (100 ms).
const READ_EVERY: u64 = 4800;
/// A concealed packet's length when none decoded yet: 20 ms.
const DEFAULT_FRAME: usize = 960;
/// Largest encoded packet we write.
const MAX_PACKET: usize = 1275;
/// Encoder bitrate for a stereo stream (mono: half): what browsers send for music.
const STEREO_BPS: i32 = 64_000;

/// What became of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Decoded, levelled, encoded.
    Levelled,
    /// It did not decode: the decoder's concealment was levelled and encoded instead.
    Concealed,
}

/// Why a stream cannot be levelled or a packet came out empty (libopus or the meter
/// refused its settings; not seen with these).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LevelError {
    /// libopus.
    #[error("opus: {0}")]
    Opus(#[from] opus::Error),
    /// The loudness meter.
    #[error("loudness meter: {0:?}")]
    Meter(ebur128::Error),
}

/// One stream's decoder, measurer, gain, limiter and encoder.
pub struct LevelCore {
    decoder: Decoder,
    encoder: Option<(Channels, Encoder)>,
    meter: Meter,
    gain: GainControl,
    limiter: Limiter,
    pcm: Vec<f32>,
    mono: Vec<f32>,
    last_frame: usize,
}

impl LevelCore {
    /// A stream levelled towards `target_lufs`.
    pub fn new(target_lufs: f64) -> Result<Self, LevelError> {
        let meter = EbuR128::new(CHANNELS as u32, RATE, Mode::M).map_err(LevelError::Meter)?;
        Ok(LevelCore {
            decoder: Decoder::new(RATE, Channels::Stereo)?,
            encoder: None,
            meter: Meter {
                meter,
                loudness: Loudness::default(),
                samples: 0,
                next_read: READ_EVERY,
            },
            gain: GainControl::new(target_lufs),
            limiter: Limiter::new(RATE),
            pcm: vec![0.0; MAX_FRAME * CHANNELS],
            mono: Vec::with_capacity(MAX_FRAME),
            last_frame: DEFAULT_FRAME,
        })
    }

    /// The gain applied now, dB.
    pub fn gain_db(&self) -> f32 {
        self.gain.gain_db()
    }

    /// The loudness estimate of the input, LUFS.
    pub fn input_lufs(&self) -> Option<f64> {
        self.meter.loudness.lufs()
    }

    /// Levels one Opus packet into `out` (cleared first).
    pub fn process(&mut self, packet: &[u8], out: &mut Vec<u8>) -> Result<Outcome, LevelError> {
        // An empty input would be libopus's own call for concealment: it is one here too.
        let decoded = match packet {
            [] => Ok(0),
            p => self.decoder.decode_float(p, &mut self.pcm, false),
        };
        let (frames, outcome) = match decoded {
            Ok(n) if n > 0 => (n, Outcome::Levelled),
            _ => {
                // Concealment (an empty input) of the last packet's length.
                let want = self.last_frame * CHANNELS;
                let n = self
                    .decoder
                    .decode_float(&[], &mut self.pcm[..want], false)
                    .unwrap_or(0);
                if n == 0 {
                    self.pcm[..want].fill(0.0);
                }
                (self.last_frame, Outcome::Concealed)
            }
        };
        self.last_frame = frames;
        let channels = match (outcome, opus::packet::get_nb_channels(packet)) {
            (Outcome::Levelled, Ok(c)) => c,
            _ => self.encoder.as_ref().map_or(Channels::Stereo, |(c, _)| *c),
        };
        let pcm = &mut self.pcm[..frames * CHANNELS];
        self.meter.measure(pcm);
        self.gain
            .apply(pcm, CHANNELS, RATE, self.meter.loudness.lufs());
        self.limiter.apply(pcm, CHANNELS);
        out.clear();
        out.resize(MAX_PACKET, 0);
        let encoder = encoder_for(&mut self.encoder, channels)?;
        let n = if channels == Channels::Mono {
            // A mono packet decodes to two equal channels: encode one.
            self.mono.clear();
            self.mono.extend(pcm.chunks(CHANNELS).map(|f| f[0]));
            encoder.encode_float(&self.mono, out)
        } else {
            encoder.encode_float(pcm, out)
        };
        out.truncate(*n.as_ref().unwrap_or(&0));
        n?;
        Ok(outcome)
    }
}

/// The input's loudness: the BS.1770 meter and the estimate its readings feed.
struct Meter {
    meter: EbuR128,
    loudness: Loudness,
    samples: u64,
    next_read: u64,
}

impl Meter {
    /// Feeds the meter; every [`READ_EVERY`] samples its momentary reading goes into the
    /// estimate (the first once a whole 400 ms window was heard).
    fn measure(&mut self, pcm: &[f32]) {
        if self.meter.add_frames_f32(pcm).is_err() {
            return;
        }
        self.samples += (pcm.len() / CHANNELS) as u64;
        while self.samples >= self.next_read {
            if self.next_read >= 4 * READ_EVERY {
                if let Ok(m) = self.meter.loudness_momentary() {
                    self.loudness.push(m, READ_EVERY as f64 / f64::from(RATE));
                }
            }
            self.next_read += READ_EVERY;
        }
    }
}

/// The stream's encoder for `channels`: made (again) when the publisher's channel count
/// is new.
fn encoder_for(
    slot: &mut Option<(Channels, Encoder)>,
    channels: Channels,
) -> Result<&mut Encoder, LevelError> {
    if slot.as_ref().is_none_or(|(c, _)| *c != channels) {
        let mut e = Encoder::new(RATE, channels, Application::Audio)?;
        let bps = match channels {
            Channels::Mono => STEREO_BPS / 2,
            Channels::Stereo => STEREO_BPS,
        };
        e.set_bitrate(Bitrate::Bits(bps))?;
        // Browsers offer `useinbandfec=1`: keep what a lossy path needs.
        e.set_inband_fec(true)?;
        e.set_packet_loss_perc(10)?;
        *slot = Some((channels, e));
    }
    // Invariant: set just above when missing.
    Ok(&mut slot.as_mut().expect("an encoder").1)
}
