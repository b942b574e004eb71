//! The QoS report's rows in the final table: the schedule, the reaction times, each
//! phase, and the first viewers behind the proxy one by one (every viewer is in the JSON).

use crate::qos::{Qos, Reactions, ViewerQos};

/// Viewers listed one by one in the table.
const VIEWERS_LISTED: usize = 10;

const LAYER_NAMES: [&str; 3] = ["low", "mid", "high"];

fn kbit(bps: u64) -> String {
    if bps == 0 {
        "no cap".into()
    } else {
        format!("{} kbit/s", bps / 1000)
    }
}

fn reactions(r: &Reactions) -> String {
    if r.count == 0 {
        return "no rate change met".into();
    }
    let times = match (r.p50_ms, r.max_ms) {
        (Some(p50), Some(max)) => format!("p50 {p50:.0} ms, max {max:.0} ms; "),
        _ => String::new(),
    };
    format!(
        "{times}missed {} of {} (not done before the next change or the end)",
        r.missed, r.count
    )
}

fn pct(x: Option<f64>) -> String {
    x.map_or("n/a".into(), |x| format!("{:.0} %", x * 100.0))
}

fn viewer(v: &ViewerQos) -> String {
    let layers: Vec<String> = v
        .layers
        .iter()
        .map(|l| {
            format!(
                "{} at {:.1} s",
                LAYER_NAMES[usize::from(l.layer.min(2))],
                l.t_ms / 1000.0
            )
        })
        .collect();
    let after = |r: &[crate::qos::Reaction]| -> String {
        let each: Vec<String> = r
            .iter()
            .map(|x| x.after_ms.map_or("never".into(), |t| format!("{t:.0} ms")))
            .collect();
        if each.is_empty() {
            "-".into()
        } else {
            each.join(", ")
        }
    };
    let longest_freeze = v.freezes.iter().map(|g| g.ms).fold(0.0, f64::max);
    format!(
        "#{} ({}{}): layers {}; down {}, up {}; {} freezes (longest {:.0} ms), longest video gap {:.0} ms, audio gap {:.0} ms",
        v.viewer,
        v.layer_asked,
        if v.impaired { ", impaired" } else { "" },
        if layers.is_empty() { "none".into() } else { layers.join(", ") },
        after(&v.step_downs),
        after(&v.step_ups),
        v.freezes.len(),
        longest_freeze,
        v.max_video_gap_ms,
        v.max_audio_gap_ms,
    )
}

impl Qos {
    /// The table's rows.
    pub fn rows(&self) -> Vec<(&'static str, String)> {
        let mut rows = Vec::new();
        if !self.schedule.is_empty() {
            let steps: Vec<String> = self
                .schedule
                .iter()
                .map(|&(at, bps)| format!("{} from {:.1} s", kbit(bps), at / 1000.0))
                .collect();
            rows.push(("rate schedule (impaired)", steps.join(", ")));
        }
        if self.schedule.len() > 1 {
            rows.push(("step down after a drop", reactions(&self.step_down)));
            rows.push(("step up after a rise", reactions(&self.step_up)));
        }
        // Without a schedule, one phase: the window's figures already say it.
        for p in self.phases.iter().filter(|_| !self.schedule.is_empty()) {
            rows.push((
                "phase",
                format!(
                    "{:.1}-{:.1} s, {}: received p50 {:.0} kbit/s, cap used p50 {} (min {}, max {}); mostly on low/mid/high {} / {} / {}",
                    p.from_ms / 1000.0,
                    p.to_ms / 1000.0,
                    kbit(p.rate_bps),
                    p.received_kbps_p50,
                    pct(p.cap_share_p50),
                    pct(p.cap_share_min),
                    pct(p.cap_share_max),
                    p.layers[0],
                    p.layers[1],
                    p.layers[2],
                ),
            ));
        }
        rows.push((
            "longest gaps, any viewer",
            format!(
                "video {:.0} ms ({} freezes of {:.0} ms or more), audio {:.0} ms",
                self.max_video_gap_ms, self.freezes, self.freeze_ms, self.max_audio_gap_ms
            ),
        ));
        if let Some(share) = self.frames_whole_share {
            rows.push((
                "video frames received whole",
                format!("{:.2} % of those sent", share * 100.0),
            ));
        }
        // Viewers one by one only for those behind the proxy: a test of a path's effect
        // has few, a load test many.
        let listed: Vec<&ViewerQos> = self.viewers.iter().filter(|v| v.impaired).collect();
        for v in listed.iter().take(VIEWERS_LISTED) {
            rows.push(("viewer", viewer(v)));
        }
        if listed.len() > VIEWERS_LISTED {
            rows.push((
                "viewer",
                format!("… {} more in --json", listed.len() - VIEWERS_LISTED),
            ));
        }
        rows
    }
}
