//! `GET /api/v1/channels/{slug}/chat/ws`: the live room over a WebSocket, for clients
//! without a session's data channel. Only moves text between the socket and
//! [`super::conn::serve`]; no cookie is read (the access token comes in `hello`), so
//! another site's page gains nothing by opening one.

use axum::extract::ws::{Message as WsMessage, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use super::conn::{self, Outbox, MAX_FRAME, SEND_TIMEOUT};
use super::hub::Text;
use super::rules::{Code, Refusal};
use crate::error::{ApiResult, Problem};
use crate::extract::{ClientIp, Path};
use crate::ControlPlane;

/// The WebSocket's read buffer (see `upgrade`).
const READ_BUFFER: usize = 4096;

/// Open the room's live connection (a WebSocket; see docs/CHAT.md for its frames).
#[utoipa::path(get, path = "/api/v1/channels/{slug}/chat/ws", tag = "chat", params(("slug" = String, Path)),
    responses((status = 101, description = "switching to the WebSocket protocol"), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn upgrade(
    State(cp): State<ControlPlane>,
    ClientIp(ip): ClientIp,
    Path(slug): Path<String>,
    ws: WebSocketUpgrade,
) -> ApiResult<Response> {
    // The room must exist; who may read it is decided after `hello`.
    cp.chat().rooms.get(&cp, &slug).await?;
    let seat = super::seat(&cp, ip, cp.config().chat_per_address).ok_or(Refusal {
        code: Code::Flood,
        detail: "too many chat connections from your address".into(),
        retry_after: Some(10),
    })?;
    Ok(ws
        // Every poll of the reading half zeroes a read buffer of this size (tungstenite
        // resizes it each time), and a write wakes the reader too: at 128 KiB, the
        // default, that was a third of a busy node's CPU. Frames in are at most 8 KiB.
        .read_buffer_size(READ_BUFFER)
        .max_message_size(MAX_FRAME)
        .max_frame_size(MAX_FRAME)
        .on_upgrade(move |socket| async move {
            run(cp, slug, socket).await;
            drop(seat);
        }))
}

/// The socket's sending half, written by the client's own task.
struct Socket(SplitSink<WebSocket, WsMessage>);

impl Outbox for Socket {
    async fn send(&mut self, text: &Text) -> Result<(), ()> {
        // The frame's bytes are shared, not copied; they are UTF-8 already.
        let text = Utf8Bytes::try_from(text.bytes.clone()).map_err(|_| ())?;
        match tokio::time::timeout(SEND_TIMEOUT, self.0.send(WsMessage::Text(text))).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(()),
        }
    }
}

async fn run(cp: ControlPlane, slug: String, socket: WebSocket) {
    let (sink, mut stream) = socket.split();
    let (in_tx, in_rx) = mpsc::channel::<String>(32);
    let reader = async move {
        while let Some(Ok(msg)) = stream.next().await {
            let text = match msg {
                WsMessage::Text(t) => t.as_str().to_owned(),
                // The refusal is the client's `bad_frame` error.
                WsMessage::Binary(_) => r#"{"type":"binary"}"#.to_owned(),
                WsMessage::Close(_) => break,
                WsMessage::Ping(_) | WsMessage::Pong(_) => continue,
            };
            if in_tx.send(text).await.is_err() {
                break;
            }
        }
    };
    // The socket closing ends the reader, which drops its queue, which ends serve; serve
    // ending (a bad hello, a client that stops reading) drops the sink and the reader is
    // cut short with it.
    tokio::select! {
        () = conn::serve(cp, slug, in_rx, Socket(sink)) => {},
        () = reader => {},
    }
}
