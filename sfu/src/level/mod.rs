//! Audio loudness levelling (`cascade serve --level-audio[=-16]`, off by default): a
//! publisher's Opus audio is decoded, its loudness measured (EBU R128 / ITU BS.1770,
//! K-weighted momentary readings averaged over about 3 s), brought towards the target by a
//! slow, bounded gain with a peak limiter after it, and encoded again; the levelled packet
//! replaces the publisher's for every sink (viewers, relay links, recordings).
//!
//! Where it runs: not on a media worker. The worker offers each publisher audio packet to
//! the leveller's bounded queue ([`thread`]) and routes it when it comes back; when the
//! queue is full (or the thread gone) the packet goes on as it came, unlevelled, and is
//! counted (`cascade_audio_level_packets_total{outcome="queue_full"}`, `"thread_gone"`). Each packet out lasts as long as the one in and keeps its sequence
//! number and timestamp, so what viewers receive stays continuous. Only a local
//! publisher's audio is levelled: a relay link brings audio its origin already levelled.
//!
//! - [`gain`]: the loudness estimate, the gain and the limiter, on plain samples.
//! - [`core`]: one stream's decode, measure, gain, limit, encode (sans-I/O).
//! - [`thread`]: the driver.
//!
//! The encoder adds its look-ahead (6.5 ms) to the audio against the video; the cost per
//! stream is in `docs/PERFORMANCE.md`.

pub mod core;
pub mod gain;
pub(crate) mod thread;

#[cfg(test)]
mod tests;

pub use self::core::{LevelCore, LevelError, Outcome};

/// The default target: -16 LUFS, what streaming platforms level speech and music to.
pub const DEFAULT_TARGET_LUFS: f64 = -16.0;

/// How a node levels its publishers' audio.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LevelConfig {
    /// The loudness aimed at, LUFS.
    pub target_lufs: f64,
}

impl Default for LevelConfig {
    fn default() -> Self {
        LevelConfig {
            target_lufs: DEFAULT_TARGET_LUFS,
        }
    }
}
