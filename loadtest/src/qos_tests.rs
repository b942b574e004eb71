//! The QoS report on a virtual clock: packets fed to an [`Accounting`] at chosen times.

use super::*;
use crate::stamp::{Stamp, AUDIO};

const START_US: u64 = 1_000_000;
const LEN_MS: u64 = 30_000;

fn window() -> Window {
    Window {
        start_us: START_US,
        end_us: START_US + LEN_MS * 1000,
    }
}

fn schedule() -> RateSchedule {
    "3mbit@0s,400kbit@8s,3mbit@16s".parse().unwrap()
}

/// Packets of `stream`, `bytes` each, every `every_ms` from `from_ms` (inclusive) to
/// `to_ms` (exclusive), in ms into the window.
fn feed(acc: &mut Accounting, stream: u8, bytes: usize, every_ms: u64, from_ms: u64, to_ms: u64) {
    let mut t = from_ms;
    while t < to_ms {
        let now_us = START_US + t * 1000;
        let seq = (t / every_ms) as u32;
        acc.packet(
            Stamp {
                stream,
                seq,
                sent_us: now_us - 5_000,
            },
            bytes,
            now_us,
        );
        t += every_ms;
    }
}

/// A viewer with audio throughout and video on `(layer, from_ms, to_ms)` spans.
fn viewer_with(spans: &[(u8, u64, u64)]) -> Accounting {
    let mut acc = Accounting::default();
    // One packet before the window, on the first span's layer.
    acc.packet(
        Stamp {
            stream: spans[0].0,
            seq: 0,
            sent_us: 0,
        },
        1000,
        START_US - 10_000,
    );
    acc.start_window(&phase_starts_us(&schedule(), START_US));
    feed(&mut acc, AUDIO, 100, 20, 0, LEN_MS);
    for &(layer, from, to) in spans {
        feed(&mut acc, layer, 1000, 10, from, to);
    }
    acc
}

fn qos_of(acc: &Accounting, impaired: bool) -> ViewerQos {
    let v = ViewerInput {
        index: 0,
        asked: "auto",
        impaired,
        acc,
    };
    viewer(v, &schedule(), window(), 200.0)
}

#[test]
fn an_adapting_viewer_steps_down_and_up_with_the_schedule() {
    // High until 8 s, nothing for 300 ms, low from 8.3 s, high again from 18 s.
    let acc = viewer_with(&[(2, 0, 8_000), (0, 8_300, 18_000), (2, 18_000, LEN_MS)]);
    let q = qos_of(&acc, true);
    let at = |t_ms: f64, layer: u8| LayerAt { t_ms, layer };
    assert_eq!(q.layers, [at(0.0, 2), at(8_300.0, 0), at(18_000.0, 2)]);
    assert_eq!(q.step_downs.len(), 1);
    let down = &q.step_downs[0];
    assert_eq!(
        (down.at_ms, down.from_bps, down.to_bps),
        (8_000.0, 3_000_000, 400_000)
    );
    assert_eq!(
        (down.layer_before, down.goal_layer, down.after_ms),
        (2, 1, Some(300.0))
    );
    let up = &q.step_ups[0];
    assert_eq!(
        (up.at_ms, up.goal_layer, up.after_ms),
        (16_000.0, 2, Some(2_000.0))
    );
    // The freeze at the switch: from the last high packet (7.99 s) to the first low one.
    assert_eq!(
        q.freezes,
        [Gap {
            at_ms: 7_990.0,
            ms: 310.0
        }]
    );
    assert_eq!(q.max_video_gap_ms, 310.0);
    assert_eq!(q.max_audio_gap_ms, 20.0);
    // 1000 bytes every 10 ms and 100 every 20: 840 kbit/s, 28 % of 3 Mbit/s.
    let p = &q.phases;
    assert_eq!(p.len(), 3);
    assert_eq!(
        (p[0].from_ms, p[0].to_ms, p[0].rate_bps),
        (0.0, 8_000.0, 3_000_000)
    );
    assert!((p[0].received_kbps - 840.0).abs() < 1.0, "{p:?}");
    assert!((p[0].cap_share.unwrap() - 0.28).abs() < 0.001);
    assert_eq!(
        p[1].layer_ms,
        [7_700.0, 0.0, 300.0],
        "the frozen 300 ms count as high"
    );
    assert_eq!(p[2].layer_ms, [2_000.0, 0.0, 12_000.0]);
}

#[test]
fn a_viewer_that_stays_on_top_misses_the_step_down() {
    let acc = viewer_with(&[(2, 0, LEN_MS)]);
    let q = qos_of(&acc, true);
    assert_eq!(
        q.layers,
        [LayerAt {
            t_ms: 0.0,
            layer: 2
        }]
    );
    assert_eq!(q.step_downs[0].after_ms, None);
    // Back on top at once: it never left.
    assert_eq!(q.step_ups[0].after_ms, Some(0.0));
    assert_eq!(q.phases[1].layer_ms, [0.0, 0.0, 8_000.0]);
    // A viewer not behind the proxy has phases but no cap and no reactions.
    let free = qos_of(&acc, false);
    assert!(free.step_downs.is_empty() && free.step_ups.is_empty());
    assert_eq!(free.phases[1].cap_share, None);
}

#[test]
fn a_gap_still_open_at_the_end_is_a_freeze_and_audio_gaps_count() {
    let q = qos_of(&viewer_with(&[(1, 0, 29_000)]), true);
    assert_eq!(
        q.freezes,
        [Gap {
            at_ms: 28_990.0,
            ms: 1_010.0
        }]
    );
    assert_eq!(q.max_video_gap_ms, 1_010.0);
    let mut acc = Accounting::default();
    acc.start_window(&phase_starts_us(&schedule(), START_US));
    feed(&mut acc, 0, 1000, 10, 0, LEN_MS);
    // Audio stops for half a second, then resumes.
    feed(&mut acc, AUDIO, 100, 20, 0, 5_000);
    feed(&mut acc, AUDIO, 100, 20, 5_500, LEN_MS);
    assert_eq!(qos_of(&acc, true).max_audio_gap_ms, 520.0);
}

#[test]
fn the_summary_counts_missed_steps_and_phases_over_impaired_viewers() {
    let adapting = qos_of(
        &viewer_with(&[(2, 0, 8_000), (0, 8_300, 18_000), (2, 18_000, LEN_MS)]),
        true,
    );
    let stuck = ViewerQos {
        viewer: 1,
        ..qos_of(&viewer_with(&[(2, 0, LEN_MS)]), true)
    };
    let free = ViewerQos {
        viewer: 2,
        ..qos_of(&viewer_with(&[(1, 0, LEN_MS)]), false)
    };
    let r = report(vec![adapting, stuck, free], &schedule(), 200.0);
    assert_eq!(
        r.schedule,
        [(0.0, 3_000_000), (8_000.0, 400_000), (16_000.0, 3_000_000)]
    );
    assert_eq!(
        r.step_down,
        Reactions {
            count: 2,
            missed: 1,
            p50_ms: Some(300.0),
            max_ms: Some(300.0)
        }
    );
    assert_eq!(
        (r.step_up.count, r.step_up.missed, r.step_up.max_ms),
        (2, 0, Some(2_000.0))
    );
    // In the 400 kbit/s phase, one impaired viewer mostly low, one high; the free one
    // is left out.
    assert_eq!(r.phases[1].layers, [1, 0, 1]);
    assert_eq!(r.phases[1].rate_bps, 400_000);
    assert_eq!(r.freezes, 1);
    assert_eq!(r.max_video_gap_ms, 310.0);
    assert_eq!(r.viewers.len(), 3);
}

#[test]
fn without_a_schedule_there_is_one_uncapped_phase() {
    let mut acc = Accounting::default();
    let none = RateSchedule::default();
    acc.start_window(&phase_starts_us(&none, START_US));
    feed(&mut acc, 1, 1000, 10, 0, LEN_MS);
    let v = ViewerInput {
        index: 0,
        asked: "mid",
        impaired: false,
        acc: &acc,
    };
    let q = viewer(v, &none, window(), 200.0);
    assert_eq!(q.phases.len(), 1);
    assert_eq!((q.phases[0].rate_bps, q.phases[0].cap_share), (0, None));
    assert!((q.phases[0].received_kbps - 800.0).abs() < 1.0);
    assert!(q.step_downs.is_empty() && q.step_ups.is_empty());
}
