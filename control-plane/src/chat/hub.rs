//! This process's fan-out: per room, one broadcast queue that every connected client of
//! the room reads. Frames are serialized once and shared.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

/// Frames a room's queue holds for a slow client before it lags (it then catches up from
/// the database).
pub(crate) const ROOM_QUEUE: usize = 1024;

/// A text frame, made once and shared by every client it goes to: as `Arc<str>` for a
/// data channel, as `Bytes` over the same allocation for a WebSocket.
#[derive(Debug, Clone)]
pub struct Text {
    /// The text.
    pub str: Arc<str>,
    /// The same text as bytes (no copy).
    pub bytes: bytes::Bytes,
}

struct Owner(Arc<str>);

impl AsRef<[u8]> for Owner {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl From<String> for Text {
    fn from(s: String) -> Text {
        Text::from(Arc::<str>::from(s))
    }
}

impl From<Arc<str>> for Text {
    fn from(s: Arc<str>) -> Text {
        Text {
            bytes: bytes::Bytes::from_owner(Owner(s.clone())),
            str: s,
        }
    }
}

/// One event, as every client receives it.
#[derive(Debug)]
pub(crate) struct Frame {
    /// The message id, when it is a new message.
    pub id: Option<i64>,
    /// The JSON text sent to clients.
    pub json: Text,
}

/// The rooms with clients in this process.
#[derive(Debug, Default)]
pub(crate) struct Hub {
    rooms: Mutex<HashMap<String, broadcast::Sender<Arc<Frame>>>>,
}

impl Hub {
    /// A receiver of the room's frames from now on.
    pub(crate) fn subscribe(&self, room: &str) -> broadcast::Receiver<Arc<Frame>> {
        let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = rooms.get(room) {
            return tx.subscribe();
        }
        // Rooms whose last client left are forgotten as new ones come.
        rooms.retain(|_, tx| tx.receiver_count() > 0);
        let (tx, rx) = broadcast::channel(ROOM_QUEUE);
        rooms.insert(room.to_owned(), tx);
        rx
    }

    /// Hands a frame to the room's clients here (none: nothing to do).
    pub(crate) fn deliver(&self, room: &str, frame: Arc<Frame>) {
        let rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = rooms.get(room) {
            let _ = tx.send(frame);
        }
    }

    /// Clients connected here, over all rooms.
    pub(crate) fn clients(&self) -> usize {
        let rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        rooms.values().map(broadcast::Sender::receiver_count).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_reach_the_rooms_clients_only() {
        let hub = Hub::default();
        let mut a = hub.subscribe("a");
        let mut a2 = hub.subscribe("a");
        let mut b = hub.subscribe("b");
        let f = Arc::new(Frame {
            id: Some(1),
            json: String::from("{}").into(),
        });
        hub.deliver("a", f);
        hub.deliver(
            "nobody",
            Arc::new(Frame {
                id: None,
                json: String::from("{}").into(),
            }),
        );
        assert_eq!(a.recv().await.unwrap().id, Some(1));
        assert_eq!(a2.recv().await.unwrap().id, Some(1));
        assert!(b.try_recv().is_err());
        assert_eq!(hub.clients(), 3);
        drop((a, a2));
        let _c = hub.subscribe("c");
        assert_eq!(hub.rooms.lock().unwrap().len(), 2, "room a was forgotten");
    }
}
