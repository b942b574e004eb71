//! The transcoded ladder (`--ladder`, docs/PROCESSING.md) through a real node: a publisher
//! sending one VP8 layer (real VP8, made here with libvpx) and a viewer asking for the low
//! layer, which gets 320-wide frames transcoded on the node; a corrupt frame and a change
//! of the picture size on the way do not stop it. A channel whose owner turned the ladder
//! off is never laddered, whatever its viewers want. GStreamer's `webrtcbin` publishing
//! one 720p layer, VP8 or H.264 (as OBS sends), is laddered too, in its own codec, and the
//! ladder stops when its last viewer leaves. A
//! viewer on an edge node, a relay link away from the origin the publisher is on, gets the
//! origin's rungs.

use std::time::{Duration, Instant};

use sfu::codec::Codec as SfuCodec;
use sfu::process::coding::SourceDecoder;
use sfu::process::vpx::{Encoder, EncoderConfig};
use sfu::process::{Vp8Payloader, I420};
use sfu::record::assemble::{Assembler, Frame, RecPacket};
use str0m::format::Codec;
use str0m::media::MediaKind;
use str0m::rtp::RtpWrite;

use serde_json::json;

use crate::accounts::{account, api, channel_with_key};
use crate::cluster::{certificates, node_with};
use crate::gstreamer::Script;
use crate::peer::{connect_across, connected_pair, pump, Peer};
use crate::server::{temp_dir, Server};

/// A single-layer VP8 camera: a panning picture, keyframes on request and every 2 s.
struct Camera {
    enc: Encoder,
    pay: Vp8Payloader,
    pictures: Vec<I420>,
    frame: u32,
    next: Instant,
}

impl Camera {
    fn new(w: usize, h: usize) -> Camera {
        let pictures = (0..15)
            .map(|t| {
                let mut p = I420::filled(w, h, 0, 100, 150);
                for (i, y) in p.y.iter_mut().enumerate() {
                    let (x, row) = (i % w, i / w);
                    *y = ((x / 8 + row / 8 + 3 * t) % 2 * 160 + (x + 4 * t) % 64) as u8;
                }
                p
            })
            .collect();
        Camera {
            enc: Encoder::new(EncoderConfig::realtime(w, h)).unwrap(),
            pay: Vp8Payloader::new(4000, 10),
            pictures,
            frame: 0,
            next: Instant::now(),
        }
    }

    fn send(&mut self, publ: &mut Peer, data: &[u8], key: bool) {
        let (vmid, pt) = (publ.mid(MediaKind::Video), publ.pt(Codec::Vp8));
        let mut pkts = Vec::new();
        self.pay
            .packetize(data, self.frame.wrapping_mul(3000), key, &mut pkts);
        for p in pkts {
            let w = RtpWrite::new(pt, u64::from(p.seq).into(), p.ts, Instant::now(), p.payload)
                .marker(p.marker)
                .nackable(true);
            publ.send(vmid, None, w);
        }
        self.frame += 1;
    }

    /// Sends a frame when one is due (30 a second).
    fn tick(&mut self, publ: &mut Peer) {
        if Instant::now() < self.next {
            return;
        }
        self.next += Duration::from_millis(33);
        let asked = !publ.keyframe_requests.is_empty();
        publ.keyframe_requests.clear();
        let key = asked || self.frame.is_multiple_of(60);
        let pic = &self.pictures[self.frame as usize % self.pictures.len()];
        let frames = self
            .enc
            .encode(pic, i64::from(self.frame) * 3000, key)
            .unwrap();
        for f in frames {
            self.send(publ, &f.data, f.keyframe);
        }
    }

    /// A frame whose VP8 data is garbage.
    fn corrupt(&mut self, publ: &mut Peer) {
        let junk: Vec<u8> = (0..2000u32).map(|i| (i * 37 + 11) as u8 | 1).collect();
        self.send(publ, &junk, false);
    }

    fn resize(&mut self, w: usize, h: usize) {
        let frame = self.frame;
        let pay = self.pay.clone();
        *self = Camera::new(w, h);
        (self.frame, self.pay) = (frame, pay);
    }
}

/// What the viewer decoded: each frame's width, and decode errors; VP8 or H.264, as the
/// packets' payload type names it.
#[derive(Default)]
struct Screen {
    codec: Option<SfuCodec>,
    asm: Option<Assembler>,
    dec: Option<SourceDecoder>,
    taken: usize,
    widths: Vec<usize>,
    errors: usize,
}

impl Screen {
    fn take(&mut self, v: &Peer) {
        let mut frames = Vec::new();
        for r in &v.received[self.taken..] {
            if r.kind != MediaKind::Video {
                continue;
            }
            let Some(codec) = v.codec_of(r.pt).and_then(SfuCodec::from_str0m) else {
                continue;
            };
            if self.codec != Some(codec) {
                self.decode(&mut frames);
                self.codec = Some(codec);
                self.asm = Some(Assembler::new(codec));
                self.dec = Some(SourceDecoder::new(codec, 1920 * 1088).unwrap());
            }
            let pkt = RecPacket {
                codec,
                generation: 0,
                encoding: 0,
                seq: r.seq as u16,
                ts: r.ts,
                marker: r.marker,
                keyframe: codec.starts_keyframe(&r.payload),
                payload: r.payload.clone().into(),
            };
            if let Some(asm) = self.asm.as_mut() {
                asm.push(&pkt, r.at, &mut frames);
            }
        }
        self.taken = v.received.len();
        self.decode(&mut frames);
    }

    fn decode(&mut self, frames: &mut Vec<Frame>) {
        let Some(dec) = self.dec.as_mut() else {
            return;
        };
        for f in frames.drain(..) {
            match dec.decode(&f.data) {
                Ok(Some(p)) => self.widths.push(p.width),
                Ok(None) => {}
                Err(_) => self.errors += 1,
            }
        }
    }

    /// Frames `width` wide decoded so far.
    fn frames_of(&self, width: usize) -> usize {
        self.widths.iter().filter(|w| **w == width).count()
    }
}

/// The publisher, its camera, the viewer and what it decoded.
struct Rig {
    cam: Camera,
    publ: Peer,
    viewer: Peer,
    screen: Screen,
}

impl Rig {
    /// Sends and pumps for `dur`, the camera at 30 frames a second.
    fn run(&mut self, dur: Duration) {
        let end = Instant::now() + dur;
        while Instant::now() < end {
            self.cam.tick(&mut self.publ);
            pump(
                &mut [&mut self.publ, &mut self.viewer],
                Duration::from_millis(5),
                |_| false,
            );
            self.screen.take(&self.viewer);
        }
    }

    /// Frames `width` wide decoded so far.
    fn frames_of(&self, width: usize) -> usize {
        self.screen.frames_of(width)
    }

    /// Runs until `n` frames `width` wide were decoded, or `within`; how many were.
    fn run_until(&mut self, width: usize, n: usize, within: Duration) -> usize {
        let until = Instant::now() + within;
        while Instant::now() < until && self.frames_of(width) < n {
            self.run(Duration::from_millis(200));
        }
        self.frames_of(width)
    }
}

#[test]
fn a_single_layer_publish_gets_a_low_layer_made_on_the_node() {
    let mut server = Server::start(&["--ladder"]);
    let (publ, viewer) = connected_pair(&server, &[], "/whip/live", "/whep/live?layer=low");
    let mut rig = Rig {
        cam: Camera::new(1280, 720),
        publ,
        viewer,
        screen: Screen::default(),
    };

    // The viewer starts on the one layer there is, until the ladder's low rung comes.
    let low = rig.run_until(320, 30, Duration::from_secs(20));
    let widths = dedup(&rig.screen.widths);
    assert!(
        low >= 30,
        "320-wide frames decoded: {low}; widths seen {widths:?}"
    );
    assert_eq!(rig.screen.errors, 0);
    let first_low = rig.screen.widths.iter().position(|w| *w == 320).unwrap();
    assert!(
        rig.screen.widths[first_low..].iter().all(|w| *w == 320),
        "it stays on the low rung: {widths:?}"
    );
    assert!(server.metric("cascade_layer_switches_total") >= 1.0);

    // A corrupt frame: the ladder drops it, asks the publisher for a keyframe and goes on;
    // the viewer's rung never carries it.
    // (Within 10 s, not 3: on a busy machine the ladder may also drop packets that came
    // too late and wait for a keyframe, `thread::MAX_LAG`.)
    let before = rig.frames_of(320);
    rig.cam.corrupt(&mut rig.publ);
    let after = rig.run_until(320, before + 20, Duration::from_secs(10)) - before;
    assert_eq!(rig.screen.errors, 0, "the low rung decodes throughout");
    assert!(after >= 20, "frames after the corrupt one: {after}");

    // The publisher changes its picture size: the rungs follow at the new halves.
    rig.cam.resize(960, 540);
    let n = rig.run_until(240, 20, Duration::from_secs(10));
    assert!(
        n >= 20,
        "the low rung of a 960-wide source is 240 wide: {:?}",
        dedup(&rig.screen.widths)
    );
    assert_eq!(rig.screen.errors, 0);
    assert!(server.alive(), "the node is up");
}

#[test]
fn an_edge_viewer_of_a_single_layer_publish_gets_the_origins_ladder() {
    let dir = temp_dir("ladder-tree");
    certificates(&dir, &["origin", "edge"]);
    let (origin, o) = node_with(&dir, "origin", &[], &["--ladder"]);
    let (edge, _) = node_with(&dir, "edge", &[format!("origin@{o}")], &[]);
    let (publ, viewer) = connect_across(
        &origin,
        &edge,
        Peer::publisher(&[]),
        Peer::viewer(),
        "/whip/live",
        "/whep/live?layer=low",
    );
    let mut rig = Rig {
        cam: Camera::new(1280, 720),
        publ,
        viewer,
        screen: Screen::default(),
    };
    // The edge asks the origin for a rung; the origin ladders; the rungs come down the
    // link as layers, and the viewer's low one is the small rung.
    let low = rig.run_until(320, 30, Duration::from_secs(25));
    assert!(
        low >= 30,
        "320-wide frames decoded on the edge: {low}; widths seen {:?}",
        dedup(&rig.screen.widths)
    );
    assert_eq!(rig.screen.errors, 0);
}

#[test]
fn a_channel_with_the_ladder_off_is_never_laddered() {
    let mut server = Server::start(&["--auth", "accounts", "--ladder"]);
    account(&server, "admin");
    let amy = account(&server, "amy");
    let (flat_key, _) = channel_with_key(&server, &amy, "flat", "public");
    let (steps_key, _) = channel_with_key(&server, &amy, "steps", "public");
    let (s, r) = api(
        &server,
        "PUT",
        "/channels/flat/ladder",
        Some(&amy),
        Some(json!({"enabled": false})),
    );
    assert_eq!((s, &r), (200, &json!({"enabled": false})), "{r}");
    let rig = |slug: &str, key: &str| {
        let whip = format!("/whip/{slug}?token={key}");
        let (publ, viewer) =
            connected_pair(&server, &[], &whip, &format!("/whep/{slug}?layer=low"));
        Rig {
            // 640x360: its low rung is 160 wide.
            cam: Camera::new(640, 360),
            publ,
            viewer,
            screen: Screen::default(),
        }
    };

    // Off: the viewer that asks for the low layer gets the one layer there is, and no
    // ladder runs for it.
    let mut flat = rig("flat", &flat_key);
    let source = flat.run_until(640, 60, Duration::from_secs(15));
    flat.run(Duration::from_secs(3));
    assert!(source >= 60, "{:?}", dedup(&flat.screen.widths));
    assert_eq!(
        dedup(&flat.screen.widths).len(),
        1,
        "only the source's width: {:?}",
        dedup(&flat.screen.widths)
    );
    assert_eq!(server.metric("cascade_ladders_running"), 0.0);
    drop(flat);

    // On (the default) on the same node: the same viewer's wish gets a transcoded rung.
    let mut steps = rig("steps", &steps_key);
    let low = steps.run_until(160, 20, Duration::from_secs(20));
    assert!(low >= 20, "{:?}", dedup(&steps.screen.widths));
    assert_eq!(server.metric("cascade_ladders_running"), 1.0);
    assert!(server.alive());
}

/// A viewer of a publisher outside the test (GStreamer), and what it decoded.
struct Watcher {
    peer: Peer,
    screen: Screen,
}

impl Watcher {
    /// A viewer of `/whep/{slug}?layer={layer}`, its offer answered.
    fn join(server: &Server, slug: &str, layer: &str) -> Watcher {
        let (mut peer, offer, pending) = Peer::viewer();
        let url = server.url(&format!("/whep/{slug}?layer={layer}"));
        peer.connect(&server.http(), &url, offer, pending);
        Watcher {
            peer,
            screen: Screen::default(),
        }
    }
}

/// Pumps the watchers and decodes what they got until `done` or `within`; whether
/// `done` held.
fn watch(
    watchers: &mut [&mut Watcher],
    within: Duration,
    done: impl Fn(&[&mut Watcher]) -> bool,
) -> bool {
    let until = Instant::now() + within;
    while Instant::now() < until {
        let mut peers: Vec<&mut Peer> = watchers.iter_mut().map(|w| &mut w.peer).collect();
        pump(&mut peers, Duration::from_millis(100), |_| false);
        for w in watchers.iter_mut() {
            w.screen.take(&w.peer);
        }
        if done(watchers) {
            return true;
        }
    }
    false
}

/// The GStreamer case: `webrtcbin` and `vp8enc` publish one 1280x720 VP8 layer (no
/// simulcast, an RSA certificate, GStreamer's own SDP) over WHIP with a channel's key. A
/// viewer asking for the low layer decodes 320-wide frames made on the node while one on
/// the top layer keeps the publisher's own 1280-wide picture; when the low-layer viewer
/// leaves (WHEP DELETE), the ladder stops though the top-layer viewer stays.
#[test]
fn a_gstreamer_720p_publish_is_laddered_for_a_low_layer_viewer() {
    gstreamer_720p_publish_is_laddered(SfuCodec::Vp8);
}

/// OBS's case: one 1280x720 H.264 layer (GStreamer's `openh264enc`, constrained baseline,
/// SPS and PPS before each IDR picture, as OBS sends over WHIP). The rungs are H.264 too,
/// on the payload type the viewer negotiated for the source.
#[test]
fn a_gstreamer_720p_h264_publish_gets_h264_rungs_for_a_low_layer_viewer() {
    gstreamer_720p_publish_is_laddered(SfuCodec::H264);
}

/// A 720p publish of `codec` from GStreamer, a top-layer and a low-layer viewer of it
/// decoding `codec`, and the ladder's stop once the low-layer viewer leaves.
fn gstreamer_720p_publish_is_laddered(codec: SfuCodec) {
    let mut server = Server::start(&["--auth", "accounts", "--ladder"]);
    account(&server, "admin");
    let amy = account(&server, "amy");
    let (key, _) = channel_with_key(&server, &amy, "gst", "public");
    let url = server.url("/whip/gst");
    let mut args = vec![
        url.as_str(),
        "--token",
        &key,
        "--width",
        "1280",
        "--height",
        "720",
        "--bitrate",
        "1500000",
        "--seconds",
        "90",
    ];
    if codec == SfuCodec::H264 {
        args.push("--h264");
    }
    let publisher = Script::start("gst_whip_publish.py", &args);
    publisher.wait_for("posted 201", Duration::from_secs(20));
    publisher.wait_for("connected", Duration::from_secs(15));

    // A viewer on the top layer first, past its join's warm-up (2 s), on the one layer
    // there is.
    let mut top = Watcher::join(&server, "gst", "high");
    let got = watch(&mut [&mut top], Duration::from_secs(15), |w| {
        w[0].screen.frames_of(1280) >= 90
    });
    assert!(
        got,
        "top-layer viewer decoded {:?}",
        dedup(&top.screen.widths)
    );
    let before = top.screen.frames_of(1280);

    let mut low = Watcher::join(&server, "gst", "low");
    let got = watch(&mut [&mut low, &mut top], Duration::from_secs(30), |w| {
        w[0].screen.frames_of(320) >= 30 && w[1].screen.frames_of(1280) >= before + 30
    });
    let (lw, tw) = (dedup(&low.screen.widths), dedup(&top.screen.widths));
    assert!(
        got,
        "low-layer viewer decoded {lw:?}, top-layer viewer {tw:?}"
    );
    assert_eq!(
        (low.screen.errors, top.screen.errors),
        (0, 0),
        "decode errors"
    );
    assert_eq!(
        (low.screen.codec, top.screen.codec),
        (Some(codec), Some(codec))
    );
    // The low-layer viewer starts on the one layer there is (and may pass the 640-wide rung
    // while the rungs show up), then stays on the 320-wide one; the top-layer viewer only
    // ever sees the publisher's picture (before rungs ranked below their source, the
    // 640-wide rung's first keyframes outranked this still test pattern's 120 kbit/s and
    // took the viewer off it for a third of a second).
    assert_eq!(lw.last().map(|l| l.0), Some(320), "{lw:?}");
    assert_eq!(lw.iter().filter(|l| l.0 == 320).count(), 1, "{lw:?}");
    assert_eq!(tw.iter().map(|t| t.0).collect::<Vec<_>>(), [1280], "{tw:?}");
    assert_eq!(server.metric("cascade_ladders_running"), 1.0);

    // The last low-layer viewer leaves: the ladder stops after its grace (5 s), while the
    // top-layer viewer goes on watching the publisher's layer, before and after the stop.
    let session = low.peer.location.clone().expect("a WHEP session URL");
    let s = server.http().delete(server.url(&session)).send().unwrap();
    assert!(s.status().is_success(), "DELETE {session}: {}", s.status());
    drop(low);
    let stopped = watch(&mut [&mut top], Duration::from_secs(15), |_| {
        server.metric("cascade_ladders_running") == 0.0
    });
    assert!(
        stopped,
        "the ladder still runs 15 s after its last viewer left"
    );
    let before = top.screen.frames_of(1280);
    watch(&mut [&mut top], Duration::from_secs(2), |_| false);
    let (after, tw) = (
        top.screen.frames_of(1280) - before,
        dedup(&top.screen.widths),
    );
    assert!(
        after >= 30 && tw.len() == 1 && top.screen.errors == 0,
        "the top-layer viewer decoded {after} frames in the 2 s after the ladder stopped: {tw:?}"
    );
    assert!(server.alive(), "the node is up");
}

fn dedup(widths: &[usize]) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for w in widths {
        match out.last_mut() {
            Some((last, n)) if last == w => *n += 1,
            _ => out.push((*w, 1)),
        }
    }
    out
}
