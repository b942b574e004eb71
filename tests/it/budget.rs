//! A node over its budget (issue 10, fail-safe): its viewers give way before anyone is
//! refused. Four viewers on the top layer take about 5 Mbit/s of a node allowed 1:
//! the top layer must be shed for all of them (mid, never lower: only the top goes), and
//! once even that is too much, a new viewer is refused with 503 and `Retry-After`.

use std::time::{Duration, Instant};

use crate::loadtest::loadtest;
use crate::peer::Peer;
use crate::server::Server;

const TOP: u64 = 2;
const MID: u64 = 1;

#[test]
fn over_its_egress_budget_a_node_sheds_the_top_layer_then_refuses_new_viewers() {
    // Without estimation each viewer gets the layer it asks for: what moves it here is the
    // budget alone.
    let server = Server::start(&[
        "--egress-budget",
        "1",
        "--cpu-budget",
        "0",
        "--viewer-bwe",
        "0",
    ]);
    let (report, refused, highest, egress) = std::thread::scope(|s| {
        let run = s.spawn(|| {
            loadtest(
                &server,
                &[
                    "--viewers",
                    "4",
                    "--ramp",
                    "20",
                    "--layers",
                    "auto:1",
                    "--duration",
                    "14",
                ],
            )
        });
        // Watch the node's level, and ask for one more viewer once it refuses.
        let deadline = Instant::now() + Duration::from_secs(25);
        let (mut refused, mut highest, mut egress) = (None, 0.0f64, 0.0f64);
        while Instant::now() < deadline && !run.is_finished() {
            let level = server.metric("cascade_budget_pressure");
            highest = highest.max(level);
            egress = egress.max(server.metric("cascade_egress_bits_per_second"));
            if level >= 3.0 && refused.is_none() {
                let (_p, offer, _) = Peer::viewer();
                let r = server.post_sdp("/whep/loadtest", &offer, None);
                let retry = r.headers().get("retry-after").is_some();
                refused = Some((r.status().as_u16(), retry, r.text().unwrap_or_default()));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        (run.join().unwrap(), refused, highest, egress)
    });
    // What an operator's "egress near capacity" alert compares.
    assert_eq!(server.metric("cascade_egress_budget_bits_per_second"), 1e6);
    assert!(
        egress > 1e6,
        "the egress the budget saw passed it: {egress}"
    );
    assert_eq!(report["connected"].as_u64(), Some(4), "{report}");
    assert!(highest >= 3.0, "the node reached its last level: {highest}");
    let (status, retry, body) = refused.expect("a viewer asked while the node refused");
    assert_eq!((status, retry), (503, true), "{body}");
    assert!(body.contains("budget"), "{body}");
    for v in report["qos"]["viewers"].as_array().unwrap() {
        let layers: Vec<u64> = v["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["layer"].as_u64().unwrap())
            .collect();
        assert_eq!(
            layers.first(),
            Some(&TOP),
            "viewer {} started on the top layer: {layers:?}",
            v["viewer"]
        );
        assert_eq!(
            layers.last(),
            Some(&MID),
            "viewer {} lost only the top layer: {layers:?}",
            v["viewer"]
        );
        assert!(!layers.contains(&0), "never below mid: {layers:?}");
    }
}
