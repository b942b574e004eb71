//! The levelling core through real Opus: a synthetic tone encoded as a publisher would,
//! levelled, decoded as a viewer would, and measured with BS.1770.

use ebur128::{EbuR128, Mode};
use opus::{Application, Channels, Decoder, Encoder};

use super::core::{LevelCore, Outcome, RATE};

const FRAME: usize = 960;

/// A 997 Hz tone in both channels at `lufs` (two equal channels of a sine of amplitude A
/// read 20·log10(A) LUFS), as 20 ms Opus packets from a publisher's encoder.
fn tone(lufs: f64, seconds: usize) -> Vec<Vec<u8>> {
    let amp = 10f64.powf(lufs / 20.0) as f32;
    let mut enc = Encoder::new(RATE, Channels::Stereo, Application::Audio).unwrap();
    let mut pcm = vec![0f32; FRAME * 2];
    let mut packets = Vec::new();
    let mut buf = [0u8; 1500];
    for p in 0..seconds * 50 {
        for i in 0..FRAME {
            let t = (p * FRAME + i) as f32 / RATE as f32;
            let s = amp * (2.0 * std::f32::consts::PI * 997.0 * t).sin();
            pcm[2 * i] = s;
            pcm[2 * i + 1] = s;
        }
        let n = enc.encode_float(&pcm, &mut buf).unwrap();
        packets.push(buf[..n].to_vec());
    }
    packets
}

/// Decodes packets as a viewer does and measures the integrated loudness of those from
/// `from` on; also the highest sample.
fn measure(packets: &[Vec<u8>], from: usize) -> (f64, f32) {
    let mut dec = Decoder::new(RATE, Channels::Stereo).unwrap();
    let mut meter = EbuR128::new(2, RATE, Mode::I).unwrap();
    let mut pcm = vec![0f32; 5760 * 2];
    let mut peak = 0f32;
    for (i, p) in packets.iter().enumerate() {
        let n = dec
            .decode_float(p, &mut pcm, false)
            .expect("output decodes");
        if i >= from {
            meter.add_frames_f32(&pcm[..n * 2]).unwrap();
            peak = pcm[..n * 2].iter().fold(peak, |m, s| m.max(s.abs()));
        }
    }
    (meter.loudness_global().unwrap(), peak)
}

fn level(core: &mut LevelCore, packets: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    packets
        .iter()
        .map(|p| {
            core.process(p, &mut out).unwrap();
            out.clone()
        })
        .collect()
}

#[test]
fn a_quiet_tone_is_brought_to_the_target() {
    let input = tone(-30.0, 12);
    let (before, _) = measure(&input, 0);
    assert!(
        (before + 30.0).abs() < 0.5,
        "the input reads {before:.2} LUFS"
    );
    let mut core = LevelCore::new(-16.0).unwrap();
    let output = level(&mut core, &input);
    assert_eq!(output.len(), input.len(), "a packet out for each in");
    // After 5 s of settling (14 dB at 6 dB/s, and the estimate's first second).
    let (after, _) = measure(&output, 250);
    assert!(
        (after + 16.0).abs() <= 1.0,
        "the output reads {after:.2} LUFS"
    );
    assert!(
        (core.gain_db() - 14.0).abs() < 1.5,
        "gain {}",
        core.gain_db()
    );
    for (i, o) in input.iter().zip(&output) {
        assert_eq!(
            opus::packet::get_nb_samples(i, RATE).unwrap(),
            opus::packet::get_nb_samples(o, RATE).unwrap(),
            "same duration: the timestamps stay"
        );
    }
}

#[test]
fn a_loud_tone_is_brought_down_without_clipping() {
    let input = tone(-4.0, 10);
    let mut core = LevelCore::new(-16.0).unwrap();
    let output = level(&mut core, &input);
    let (after, _) = measure(&output, 250);
    assert!(
        (after + 16.0).abs() <= 1.0,
        "the output reads {after:.2} LUFS"
    );
    // From the first packet on, the limiter holds the peaks below full scale.
    let (_, peak) = measure(&output, 0);
    assert!(peak < 1.0, "peak {peak}");
}

#[test]
fn garbage_is_concealed_and_the_stream_goes_on() {
    let input = tone(-30.0, 8);
    let mut core = LevelCore::new(-16.0).unwrap();
    let mut out = Vec::new();
    let mut output = Vec::new();
    for (i, p) in input.iter().enumerate() {
        if i % 10 == 3 {
            // A code-3 packet that says it holds no frame: never valid.
            assert_eq!(
                core.process(&[0x03, 0x00], &mut out).unwrap(),
                Outcome::Concealed
            );
            assert_eq!(opus::packet::get_nb_samples(&out, RATE).unwrap(), FRAME);
            output.push(out.clone());
            assert_eq!(core.process(&[], &mut out).unwrap(), Outcome::Concealed);
            output.push(out.clone());
        }
        assert_eq!(core.process(p, &mut out).unwrap(), Outcome::Levelled);
        output.push(out.clone());
    }
    let (after, _) = measure(&output, 300);
    assert!(
        (after + 16.0).abs() <= 1.0,
        "still levelled: {after:.2} LUFS"
    );
    // Random bytes: whatever they decode to, a valid packet comes out.
    let mut dec = Decoder::new(RATE, Channels::Stereo).unwrap();
    let mut pcm = vec![0f32; 5760 * 2];
    let mut s = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..2000 {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let junk: Vec<u8> = (0..(s % 300) as usize)
            .map(|k| (s >> (k % 8 * 8)) as u8 ^ k as u8)
            .collect();
        core.process(&junk, &mut out).unwrap();
        dec.decode_float(&out, &mut pcm, false)
            .expect("a valid packet");
    }
}
