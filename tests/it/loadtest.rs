//! A short `cascade loadtest` against a real node: every viewer joins, receives its layer
//! with no loss, and the report's figures are consistent; a group behind the impairment
//! proxy shows the delay it was given.

use std::process::Command;

use serde_json::Value;

use crate::server::Server;

/// Runs `cascade loadtest --json` against `server` with `extra` flags; its report.
pub fn loadtest(server: &Server, extra: &[&str]) -> Value {
    let out = Command::new(crate::server::cascade_bin())
        .args(["loadtest", "--json", "--quiet", "--target", &server.base])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_short_run_holds_every_viewer() {
    let server = Server::start(&[]);
    let r = loadtest(
        &server,
        &[
            "--viewers",
            "12",
            "--ramp",
            "20",
            "--duration",
            "3",
            "--layers",
            "low:2,mid:1,high:1",
        ],
    );
    assert_eq!(
        (r["connected"].as_u64(), r["failed"].as_u64()),
        (Some(12), Some(0)),
        "{r}"
    );
    assert_eq!(
        r["layers"],
        serde_json::json!([6, 3, 3]),
        "each viewer on the layer it asked for"
    );
    assert!(r["loss_pct"].as_f64().unwrap() < 0.5, "{r}");
    let delay = &r["delay_ms"];
    assert!(
        delay["p50"].as_f64().unwrap() > 0.0 && delay["p95"].as_f64().unwrap() < 100.0,
        "{r}"
    );
    assert!(r["join_ms"]["p95"].as_f64().unwrap() < 2000.0, "{r}");
    // Mean bitrate of the mix (150, 500, 1200 kbit/s video + 32 kbit/s audio), ±25 %.
    let expect = (6.0 * 182.0 + 3.0 * 532.0 + 3.0 * 1232.0) / 12.0;
    let kbps = r["received_kbps"].as_f64().unwrap();
    assert!(
        (expect * 0.75..expect * 1.25).contains(&kbps),
        "{kbps} vs {expect}"
    );
    // The node's side, read from its /proc entry and its /metrics.
    assert!(r["node_cpu_cores"].as_f64().unwrap() > 0.0, "{r}");
    assert!(r["node_rss_mib"].as_f64().unwrap() > 1.0, "{r}");
    let pps = r["forwarded_pps"].as_f64().unwrap();
    // Per viewer: 50 audio packets/s plus its layer's video.
    assert!(pps > 12.0 * 50.0, "{pps} packets/s");
    // The publisher: 30 frames/s of 1 + 2 + 5 packets, and 50 audio packets/s (290/s),
    // counted from before it connected, so somewhat less.
    let published = r["published_pps"].as_f64().unwrap();
    assert!(
        (150.0..300.0).contains(&published),
        "{published} packets/s published"
    );
    // Every session was ended with DELETE when the run finished.
    assert_eq!(server.sessions(), 0);
}

#[test]
fn viewers_behind_the_proxy_see_its_delay() {
    let server = Server::start(&[]);
    let r = loadtest(
        &server,
        &[
            "--viewers",
            "4",
            "--ramp",
            "20",
            "--duration",
            "3",
            "--impair",
            "delay=60ms,seed=5",
        ],
    );
    assert_eq!(
        (r["connected"].as_u64(), r["impaired"].as_u64()),
        (Some(4), Some(4)),
        "{r}"
    );
    let p50 = r["delay_ms"]["p50"].as_f64().unwrap();
    assert!((60.0..90.0).contains(&p50), "60 ms path, p50 {p50} ms");
    assert!(
        r["join_ms"]["p50"].as_f64().unwrap() > 120.0,
        "the handshake crosses the path a few times: {r}"
    );
}
