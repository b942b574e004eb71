//! A cluster of node identities in a temporary directory, and helpers for the tests.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use edge_relay::net::{ChildEvent, NetConfig, ParentEvent, RelayEndpoint, SubscribeRequest};
use edge_relay::tls::{self, NodeIdentity};
use edge_relay::wire::{LayerInfo, TrackInfo, TrackKind};
use edge_relay::{Layer, LayerSet};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// A cluster CA and the nodes it issued, in a directory removed on drop.
pub struct Cluster {
    dir: PathBuf,
}

impl Cluster {
    pub fn new() -> Cluster {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "cascade-relay-it-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        tls::init_cluster(&dir.join("ca")).unwrap();
        Cluster { dir }
    }

    pub fn node(&self, name: &str) -> NodeIdentity {
        let out = self.dir.join(name);
        tls::issue_node(&self.dir.join("ca"), name, &out).unwrap();
        NodeIdentity::load(&out).unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

pub fn bind(
    id: &NodeIdentity,
    cfg: NetConfig,
) -> (RelayEndpoint, mpsc::Receiver<SubscribeRequest>) {
    RelayEndpoint::bind(any_port(), id, cfg).unwrap()
}

pub fn layers(ls: &[Layer]) -> LayerSet {
    ls.iter().fold(LayerSet::EMPTY, |s, l| s.with(*l))
}

pub fn l1() -> Layer {
    Layer::video(1).unwrap()
}

pub fn tracks() -> Vec<TrackInfo> {
    vec![TrackInfo {
        kind: TrackKind::Video,
        codec: 1,
        payload_type: 96,
        clock_rate: 90_000,
        layers: (0..2)
            .map(|i| LayerInfo {
                layer: Layer::video(i).unwrap(),
                ssrc: 1000 + i as u32,
                bitrate_bps: 300_000,
            })
            .collect(),
    }]
}

/// An RTP packet of `len` bytes with sequence number `seq`.
pub fn rtp(seq: u16, len: usize) -> Bytes {
    let mut p = vec![0u8; len.max(12)];
    p[0] = 0x80;
    p[1] = 96;
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in p[12..].iter_mut().enumerate() {
        *b = i as u8;
    }
    Bytes::from(p)
}

pub const WAIT: Duration = Duration::from_secs(5);

pub async fn next<T>(rx: &mut mpsc::Receiver<T>) -> T {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("timed out waiting")
        .expect("channel closed")
}

/// The next child event that is not media.
pub async fn next_control(rx: &mut mpsc::Receiver<ChildEvent>) -> ChildEvent {
    loop {
        match next(rx).await {
            ChildEvent::Media { .. } => continue,
            e => return e,
        }
    }
}

/// The next parent event.
pub async fn next_parent(rx: &mut mpsc::Receiver<ParentEvent>) -> ParentEvent {
    next(rx).await
}

/// A UDP forwarder from a local port to `target`, for one client; aborting the task (and so
/// dropping its sockets) makes the target vanish as a killed process would, without a word.
pub async fn proxy(target: SocketAddr) -> (SocketAddr, JoinHandle<()>) {
    let front = UdpSocket::bind(any_port()).await.unwrap();
    let back = UdpSocket::bind(any_port()).await.unwrap();
    back.connect(target).await.unwrap();
    let addr = front.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut client = None;
        let (mut a, mut b) = (vec![0u8; 65536], vec![0u8; 65536]);
        loop {
            tokio::select! {
                r = front.recv_from(&mut a) => {
                    let Ok((n, from)) = r else { return };
                    client = Some(from);
                    let _ = back.send(&a[..n]).await;
                }
                r = back.recv(&mut b) => {
                    let Ok(n) = r else { return };
                    if let Some(c) = client {
                        let _ = front.send_to(&b[..n], c).await;
                    }
                }
            }
        }
    });
    (addr, task)
}
