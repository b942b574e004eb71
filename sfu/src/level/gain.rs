//! The levelling decision, on plain numbers: a loudness estimate from the measurer's
//! momentary readings ([`Loudness`]), the gain that brings it to the target, moved there
//! slowly and within bounds ([`GainControl`]), and a peak limiter after it ([`Limiter`]).
//! No codec, no clock: time is the audio's own, in samples.

/// Most the gain raises a quiet stream (a whisper stays a quiet whisper, noise stays low).
pub const MAX_BOOST_DB: f32 = 20.0;
/// Most the gain lowers a loud one.
pub const MAX_CUT_DB: f32 = 20.0;
/// How fast the gain moves, at most (dB per second of audio): slow enough to be heard as
/// a level, not as pumping.
pub const SLEW_DB_PER_S: f32 = 6.0;
/// Momentary readings below this are silence or room noise: the gain holds.
pub const GATE_LUFS: f64 = -50.0;
/// The loudness estimate averages power over about this long (EBU R128's short-term).
pub const WINDOW_S: f64 = 3.0;
/// The limiter's ceiling: -1 dBFS, room for the codec's own overshoot.
pub const CEILING: f32 = 0.891;
/// The limiter's release time constant, seconds.
pub const RELEASE_S: f32 = 0.05;

/// A short-term loudness estimate from momentary (400 ms, K-weighted) readings: their
/// power averaged over [`WINDOW_S`] (every reading counted equally until that much was
/// seen, so the first second already reads right), gated at [`GATE_LUFS`].
#[derive(Debug, Clone, Default)]
pub struct Loudness {
    power: f64,
    seen_s: f64,
}

impl Loudness {
    /// Adds a momentary reading that covers `dt_s` seconds of new audio.
    pub fn push(&mut self, momentary_lufs: f64, dt_s: f64) {
        if !momentary_lufs.is_finite() || momentary_lufs < GATE_LUFS || dt_s <= 0.0 {
            return;
        }
        let p = 10f64.powf((momentary_lufs + 0.691) / 10.0);
        self.seen_s += dt_s;
        let a = (dt_s / self.seen_s.min(WINDOW_S)).min(1.0);
        self.power += (p - self.power) * a;
    }

    /// The estimate in LUFS, once anything above the gate was heard.
    pub fn lufs(&self) -> Option<f64> {
        (self.seen_s > 0.0 && self.power > 0.0).then(|| -0.691 + 10.0 * self.power.log10())
    }
}

/// The gain towards a target loudness: bounded to [`MAX_CUT_DB`]..[`MAX_BOOST_DB`], moving
/// at most [`SLEW_DB_PER_S`], applied as a ramp across each frame (no steps, no zipper).
#[derive(Debug, Clone)]
pub struct GainControl {
    target_lufs: f64,
    gain_db: f32,
}

impl GainControl {
    /// Unity gain, aiming at `target_lufs`.
    pub fn new(target_lufs: f64) -> Self {
        GainControl {
            target_lufs,
            gain_db: 0.0,
        }
    }

    /// The gain now, dB.
    pub fn gain_db(&self) -> f32 {
        self.gain_db
    }

    /// Applies the gain to `pcm` (interleaved, `channels`), moving it towards what
    /// `estimate` asks for over the frame.
    pub fn apply(&mut self, pcm: &mut [f32], channels: usize, rate: u32, estimate: Option<f64>) {
        let frames = pcm.len() / channels.max(1);
        if frames == 0 {
            return;
        }
        let from = self.gain_db;
        if let Some(l) = estimate {
            let want = ((self.target_lufs - l) as f32).clamp(-MAX_CUT_DB, MAX_BOOST_DB);
            let step = SLEW_DB_PER_S * frames as f32 / rate as f32;
            self.gain_db = from + (want - from).clamp(-step, step);
        }
        let (g0, g1) = (db_to_linear(from), db_to_linear(self.gain_db));
        let inc = (g1 - g0) / frames as f32;
        for (i, frame) in pcm.chunks_mut(channels).enumerate() {
            let g = g0 + inc * (i + 1) as f32;
            for s in frame {
                *s *= g;
            }
        }
    }
}

/// A peak limiter: no sample leaves above [`CEILING`]. Attack is instant (the gain drops
/// to what the sample needs), release exponential over [`RELEASE_S`]: without lookahead,
/// a transient's first sample is held down at once rather than let through.
#[derive(Debug, Clone)]
pub struct Limiter {
    gain: f32,
    release: f32,
}

impl Limiter {
    /// A limiter for audio at `rate`.
    pub fn new(rate: u32) -> Self {
        Limiter {
            gain: 1.0,
            release: 1.0 - (-1.0 / (RELEASE_S * rate as f32)).exp(),
        }
    }

    /// Limits `pcm` (interleaved, `channels`) in place.
    pub fn apply(&mut self, pcm: &mut [f32], channels: usize) {
        for frame in pcm.chunks_mut(channels.max(1)) {
            self.gain += (1.0 - self.gain) * self.release;
            let peak = frame.iter().fold(0f32, |m, s| m.max(s.abs()));
            if peak * self.gain > CEILING {
                self.gain = CEILING / peak;
            }
            for s in frame {
                // Non-finite input (never from a decoder, but cheap to hold) becomes silence.
                *s = if s.is_finite() {
                    (*s * self.gain).clamp(-CEILING, CEILING)
                } else {
                    0.0
                };
            }
        }
    }
}

fn db_to_linear(db: f32) -> f32 {
    10f32.powf(db / 20.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_averages_power_and_ignores_silence() {
        let mut l = Loudness::default();
        assert_eq!(l.lufs(), None);
        l.push(-70.0, 0.1);
        assert_eq!(l.lufs(), None, "silence is gated");
        l.push(-30.0, 0.1);
        assert!(
            (l.lufs().unwrap() + 30.0).abs() < 1e-6,
            "one reading is itself"
        );
        for _ in 0..100 {
            l.push(-20.0, 0.1);
            l.push(-80.0, 0.1);
        }
        let got = l.lufs().unwrap();
        assert!(
            (got + 20.0).abs() < 0.05,
            "pauses do not pull it down: {got}"
        );
    }

    #[test]
    fn the_gain_is_bounded_and_slewed() {
        let mut g = GainControl::new(-16.0);
        let mut pcm = vec![0.1f32; 960 * 2];
        g.apply(&mut pcm, 2, 48_000, Some(-70.0));
        assert!((g.gain_db() - 0.12).abs() < 1e-4, "20 ms at 6 dB/s");
        for _ in 0..1000 {
            g.apply(&mut pcm[..], 2, 48_000, Some(-70.0));
            pcm.fill(0.1);
        }
        assert_eq!(g.gain_db(), MAX_BOOST_DB, "bounded");
        g.apply(&mut pcm, 2, 48_000, None);
        assert_eq!(g.gain_db(), MAX_BOOST_DB, "no estimate: the gain holds");
        assert!((pcm[1918] - 1.0).abs() < 1e-3, "+20 dB is ten times");
    }

    #[test]
    fn the_limiter_holds_every_sample_under_the_ceiling() {
        let mut lim = Limiter::new(48_000);
        let mut pcm: Vec<f32> = (0..48_000).map(|i| 4.0 * (i as f32 * 0.05).sin()).collect();
        pcm[100] = f32::NAN;
        lim.apply(&mut pcm, 1);
        assert!(pcm.iter().all(|s| s.abs() <= CEILING), "no clipping");
        assert_eq!(pcm[100], 0.0);
        // Quiet audio goes through untouched once the gain released.
        let mut quiet = vec![0.2f32; 48_000];
        lim.apply(&mut quiet, 1);
        assert!((quiet[47_999] - 0.2).abs() < 1e-4);
    }
}
