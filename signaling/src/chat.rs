//! The `chat` data channel of WHIP and WHEP sessions, handed to a [`ChatBridge`] (the
//! control plane's chat, installed in `src/` with [`crate::AppState::with_chat`]).
//!
//! At a POST with a bridge installed, the session is opened with a hook (`sfu::chat`);
//! when the peer opens its `chat` channel the hook, on the media worker, spawns the
//! channel's pump and the bridge's `attach` on the HTTP runtime: neither runs on a media
//! thread. Without a bridge, a `chat` channel is still negotiated; what is sent on it is
//! dropped (and counted).

use std::net::IpAddr;
use std::sync::Arc;

use sfu::{ChatChannel, ChatHook};
use tokio::sync::mpsc;

/// One `chat` data channel of a WHIP/WHEP session.
#[derive(Debug)]
pub struct ChatPeer {
    /// The stream (channel slug) of the session.
    pub stream: String,
    /// Text the peer sends, in order; ends when the channel or session closes.
    pub incoming: mpsc::Receiver<String>,
    /// Text to write to the peer; sending fails once the channel is gone.
    pub outgoing: mpsc::Sender<Arc<str>>,
    /// The peer's address as the HTTP front saw it.
    pub ip: IpAddr,
}

/// Where chat data channels go (the control plane's chat, wired in `src/`).
pub trait ChatBridge: Send + Sync + 'static {
    /// Takes over a newly opened channel (spawns what it needs; must not block).
    fn attach(&self, peer: ChatPeer);
}

/// The hook for a session on `stream` opened for `ip`: hands its `chat` channel to
/// `bridge` on the current (HTTP) runtime. `None` outside a runtime.
pub(crate) fn hook(bridge: Arc<dyn ChatBridge>, stream: &str, ip: IpAddr) -> Option<ChatHook> {
    let rt = tokio::runtime::Handle::try_current().ok()?;
    let stream = stream.to_owned();
    Some(Box::new(move |ch: ChatChannel| {
        let peer = ChatPeer {
            stream: stream.clone(),
            incoming: ch.incoming,
            outgoing: ch.outgoing,
            ip,
        };
        rt.spawn(ch.pump.run());
        let bridge = bridge.clone();
        // `attach` spawns its tasks: on this runtime, not the media worker's.
        rt.spawn(async move { bridge.attach(peer) });
    }))
}

#[cfg(test)]
mod tests {
    //! The WHIP/WHEP handlers with an echo bridge installed, a str0m peer on loopback UDP.

    use super::*;
    use std::net::{SocketAddr, UdpSocket};
    use std::time::{Duration, Instant};

    use axum::body::Bytes;
    use axum::extract::{ConnectInfo, Path, Query, State};
    use axum::http::{header, HeaderMap, HeaderValue};
    use str0m::change::SdpAnswer;
    use str0m::channel::ChannelId;
    use str0m::media::{Direction, MediaKind};
    use str0m::net::{Protocol, Receive};
    use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};

    use crate::resource::{whep_post, whip_post, StartLayer};
    use crate::AppState;

    /// Answers `echo: <line>`; tells the test what it was attached with, and on which
    /// thread.
    struct Echo(std::sync::mpsc::Sender<(String, IpAddr, String)>);

    impl ChatBridge for Echo {
        fn attach(&self, mut peer: ChatPeer) {
            let thread = std::thread::current().name().unwrap_or("").to_owned();
            let _ = self.0.send((peer.stream.clone(), peer.ip, thread));
            tokio::spawn(async move {
                while let Some(line) = peer.incoming.recv().await {
                    let _ = peer.outgoing.send(format!("echo: {line}").into()).await;
                }
            });
        }
    }

    struct Peer {
        rtc: Rtc,
        socket: UdpSocket,
        timeout: Instant,
        chat: ChannelId,
        open: bool,
        got: Vec<String>,
    }

    impl Peer {
        fn new(dir: Direction) -> (Peer, String, str0m::change::SdpPendingOffer) {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            socket.set_nonblocking(true).unwrap();
            let mut rtc = RtcConfig::new().build(Instant::now());
            let c = Candidate::host(socket.local_addr().unwrap(), Protocol::Udp).unwrap();
            rtc.add_local_candidate(c);
            let mut api = rtc.sdp_api();
            api.add_media(MediaKind::Video, dir, None, None, None);
            let chat = api.add_channel("chat".into());
            let (offer, pending) = api.apply().unwrap();
            let p = Peer {
                rtc,
                socket,
                timeout: Instant::now(),
                chat,
                open: false,
                got: Vec::new(),
            };
            (p, offer.to_sdp_string(), pending)
        }

        fn drain(&mut self) {
            loop {
                match self.rtc.poll_output().unwrap() {
                    Output::Timeout(t) => return self.timeout = t,
                    Output::Transmit(t) => {
                        let _ = self.socket.send_to(&t.contents, t.destination);
                    }
                    Output::Event(Event::ChannelOpen(id, _)) if id == self.chat => self.open = true,
                    Output::Event(Event::ChannelData(d)) => {
                        self.got.push(String::from_utf8_lossy(&d.data).into_owned())
                    }
                    Output::Event(_) => {}
                }
            }
        }

        async fn until(&mut self, what: &str, done: impl Fn(&Peer) -> bool) {
            let end = Instant::now() + Duration::from_secs(10);
            let local = self.socket.local_addr().unwrap();
            while !done(self) {
                assert!(Instant::now() < end, "timed out waiting for {what}");
                let mut buf = [0u8; 2048];
                while let Ok((n, from)) = self.socket.recv_from(&mut buf) {
                    if let Ok(r) = Receive::new(Protocol::Udp, from, local, &buf[..n]) {
                        let _ = self.rtc.handle_input(Input::Receive(Instant::now(), r));
                        self.drain();
                    }
                }
                if self.timeout <= Instant::now() {
                    let _ = self.rtc.handle_input(Input::Timeout(Instant::now()));
                    self.drain();
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn whip_and_whep_chat_channels_reach_the_bridge_off_the_media_threads() {
        let config = sfu::NodeConfig {
            workers: 1,
            tcp_port: None,
            ..Default::default()
        };
        let node = sfu::Node::start(config, sfu::Metrics::new()).unwrap();
        let (tx, attached) = std::sync::mpsc::channel();
        let bridge: Arc<dyn ChatBridge> = Arc::new(Echo(tx));
        let st = AppState::new(node.clone(), Arc::new(crate::auth::Open), Vec::new())
            .with_chat(Some(bridge));
        let from: SocketAddr = "127.0.0.7:40000".parse().unwrap();
        for dir in [Direction::SendOnly, Direction::RecvOnly] {
            let (mut p, offer, pending) = Peer::new(dir);
            let mut h = HeaderMap::new();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/sdp"),
            );
            let args = (
                State(st.clone()),
                ConnectInfo(from),
                Path("room-1".to_owned()),
                Query(StartLayer::default()),
                h,
                Bytes::from(offer),
            );
            let resp = match dir {
                Direction::SendOnly => {
                    whip_post(args.0, args.1, args.2, args.3, args.4, args.5).await
                }
                _ => whep_post(args.0, args.1, args.2, args.3, args.4, args.5).await,
            }
            .unwrap();
            assert_eq!(resp.status(), 201);
            let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
                .await
                .unwrap();
            let answer = SdpAnswer::from_sdp_string(std::str::from_utf8(&body).unwrap()).unwrap();
            p.rtc.sdp_api().accept_answer(pending, answer).unwrap();
            p.drain();
            p.until("the channel open", |p| p.open).await;
            let chat = p.chat;
            let mut ch = p.rtc.channel(chat).unwrap();
            assert!(ch.write(false, b"hi").unwrap());
            p.drain();
            p.until("the echo", |p| !p.got.is_empty()).await;
            assert_eq!(p.got, ["echo: hi"], "{dir:?}");
            let (stream, ip, thread) = attached.try_recv().expect("attached once");
            assert_eq!((stream.as_str(), ip), ("room-1", from.ip()));
            assert!(
                !thread.starts_with("cascade-media"),
                "attach ran on {thread}"
            );
        }
        node.shutdown().await;
    }
}
