//! A node's stream list sent only when it changed: a report of the load alone keeps the
//! list the registry holds, a new list replaces it, the answer's `streams_rev` asks for it
//! again when the registry holds another, and the load's report writes no list.

use control_plane::Config;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both;
use crate::cluster::{clustered, register, report, TOKEN};
use crate::harness::{Api, Backend};

/// A stats report and its answer.
async fn send(api: &Api, id: &str, stats: Value) -> (StatusCode, Value) {
    let path = format!("/cluster/nodes/{id}/stats");
    api.call(Method::PUT, &path, Some(TOKEN), Some(stats)).await
}

/// The load alone, with the number of the list the node believes held.
fn load(rev: u64) -> Value {
    json!({"cpu": 0.3, "egress_bps": 5000, "viewers": 2, "streams_rev": rev})
}

/// The node a viewer of `stream` is sent to (its id), or the refusal's status.
async fn place(api: &Api, stream: &str) -> Result<String, StatusCode> {
    let path = format!("/cluster/place?stream={stream}");
    match api.call(Method::GET, &path, Some(TOKEN), None).await {
        (StatusCode::OK, p) => Ok(p["id"].as_str().unwrap().to_owned()),
        (s, _) => Err(s),
    }
}

/// The parent the control plane names to `node` for `stream` (its id), or the status.
async fn parent(api: &Api, node: &str, stream: &str) -> Result<String, StatusCode> {
    let path = format!("/cluster/parents?node={node}&stream={stream}");
    match api.call(Method::GET, &path, Some(TOKEN), None).await {
        (StatusCode::OK, p) => Ok(p["primary"]["id"].as_str().unwrap().to_owned()),
        (s, _) => Err(s),
    }
}

/// Node `id` as the registry lists it.
async fn listed(api: &Api, id: &str) -> Value {
    let (s, nodes) = api
        .call(Method::GET, "/cluster/nodes", Some(TOKEN), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let node = nodes.as_array().unwrap().iter().find(|n| n["id"] == id);
    node.unwrap_or_else(|| panic!("{id} not in {nodes}"))
        .clone()
}

/// A counter of the control plane's metrics.
fn counter(api: &Api, name: &str) -> u64 {
    let text = api.cp.render_metrics();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

const WRITTEN: &str = "cascade_cluster_stream_lists_written_total";
const PARSED: &str = "cascade_cluster_stream_lists_parsed_total";

both!(a_report_of_the_load_alone_keeps_the_list_and_a_new_list_replaces_it);
async fn a_report_of_the_load_alone_keeps_the_list_and_a_new_list_replaces_it(b: Backend) {
    let Some(api) = Api::start(b, clustered()).await else {
        return;
    };
    let origin = register(&api, "origin-1", "origin", "a").await;
    let relay = register(&api, "relay-1", "relay", "b").await;
    let edge = register(&api, "edge-1", "edge", "a").await;
    let show = json!({"cpu": 0.2, "egress_bps": 0, "viewers": 0, "streams_rev": 1,
        "streams": [{"name": "show", "publishing": "primary"}]});
    let (s, answer) = send(&api, &origin, show).await;
    assert_eq!((s, &answer["streams_rev"]), (StatusCode::OK, &json!(1)));
    for id in [&relay, &edge] {
        let (_, answer) = send(
            &api,
            id,
            json!({"cpu": 0.1, "egress_bps": 0, "viewers": 0,
            "streams_rev": 1, "streams": []}),
        )
        .await;
        assert_eq!(answer["streams_rev"], 1);
    }
    // The load alone, again and again: the stream stays on its origin.
    for _ in 0..3 {
        for id in [&origin, &relay, &edge] {
            let (s, answer) = send(&api, id, load(1)).await;
            assert_eq!((s, &answer["streams_rev"]), (StatusCode::OK, &json!(1)));
        }
        assert_eq!(parent(&api, &relay, "show").await, Ok(origin.clone()));
        assert_eq!(place(&api, "show").await, Ok(edge.clone()));
    }
    let o = listed(&api, &origin).await;
    assert_eq!(
        o["stats"]["streams"],
        json!([{"name": "show", "publishing": "primary",
        "parent": null, "backup": null}])
    );
    assert_eq!(
        (&o["stats"]["streams_rev"], &o["stats"]["cpu"]),
        (&json!(1), &json!(0.3))
    );

    // A new list replaces it: "show" ended, "other" began.
    let other = json!({"cpu": 0.2, "egress_bps": 0, "viewers": 0, "streams_rev": 2,
        "streams": [{"name": "other", "publishing": "primary"}]});
    let (_, answer) = send(&api, &origin, other).await;
    assert_eq!(answer["streams_rev"], 2);
    assert_eq!(
        parent(&api, &relay, "show").await,
        Err(StatusCode::NOT_FOUND)
    );
    assert_eq!(parent(&api, &relay, "other").await, Ok(origin.clone()));
    // A late copy of list 1 does not bring "show" back.
    let late = json!({"cpu": 0.2, "egress_bps": 0, "viewers": 0, "streams_rev": 1,
        "streams": [{"name": "show", "publishing": "primary"}]});
    let (_, answer) = send(&api, &origin, late).await;
    assert_eq!(answer["streams_rev"], 2);
    assert_eq!(
        parent(&api, &relay, "show").await,
        Err(StatusCode::NOT_FOUND)
    );
    // An older node sends its whole list every time, unnumbered: it always replaces.
    let unnumbered = json!({"cpu": 0.2, "egress_bps": 0, "viewers": 0,
        "streams": [{"name": "show", "publishing": "primary"}]});
    let (_, answer) = send(&api, &origin, unnumbered).await;
    assert_eq!(answer["streams_rev"], Value::Null);
    assert_eq!(parent(&api, &relay, "show").await, Ok(origin.clone()));
    assert_eq!(
        parent(&api, &relay, "other").await,
        Err(StatusCode::NOT_FOUND)
    );
}

both!(the_answer_asks_for_the_list_again_when_the_registry_holds_another);
async fn the_answer_asks_for_the_list_again_when_the_registry_holds_another(b: Backend) {
    let Some(api) = Api::start(b, clustered()).await else {
        return;
    };
    let list = |rev: u64| {
        json!({"cpu": 0.2, "egress_bps": 0, "viewers": 0, "streams_rev": rev,
            "streams": [{"name": "show", "publishing": "primary"}]})
    };
    let first = register(&api, "origin-1", "origin", "a").await;
    let edge = register(&api, "edge-1", "edge", "a").await;
    assert_eq!(report(&api, &edge, load(1)).await, StatusCode::OK);
    assert_eq!(send(&api, &first, list(1)).await.1["streams_rev"], 1);
    assert_eq!(parent(&api, &edge, "show").await, Ok(first.clone()));

    // The node registers again (a new id, its row made again): its next report of the
    // load alone is answered "none held", and placement does not count its old list.
    let origin = register(&api, "origin-1", "origin", "a").await;
    assert_ne!(origin, first);
    let (s, answer) = send(&api, &origin, load(1)).await;
    assert_eq!((s, &answer["streams_rev"]), (StatusCode::OK, &Value::Null));
    assert_eq!(
        parent(&api, &edge, "show").await,
        Err(StatusCode::NOT_FOUND)
    );
    // It sends the list with the next report; held from then on.
    assert_eq!(send(&api, &origin, list(1)).await.1["streams_rev"], 1);
    assert_eq!(send(&api, &origin, load(1)).await.1["streams_rev"], 1);
    assert_eq!(parent(&api, &edge, "show").await, Ok(origin.clone()));

    // The database restored from before the list (its row gone): asked again.
    sqlx::query("DELETE FROM cluster_node_streams")
        .execute(api.cp.db().pool())
        .await
        .unwrap();
    assert_eq!(
        send(&api, &origin, load(1)).await.1["streams_rev"],
        Value::Null
    );
    assert_eq!(send(&api, &origin, list(1)).await.1["streams_rev"], 1);
    assert_eq!(parent(&api, &edge, "show").await, Ok(origin.clone()));
    // ... or from an older list: the answer names the older number.
    sqlx::query("UPDATE cluster_node_streams SET rev = 0")
        .execute(api.cp.db().pool())
        .await
        .unwrap();
    assert_eq!(send(&api, &origin, load(1)).await.1["streams_rev"], 0);
    assert_eq!(send(&api, &origin, list(1)).await.1["streams_rev"], 1);
}

both!(a_thousand_stream_node_reporting_its_load_writes_and_parses_no_list);
/// An edge of a large platform carries streams by the thousand (a name and a parent each,
/// about 90 KB of list): the list is taken whole, and then only a new one is written, and
/// a replica parses it once, however often its view is loaded.
async fn a_thousand_stream_node_reporting_its_load_writes_and_parses_no_list(b: Backend) {
    let Some(api) = Api::start(b, clustered()).await else {
        return;
    };
    let origin = register(&api, "origin-a", "origin", "a").await;
    let edge = register(&api, "edge-a", "edge", "a").await;
    // Another edge, idle: a viewer goes to the edge carrying the stream.
    let idle = register(&api, "edge-b", "edge", "b").await;
    assert_eq!(report(&api, &idle, load(1)).await, StatusCode::OK);
    let name = |i: usize| format!("a-channel-named-{i:05}");
    let published: Vec<Value> = (0..1000)
        .map(|i| json!({"name": name(i), "publishing": "primary"}))
        .collect();
    let pulled: Vec<Value> = (0..1000)
        .map(|i| json!({"name": name(i), "publishing": null, "parent": origin}))
        .collect();
    let full = |streams: &Vec<Value>| {
        json!({"cpu": 0.2, "egress_bps": 0, "viewers": 0, "streams_rev": 1,
            "streams": streams})
    };
    assert_eq!(
        send(&api, &origin, full(&published)).await.1["streams_rev"],
        1
    );
    assert_eq!(send(&api, &edge, full(&pulled)).await.1["streams_rev"], 1);
    assert_eq!(listed(&api, &edge).await["alive"], true);
    assert_eq!(counter(&api, WRITTEN), 2);
    let version = || async {
        let (v,): (i64,) =
            sqlx::query_as("SELECT version FROM cluster_node_streams WHERE node_id = $1")
                .bind(&edge)
                .fetch_one(api.cp.db().pool())
                .await
                .unwrap();
        v
    };
    let stored = version().await;
    assert_eq!(place(&api, &name(0)).await, Ok(edge.clone()));
    assert_eq!(counter(&api, PARSED), 2);

    // Every second: the load alone. The view is loaded at every question (no reuse in
    // these tests) and finds the same lists.
    for i in 1..6 {
        for id in [&origin, &edge] {
            assert_eq!(send(&api, id, load(1)).await.1["streams_rev"], 1);
        }
        assert_eq!(place(&api, &name(i * 100)).await, Ok(edge.clone()));
    }
    assert_eq!((counter(&api, WRITTEN), counter(&api, PARSED)), (2, 2));
    assert_eq!(version().await, stored, "the list's row was not rewritten");
    // Another replica on the same database parses each once too, and answers the same.
    let config = Config {
        secret_key: Some(api.secret.clone()),
        ..clustered()
    };
    let other = Api::on(&api.url, config).await;
    for id in [&origin, &edge] {
        assert_eq!(
            send(&other, id, load(1)).await.1["streams_rev"],
            1,
            "alive again"
        );
    }
    assert_eq!(report(&other, &idle, load(1)).await, StatusCode::OK);
    for i in 0..3 {
        assert_eq!(place(&other, &name(i)).await, Ok(edge.clone()));
    }
    assert_eq!(counter(&other, PARSED), 2);
    // A changed list (one stream gone) is written and parsed once more.
    let fewer = json!({"cpu": 0.2, "egress_bps": 0, "viewers": 0, "streams_rev": 2,
        "streams": pulled[1..]});
    assert_eq!(send(&api, &edge, fewer).await.1["streams_rev"], 2);
    assert_eq!(counter(&api, WRITTEN), 3);
    let e = listed(&api, &edge).await;
    assert_eq!(e["stats"]["streams"].as_array().unwrap().len(), 999);
    assert_eq!(counter(&api, PARSED), 3);
}
