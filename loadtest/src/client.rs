//! What the publisher and viewers share: a str0m `Rtc` on its own UDP socket (real ICE,
//! DTLS and SRTP, RTP mode), driven by a tokio task, and the WHIP/WHEP POST.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};
use tokio::net::UdpSocket;

/// Why a client could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The HTTP request failed.
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    /// The server refused the offer.
    #[error("server answered {0}: {1}")]
    Refused(u16, String),
    /// The SDP or str0m refused something.
    #[error("webrtc: {0}")]
    Rtc(String),
    /// A socket failed.
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
}

/// One WebRTC endpoint on its own socket.
pub struct Client {
    /// The WebRTC state machine.
    pub rtc: Rtc,
    /// Its socket.
    pub socket: UdpSocket,
    local: SocketAddr,
    /// When str0m next wants a timeout.
    pub timeout: Instant,
}

impl Client {
    /// A fresh RTP-mode `Rtc` with a host candidate on a new socket on `ip`.
    pub async fn bind(ip: IpAddr) -> Result<Client, ClientError> {
        let socket = UdpSocket::bind((ip, 0)).await?;
        // Room for a second of a high layer while a busy generator thread catches up.
        let _ = socket2::SockRef::from(&socket).set_recv_buffer_size(1 << 20);
        let local = socket.local_addr()?;
        // OpenSSL's DTLS, as the node's: servers whose certificate is RSA (GStreamer's,
        // and anything on OpenSSL defaults) take the DTLS client role and must be accepted.
        let mut rtc = RtcConfig::new()
            .set_crypto_provider(sfu::dtls::provider())
            .set_rtp_mode(true)
            .build(Instant::now());
        let c =
            Candidate::host(local, Protocol::Udp).map_err(|e| ClientError::Rtc(e.to_string()))?;
        rtc.add_local_candidate(c);
        Ok(Client {
            rtc,
            socket,
            local,
            timeout: Instant::now(),
        })
    }

    /// Sends what str0m has queued and collects its events, until it asks for a timeout.
    pub async fn drain(&mut self, events: &mut Vec<Event>) -> Result<(), ClientError> {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.timeout = t;
                    return Ok(());
                }
                Ok(Output::Transmit(t)) => {
                    let _ = self.socket.send_to(&t.contents, t.destination).await;
                }
                Ok(Output::Event(e)) => events.push(e),
                Err(e) => return Err(ClientError::Rtc(e.to_string())),
            }
        }
    }

    /// Feeds a datagram from `from`.
    pub fn input(&mut self, from: SocketAddr, data: &[u8]) -> Result<(), ClientError> {
        if let Ok(r) = Receive::new(Protocol::Udp, from, self.local, data) {
            self.rtc
                .handle_input(Input::Receive(Instant::now(), r))
                .map_err(|e| ClientError::Rtc(e.to_string()))?;
        }
        Ok(())
    }

    /// Runs str0m's timers if due.
    pub fn tick(&mut self) -> Result<(), ClientError> {
        let now = Instant::now();
        if self.timeout <= now {
            self.rtc
                .handle_input(Input::Timeout(now))
                .map_err(|e| ClientError::Rtc(e.to_string()))?;
        }
        Ok(())
    }

    /// POSTs `offer` to `url`; on success applies the answer (after `rewrite`, which may
    /// point the server's candidates elsewhere). Returns the resource's location, made
    /// absolute against `url` (servers send it relative or absolute, with or without a
    /// leading slash).
    pub async fn post(
        &mut self,
        http: &reqwest::Client,
        url: &str,
        bearer: Option<&str>,
        offer: String,
        pending: SdpPendingOffer,
        rewrite: impl AsyncFnOnce(String) -> String,
    ) -> Result<Option<String>, ClientError> {
        let mut req = http
            .post(url)
            .header("content-type", "application/sdp")
            .body(offer);
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .and_then(|l| resp.url().join(l).ok())
            .map(String::from);
        let text = resp.text().await?;
        // WHIP and WHEP say 201; some servers answer 200 with the same body.
        if !(200..300).contains(&status) {
            return Err(ClientError::Refused(
                status,
                text.chars().take(200).collect(),
            ));
        }
        let text = rewrite(text).await;
        let answer =
            SdpAnswer::from_sdp_string(&text).map_err(|e| ClientError::Rtc(e.to_string()))?;
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| ClientError::Rtc(e.to_string()))?;
        Ok(location)
    }
}

/// The local address this machine would use to reach `url`'s host: what a client binds
/// and announces, so that a server elsewhere can reach it (loopback for a local server).
pub async fn local_ip_towards(url: &str) -> Result<IpAddr, ClientError> {
    let bad = |why: &str| ClientError::Rtc(format!("{url}: {why}"));
    let url = reqwest::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    let host = url.host_str().ok_or_else(|| bad("no host"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = url.port_or_known_default().unwrap_or(80);
    let addr = tokio::net::lookup_host((host, port))
        .await?
        .next()
        .ok_or_else(|| bad("host not found"))?;
    // Connecting a UDP socket sends nothing; it asks the kernel for the route.
    let probe = std::net::UdpSocket::bind(match addr {
        SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
    })?;
    probe.connect(addr)?;
    Ok(probe.local_addr()?.ip())
}

/// The `ip port` of the UDP candidates in an SDP answer (the load generator speaks UDP
/// alone: a node's ICE-TCP candidate is left as it is).
pub fn candidate_addrs(sdp: &str) -> Vec<SocketAddr> {
    sdp.lines()
        .filter(|l| l.starts_with("a=candidate:"))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if !f.get(2)?.eq_ignore_ascii_case("udp") {
                return None;
            }
            let ip = f.get(4)?.parse().ok()?;
            let port = f.get(5)?.parse().ok()?;
            Some(SocketAddr::new(ip, port))
        })
        .collect()
}

/// Replaces candidate address `from` with `to` in an SDP.
pub fn replace_candidate(sdp: &str, from: SocketAddr, to: SocketAddr) -> String {
    sdp.lines()
        .map(|l| {
            if l.starts_with("a=candidate:") {
                l.replace(
                    &format!(" {} {} ", from.ip(), from.port()),
                    &format!(" {} {} ", to.ip(), to.port()),
                )
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n")
        + "\r\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_replaces_candidates() {
        let sdp = "v=0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\na=candidate:2 1 tcp 1526726655 127.0.0.1 40100 typ host tcptype passive\r\na=mid:0\r\n";
        let from: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        assert_eq!(candidate_addrs(sdp), vec![from]);
        let to: SocketAddr = "127.0.0.1:5555".parse().unwrap();
        let out = replace_candidate(sdp, from, to);
        assert_eq!(candidate_addrs(&out), vec![to]);
        assert!(out.contains("a=mid:0"));
    }
}
