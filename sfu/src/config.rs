//! Node configuration: a `Clone + Default` builder validated in [`NodeConfig::validate`].

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// How a media node runs.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Media workers (threads, each with its own UDP port). 0 means one per core.
    pub workers: usize,
    /// Address the UDP sockets bind to.
    pub bind_ip: IpAddr,
    /// First UDP port; worker `i` uses `udp_port + i`. 0 picks free ports.
    pub udp_port: u16,
    /// First ICE-TCP port (RFC 6544 passive candidates); worker `i` uses `tcp_port + i`.
    /// `Some(0)` picks free ports; `None` offers no TCP.
    pub tcp_port: Option<u16>,
    /// ICE-TCP connections open at once per worker; more are closed when accepted.
    pub max_tcp_connections: usize,
    /// Address announced in ICE candidates (defaults to `bind_ip`).
    pub public_ip: Option<IpAddr>,
    /// Most sessions (publishers and viewers) the node accepts.
    pub max_sessions: usize,
    /// A session that has not connected after this long is closed.
    pub handshake_timeout: Duration,
    /// Sessions only publishers may use [default: max(1, 5 % of `max_sessions`)].
    pub publisher_reserve: Option<usize>,
    /// Viewer handshakes in progress node-wide [default: half of `max_sessions`, at
    /// least 10].
    pub max_pending: Option<usize>,
    /// Viewer handshakes in progress on one stream.
    pub max_pending_per_stream: usize,
    /// Viewer sessions from one client address (IPv6: /64); 0 for no cap.
    pub max_per_address: usize,
    /// Viewer handshakes in progress from one client address; 0 for no cap.
    pub max_pending_per_address: usize,
    /// At most one keyframe request per publisher layer in this window.
    pub keyframe_throttle: Duration,
    /// Packets kept per outgoing video stream for retransmission.
    pub rtx_cache_packets: usize,
    /// Viewers' send-side bandwidth estimation, starting at this many bits per second:
    /// each viewer's layer follows its estimate. `None`: no estimation, a viewer gets the
    /// layer it asks for whatever its path carries.
    pub viewer_bwe: Option<u64>,
    /// The CPU and egress the node may use before viewers give way (`budget.rs`).
    pub budget: crate::budget::BudgetConfig,
    /// Transcode single-layer VP8 publishes into lower layers on demand (`process/`).
    pub ladder: bool,
    /// A watermark blended into a corner of each transcoded rung (`process/watermark.rs`).
    pub ladder_watermark: Option<std::sync::Arc<crate::process::Watermark>>,
    /// Publishers' audio levelled to a loudness target (`level/`), or left as sent.
    pub level_audio: Option<crate::level::LevelConfig>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            workers: 0,
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            udp_port: 0,
            tcp_port: Some(0),
            max_tcp_connections: 1000,
            public_ip: None,
            max_sessions: 10_000,
            handshake_timeout: Duration::from_secs(10),
            publisher_reserve: None,
            max_pending: None,
            max_pending_per_stream: 200,
            // Generous: many viewers can share one address behind a carrier's NAT.
            max_per_address: 100,
            max_pending_per_address: 10,
            keyframe_throttle: Duration::from_millis(100),
            rtx_cache_packets: 1024,
            // Enough for a 720p top layer: a viewer joins on the top layer, as without
            // estimation, and steps down within a second if its path carries less.
            viewer_bwe: Some(3_000_000),
            budget: crate::budget::BudgetConfig::default(),
            ladder: false,
            ladder_watermark: None,
            level_audio: None,
        }
    }
}

impl NodeConfig {
    /// Worker count after resolving 0 to the number of cores.
    pub fn worker_count(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
        .min(64)
    }

    /// The admission limits, defaults resolved.
    pub fn limits(&self) -> crate::directory::Limits {
        let max = self.max_sessions;
        // A one-session node keeps nothing back, or no viewer could ever join it.
        let reserve = self
            .publisher_reserve
            .unwrap_or((max / 20).max(1))
            .min(max.saturating_sub(1));
        crate::directory::Limits {
            max_sessions: max,
            publisher_reserve: reserve,
            // Half, but a small node still lets a handful of viewers join at once.
            max_pending: self.max_pending.unwrap_or((max / 2).max(max.min(10))),
            max_pending_per_stream: self.max_pending_per_stream,
            max_per_address: self.max_per_address,
            max_pending_per_address: self.max_pending_per_address,
        }
    }

    /// The address put in ICE candidates.
    pub fn announced_ip(&self) -> IpAddr {
        match (self.public_ip, self.bind_ip) {
            (Some(ip), _) => ip,
            (None, ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            (None, ip) => ip,
        }
    }

    /// Checks the values that cannot work.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_sessions == 0 {
            return Err("max_sessions must be at least 1".into());
        }
        if self.udp_port != 0 && usize::from(self.udp_port) + self.worker_count() > 65_536 {
            return Err("udp_port range runs past 65535".into());
        }
        if let Some(p) = self.tcp_port.filter(|p| *p != 0) {
            if usize::from(p) + self.worker_count() > 65_536 {
                return Err("tcp_port range runs past 65535".into());
            }
        }
        if self.tcp_port.is_some() && self.max_tcp_connections == 0 {
            return Err("max_tcp_connections must be at least 1 (or turn TCP off)".into());
        }
        if let Some(l) = self.level_audio {
            if !(-40.0..=-5.0).contains(&l.target_lufs) {
                return Err("the audio level target must be from -40 to -5 LUFS".into());
            }
        }
        if self.public_ip.is_some_and(|ip| ip.is_unspecified()) {
            return Err("public_ip must be a concrete address".into());
        }
        Ok(())
    }
}
