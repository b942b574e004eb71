//! The control plane's cost of a media node's stats report, and of a replica's view load,
//! with 1,000 streams a node: a node sending its whole list at every report (an older
//! node; what every report cost before lists were numbered) against a node sending its
//! load alone while the control plane holds its list.
//!
//! Per report: the time to the answer over loopback HTTP (median of 200) and the bytes it
//! wrote to the database's write-ahead log (mean of 200; SQLite: the WAL file's size after
//! the report, truncated before each; PostgreSQL: the WAL position's advance, on a server
//! others may write to meanwhile). Per view load (20 nodes of 1,000 streams, the
//! view loaded at every question): the time of a viewer's placement after every node sent
//! its list again, against after none did (median of 30).
//!
//! `cargo bench -p control-plane --bench cluster_stats` (on SQLite, and on PostgreSQL when
//! `CASCADE_TEST_POSTGRES` names a server).

mod common;

use std::time::{Duration, Instant};

use control_plane::cluster::{ClusterToken, Tuning};
use control_plane::db::Backend;
use control_plane::{Config, ControlPlane};
use serde_json::{json, Value};

const TOKEN: &str = "cluster-secret-for-the-bench";
const STREAMS: usize = 1000;
const NODES: usize = 20;
const REPORTS: usize = 200;
const LOADS: usize = 30;

struct Bench {
    cp: ControlPlane,
    sqlite: Option<std::path::PathBuf>,
    base: String,
    http: reqwest::Client,
}

impl Bench {
    async fn call(&self, method: reqwest::Method, path: &str, body: &Value) -> Value {
        let r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .json(body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap()
    }

    async fn register(&self, name: &str, role: &str) -> String {
        let body = json!({"name": name, "role": role, "zone": "a",
            "http_url": format!("http://{name}.test"), "relay_addr": format!("{name}.test:4433"),
            "capacity": 1_000_000});
        let r = self
            .call(reqwest::Method::POST, "/cluster/nodes", &body)
            .await;
        r["id"].as_str().unwrap().to_owned()
    }

    async fn report(&self, id: &str, body: &Value) -> Value {
        let path = format!("/cluster/nodes/{id}/stats");
        self.call(reqwest::Method::PUT, &path, body).await
    }

    /// Where the write-ahead log is now (bytes), the SQLite one emptied first.
    async fn wal_mark(&self) -> i64 {
        let pool = self.cp.db().pool();
        match &self.sqlite {
            Some(_) => {
                sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(pool)
                    .await
                    .unwrap();
                0
            }
            None => {
                let (at,): (i64,) =
                    sqlx::query_as("SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint")
                        .fetch_one(pool)
                        .await
                        .unwrap();
                at
            }
        }
    }

    /// The bytes written to the write-ahead log since `mark`.
    async fn wal_since(&self, mark: i64) -> i64 {
        match &self.sqlite {
            Some(db) => {
                let wal = db.with_extension("db-wal");
                std::fs::metadata(wal).map_or(0, |m| m.len() as i64)
            }
            None => self.wal_mark().await - mark,
        }
    }
}

fn median<T: Ord + Copy>(mut v: Vec<T>) -> T {
    v.sort();
    v[v.len() / 2]
}

fn list(origin: &str, node: usize) -> Vec<Value> {
    (0..STREAMS)
        .map(|i| {
            json!({"name": format!("a-channel-named-{node:02}-{i:05}"), "publishing": null,
                "parent": origin})
        })
        .collect()
}

/// Median time and mean WAL bytes of `REPORTS` reports of `body` by node `id`, its CPU
/// figure changing as a node's does (a JSON of another length: SQLite rewrites a row of
/// the same length in place, only its changed pages).
async fn reports(b: &Bench, id: &str, body: &Value) -> (Duration, i64) {
    let mut times = Vec::new();
    let mut bytes = Vec::new();
    let mut body = body.clone();
    for i in 0..REPORTS {
        body["cpu"] = json!((i % 97) as f64 / 97.0);
        let mark = b.wal_mark().await;
        let t = Instant::now();
        b.report(id, &body).await;
        times.push(t.elapsed());
        bytes.push(b.wal_since(mark).await);
    }
    (median(times), bytes.iter().sum::<i64>() / REPORTS as i64)
}

/// Median time of a placement that loads the view, after `between` ran before each.
async fn view_loads<F: std::future::Future<Output = ()>>(
    b: &Bench,
    between: impl Fn() -> F,
) -> Duration {
    let mut times = Vec::new();
    for _ in 0..LOADS {
        between().await;
        let t = Instant::now();
        b.cp.place("a-channel-named-00-00007").await.unwrap();
        times.push(t.elapsed());
    }
    median(times)
}

async fn run(backend: Backend, name: &str) {
    let config = Config {
        cluster: true,
        cluster_token: Some(ClusterToken::new(TOKEN)),
        cluster_tuning: Tuning {
            node_timeout_ms: 3_600_000,
            view_ttl_ms: 0,
            ..Tuning::default()
        },
        ..Config::default()
    };
    let Some((cp, sqlite)) = common::open(backend, "cluster", config).await else {
        eprintln!("SKIPPED (PostgreSQL): CASCADE_TEST_POSTGRES is not set");
        return;
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/api/v1", listener.local_addr().unwrap());
    let app = cp.router();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let b = Bench {
        cp,
        sqlite,
        base,
        http: reqwest::Client::new(),
    };
    let origin = b.register("origin", "origin").await;
    let mut edges = Vec::new();
    for n in 0..NODES {
        let id = b.register(&format!("edge-{n:02}"), "edge").await;
        let full = json!({"cpu": 0.2, "egress_bps": 1, "viewers": 3, "streams": list(&origin, n)});
        b.report(&id, &full).await;
        edges.push((id, full));
    }
    let origin_list: Vec<Value> = (0..NODES)
        .flat_map(|n| list(&origin, n))
        .take(STREAMS)
        .map(|mut s| {
            s["publishing"] = json!("primary");
            s["parent"] = Value::Null;
            s
        })
        .collect();
    b.report(
        &origin,
        &json!({"cpu": 0.1, "egress_bps": 1, "viewers": 0, "streams": origin_list}),
    )
    .await;
    let (id, full) = &edges[0];
    let body_len = serde_json::to_vec(full).unwrap().len();
    let (t_full, w_full) = reports(&b, id, full).await;
    println!(
        "{name}: a report with the whole list ({body_len} B): {:.2} ms, {w_full} B of WAL",
        t_full.as_secs_f64() * 1e3,
    );
    let numbered = json!({"cpu": 0.2, "egress_bps": 1, "viewers": 3, "streams_rev": 1,
        "streams": full["streams"]});
    // A control plane that numbers no list (before they were) takes only whole lists.
    if b.report(id, &numbered).await["streams_rev"] == 1 {
        let load = json!({"cpu": 0.2, "egress_bps": 1, "viewers": 3, "streams_rev": 1});
        let load_len = serde_json::to_vec(&load).unwrap().len();
        let (t_load, w_load) = reports(&b, id, &load).await;
        println!(
            "{name}: the load alone ({load_len} B): {:.2} ms, {w_load} B of WAL",
            t_load.as_secs_f64() * 1e3,
        );
    }
    let all_sent = || async {
        for (id, full) in &edges {
            b.report(id, full).await;
        }
    };
    let t_reparse = view_loads(&b, all_sent).await;
    let t_cached = view_loads(&b, || async {}).await;
    println!(
        "{name}: a view load of {NODES} nodes of {STREAMS} streams: {:.2} ms with every list \
         sent again since the last, {:.2} ms with none",
        t_reparse.as_secs_f64() * 1e3,
        t_cached.as_secs_f64() * 1e3,
    );
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(run(Backend::Sqlite, "sqlite"));
    rt.block_on(run(Backend::Postgres, "postgres"));
}
