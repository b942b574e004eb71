//! `GET /api/v1/channels/{slug}/chat/ws`: the live room over a WebSocket, for clients
//! without a session's data channel. Only moves text between the socket and
//! [`super::conn::serve`]; no cookie is read (the access token comes in `hello`), so
//! another site's page gains nothing by opening one.

use std::sync::Arc;

use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use super::conn::{self, MAX_FRAME};
use crate::error::{ApiResult, Problem};
use crate::extract::Path;
use crate::ControlPlane;

/// Frames queued towards one client before the room's own queue holds the rest.
const OUT_QUEUE: usize = 256;

/// Open the room's live connection (a WebSocket; see docs/CHAT.md for its frames).
#[utoipa::path(get, path = "/api/v1/channels/{slug}/chat/ws", tag = "chat", params(("slug" = String, Path)),
    responses((status = 101, description = "switching to the WebSocket protocol"), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn upgrade(
    State(cp): State<ControlPlane>,
    Path(slug): Path<String>,
    ws: WebSocketUpgrade,
) -> ApiResult<Response> {
    // The room must exist; who may read it is decided after `hello`.
    cp.chat().rooms.get(&cp, &slug).await?;
    Ok(ws
        .max_message_size(MAX_FRAME)
        .max_frame_size(MAX_FRAME)
        .on_upgrade(move |socket| run(cp, slug, socket)))
}

async fn run(cp: ControlPlane, slug: String, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let (in_tx, in_rx) = mpsc::channel::<String>(32);
    let (out_tx, mut out_rx) = mpsc::channel::<Arc<str>>(OUT_QUEUE);
    let reader = async move {
        while let Some(Ok(msg)) = stream.next().await {
            let text = match msg {
                WsMessage::Text(t) => t.as_str().to_owned(),
                // The refusal is the client's `bad_frame` error, as on the data channel.
                WsMessage::Binary(_) => r#"{"type":"binary"}"#.to_owned(),
                WsMessage::Close(_) => break,
                WsMessage::Ping(_) | WsMessage::Pong(_) => continue,
            };
            if in_tx.send(text).await.is_err() {
                break;
            }
        }
    };
    let writer = async move {
        while let Some(text) = out_rx.recv().await {
            if sink
                .send(WsMessage::Text(text.as_ref().into()))
                .await
                .is_err()
            {
                break;
            }
        }
        let _ = sink.close().await;
    };
    // Each ends the next: the socket closes → the reader drops its queue → serve returns
    // → its sender drops → the writer closes the socket (and the other way round).
    tokio::join!(reader, conn::serve(cp, slug, in_rx, out_tx), writer);
}
