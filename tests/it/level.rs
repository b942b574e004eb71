//! Audio levelling (issue 15): on a node started with `--level-audio`, a publisher's quiet
//! Opus tone reaches a viewer at the target loudness, its numbering unbroken, and
//! packets that are not Opus stop nothing.

use std::time::{Duration, Instant};

use ebur128::{EbuR128, Mode};
use opus::{Application, Channels, Decoder, Encoder};
use str0m::format::Codec;
use str0m::media::MediaKind;
use str0m::rtp::RtpWrite;

use crate::peer::{connected_pair, pump, Received};
use crate::server::Server;

const RATE: u32 = 48_000;
const FRAME: usize = 960;

/// A stereo 997 Hz tone reading `lufs`, 20 ms at a time, Opus-encoded as a browser would.
struct Tone {
    enc: Encoder,
    amp: f32,
    n: usize,
}

impl Tone {
    fn new(lufs: f64) -> Tone {
        Tone {
            enc: Encoder::new(RATE, Channels::Stereo, Application::Audio).unwrap(),
            // Two equal channels of a sine of amplitude A read 20·log10(A) LUFS.
            amp: 10f64.powf(lufs / 20.0) as f32,
            n: 0,
        }
    }

    fn next(&mut self) -> Vec<u8> {
        let mut pcm = [0f32; FRAME * 2];
        for i in 0..FRAME {
            let t = (self.n * FRAME + i) as f32 / RATE as f32;
            let s = self.amp * (2.0 * std::f32::consts::PI * 997.0 * t).sin();
            pcm[2 * i] = s;
            pcm[2 * i + 1] = s;
        }
        self.n += 1;
        let mut buf = [0u8; 1500];
        let n = self.enc.encode_float(&pcm, &mut buf).unwrap();
        buf[..n].to_vec()
    }
}

/// The integrated loudness of the audio a viewer decoded, from its `from`th packet on.
fn loudness(audio: &[&Received], from: usize) -> f64 {
    let mut dec = Decoder::new(RATE, Channels::Stereo).unwrap();
    let mut meter = EbuR128::new(2, RATE, Mode::I).unwrap();
    let mut pcm = vec![0f32; 5760 * 2];
    for (i, r) in audio.iter().enumerate() {
        let n = dec
            .decode_float(&r.payload, &mut pcm, false)
            .expect("the viewer's audio decodes");
        if i >= from {
            meter.add_frames_f32(&pcm[..n * 2]).unwrap();
        }
    }
    meter.loudness_global().unwrap()
}

#[test]
fn a_quiet_publisher_reaches_viewers_at_the_target_loudness() {
    let server = Server::start(&["--level-audio=-16"]);
    let (mut publ, mut viewer) = connected_pair(&server, &["h"], "/whip/level", "/whep/level");
    let amid = publ.mid(MediaKind::Audio);
    let pt = publ.pt(Codec::Opus);
    let mut tone = Tone::new(-30.0);
    let (mut seq, mut ts) = (100u64, 5000u32);
    let start = Instant::now();
    let mut next = start;
    while start.elapsed() < Duration::from_secs(10) {
        if Instant::now() >= next {
            next += Duration::from_millis(20);
            let mut payload = tone.next();
            if seq % 50 == 7 {
                // Not Opus at all: a code-3 packet of no frames.
                payload = vec![0x03, 0x00];
            }
            publ.send(
                amid,
                None,
                RtpWrite::new(pt, seq.into(), ts, Instant::now(), payload),
            );
            seq += 1;
            ts = ts.wrapping_add(FRAME as u32);
        }
        publ.poll();
        viewer.poll();
        std::thread::sleep(Duration::from_millis(1));
    }
    pump(
        &mut [&mut publ, &mut viewer],
        Duration::from_millis(300),
        |_| false,
    );

    let audio: Vec<&Received> = viewer
        .received
        .iter()
        .filter(|r| r.kind == MediaKind::Audio)
        .collect();
    assert!(audio.len() >= 400, "audio flows: {} packets", audio.len());
    for w in audio.windows(2) {
        assert_eq!(w[1].seq, w[0].seq + 1, "sequence numbers continue");
        assert_eq!(
            w[1].ts.wrapping_sub(w[0].ts),
            FRAME as u32,
            "timestamps continue"
        );
    }
    // The last 4 s, after the gain settled.
    let from = audio.len() - 200;
    let got = loudness(&audio, from);
    assert!(
        (got + 16.0).abs() <= 1.0,
        "the viewer hears {got:.2} LUFS, the target is -16"
    );
    let metrics = server.metrics_text();
    assert!(
        metrics.contains("cascade_audio_level_packets_total{outcome=\"concealed\"}"),
        "the garbage was concealed"
    );
}
