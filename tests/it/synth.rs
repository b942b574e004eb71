//! A synthetic simulcast source: VP8-shaped packets whose bodies say which layer, frame
//! and packet they are, so a viewer can check every byte it decrypts.

use std::time::{Duration, Instant};

use str0m::format::Codec;
use str0m::media::MediaKind;
use str0m::rtp::RtpWrite;

use crate::peer::{Peer, Received};

pub const DESC_LEN: usize = 6;
pub const PKT_SIZE: usize = 900;

pub struct Layer {
    pub rid: &'static str,
    pub packets_per_frame: usize,
    seq: u64,
    ts: u32,
    pid: u16,
    tl0: u8,
    pub frame: u32,
    key_pending: bool,
}

pub struct Synth {
    src: u8,
    /// Whether a keyframe request makes a keyframe; without, only the one every 2 s.
    pub answers_requests: bool,
    pub layers: Vec<Layer>,
    audio_seq: u64,
    audio_ts: u32,
    next_video: Instant,
    next_audio: Instant,
}

/// The bytes after the VP8 descriptor for (layer, frame, idx).
pub fn body(src: u8, layer: u8, frame: u32, idx: u8, key: bool, first: bool) -> Vec<u8> {
    let mut b = Vec::with_capacity(PKT_SIZE - DESC_LEN);
    b.push(if first { u8::from(!key) } else { 0x55 });
    b.push(layer);
    b.extend_from_slice(&frame.to_be_bytes());
    b.push(idx);
    b.push(src);
    let fill = (u32::from(layer) * 31 + frame + u32::from(idx)) as u8;
    b.resize(PKT_SIZE - DESC_LEN, fill);
    b
}

impl Synth {
    /// Layers in the publisher's RID order, with packets per frame (bitrate) each.
    pub fn new(layers: &[(&'static str, usize)], seed: u32) -> Synth {
        Synth {
            src: seed as u8,
            answers_requests: true,
            layers: layers
                .iter()
                .enumerate()
                .map(|(i, (rid, ppf))| Layer {
                    rid,
                    packets_per_frame: *ppf,
                    seq: u64::from(seed.wrapping_mul(7919) as u16 / 2) + i as u64 * 1000,
                    ts: seed.wrapping_mul(104_729).wrapping_add(i as u32 * 77_777),
                    pid: (seed as u16).wrapping_mul(13).wrapping_add(i as u16 * 5000) & 0x7fff,
                    tl0: (seed as u8).wrapping_add(i as u8 * 50),
                    frame: 0,
                    key_pending: true,
                })
                .collect(),
            audio_seq: u64::from(seed as u16 / 4),
            audio_ts: seed,
            next_video: Instant::now(),
            next_audio: Instant::now(),
        }
    }

    /// Sends what is due: a frame per layer every 33 ms, audio every 20 ms. Keyframes on
    /// the publisher's keyframe requests and every 2 s.
    pub fn tick(&mut self, publ: &mut Peer) {
        let now = Instant::now();
        for rid in publ.keyframe_requests.drain(..) {
            if !self.answers_requests {
                continue;
            }
            for l in &mut self.layers {
                if rid.as_deref().is_none_or(|r| r == l.rid) {
                    l.key_pending = true;
                }
            }
        }
        if now >= self.next_video {
            self.next_video += Duration::from_millis(33);
            let vmid = publ.mid(MediaKind::Video);
            let pt = publ.pt(Codec::Vp8);
            let src = self.src;
            for (li, l) in self.layers.iter_mut().enumerate() {
                let key = l.key_pending || l.frame % 60 == 0;
                l.key_pending = false;
                for idx in 0..l.packets_per_frame {
                    let first = idx == 0;
                    let mut p = loadtest::stamp::vp8_descriptor(first, l.pid, l.tl0);
                    p.extend(body(src, li as u8, l.frame, idx as u8, key, first));
                    let marker = idx + 1 == l.packets_per_frame;
                    let w = RtpWrite::new(pt, l.seq.into(), l.ts, Instant::now(), p)
                        .marker(marker)
                        .nackable(true);
                    publ.send(vmid, Some(l.rid), w);
                    l.seq += 1;
                }
                l.frame += 1;
                l.pid = (l.pid + 1) & 0x7fff;
                l.tl0 = l.tl0.wrapping_add(1);
                l.ts = l.ts.wrapping_add(3000);
            }
        }
        if now >= self.next_audio {
            self.next_audio += Duration::from_millis(20);
            let amid = publ.mid(MediaKind::Audio);
            let pt = publ.pt(Codec::Opus);
            let mut p = vec![0xaa; 80];
            p[1..9].copy_from_slice(&self.audio_seq.to_be_bytes());
            let w = RtpWrite::new(pt, self.audio_seq.into(), self.audio_ts, Instant::now(), p);
            publ.send(amid, None, w);
            self.audio_seq += 1;
            self.audio_ts = self.audio_ts.wrapping_add(960);
        }
    }
}

/// Runs the publisher and polls everyone until `until` holds or `max` passes; returns
/// whether it held.
pub fn run(
    synth: &mut Synth,
    publ: &mut Peer,
    viewers: &mut [&mut Peer],
    mut until: impl FnMut(&[&mut Peer]) -> bool,
    max: Duration,
) -> bool {
    let end = Instant::now() + max;
    while Instant::now() < end {
        synth.tick(publ);
        publ.poll();
        for v in viewers.iter_mut() {
            v.poll();
        }
        if until(viewers) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

/// One decoded video packet as the viewer saw it.
#[derive(Debug, Clone)]
pub struct VideoPkt {
    pub seq: u64,
    pub ts: u32,
    pub src: u8,
    pub layer: u8,
    pub frame: u32,
    pub starts_frame: bool,
    pub key: bool,
    pub pid: u16,
}

/// Checks every byte after the descriptor and parses the packet.
pub fn parse_video(r: &Received) -> VideoPkt {
    let p = &r.payload;
    assert_eq!(p.len(), PKT_SIZE, "payload length");
    let first = p[0] & 0x10 != 0;
    let layer = p[DESC_LEN + 1];
    let frame = u32::from_be_bytes(p[DESC_LEN + 2..DESC_LEN + 6].try_into().unwrap());
    let idx = p[DESC_LEN + 6];
    let src = p[DESC_LEN + 7];
    let key = first && p[DESC_LEN] & 1 == 0;
    assert_eq!(
        &p[DESC_LEN..],
        &body(src, layer, frame, idx, key, first)[..],
        "payload bytes"
    );
    VideoPkt {
        seq: r.seq,
        ts: r.ts,
        src,
        layer,
        frame,
        starts_frame: first,
        key,
        pid: (u16::from(p[2] & 0x7f) << 8) | u16::from(p[3]),
    }
}

/// Asserts what a decoder needs: a keyframe first and at every change of layer or
/// publisher, consecutive sequence numbers, consecutive picture ids per frame, and
/// timestamps that never go back. Returns the video packets.
pub fn assert_continuous(v: &Peer) -> Vec<VideoPkt> {
    let video: Vec<VideoPkt> = v
        .received
        .iter()
        .filter(|r| r.kind == MediaKind::Video)
        .map(parse_video)
        .collect();
    assert!(!video.is_empty(), "viewer received video");
    assert!(video[0].key, "first packet starts a keyframe");
    for w in video.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        assert_eq!(
            b.seq,
            a.seq + 1,
            "sequence numbers are consecutive: {a:?} -> {b:?}"
        );
        let dt = b.ts.wrapping_sub(a.ts);
        assert!(
            dt < 90_000 * 5,
            "timestamp went back or jumped: {a:?} -> {b:?}"
        );
        if b.starts_frame {
            assert_eq!(
                b.pid,
                (a.pid + 1) & 0x7fff,
                "picture ids consecutive: {a:?} -> {b:?}"
            );
        } else {
            assert_eq!(b.pid, a.pid, "packets of one frame share a picture id");
        }
        if (b.src, b.layer) == (a.src, a.layer) {
            assert!(
                b.frame >= a.frame,
                "frames of one source in order: {a:?} -> {b:?}"
            );
        } else {
            assert!(
                b.key,
                "a change of source starts on a keyframe: {a:?} -> {b:?}"
            );
        }
    }
    let audio: Vec<&Received> = v
        .received
        .iter()
        .filter(|r| r.kind == MediaKind::Audio)
        .collect();
    for w in audio.windows(2) {
        assert_eq!(
            w[1].seq,
            w[0].seq + 1,
            "audio sequence numbers are consecutive"
        );
    }
    video
}
