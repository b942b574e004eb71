//! One live client of a room, whatever carries it (a WebSocket, a session's data channel):
//! text frames in, text frames out, as `docs/CHAT.md` says. The transport hands over a
//! bounded queue of what the client sends and an [`Outbox`] for what it receives (written
//! straight to the socket: no task in between), and [`serve`] runs until either side ends.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use super::event::{Author, Message, Settings};
use super::hub::{Frame, Text};
use super::room::{self, Room, RoomRole};
use super::rules::{Code, Refusal};
use super::{http, store};
use crate::extract::{caller, Caller};
use crate::interact::polls::{self, Poll};
use crate::{ControlPlane, Error};

/// Largest frame a client may send.
pub const MAX_FRAME: usize = 8 * 1024;
/// The client must say `hello` within this.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// A client that takes no frame for this long is dropped.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Most events folded into one `batch` frame.
pub const MAX_BATCH: usize = 64;

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientFrame {
    Hello {
        token: Option<String>,
        since: Option<i64>,
    },
    Auth {
        token: String,
    },
    Send {
        text: String,
        reply_to: Option<i64>,
        nonce: Option<String>,
    },
    Ping,
}

#[derive(Debug, Serialize)]
struct RefusalView {
    code: Code,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after: Option<u64>,
}

// Built, serialized and dropped at once: the size of one variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Reply<'a> {
    Welcome {
        user: Option<Author>,
        role: RoomRole,
        settings: Settings,
        pinned: Option<Message>,
        polls: Vec<Poll>,
        restriction: Option<RefusalView>,
    },
    History {
        messages: &'a [Message],
        truncated: bool,
    },
    Ack {
        nonce: Option<&'a str>,
        id: i64,
    },
    Error {
        nonce: Option<&'a str>,
        status: u16,
        code: Code,
        detail: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after: Option<u64>,
    },
    Pong,
}

/// The refusal a request error becomes on a live connection.
fn refusal_of(e: Error) -> Refusal {
    match e {
        Error::Refused(r) => r,
        Error::NotFound | Error::Missing(_) => Refusal::new(Code::NotFound, e.to_string()),
        Error::Unauthorized(d) => Refusal::new(Code::Unauthorized, d),
        Error::Forbidden(d) => Refusal::new(Code::Forbidden, d),
        Error::Db(_) | Error::Internal(_) => {
            tracing::error!("chat request failed: {e}");
            Refusal::new(Code::BadFrame, "internal error, try again")
        }
        other => Refusal::new(Code::BadFrame, other.to_string()),
    }
}

/// Where a client's frames go.
pub trait Outbox: Send {
    /// Sends one text frame; an error (or a client that takes nothing for
    /// [`SEND_TIMEOUT`]) ends the client.
    fn send(&mut self, text: &Text) -> impl std::future::Future<Output = Result<(), ()>> + Send;
}

/// A data channel (or anything fed by a queue).
impl Outbox for mpsc::Sender<Arc<str>> {
    async fn send(&mut self, text: &Text) -> Result<(), ()> {
        match tokio::time::timeout(SEND_TIMEOUT, mpsc::Sender::send(self, text.str.clone())).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(()),
        }
    }
}

struct Client<O> {
    cp: ControlPlane,
    slug: String,
    out: O,
    caller: Option<Caller>,
    /// Messages up to this id were sent as history: live copies of them are skipped.
    history_upto: i64,
    /// The newest message id sent (where a resync after lagging starts).
    last_id: i64,
}

impl<O: Outbox> Client<O> {
    async fn send(&mut self, reply: &Reply<'_>) -> Result<(), ()> {
        let json = serde_json::to_string(reply).map_err(|_| ())?;
        self.out.send(&Text::from(json)).await
    }

    async fn refuse(&mut self, nonce: Option<&str>, r: Refusal) -> Result<(), ()> {
        self.send(&Reply::Error {
            nonce,
            status: r.code.status(),
            code: r.code,
            detail: r.detail,
            retry_after: r.retry_after,
        })
        .await
    }

    /// Signs in with an access token (none: anonymous); a bad one is said and ignored.
    async fn authenticate(&mut self, token: Option<&str>) -> Result<(), ()> {
        self.caller = None;
        if let Some(t) = token {
            match caller(&self.cp, t).await {
                Ok(c) => self.caller = Some(c),
                Err(e) => self.refuse(None, refusal_of(e)).await?,
            }
        }
        Ok(())
    }

    async fn welcome(&mut self, room: &Room) -> Result<(), ()> {
        let user = self.caller.as_ref().map(|c| &c.0);
        let restriction = match user {
            Some(u) => room::restriction(&self.cp, room, u, false)
                .await
                .ok()
                .flatten(),
            None => None,
        };
        let pinned = http::pinned(&self.cp, room).await.ok().flatten();
        let open = polls::open(&self.cp, room.id(), user)
            .await
            .unwrap_or_default();
        self.send(&Reply::Welcome {
            user: user.map(|u| Author {
                username: u.username.clone(),
                display_name: u.display_name.clone(),
            }),
            role: room.role_of(user),
            settings: room.settings,
            pinned,
            polls: open,
            restriction: restriction.map(|r| RefusalView {
                code: r.code,
                detail: r.detail,
                retry_after: r.retry_after,
            }),
        })
        .await
    }

    /// Sends history after `since` (or the latest) and moves `last_id` past it.
    async fn history(&mut self, room: &str, since: Option<i64>) -> Result<(), ()> {
        let limit = if since.is_some() {
            store::MAX_HISTORY
        } else {
            store::JOIN_HISTORY
        };
        let (messages, truncated) = match store::history(&self.cp, room, since, limit).await {
            Ok(h) => h,
            Err(e) => return self.refuse(None, refusal_of(e)).await,
        };
        if let Some(m) = messages.last() {
            self.history_upto = self.history_upto.max(m.id);
            self.last_id = self.last_id.max(m.id);
        }
        self.send(&Reply::History {
            messages: &messages,
            truncated,
        })
        .await
    }

    async fn handle(&mut self, text: &str) -> Result<(), ()> {
        if text.len() > MAX_FRAME {
            return self
                .refuse(
                    None,
                    Refusal::new(Code::BadFrame, "frames are at most 8 KiB"),
                )
                .await;
        }
        let frame = match serde_json::from_str::<ClientFrame>(text) {
            Ok(f) => f,
            Err(e) => {
                return self
                    .refuse(
                        None,
                        Refusal::new(Code::BadFrame, format!("bad frame: {e}")),
                    )
                    .await
            }
        };
        match frame {
            ClientFrame::Hello { .. } => {
                self.refuse(None, Refusal::new(Code::BadFrame, "hello was said already"))
                    .await
            }
            ClientFrame::Ping => self.send(&Reply::Pong).await,
            ClientFrame::Auth { token } => {
                self.authenticate(Some(&token)).await?;
                match self.cp.chat().rooms.get(&self.cp, &self.slug).await {
                    Ok(room) => self.welcome(&room).await,
                    Err(e) => self.refuse(None, refusal_of(e)).await,
                }
            }
            ClientFrame::Send {
                text,
                reply_to,
                nonce,
            } => {
                let nonce = nonce.as_deref();
                let Some(caller) = &self.caller else {
                    let r = Refusal::new(Code::Unauthorized, "sign in to chat");
                    return self.refuse(nonce, r).await;
                };
                let result = match self.cp.chat().rooms.get(&self.cp, &self.slug).await {
                    Ok(room) => super::post(&self.cp, &room, caller, &text, reply_to).await,
                    Err(e) => Err(e),
                };
                match result {
                    Ok(m) => self.send(&Reply::Ack { nonce, id: m.id }).await,
                    Err(e) => self.refuse(nonce, refusal_of(e)).await,
                }
            }
        }
    }

    /// Forwards a frame from the room, with whatever else is already waiting, as one
    /// `batch` when there are several; messages the history had are skipped (live ones
    /// may come slightly out of order: posts are numbered, then published, concurrently).
    async fn forward(
        &mut self,
        first: Arc<Frame>,
        rx: &mut tokio::sync::broadcast::Receiver<Arc<Frame>>,
    ) -> Result<bool, ()> {
        let mut frames = Vec::new();
        let mut lagged = false;
        let mut next = Some(first);
        while let Some(f) = next.take() {
            match f.id {
                Some(id) if id <= self.history_upto => {}
                Some(id) => {
                    self.last_id = self.last_id.max(id);
                    frames.push(f);
                }
                None => frames.push(f),
            }
            if frames.len() >= MAX_BATCH {
                break;
            }
            match rx.try_recv() {
                Ok(f) => next = Some(f),
                Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => lagged = true,
                Err(_) => {}
            }
        }
        match frames.len() {
            0 => {}
            1 => self.out.send(&frames[0].json).await?,
            _ => {
                let mut batch = String::from(r#"{"type":"batch","events":["#);
                for (i, f) in frames.iter().enumerate() {
                    if i > 0 {
                        batch.push(',');
                    }
                    batch.push_str(&f.json.str);
                }
                batch.push_str("]}");
                self.out.send(&Text::from(batch)).await?;
            }
        }
        Ok(lagged)
    }
}

/// Runs one client of the room of channel `slug` until `incoming` ends, the client stops
/// reading, or the room goes away.
pub async fn serve<O: Outbox>(
    cp: ControlPlane,
    slug: String,
    mut incoming: mpsc::Receiver<String>,
    outgoing: O,
) {
    let mut client = Client {
        cp: cp.clone(),
        slug: slug.clone(),
        out: outgoing,
        caller: None,
        history_upto: 0,
        last_id: 0,
    };
    let hello = tokio::time::timeout(HELLO_TIMEOUT, incoming.recv()).await;
    let (token, since) = match hello.map(|t| t.map(|t| serde_json::from_str::<ClientFrame>(&t))) {
        Ok(Some(Ok(ClientFrame::Hello { token, since }))) => (token, since),
        Ok(None) => return,
        _ => {
            let r = Refusal::new(Code::BadFrame, "say hello first");
            let _ = client.refuse(None, r).await;
            return;
        }
    };
    if client.authenticate(token.as_deref()).await.is_err() {
        return;
    }
    let room = match room::readable(&cp, &slug, client.caller.as_ref()).await {
        Ok(r) => r,
        Err(e) => {
            let _ = client.refuse(None, refusal_of(e)).await;
            return;
        }
    };
    // Subscribed before history is read, so nothing falls between the two.
    let mut rx = cp.chat().hub.subscribe(room.id());
    if client.welcome(&room).await.is_err() {
        return;
    }
    if let Some(s) = since {
        client.history_upto = s;
        client.last_id = s;
    }
    if client.history(room.id(), since).await.is_err() {
        return;
    }
    let room_id = room.id().to_owned();
    drop(room);
    loop {
        let step = tokio::select! {
            text = incoming.recv() => match text {
                Some(t) => client.handle(&t).await.map(|()| false),
                None => return,
            },
            frame = rx.recv() => match frame {
                Ok(f) => client.forward(f, &mut rx).await,
                Err(RecvError::Lagged(_)) => Ok(true),
                Err(RecvError::Closed) => return,
            },
        };
        match step {
            Ok(false) => {}
            // Fell behind the room's queue: what it missed comes from the record.
            Ok(true) => {
                let since = Some(client.last_id);
                if client.history(&room_id, since).await.is_err() {
                    return;
                }
            }
            Err(()) => return,
        }
    }
}
