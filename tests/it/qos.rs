//! Viewer QoS (issue 10): viewers asking for the server's choice of layer (`auto`) behind a
//! path whose rate drops from 3 Mbit/s to 400 kbit/s and back. The node must follow the
//! path: the low layer within 1 s of the drop, no freeze and no audio gap over 200 ms, and
//! the top layer again within 10 s of the recovery. What each viewer received is read from
//! `cascade loadtest`'s QoS report, whose times count from its measurement window's start
//! (the schedule's origin).

use serde_json::Value;

use crate::loadtest::loadtest;
use crate::server::Server;

/// The schedule, in ms: the drop and the recovery.
const DROP_MS: f64 = 8_000.0;
const RISE_MS: f64 = 16_000.0;
const SCHEDULE: &str = "rate=3mbit@0s,400kbit@8s,3mbit@16s";
/// Long enough for the recovery's 10 s, short enough for the test to take about 35 s.
const WINDOW_S: &str = "28";

/// How soon after the drop the viewer must receive the low layer. Issue 10 asks for 1 s,
/// and a quiet machine takes 0.45 to 0.8 s (docs/PERFORMANCE.md): str0m's estimator needs
/// most of it to see the drop, then the low layer's keyframe waits behind the bottleneck's
/// full 200 ms queue. The bound leaves room for a CI machine running other tests beside
/// this one, and still catches a node that does not follow the path.
const STEP_DOWN_MS: f64 = 1_500.0;
/// How soon after the recovery the viewer must be back on the top layer: two steps up,
/// each held 2 s, after str0m's estimator found the path again (a stall reset every 3 s
/// when it does not). Debug builds on this 2-core machine with builds beside them took
/// 5.0 to 6.0 s at the median and 9.0 s at most over five runs (docs/PERFORMANCE.md);
/// the bound leaves room for a CI machine running other tests beside this one.
const STEP_UP_MS: f64 = 12_000.0;

const LOW: u64 = 0;
const TOP: u64 = 2;

/// When the viewer was first on a layer `ok` accepts at or after `from_ms`: `from_ms` when
/// already on one, else the first change to one.
fn first_on(layers: &[Value], from_ms: f64, ok: impl Fn(u64) -> bool) -> Option<f64> {
    let t = |c: &Value| c["t_ms"].as_f64().unwrap();
    let layer = |c: &Value| c["layer"].as_u64().unwrap();
    let in_force = layers.iter().take_while(|c| t(c) <= from_ms).last();
    if in_force.is_some_and(|c| ok(layer(c))) {
        return Some(from_ms);
    }
    layers
        .iter()
        .find(|c| t(c) > from_ms && ok(layer(c)))
        .map(t)
}

/// One line per viewer that says what it did, for the failure message.
fn describe(v: &Value) -> String {
    let layers: Vec<String> = v["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| format!("{}@{:.0}ms", c["layer"], c["t_ms"].as_f64().unwrap()))
        .collect();
    let phases: Vec<String> = v["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{:.0}-{:.0}ms cap {} bit/s: {:.0} kbit/s, ms on low/mid/high {}",
                p["from_ms"].as_f64().unwrap(),
                p["to_ms"].as_f64().unwrap(),
                p["rate_bps"],
                p["received_kbps"].as_f64().unwrap(),
                p["layer_ms"]
            )
        })
        .collect();
    format!(
        "viewer {}: layers [{}]; step_downs {}; step_ups {}; freezes {}; max_video_gap_ms {:.0}; max_audio_gap_ms {:.0}\n    phases: {}",
        v["viewer"],
        layers.join(", "),
        v["step_downs"],
        v["step_ups"],
        v["freezes"],
        v["max_video_gap_ms"].as_f64().unwrap(),
        v["max_audio_gap_ms"].as_f64().unwrap(),
        phases.join("; ")
    )
}

/// Two `auto` viewers through the proxy on `schedule` for a `window_s` measurement window.
fn run_schedule(server: &Server, schedule: &str, window_s: &str) -> Value {
    loadtest(
        server,
        &[
            "--viewers",
            "2",
            "--ramp",
            "20",
            "--layers",
            "auto:1",
            "--impair",
            schedule,
            "--duration",
            window_s,
            "--freeze-ms",
            "200",
        ],
    )
}

/// The report's two viewers, both behind the proxy.
fn both_impaired(r: &Value) -> &Vec<Value> {
    assert_eq!(
        (r["connected"].as_u64(), r["impaired"].as_u64()),
        (Some(2), Some(2)),
        "{r}"
    );
    let viewers = r["qos"]["viewers"].as_array().unwrap();
    assert_eq!(viewers.len(), 2, "{r}");
    viewers
}

#[test]
fn viewers_follow_their_path_down_to_the_low_layer_and_back_without_freezing() {
    let server = Server::start(&[]);
    let r = run_schedule(&server, SCHEDULE, WINDOW_S);
    let viewers = both_impaired(&r);

    let mut failures = Vec::new();
    for v in viewers {
        let n = &v["viewer"];
        let layers = v["layers"].as_array().unwrap();
        match first_on(layers, DROP_MS, |l| l == LOW) {
            Some(t) if t - DROP_MS <= STEP_DOWN_MS => {}
            Some(t) => failures.push(format!(
                "viewer {n}: on the low layer {:.0} ms after the drop to 400 kbit/s (at most {STEP_DOWN_MS})",
                t - DROP_MS
            )),
            None => failures.push(format!(
                "viewer {n}: never on the low layer after the drop to 400 kbit/s"
            )),
        }
        match first_on(layers, RISE_MS, |l| l == TOP) {
            Some(t) if t - RISE_MS <= STEP_UP_MS => {}
            Some(t) => failures.push(format!(
                "viewer {n}: back on the top layer {:.0} ms after the recovery (at most {STEP_UP_MS})",
                t - RISE_MS
            )),
            None => failures.push(format!(
                "viewer {n}: not back on the top layer after the recovery to 3 Mbit/s"
            )),
        }
        let video_gap = v["max_video_gap_ms"].as_f64().unwrap();
        if video_gap > 200.0 {
            failures.push(format!(
                "viewer {n}: video froze for {video_gap:.0} ms (freezes {})",
                v["freezes"]
            ));
        }
        let audio_gap = v["max_audio_gap_ms"].as_f64().unwrap();
        if audio_gap > 200.0 {
            failures.push(format!("viewer {n}: audio stopped for {audio_gap:.0} ms"));
        }
    }
    let what: Vec<String> = viewers.iter().map(describe).collect();
    // The figures, for docs/PERFORMANCE.md (`-- --nocapture`).
    eprintln!(
        "qos: step_down {}, step_up {}",
        r["qos"]["step_down"], r["qos"]["step_up"]
    );
    assert!(
        failures.is_empty(),
        "the viewers did not follow their path:\n  {}\nwhat they received (ms into the window; drop at {DROP_MS} ms, recovery at {RISE_MS} ms):\n  {}\nsummary: step_down {}, step_up {}, phases {}",
        failures.join("\n  "),
        what.join("\n  "),
        r["qos"]["step_down"],
        r["qos"]["step_up"],
        r["qos"]["phases"]
    );
    // The run ended every session.
    assert_eq!(server.sessions(), 0);
}

/// 150 kbit/s carries no video layer beside the audio (the lowest is about 230 kbit/s with
/// it): the node pauses the video, the audio goes on, and the video comes back at a
/// keyframe when the path recovers.
#[test]
fn below_the_lowest_layer_the_video_pauses_and_the_audio_goes_on() {
    const DOWN_MS: f64 = 4_000.0;
    const UP_MS: f64 = 14_000.0;
    let server = Server::start(&[]);
    let r = run_schedule(&server, "rate=3mbit@0s,150kbit@4s,3mbit@14s", "20");
    let viewers = r["qos"]["viewers"].as_array().unwrap();
    assert_eq!(viewers.len(), 2, "{r}");
    let what: Vec<String> = viewers.iter().map(describe).collect();
    let what = what.join("\n  ");
    for v in viewers {
        let n = &v["viewer"];
        // The pause is one long stretch without video inside the 150 kbit/s phase.
        let paused = v["freezes"].as_array().unwrap().iter().any(|f| {
            let at = f["at_ms"].as_f64().unwrap();
            at > DOWN_MS && at < UP_MS && f["ms"].as_f64().unwrap() >= 3_000.0
        });
        assert!(paused, "viewer {n}: its video never paused:\n  {what}");
        // And video came back within 5 s of the recovery: the pause ended by then.
        let resumed = v["freezes"].as_array().unwrap().iter().all(|f| {
            let end = f["at_ms"].as_f64().unwrap() + f["ms"].as_f64().unwrap();
            end <= UP_MS + 5_000.0
        });
        let window_end = v["phases"].as_array().unwrap().last().unwrap()["to_ms"]
            .as_f64()
            .unwrap();
        assert!(
            resumed && window_end > UP_MS + 5_000.0,
            "viewer {n}: no video within 5 s of the recovery:\n  {what}"
        );
        // Audio went on through it all: no gap the ear would call a dropout.
        let audio_gap = v["max_audio_gap_ms"].as_f64().unwrap();
        assert!(
            audio_gap < 500.0,
            "viewer {n}: audio stopped for {audio_gap:.0} ms:\n  {what}"
        );
    }
    assert!(
        server.metric("cascade_allocation_changes_total{to=\"paused\"}") >= 2.0,
        "the node counts the pauses"
    );
}

/// Issue 10: on a path that loses 5 % of its packets at random (both ways, repairs
/// included), at least 95 % of the frames sent must arrive whole: retransmissions repair
/// what is lost (a frame counts when all its packets arrived, from the loadtest's report).
#[test]
fn at_five_percent_loss_nearly_every_frame_arrives_whole() {
    let server = Server::start(&[]);
    let r = run_schedule(&server, "loss=5%,seed=11", "12");
    let viewers = both_impaired(&r);
    let what: Vec<String> = viewers.iter().map(describe).collect();
    for v in viewers {
        let (whole, sent) = (
            v["frames_whole"].as_u64().unwrap(),
            v["frames_sent"].as_u64().unwrap(),
        );
        assert!(sent >= 300, "about 30 frames a second for 12 s: {sent}");
        assert!(
            whole as f64 >= 0.95 * sent as f64,
            "viewer {}: {whole} of {sent} frames whole\n  {}",
            v["viewer"],
            what.join("\n  ")
        );
    }
}
