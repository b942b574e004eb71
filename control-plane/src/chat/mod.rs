//! Live chat and the room every interaction shares (`docs/CHAT.md`): posting with its
//! checks, the record in the database, moderation, and delivery to every client of a
//! room on every process (the hub here, the bus between processes), over a WebSocket or
//! a session's data channel (both run [`conn::serve`]).
//!
//! Moderation, polls, surveys and questions change the record through the REST API and
//! announce the change with [`Chat::publish`]; clients never wait on one another.

pub mod bus;
pub mod conn;
pub mod event;
pub mod http;
pub mod hub;
pub mod moderation;
pub(crate) mod room;
pub mod rules;
pub(crate) mod store;
pub mod ws;

use std::sync::Arc;

pub use bus::BusError;
pub use event::{Event, Message, Settings};
pub use room::RoomRole;
pub use rules::{Code, Refusal};

use crate::db::now_ms;
use crate::error::ApiResult;
use crate::extract::Caller;
use crate::ControlPlane;
use event::Mode;
use hub::{Frame, Hub};
use room::{Room, Rooms};

/// The chat side of a control plane: rooms, hub and bus.
#[derive(Debug)]
pub struct Chat {
    hub: Arc<Hub>,
    bus: bus::Bus,
    pub(crate) rooms: Rooms,
    writer: store::Writer,
    /// Open WebSockets per client address.
    sockets: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
}

/// A WebSocket's place in its address's count; given back when dropped.
pub(crate) struct Seat {
    cp: ControlPlane,
    ip: std::net::IpAddr,
}

impl Drop for Seat {
    fn drop(&mut self) {
        let mut m = self
            .cp
            .chat()
            .sockets
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// A seat for one more WebSocket from `ip`, unless it has `cap` open already (0: no cap).
pub(crate) fn seat(cp: &ControlPlane, ip: std::net::IpAddr, cap: usize) -> Option<Seat> {
    let mut m = cp.chat().sockets.lock().unwrap_or_else(|e| e.into_inner());
    let n = m.entry(ip).or_insert(0);
    if cap > 0 && *n >= cap {
        return None;
    }
    *n += 1;
    Some(Seat { cp: cp.clone(), ip })
}

impl Chat {
    /// The chat of one process (`nats`: the NATS server that joins several).
    pub async fn connect(nats: Option<&str>) -> Result<Chat, BusError> {
        let hub = Arc::new(Hub::default());
        let bus = bus::Bus::connect(nats, &hub).await?;
        Ok(Chat {
            hub,
            bus,
            rooms: Rooms::default(),
            writer: store::Writer::default(),
            sockets: Default::default(),
        })
    }

    /// Sends an event to every client of the room (the channel id) everywhere.
    pub(crate) async fn publish(&self, room: &str, event: &Event) {
        match serde_json::to_string(event) {
            Ok(json) => {
                let frame = Arc::new(Frame {
                    id: event.message_id(),
                    json: json.into(),
                });
                self.bus.publish(&self.hub, room, frame).await;
            }
            Err(e) => tracing::error!("chat event not serialized: {e}"),
        }
    }

    /// Clients connected to this process.
    pub fn clients(&self) -> usize {
        self.hub.clients()
    }
}

/// Posts a message as `caller` in the room of channel `slug`: every check of
/// `docs/CHAT.md`, then stored and published.
pub(crate) async fn post(
    cp: &ControlPlane,
    room: &Room,
    caller: &Caller,
    raw: &str,
    reply_to: Option<i64>,
) -> ApiResult<Message> {
    let user = &caller.0;
    let role = room.role_of(Some(user));
    if let Some(r) = room::restriction(cp, room, user, false).await? {
        if !role.moderates() {
            return Err(r.into());
        }
    }
    match room.settings.mode {
        Mode::Moderators if !role.moderates() => {
            return Err(Refusal::new(Code::ModeratorsOnly, "only moderators may post now").into())
        }
        Mode::Followers if !role.moderates() && !moderation::follows(cp, room, user).await? => {
            return Err(Refusal::new(
                Code::FollowersOnly,
                "only followers of this channel may post now",
            )
            .into())
        }
        _ => {}
    }
    let text = rules::text(raw)?;
    let now = now_ms();
    let earlier = store::recent(cp, room.id(), &user.id).await?;
    rules::pace(
        now,
        &text,
        &earlier,
        room.settings.slow_mode_secs,
        role.moderates(),
    )?;
    let text = room.terms.apply(&text)?;
    if let Some(to) = reply_to {
        if store::one(cp, room.id(), to).await?.is_none() {
            return Err(Refusal::new(Code::NotFound, "no such message to reply to").into());
        }
    }
    let mentions = rules::mentions(&text);
    let new = store::NewMessage {
        user_id: user.id.clone(),
        text: text.clone(),
        reply_to,
        mentions: mentions.clone(),
        at: now,
    };
    let id = cp.chat().writer.insert(cp, room.id(), new).await?;
    cp.analytics().metrics.chat_message();
    let message = Message {
        id,
        user: event::Author {
            username: user.username.clone(),
            display_name: user.display_name.clone(),
        },
        text,
        reply_to,
        mentions,
        created_at: now,
    };
    cp.chat()
        .publish(
            room.id(),
            &Event::Message {
                message: message.clone(),
            },
        )
        .await;
    Ok(message)
}
