//! A light WHEP viewer: real ICE, DTLS and SRTP in str0m's RTP mode, no decoding. It
//! counts what it receives with [`Accounting`] and notes how long it took to join.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use str0m::media::{Direction, MediaKind};
use str0m::Event;

use crate::accounting::Accounting;
use crate::client::{candidate_addrs, replace_candidate, Client, ClientError};
use crate::proxy::{Impairment, Proxy};
use crate::stamp::{Stamp, AUDIO, VP8_HEADER};

/// Where a viewer is in its life.
#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    /// Not started yet, or posting its offer.
    Joining,
    /// Receiving media; joined this long after it started.
    Watching(Duration),
    /// Gave up, and why.
    Failed(String),
}

/// A viewer's state, shared with the reporter.
#[derive(Debug)]
pub struct ViewerState {
    /// Its WHEP resource, once created (deleted when the run ends).
    pub location: Option<String>,
    /// Whether it goes through the impairment proxy.
    pub impaired: bool,
    /// Joining, watching or failed.
    pub phase: Phase,
    /// What it received.
    pub acc: Accounting,
}

/// Impairment proxies, one per server media address, made on first use.
pub type Proxies = Arc<tokio::sync::Mutex<HashMap<SocketAddr, Proxy>>>;

/// How long a viewer may take from POST to its first media packet.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(15);

/// Watches until the task is dropped (or fails).
pub async fn run(
    http: reqwest::Client,
    ip: IpAddr,
    url: String,
    token: Option<String>,
    impairment: Option<(Impairment, Proxies)>,
    epoch: Instant,
    state: Arc<Mutex<ViewerState>>,
) {
    if let Err(e) = watch(http, ip, url, token, impairment, epoch, &state).await {
        if let Ok(mut s) = state.lock() {
            s.phase = Phase::Failed(e.to_string());
        }
    }
}

async fn watch(
    http: reqwest::Client,
    ip: IpAddr,
    url: String,
    token: Option<String>,
    impairment: Option<(Impairment, Proxies)>,
    epoch: Instant,
    state: &Mutex<ViewerState>,
) -> Result<(), ClientError> {
    let started = Instant::now();
    let mut c = Client::bind(ip).await?;
    let mut api = c.rtc.sdp_api();
    api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    let (offer, pending) = api
        .apply()
        .ok_or_else(|| ClientError::Rtc("no offer".into()))?;
    let location = c
        .post(
            &http,
            &url,
            token.as_deref(),
            offer.to_sdp_string(),
            pending,
            async |sdp| {
                let Some((imp, proxies)) = &impairment else {
                    return sdp;
                };
                let mut out = sdp.clone();
                for server in candidate_addrs(&sdp) {
                    let mut map = proxies.lock().await;
                    let proxy = match map.get(&server) {
                        Some(p) => p.clone(),
                        None => match Proxy::start((server.ip(), 0).into(), server, *imp).await {
                            Ok(p) => {
                                map.insert(server, p.clone());
                                p
                            }
                            Err(_) => continue,
                        },
                    };
                    out = replace_candidate(&out, server, proxy.addr);
                }
                out
            },
        )
        .await?;
    if let Ok(mut s) = state.lock() {
        s.location = location;
    }
    let opus = c
        .rtc
        .codec_config()
        .params()
        .iter()
        .find(|p| p.spec().codec == str0m::format::Codec::Opus)
        .map(|p| p.pt());
    let mut events = Vec::new();
    let mut buf = vec![0u8; 2048];
    let mut joined = false;
    loop {
        c.drain(&mut events).await?;
        if !events.is_empty() {
            let now_us = epoch.elapsed().as_micros() as u64;
            let mut s = state
                .lock()
                .map_err(|_| ClientError::Rtc("state poisoned".into()))?;
            for e in events.drain(..) {
                let Event::RtpPacket(p) = e else { continue };
                let audio = Some(p.header.payload_type) == opus;
                let at = if audio { 0 } else { VP8_HEADER };
                let Some(stamp) = p.payload.get(at..).and_then(Stamp::read) else {
                    continue;
                };
                if audio != (stamp.stream == AUDIO) {
                    continue;
                }
                s.acc.packet(stamp, p.payload.len(), now_us);
                if !joined && !audio {
                    joined = true;
                    s.phase = Phase::Watching(started.elapsed());
                }
            }
        }
        if !joined && started.elapsed() > JOIN_TIMEOUT {
            return Err(ClientError::Rtc("no video within 15 s".into()));
        }
        tokio::select! {
            r = c.socket.recv_from(&mut buf) => {
                let (n, from) = r?;
                c.input(from, &buf[..n])?;
            }
            _ = tokio::time::sleep_until(c.timeout.into()) => c.tick()?,
        }
    }
}
