//! The node's QUIC endpoint: accepts children, connects to parents.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{IdleTimeout, MtuDiscoveryConfig, TransportConfig, VarInt};
use tokio::sync::mpsc;
use tracing::{debug, info};

use super::conn::{self, Shared};
use super::{parent, Connection, NetConfig, RelayError, SubscribeRequest, MAX_OVERSIZED_IN_FLIGHT};
use crate::tls::{self, NodeIdentity, TlsError};
use crate::wire::NodeId;

/// One UDP socket serving this node's children and reaching its parents. Cloning shares it;
/// when the last clone is dropped the endpoint closes, ending every link.
#[derive(Debug, Clone)]
pub struct RelayEndpoint {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    quinn: quinn::Endpoint,
    client: quinn::ClientConfig,
    cfg: Arc<NetConfig>,
    /// Links to parents, by address: one connection per parent, each behind its own lock
    /// (held across that parent's handshake only, so a dead parent delays no other).
    parents: Mutex<HashMap<SocketAddr, ParentSlot>>,
    /// Parents whose last handshake failed, and when: a move skips them rather than wait
    /// for another handshake to time out. Bounded as `parents` is.
    unreachable: Mutex<HashMap<SocketAddr, Instant>>,
    /// Open links from children, by quinn's connection id.
    children: Arc<Mutex<HashMap<usize, Connection>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.quinn.close(VarInt::from_u32(0), b"node shutting down");
    }
}

/// The round-trip time assumed before one is measured.
const INITIAL_RTT: std::time::Duration = std::time::Duration::from_millis(100);

fn transport(cfg: &NetConfig) -> Arc<TransportConfig> {
    let mut t = TransportConfig::default();
    t.keep_alive_interval(Some(cfg.keep_alive));
    // Nodes of a cluster are near each other: quinn's default first guess (333 ms) makes
    // a handshake with a dead parent last 3 probe timeouts, about 3 s, before it fails.
    t.initial_rtt(INITIAL_RTT);
    // An idle timeout past QUIC's bound falls back to quinn's default (30 s): say so in logs.
    match IdleTimeout::try_from(cfg.idle_timeout) {
        Ok(idle) => {
            t.max_idle_timeout(Some(idle));
        }
        Err(_) => info!(idle = ?cfg.idle_timeout, "idle timeout out of range; using quinn's"),
    }
    t.max_concurrent_bidi_streams(VarInt::from_u32(cfg.max_subscriptions));
    t.max_concurrent_uni_streams(VarInt::from_u32(MAX_OVERSIZED_IN_FLIGHT as u32));
    t.datagram_receive_buffer_size(Some(1 << 20));
    // Small: quinn drops the oldest datagram of its buffer whatever its class; ours decides.
    t.datagram_send_buffer_size(64 * 1024);
    t.initial_mtu(cfg.initial_mtu);
    if cfg.mtu_discovery {
        t.mtu_discovery_config(Some(MtuDiscoveryConfig::default()));
    } else {
        t.mtu_discovery_config(None);
    }
    Arc::new(t)
}

impl RelayEndpoint {
    /// Binds `addr` (port 0 for any) as node `identity`. Incoming subscriptions arrive on the
    /// returned receiver; when it is full or dropped they are refused as `Full`. Call from
    /// within a tokio runtime.
    pub fn bind(
        addr: SocketAddr,
        identity: &NodeIdentity,
        cfg: NetConfig,
    ) -> Result<(RelayEndpoint, mpsc::Receiver<SubscribeRequest>), RelayError> {
        let tp = transport(&cfg);
        let crypto = QuicServerConfig::try_from(identity.server_config()?)
            .map_err(|e| TlsError::BadCertificate(e.to_string()))?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        server.transport_config(tp.clone());
        let crypto = QuicClientConfig::try_from(identity.client_config()?)
            .map_err(|e| TlsError::BadCertificate(e.to_string()))?;
        let mut client = quinn::ClientConfig::new(Arc::new(crypto));
        client.transport_config(tp);

        let quinn = quinn::Endpoint::server(server, addr).map_err(RelayError::Bind)?;
        let (tx, rx) = mpsc::channel(cfg.pending_requests.max(1));
        let cfg = Arc::new(cfg);
        let children = Arc::new(Mutex::new(HashMap::new()));
        tokio::spawn(accept_loop(
            quinn.clone(),
            cfg.clone(),
            identity.id,
            tx,
            children.clone(),
        ));
        let inner = Inner {
            quinn,
            client,
            cfg,
            parents: Default::default(),
            unreachable: Default::default(),
            children,
        };
        Ok((
            RelayEndpoint {
                inner: Arc::new(inner),
            },
            rx,
        ))
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.quinn.local_addr()
    }

    /// The link to the parent at `parent` named `parent_name` (its certificate must say so):
    /// the open one if there is one, else a new one. Fails if the handshake does (the parent
    /// is unreachable, or not of this cluster).
    pub async fn connect(
        &self,
        parent: SocketAddr,
        parent_name: &str,
    ) -> Result<Connection, RelayError> {
        let slot = {
            let mut parents = self.inner.parents.lock().unwrap_or_else(|e| e.into_inner());
            // Bounded by the parents this node was ever given; closed ones are forgotten.
            parents.retain(|_, s| {
                s.try_lock()
                    .map_or(true, |c| c.as_ref().is_some_and(|c| !c.is_closed()))
            });
            parents.entry(parent).or_default().clone()
        };
        // Held across the handshake: two callers for one parent share one connection.
        let mut slot = slot.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let connecting = self.inner.quinn.connect_with(
            self.inner.client.clone(),
            parent,
            &tls::dns_name(parent_name),
        )?;
        let quinn = match connecting.await {
            Ok(q) => {
                self.unreachable_map().remove(&parent);
                q
            }
            Err(e) => {
                self.unreachable_map().insert(parent, Instant::now());
                return Err(e.into());
            }
        };
        let shared = Shared::new(quinn, parent_name.to_owned(), self.inner.cfg.clone());
        conn::spawn_receiver(shared.clone());
        let c = Connection { shared };
        *slot = Some(c.clone());
        info!(parent = parent_name, %parent, "connected to parent");
        Ok(c)
    }

    /// When the last handshake with `parent` failed, if it did and none has succeeded
    /// since.
    pub fn unreachable_since(&self, parent: SocketAddr) -> Option<Instant> {
        self.unreachable_map().get(&parent).copied()
    }

    fn unreachable_map(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Instant>> {
        self.inner
            .unreachable
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The open links from children, for metrics.
    pub fn children(&self) -> Vec<Connection> {
        let mut children = self
            .inner
            .children
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        children.retain(|_, c| !c.is_closed());
        children.values().cloned().collect()
    }

    /// Closes every link now (as dropping the last clone does).
    pub fn close(&self) {
        self.inner
            .quinn
            .close(VarInt::from_u32(0), b"node shutting down");
    }
}

/// One parent's connection, made under its own lock.
type ParentSlot = Arc<tokio::sync::Mutex<Option<Connection>>>;

async fn accept_loop(
    endpoint: quinn::Endpoint,
    cfg: Arc<NetConfig>,
    node: NodeId,
    requests: mpsc::Sender<SubscribeRequest>,
    children: Arc<Mutex<HashMap<usize, Connection>>>,
) {
    while let Some(incoming) = endpoint.accept().await {
        let (cfg, requests, children) = (cfg.clone(), requests.clone(), children.clone());
        // Each handshake on its own: a slow or refused one holds up no other.
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            let quinn = match incoming.await {
                Ok(c) => c,
                Err(e) => {
                    info!(%remote, %e, "relay handshake refused");
                    return;
                }
            };
            let Some(peer) = peer_name(&quinn) else {
                info!(%remote, "relay peer without a readable certificate name");
                quinn.close(VarInt::from_u32(0), b"no node name");
                return;
            };
            debug!(%remote, peer, "child connected");
            let shared = Shared::new(quinn, peer, cfg);
            let id = shared.quinn.stable_id();
            conn::spawn_sender(shared.clone());
            children.lock().unwrap_or_else(|e| e.into_inner()).insert(
                id,
                Connection {
                    shared: shared.clone(),
                },
            );
            while let Ok((send, recv)) = shared.quinn.accept_bi().await {
                parent::spawn(shared.clone(), node, send, recv, requests.clone());
            }
            children
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
        });
    }
}

/// The node name in the peer's certificate (verified against the CA by then).
fn peer_name(c: &quinn::Connection) -> Option<String> {
    let certs = c
        .peer_identity()?
        .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
        .ok()?;
    let (name, _) = tls::cert_name(certs.first()?).ok()?;
    Some(name)
}
