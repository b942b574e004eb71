//! Where sessions' `chat` data channels (`signaling::ChatBridge`) meet the control plane's
//! chat: served in this process, or relayed over a WebSocket to the remote control plane
//! of a media-only node. Either way the frames are those of `docs/CHAT.md`, unchanged.

use std::sync::Arc;

use control_plane::ControlPlane;
use futures_util::{SinkExt, StreamExt};
use signaling::{ChatBridge, ChatPeer};
use tokio_tungstenite::tungstenite::Message as Ws;

/// The control plane in this process serves the channel (`cascade serve`).
pub struct InProcess(pub ControlPlane);

impl ChatBridge for InProcess {
    fn attach(&self, peer: ChatPeer) {
        tokio::spawn(control_plane::chat::conn::serve(
            self.0.clone(),
            peer.stream,
            peer.incoming,
            peer.outgoing,
        ));
    }
}

/// A media-only node: each channel is relayed to the control plane's WebSocket.
pub struct Remote {
    /// The control plane's base URL (`http://host:port`).
    pub base: String,
}

impl ChatBridge for Remote {
    fn attach(&self, peer: ChatPeer) {
        let url = format!(
            "{}/api/v1/channels/{}/chat/ws",
            self.base
                .trim_end_matches('/')
                .replacen("http://", "ws://", 1)
                .replacen("https://", "wss://", 1),
            peer.stream
        );
        tokio::spawn(relay(url, peer));
    }
}

async fn relay(url: String, peer: ChatPeer) {
    let ChatPeer {
        mut incoming,
        outgoing,
        ..
    } = peer;
    let ws = match tokio_tungstenite::connect_async(url.as_str()).await {
        Ok((ws, _)) => ws,
        Err(e) => {
            tracing::warn!("chat relay to {url}: {e}");
            let frame = r#"{"type":"error","status":503,"code":"bad_frame","detail":"chat is unavailable now, try again"}"#;
            let _ = outgoing.send(Arc::from(frame)).await;
            return;
        }
    };
    let (mut up, mut down) = ws.split();
    let upward = async {
        while let Some(text) = incoming.recv().await {
            if up.send(Ws::text(text)).await.is_err() {
                break;
            }
        }
        let _ = up.close().await;
    };
    let downward = async {
        while let Some(Ok(msg)) = down.next().await {
            match msg {
                Ws::Text(t) if outgoing.send(Arc::from(t.as_str())).await.is_err() => break,
                Ws::Close(_) => break,
                _ => {}
            }
        }
    };
    // Either side ending ends the relay; dropping `outgoing` closes the data channel.
    tokio::select! {
        () = upward => {},
        () = downward => {},
    }
}
