//! Interop with GStreamer, a WebRTC stack nobody here wrote: its `webrtcbin` publishes
//! over WHIP (with an RSA DTLS certificate) and a viewer gets real VP8 and Opus; and
//! `cascade loadtest` runs against a WHIP/WHEP server made of `webrtcbin`
//! (tests/interop/*.py, on Debian's /usr/bin/python3 with python3-gi).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use str0m::media::MediaKind;

use crate::peer::{pump, Peer, Received};
use crate::server::Server;

/// A fixture script, killed when dropped; its stdout lines arrive on `lines`.
pub(crate) struct Script {
    pub(crate) child: Child,
    lines: mpsc::Receiver<String>,
}

impl Script {
    pub(crate) fn start(script: &str, args: &[&str]) -> Script {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/").to_owned() + script;
        // Debian's python has gi (python3-gi); a python on PATH may be another one.
        let mut child = Command::new("/usr/bin/python3")
            .arg(path)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("/usr/bin/python3 (scripts/test.sh installs python3-gi and GStreamer)");
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Script { child, lines }
    }

    /// Lines until one starts with `want` (returned) or `within` passes; panics with what
    /// the script said otherwise.
    pub(crate) fn wait_for(&self, want: &str, within: Duration) -> String {
        let end = std::time::Instant::now() + within;
        let mut said = Vec::new();
        while let Some(left) = end.checked_duration_since(std::time::Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(l) if l.starts_with(want) => return l,
                Ok(l) => said.push(l),
                Err(_) => break,
            }
        }
        panic!("no {want:?} within {within:?}; the script said: {said:#?}");
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Width and height of a VP8 keyframe starting in this RTP payload (RFC 7741 descriptor,
/// then the frame header of RFC 6386 §9.1), or `None` if it does not start one.
fn vp8_keyframe_size(p: &[u8]) -> Option<(u16, u16)> {
    let b0 = *p.first()?;
    let (start, part) = (b0 & 0x10 != 0, b0 & 0x0f);
    let mut i = 1;
    if b0 & 0x80 != 0 {
        let x = *p.get(1)?;
        i = 2;
        if x & 0x80 != 0 {
            i += if p.get(i)? & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            i += 1;
        }
        if x & 0x30 != 0 {
            i += 1;
        }
    }
    let f = p.get(i..i + 10)?;
    let keyframe = f[0] & 0x01 == 0;
    if !(start && part == 0 && keyframe && f[3..6] == [0x9d, 0x01, 0x2a]) {
        return None;
    }
    let w = u16::from_le_bytes([f[6], f[7]]) & 0x3fff;
    let h = u16::from_le_bytes([f[8], f[9]]) & 0x3fff;
    Some((w, h))
}

#[test]
fn a_gstreamer_publisher_reaches_a_viewer() {
    let server = Server::start(&[]);
    let publisher = Script::start(
        "gst_whip_publish.py",
        &[&server.url("/whip/gst"), "--seconds", "60"],
    );
    publisher.wait_for("posted 201", Duration::from_secs(20));
    // Before the node accepted RSA certificates, this is where it failed: "dtls failed".
    publisher.wait_for("connected", Duration::from_secs(15));

    let (mut v, offer, pending) = Peer::viewer();
    v.connect(&server.http(), &server.url("/whep/gst"), offer, pending);
    let video = |r: &&Received| r.kind == MediaKind::Video;
    let audio = |r: &&Received| r.kind == MediaKind::Audio;
    let got_enough = pump(&mut [&mut v], Duration::from_secs(15), |p| {
        let r = &p[0].received;
        let key = r
            .iter()
            .filter(video)
            .any(|r| vp8_keyframe_size(&r.payload).is_some());
        key && r.iter().filter(video).count() > 60 && r.iter().filter(audio).count() > 50
    });
    let r = &v.received;
    let (nv, na) = (
        r.iter().filter(video).count(),
        r.iter().filter(audio).count(),
    );
    assert!(got_enough, "viewer got {nv} video and {na} audio packets");

    // A real VP8 stream: keyframes of the size the pipeline encodes, and frames after them.
    let sizes: Vec<(u16, u16)> = r
        .iter()
        .filter(video)
        .filter_map(|r| vp8_keyframe_size(&r.payload))
        .collect();
    assert!(
        sizes.iter().all(|s| *s == (320, 240)),
        "keyframes {sizes:?}"
    );
    let mut frames: Vec<u32> = r.iter().filter(video).map(|r| r.ts).collect();
    frames.dedup();
    assert!(frames.len() >= 30, "{} video frames", frames.len());
    // Opus from opusenc: 20 ms packets (960 ticks at 48 kHz), each a TOC byte and data.
    let opus: Vec<&Received> = r.iter().filter(audio).collect();
    let steps = opus
        .windows(2)
        .filter(|w| w[1].ts.wrapping_sub(w[0].ts) == 960)
        .count();
    assert!(
        steps * 10 >= opus.len() * 9,
        "{steps} of {} steps are 20 ms",
        opus.len()
    );
    assert!(opus.iter().all(|p| p.payload.len() > 1));
}

/// Runs `cascade loadtest` with two viewers for three seconds against the webrtcbin
/// fixture started with `fixture_args`; returns its JSON report.
fn load_test_the_gstreamer_server(
    fixture_args: &[&str],
    loadtest_args: &[&str],
) -> serde_json::Value {
    let fixture = Script::start("gst_whip_whep_server.py", fixture_args);
    let line = fixture.wait_for("listening on ", Duration::from_secs(20));
    let base = line.trim_start_matches("listening on ").to_owned();
    let pid = fixture.child.id().to_string();
    let out = Command::new(crate::server::cascade_bin())
        .args(["loadtest", "--json", "--quiet", "--target", &base])
        .args(["--whip-url", &format!("{base}/ingest/lt")])
        .args(["--whep-url", &format!("{base}/egress/lt")])
        .args(["--viewers", "2", "--duration", "3"])
        .args(loadtest_args.iter().map(|a| a.replace("{pid}", &pid)))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "loadtest failed: {err}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// What the load test's viewers must have seen from the fixture: the publisher's one
/// layer (500 kbit/s) with its stamps intact, so loss and delay are measured.
fn assert_viewers_got_the_stamped_stream(r: &serde_json::Value) {
    assert_eq!(r["publisher_layers"], 1, "{r}");
    let pps = r["published_pps"].as_f64().unwrap();
    // One layer of about 60 packets a second (500 kbit/s in 1,100-byte packets at 30
    // fps) and 50 of audio.
    assert!(pps > 50.0, "{pps} packets/s: {r}");
    assert_eq!(
        (r["connected"].as_u64(), r["failed"].as_u64()),
        (Some(2), Some(0)),
        "{r}"
    );
    // Both on the stamped middle layer (the one a server without simulcast gets).
    assert_eq!(r["layers"], serde_json::json!([0, 2, 0]), "{r}");
    let kbps = r["received_kbps"].as_f64().unwrap();
    assert!((400.0..700.0).contains(&kbps), "{kbps} kbit/s: {r}");
    let loss = r["loss_pct"].as_f64().unwrap();
    assert!(loss < 5.0, "{loss}% lost: {r}");
    // Stamps read back: a real delay, small on loopback (the fixture has a 50 ms jitter
    // buffer on the publisher's side at most).
    let (p50, p99) = (
        r["delay_ms"]["p50"].as_f64().unwrap(),
        r["delay_ms"]["p99"].as_f64().unwrap(),
    );
    assert!(
        p50 > 0.0 && p99 < 500.0,
        "delay p50 {p50} p99 {p99} ms: {r}"
    );
}

/// The load test against a server whose WebRTC is GStreamer's: full ICE, the DTLS client
/// role with an RSA certificate, no simulcast, its own URL layout, a relative `Location`,
/// no /healthz or /metrics. Its answers announce the forwarded SSRCs (`a=ssrc`) and
/// negotiate no header extensions, so the viewers place packets by SSRC.
#[test]
fn the_load_test_runs_against_a_gstreamer_whip_whep_server() {
    let r = load_test_the_gstreamer_server(&[], &[]);
    assert_viewers_got_the_stamped_stream(&r);
    // What only Cascade has is skipped, and the report says so.
    assert!(
        r["node_cpu_cores"].is_null() && r["forwarded_pps"].is_null(),
        "{r}"
    );
    let notes = r["notes"].to_string();
    assert!(
        notes.contains("--target-pid") && notes.contains("/metrics") && notes.contains("one layer"),
        "{r}"
    );
}

/// The same server announcing no SSRCs: only the payload type says which m-line a packet
/// belongs to (RFC 8843 §9.2), which is what a browser then goes by and what the load
/// test's viewers must do too (str0m alone dropped every packet: "no video within 15 s").
/// With `--target-pid`, the server's CPU and memory are measured although it has no
/// /healthz.
#[test]
fn the_load_test_viewers_place_packets_by_payload_type() {
    let r = load_test_the_gstreamer_server(&["--no-ssrc"], &["--target-pid", "{pid}"]);
    assert_viewers_got_the_stamped_stream(&r);
    let cpu = r["node_cpu_cores"].as_f64().unwrap_or(-1.0);
    let rss = r["node_rss_mib"].as_f64().unwrap_or(-1.0);
    assert!(
        cpu > 0.0 && rss > 10.0,
        "cpu {cpu} cores, rss {rss} MiB: {r}"
    );
    assert!(!r["notes"].to_string().contains("--target-pid"), "{r}");
}
