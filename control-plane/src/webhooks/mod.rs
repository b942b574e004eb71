//! Outbound webhooks (`docs/WEBHOOKS.md`): channel owners (and admins, for every channel)
//! register endpoints; events are signed per Standard Webhooks and delivered with
//! retries for a day.
//!
//! The split: a pure core (`schedule` when to retry, `slots` how many in flight,
//! `streams` which stream events a node's samples make, `sign`, `event`, `target`) and a
//! thin driver (`dispatch`) over the queue in the database (`store`), so deliveries
//! survive a restart and several replicas share the work. [`Webhooks::emit`] only writes
//! rows: nothing that emits ever waits on an endpoint.

pub mod event;
pub mod http;
pub mod schedule;
pub mod sign;
pub mod slots;
pub mod streams;
pub mod target;

mod dispatch;
mod store;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use crate::db::{now_ms, Db};
use crate::keystore::SecretKey;
pub use event::{Event, EventType};
pub use schedule::RetryPolicy;
pub use streams::StreamSample;

/// How webhooks are sent.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Allow endpoints on private and loopback addresses (tests; a trusted network).
    pub allow_private: bool,
    /// The retry schedule.
    pub retry: RetryPolicy,
    /// One attempt's time limit (connect, send, answer).
    pub timeout: Duration,
    /// Deliveries in flight to one endpoint from this process.
    pub per_endpoint: usize,
    /// Deliveries in flight from this process.
    pub overall: usize,
    /// How often the queue is looked at when nothing wakes the dispatcher (other
    /// replicas' events, retries coming due).
    pub poll: Duration,
    /// How long a rotated-out secret still signs, milliseconds.
    pub rotation_overlap_ms: i64,
    /// Run a dispatcher in this process (off: only enqueue; another replica sends).
    pub dispatch: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            allow_private: false,
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(5),
            per_endpoint: 4,
            overall: 64,
            poll: Duration::from_secs(1),
            rotation_overlap_ms: 24 * 3_600_000,
            dispatch: true,
        }
    }
}

/// The webhooks of a control plane: emit events, watch streams.
pub struct Webhooks {
    db: Db,
    secret: SecretKey,
    settings: Settings,
    wake: Arc<Notify>,
    watch: Mutex<streams::StreamWatch>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Webhooks {
    /// Webhooks over `db`, secrets sealed under `secret`; starts the dispatcher (unless
    /// [`Settings::dispatch`] is off), which ends when the returned value is dropped.
    pub(crate) fn start(
        db: Db,
        secret: SecretKey,
        settings: Settings,
    ) -> Result<Arc<Webhooks>, String> {
        let client = dispatch::client(&settings)?;
        let wh = Arc::new(Webhooks {
            db,
            secret,
            settings,
            wake: Arc::new(Notify::new()),
            watch: Mutex::new(streams::StreamWatch::default()),
        });
        if wh.settings.dispatch {
            dispatch::spawn(Arc::downgrade(&wh), client);
        }
        Ok(wh)
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
    }

    pub(crate) fn secret_key(&self) -> &SecretKey {
        &self.secret
    }

    /// Queues `event` for every enabled endpoint of `channel_id` (a channel's id; `None`
    /// for an event of no channel) and every all-channels endpoint subscribed to its type.
    /// Never fails the caller: an error is logged.
    pub async fn emit(&self, channel_id: Option<&str>, event: Event) {
        match store::enqueue(&self.db, channel_id, &event, now_ms()).await {
            Ok(0) => {}
            Ok(_) => self.wake.notify_one(),
            Err(e) => tracing::error!(kind = event.kind().as_str(), "queueing a webhook: {e}"),
        }
    }

    /// Queues `event` for one endpoint, subscribed or not (the test event).
    pub(crate) async fn emit_to(
        &self,
        endpoint_id: &str,
        event: Event,
    ) -> Result<String, sqlx::Error> {
        let id = store::enqueue_to(&self.db, endpoint_id, &event, now_ms()).await?;
        self.wake.notify_one();
        Ok(id)
    }

    /// A new delivery of an event already sent to `endpoint_id` (same `webhook-id`).
    pub(crate) async fn redeliver(
        &self,
        endpoint_id: &str,
        event_id: &str,
    ) -> Result<bool, sqlx::Error> {
        let made = store::redeliver(&self.db, endpoint_id, event_id, now_ms()).await?;
        if made {
            self.wake.notify_one();
        }
        Ok(made)
    }

    /// Replaces what the stream events are detected against (a control-plane replica
    /// taking the cluster's audience over, or giving it up).
    pub(crate) fn resume_streams(&self, watch: streams::StreamWatch) {
        *self.watch.lock().unwrap_or_else(|p| p.into_inner()) = watch;
    }

    /// Feeds what this process's node carries now (every stream with a local publisher,
    /// each call): stream started/ended and viewer milestones are emitted for the channel
    /// of the same slug. Returns the stream events of channels (channel id, event), for
    /// discovery (`ControlPlane::observe_streams`), which shares this detection.
    pub async fn observe_streams(&self, samples: &[StreamSample]) -> Vec<(String, Event)> {
        let mut told = Vec::new();
        let events = self
            .watch
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .observe(now_ms(), samples);
        for event in events {
            let stream = match &event {
                Event::StreamStarted { stream }
                | Event::StreamEnded { stream, .. }
                | Event::ViewersMilestone { stream, .. } => stream.clone(),
                _ => continue,
            };
            let channel: Result<Option<(String,)>, _> =
                sqlx::query_as("SELECT id FROM channels WHERE slug = $1")
                    .bind(&stream)
                    .fetch_optional(self.db.pool())
                    .await;
            match channel {
                Ok(Some((id,))) => {
                    self.emit(Some(&id), event.clone()).await;
                    told.push((id, event));
                }
                // A stream of no channel (an open node): all-channels endpoints only.
                Ok(None) => self.emit(None, event).await,
                Err(e) => tracing::error!("looking up a stream's channel: {e}"),
            }
        }
        told
    }
}
