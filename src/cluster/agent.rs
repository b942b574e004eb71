//! A node's side of the control plane's registry: it registers (role, zone, addresses,
//! capacity), reports its stats every second (CPU, egress, sessions; the streams it carries
//! and from which parent when they changed or the control plane asks: [`StreamList`]) and
//! after them its audience (streams' publishers and viewers
//! here, viewer sessions: for webhooks and analytics), and asks which parents to pull a
//! stream from. Media never waits on it: a failed call is retried on the next tick, and a
//! stream keeps its parents.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use control_plane::cluster::registry::{NodeStats, StreamStat};
use control_plane::cluster::Ingest;
use serde::Deserialize;
use serde_json::json;
use sfu::budget::{CpuMeter, RateMeter};

use super::relay::ParentAddr;
use super::stream_list::StreamList;

/// How often stats go to the control plane (a node is dead after 3 s without).
pub const STATS_EVERY: Duration = Duration::from_secs(1);
/// A control plane that does not answer this fast is skipped for this tick.
const CALL_TIMEOUT: Duration = Duration::from_millis(800);

/// Takes the node's audience (streams and viewer sessions) for a report.
pub type AudienceSource = Arc<dyn Fn() -> control_plane::cluster::Audience + Send + Sync>;

/// What the node registers as.
#[derive(Debug, Clone)]
pub struct Registration {
    pub name: String,
    pub role: String,
    pub zone: String,
    pub http_url: String,
    pub relay_addr: String,
    pub capacity: u32,
}

/// The node's link to the control plane (one or several replicas' URLs: a failed call
/// moves to the next).
#[derive(Clone)]
pub struct Agent {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    urls: Vec<String>,
    token: String,
    me: Registration,
    node: sfu::Node,
    audience: AudienceSource,
    /// An audience report is on its way (the next waits for it: one at a time, and never
    /// in the way of the stats, which keep the node alive).
    reporting: AtomicBool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    id: Option<String>,
    /// The replica that answered last.
    at: usize,
    /// Parent names to registry ids, from the answers about parents.
    ids: HashMap<String, String>,
    /// Each pulled stream's parent now (name), as the relay reports it.
    parents: HashMap<String, String>,
    /// The stream list's number and whether the control plane holds it.
    list: StreamList,
}

#[derive(Deserialize)]
struct Registered {
    id: String,
}

#[derive(Deserialize)]
struct StatsReply {
    draining: bool,
    /// The standby ingests here the cluster takes their stream from now.
    #[serde(default)]
    in_charge: Vec<String>,
    /// The number of this node's stream list the control plane holds.
    #[serde(default)]
    streams_rev: Option<u64>,
}

#[derive(Deserialize)]
struct NodeRef {
    id: String,
    name: String,
    relay_addr: String,
}

#[derive(Deserialize)]
struct ParentsView {
    primary: NodeRef,
    backup: Option<NodeRef>,
}

impl Agent {
    /// Starts registering and reporting in the background.
    pub fn start(
        urls: Vec<String>,
        token: String,
        me: Registration,
        node: sfu::Node,
        audience: AudienceSource,
    ) -> Agent {
        let agent = Agent {
            inner: Arc::new(Inner {
                http: reqwest::Client::builder()
                    .timeout(CALL_TIMEOUT)
                    .build()
                    .unwrap_or_default(),
                urls: urls
                    .into_iter()
                    .map(|u| u.trim_end_matches('/').to_owned())
                    .collect(),
                token,
                me,
                node,
                audience,
                reporting: AtomicBool::new(false),
                state: Mutex::default(),
            }),
        };
        tokio::spawn(agent.clone().report());
        agent
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Calls the replicas in turn, from the last that answered, until one does.
    async fn call(
        &self,
        build: impl Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder,
    ) -> Option<reqwest::Response> {
        let n = self.inner.urls.len();
        let start = self.state().at;
        for k in 0..n {
            let i = (start + k) % n;
            let req = build(&self.inner.http, &self.inner.urls[i]).bearer_auth(&self.inner.token);
            match req.send().await {
                Ok(r) if !r.status().is_server_error() => {
                    self.state().at = i;
                    return Some(r);
                }
                Ok(r) => tracing::debug!("control plane {}: {}", self.inner.urls[i], r.status()),
                Err(e) => tracing::debug!("control plane {}: {e}", self.inner.urls[i]),
            }
        }
        None
    }

    async fn register(&self) -> Option<String> {
        let me = &self.inner.me;
        let body = json!({
            "name": me.name, "role": me.role, "zone": me.zone, "http_url": me.http_url,
            "relay_addr": me.relay_addr, "capacity": me.capacity,
        });
        let r = self
            .call(|c, u| c.post(format!("{u}/api/v1/cluster/nodes")).json(&body))
            .await?;
        if !r.status().is_success() {
            tracing::warn!(
                "the control plane refused to register this node: {}",
                r.status()
            );
            return None;
        }
        let id = r.json::<Registered>().await.ok()?.id;
        tracing::info!(id, "registered with the control plane");
        Some(id)
    }

    /// Registers, then sends stats every second; registers again when forgotten.
    async fn report(self) {
        let mut cpu = CpuMeter::default();
        let mut egress = RateMeter::default();
        egress.sample(Instant::now(), self.inner.node.metrics().bytes_out.get());
        let mut tick = tokio::time::interval(STATS_EVERY);
        loop {
            tick.tick().await;
            let id = self.state().id.clone();
            let Some(id) = id else {
                let id = self.register().await;
                let mut st = self.state();
                st.list.registered();
                st.id = id;
                continue;
            };
            let bytes = self.inner.node.metrics().bytes_out.get();
            let egress_bps = egress.sample(Instant::now(), bytes);
            let body = self.stats(cpu.sample(), egress_bps);
            let r = self
                .call(|c, u| {
                    c.put(format!("{u}/api/v1/cluster/nodes/{id}/stats"))
                        .json(&body)
                })
                .await;
            match r {
                Some(r) if r.status() == reqwest::StatusCode::NOT_FOUND => self.state().id = None,
                Some(r) if r.status().is_success() => {
                    if let Ok(reply) = r.json::<StatsReply>().await {
                        self.state().list.answered(reply.streams_rev);
                        let node = &self.inner.node;
                        node.set_draining(reply.draining);
                        // A standby whose primary is gone is recorded and given live
                        // stills here as the primary was (`Node::ingesting`).
                        for (stream, ingest) in node.carried() {
                            if ingest == sfu::directory::Ingest::Backup {
                                node.set_standby_in_charge(
                                    &stream,
                                    reply.in_charge.contains(&stream),
                                );
                            }
                        }
                    }
                    if !self.inner.reporting.swap(true, Ordering::AcqRel) {
                        let agent = self.clone();
                        tokio::spawn(async move {
                            agent.report_audience(&id).await;
                            agent.inner.reporting.store(false, Ordering::Release);
                        });
                    }
                }
                _ => {}
            }
        }
    }

    /// The node's audience, to the replica that took its stats (or the next that answers).
    async fn report_audience(&self, id: &str) {
        let body = (self.inner.audience)();
        let r = self
            .call(|c, u| {
                c.put(format!("{u}/api/v1/cluster/nodes/{id}/audience"))
                    .json(&body)
            })
            .await;
        match r {
            Some(r) if !r.status().is_success() => {
                tracing::warn!(
                    "the control plane refused this node's audience: {}",
                    r.status()
                );
            }
            _ => {}
        }
    }

    fn stats(&self, cpu: f64, egress_bps: u64) -> NodeStats {
        let node = &self.inner.node;
        let mut st = self.state();
        let streams: Vec<StreamStat> = node
            .carried()
            .into_iter()
            .map(|(name, ingest)| {
                let parent = st.parents.get(&name).and_then(|p| st.ids.get(p)).cloned();
                let publishing = match ingest {
                    sfu::directory::Ingest::Primary => Some(Ingest::Primary),
                    sfu::directory::Ingest::Backup => Some(Ingest::Backup),
                    sfu::directory::Ingest::Relayed => None,
                };
                StreamStat {
                    name,
                    publishing,
                    parent,
                    backup: None,
                }
            })
            .collect();
        let (rev, streams) = st.list.report(streams);
        NodeStats {
            cpu,
            egress_bps,
            viewers: u32::try_from(node.session_count()).unwrap_or(u32::MAX),
            pressure: node.pressure() as u8,
            streams,
            streams_rev: Some(rev),
        }
    }

    /// The parents to pull `stream` from, primary first: empty when the control plane
    /// names none (the stream is not live, say), `None` when it cannot answer now (no
    /// replica reached, a server error, this node not registered yet).
    pub async fn parents(&self, stream: &str) -> Option<Vec<ParentAddr>> {
        let id = self.state().id.clone()?;
        let r = self
            .call(|c, u| {
                c.get(format!("{u}/api/v1/cluster/parents"))
                    .query(&[("node", id.as_str()), ("stream", stream)])
            })
            .await?;
        if !r.status().is_success() {
            return Some(Vec::new());
        }
        let Ok(view) = r.json::<ParentsView>().await else {
            return Some(Vec::new());
        };
        let mut st = self.state();
        let mut out = Vec::new();
        for n in std::iter::once(view.primary).chain(view.backup) {
            if st.ids.len() > 10_000 {
                st.ids.clear();
            }
            st.ids.insert(n.name.clone(), n.id);
            if let Ok(addr) = n.relay_addr.parse() {
                out.push(ParentAddr { name: n.name, addr });
            }
        }
        Some(out)
    }

    /// The relay reports which parent a stream is pulled from now (`None`: no longer).
    pub fn set_parent(&self, stream: &str, parent: Option<&str>) {
        let mut st = self.state();
        match parent {
            Some(p) => {
                if st.parents.len() < 10_000 {
                    st.parents.insert(stream.to_owned(), p.to_owned());
                }
            }
            None => {
                st.parents.remove(stream);
            }
        }
    }
}
