//! Delivery between processes: in process when there is one, NATS when there are
//! several (every replica and node subscribes to `cascade.chat.*`). The database is the
//! record; the bus only delivers, so a frame lost in an outage is found again by the
//! client's `since` when it reconnects.

use std::sync::Arc;

use futures_util::StreamExt;

use super::hub::{Frame, Hub};

/// The subject prefix; a room's subject is `cascade.chat.<channel id>`.
pub(crate) const SUBJECT: &str = "cascade.chat";

/// How frames leave this process.
#[derive(Debug, Clone)]
pub(crate) enum Bus {
    /// One process: straight to the hub.
    Local,
    /// Several: through NATS, which hands them back to every subscriber, this one too.
    Nats(async_nats::Client),
}

/// The bus could not be reached.
#[derive(Debug, thiserror::Error)]
#[error("chat bus: {0}")]
pub struct BusError(String);

impl Bus {
    /// Connects to NATS at `url` and feeds what arrives into `hub` (for as long as the
    /// hub lives); `None` is the in-process bus.
    pub(crate) async fn connect(url: Option<&str>, hub: &Arc<Hub>) -> Result<Bus, BusError> {
        let Some(url) = url else {
            return Ok(Bus::Local);
        };
        let client = async_nats::ConnectOptions::new()
            .name("cascade")
            .retry_on_initial_connect()
            .connect(url)
            .await
            .map_err(|e| BusError(e.to_string()))?;
        let mut sub = client
            .subscribe(format!("{SUBJECT}.*"))
            .await
            .map_err(|e| BusError(e.to_string()))?;
        let weak = Arc::downgrade(hub);
        tokio::spawn(async move {
            while let Some(msg) = sub.next().await {
                let Some(hub) = weak.upgrade() else { return };
                let Some(room) = msg
                    .subject
                    .strip_prefix(SUBJECT)
                    .and_then(|s| s.strip_prefix('.'))
                else {
                    continue;
                };
                let Ok(json) = std::str::from_utf8(&msg.payload) else {
                    continue;
                };
                hub.deliver(
                    room,
                    Arc::new(Frame {
                        id: peek_id(json),
                        json: String::from(json).into(),
                    }),
                );
            }
        });
        Ok(Bus::Nats(client))
    }

    /// Sends a frame to every client of the room on every process.
    pub(crate) async fn publish(&self, hub: &Hub, room: &str, frame: Arc<Frame>) {
        match self {
            Bus::Local => hub.deliver(room, frame),
            Bus::Nats(client) => {
                let payload = frame.json.bytes.clone();
                if let Err(e) = client.publish(format!("{SUBJECT}.{room}"), payload).await {
                    // Stored already: clients elsewhere catch up when they reconnect.
                    tracing::warn!("chat bus publish failed, delivering here only: {e}");
                    hub.deliver(room, frame);
                }
            }
        }
    }
}

/// The message id of a `message` frame.
fn peek_id(json: &str) -> Option<i64> {
    #[derive(serde::Deserialize)]
    struct Peek<'a> {
        #[serde(rename = "type", borrow)]
        kind: &'a str,
        message: Option<Id>,
    }
    #[derive(serde::Deserialize)]
    struct Id {
        id: i64,
    }
    let peek = serde_json::from_str::<Peek>(json).ok()?;
    (peek.kind == "message").then_some(peek.message?.id)
}

#[cfg(test)]
mod tests {
    #[test]
    fn peeks_the_message_id() {
        assert_eq!(
            super::peek_id(r#"{"type":"message","message":{"id":7,"text":"x"}}"#),
            Some(7)
        );
        assert_eq!(super::peek_id(r#"{"type":"deleted","ids":[7]}"#), None);
        assert_eq!(super::peek_id(r#"{"type":"pinned","message":null}"#), None);
        assert_eq!(
            super::peek_id(r#"{"type":"pinned","message":{"id":7}}"#),
            None
        );
        assert_eq!(super::peek_id("garbage"), None);
    }
}
