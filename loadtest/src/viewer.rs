//! A light WHEP viewer: real ICE, DTLS and SRTP in str0m's RTP mode, no decoding. It
//! counts what it receives with [`Accounting`] and notes how long it took to join.
//!
//! It accepts a server's packets the way a browser does (RFC 8843 §9.2): by the `mid`
//! header extension when the answer negotiated it, by the SSRCs its `a=ssrc` lines
//! announced, and otherwise by a payload type only one of its m-lines has. str0m knows
//! the first two only, so the third is done here.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use str0m::media::{Direction, MediaKind, Mid, Pt};
use str0m::rtp::Ssrc;
use str0m::Event;

use crate::accounting::Accounting;
use crate::client::{candidate_addrs, replace_candidate, Client, ClientError};
use crate::proxy::{Impairment, Proxy};
use crate::schedule::Origin;
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
    /// The layer it asks for (`auto`: the server's choice).
    pub layer: String,
    /// Joining, watching or failed.
    pub phase: Phase,
    /// What it received.
    pub acc: Accounting,
}

/// How long a viewer may take from POST to its first media packet.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(15);

/// Watches until the task is dropped (or fails).
pub async fn run(
    http: reqwest::Client,
    ip: IpAddr,
    url: String,
    token: Option<String>,
    impairment: Option<(Impairment, Origin)>,
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
    impairment: Option<(Impairment, Origin)>,
    epoch: Instant,
    state: &Mutex<ViewerState>,
) -> Result<(), ClientError> {
    let started = Instant::now();
    let mut c = Client::bind(ip).await?;
    let mut api = c.rtc.sdp_api();
    let amid = api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    let vmid = api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    let (offer, pending) = api
        .apply()
        .ok_or_else(|| ClientError::Rtc("no offer".into()))?;
    // The viewer's proxies run as long as it watches; one that could not start fails it
    // (counted as failed, not as impaired while it is not).
    let proxies: std::sync::Mutex<(Vec<Proxy>, Option<std::io::Error>)> = Default::default();
    let location = c
        .post(
            &http,
            &url,
            token.as_deref(),
            offer.to_sdp_string(),
            pending,
            async |sdp| {
                let Some((imp, origin)) = &impairment else {
                    return sdp;
                };
                // The viewer's own path: a proxy of its own in front of each of the
                // server's addresses, so that its rate is its alone (a viewer's access
                // link), not shared with the other impaired viewers.
                let mut out = sdp.clone();
                for server in candidate_addrs(&sdp) {
                    let started =
                        Proxy::start((ip, 0).into(), server, imp.clone(), origin.clone()).await;
                    let mut held = proxies.lock().unwrap_or_else(|p| p.into_inner());
                    match started {
                        Ok(proxy) => {
                            out = replace_candidate(&out, server, proxy.addr);
                            held.0.push(proxy);
                        }
                        Err(e) => held.1 = Some(e),
                    }
                }
                out
            },
        )
        .await?;
    // Known before anything can fail: the run's end deletes the session on the server
    // whether the viewer watched or failed.
    if let Ok(mut s) = state.lock() {
        s.location = location;
    }
    let _proxies = match proxies.into_inner().unwrap_or_else(|p| p.into_inner()) {
        (_, Some(e)) => return Err(ClientError::Rtc(format!("impairment proxy: {e}"))),
        (held, None) => held,
    };
    let by_pt = unique_payload_types(&c, &[amid, vmid]);
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
                if let Some((pid, start)) = vp8_picture(&p.payload).filter(|_| !audio) {
                    s.acc.frames.packet(pid, start, p.header.marker, stamp.seq);
                }
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
                demux_by_payload_type(&mut c, &by_pt, from, &buf[..n])?;
            }
            _ = tokio::time::sleep_until(c.timeout.into()) => c.tick()?,
        }
    }
}

/// The payload types the answer gave exactly one of `mids`, and that m-line.
fn unique_payload_types(c: &Client, mids: &[Mid]) -> HashMap<Pt, Mid> {
    let mut seen: HashMap<Pt, Option<Mid>> = HashMap::new();
    for &mid in mids {
        for &pt in c.rtc.media(mid).map(|m| m.remote_pts()).unwrap_or_default() {
            // A second m-line with the same payload type makes it ambiguous.
            seen.entry(pt)
                .and_modify(|m| *m = None)
                .or_insert(Some(mid));
        }
    }
    seen.into_iter()
        .filter_map(|(pt, mid)| Some((pt, mid?)))
        .collect()
}

/// After str0m has seen `data`: if it was RTP from an SSRC str0m could not place (no
/// `mid` extension it knows, no `a=ssrc`), it was dropped before decryption; when its
/// payload type names one m-line, the SSRC is bound to that m-line and the packet fed
/// again. Servers that forward a publisher's packets as they came (GStreamer's
/// webrtcbin, for one) announce no SSRCs and carry the publisher's header extensions.
fn demux_by_payload_type(
    c: &mut Client,
    by_pt: &HashMap<Pt, Mid>,
    from: SocketAddr,
    data: &[u8],
) -> Result<(), ClientError> {
    let Some((ssrc, pt)) = rtp_ssrc_and_pt(data) else {
        return Ok(());
    };
    let Some(&mid) = by_pt.get(&pt) else {
        return Ok(());
    };
    let mut api = c.rtc.direct_api();
    if api.stream_rx(&ssrc).is_some() {
        return Ok(());
    }
    api.expect_stream_rx(ssrc, None, mid, None);
    c.input(from, data)
}

/// The SSRC and payload type of an RTP packet (not RTCP, STUN or DTLS; RFC 7983 and
/// RFC 5761 §4), read from the header SRTP leaves in the clear. SSRC 0 (bandwidth
/// probes, which str0m handles itself) is left out.
fn rtp_ssrc_and_pt(data: &[u8]) -> Option<(Ssrc, Pt)> {
    let head = data.get(..12)?;
    let pt = head[1] & 0x7f;
    if !(128..=191).contains(&head[0]) || (64..=95).contains(&pt) {
        return None;
    }
    let ssrc = u32::from_be_bytes([head[8], head[9], head[10], head[11]]);
    (ssrc != 0).then(|| (ssrc.into(), pt.into()))
}

/// The picture id of a VP8 payload (str0m's descriptor parser), and whether the packet
/// starts a frame (S set, partition 0).
fn vp8_picture(payload: &[u8]) -> Option<(u16, bool)> {
    let pid = str0m::rtp::Vp8Descriptor::parse(payload)
        .ok()?
        .picture_id()?;
    Some((pid, payload.first()? & 0x17 == 0x10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rtp_headers_only() {
        let mut rtp = vec![0x80, 0x80 | 96, 0, 1, 0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef];
        rtp.extend([0; 20]);
        assert_eq!(rtp_ssrc_and_pt(&rtp), Some((0xdead_beef.into(), 96.into())));
        // An RTCP receiver report (PT 201), a STUN request, a DTLS record, a probe.
        let mut rtcp = rtp.clone();
        rtcp[1] = 201;
        assert_eq!(rtp_ssrc_and_pt(&rtcp), None);
        let mut stun = rtp.clone();
        stun[0] = 0x00;
        assert_eq!(rtp_ssrc_and_pt(&stun), None);
        let mut dtls = rtp.clone();
        dtls[0] = 22;
        assert_eq!(rtp_ssrc_and_pt(&dtls), None);
        let mut probe = rtp.clone();
        probe[8..12].fill(0);
        assert_eq!(rtp_ssrc_and_pt(&probe), None);
        assert_eq!(rtp_ssrc_and_pt(&rtp[..11]), None);
    }
}
