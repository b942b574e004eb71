//! The node's control-path state: stream names, who publishes, who watches, and each
//! stream's status for server-sent events. Behind one mutex, touched only when sessions
//! open, connect or close, or once a second when layers change: never per packet.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;

use crate::error::SfuError;
use crate::forward::layers::EncodingInfo;
use crate::ids::{SessionId, StreamId, WorkerId};

/// Publisher or viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends media (WHIP).
    Publisher,
    /// Receives media (WHEP).
    Viewer,
}

impl Role {
    /// Label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            Role::Publisher => "publisher",
            Role::Viewer => "viewer",
        }
    }
}

/// What viewers see of a stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamStatus {
    /// A publisher is connected and sending.
    pub active: bool,
    /// Its video layers, lowest first.
    pub layers: Vec<EncodingInfo>,
    /// Viewers on this node.
    pub viewers: u32,
}

/// Where a session lives.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// The worker that owns its `Rtc`.
    pub worker: WorkerId,
    /// The stream it publishes or watches.
    pub stream: StreamId,
    /// Stream name.
    pub stream_name: String,
    /// Its role.
    pub role: Role,
}

#[derive(Debug)]
struct StreamEntry {
    id: StreamId,
    publisher: Option<SessionId>,
    viewers: u32,
    status: watch::Sender<StreamStatus>,
}

#[derive(Debug, Default)]
struct Inner {
    streams: HashMap<String, StreamEntry>,
    names: HashMap<StreamId, String>,
    sessions: HashMap<SessionId, SessionInfo>,
    next_stream: u32,
}

/// The directory of streams and sessions.
#[derive(Debug, Default)]
pub struct Directory {
    inner: Mutex<Inner>,
    max_sessions: usize,
}

impl Directory {
    /// A directory admitting at most `max_sessions` sessions.
    pub fn new(max_sessions: usize) -> Self {
        Directory {
            inner: Mutex::default(),
            max_sessions,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock is a bug elsewhere; the data stays usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a session: checks the limit and, for a publisher, that the stream is free.
    pub fn admit(
        &self,
        id: SessionId,
        name: &str,
        role: Role,
        worker: WorkerId,
    ) -> Result<StreamId, SfuError> {
        let mut g = self.lock();
        if g.sessions.len() >= self.max_sessions {
            return Err(SfuError::AtCapacity);
        }
        let inner = &mut *g;
        if !inner.streams.contains_key(name) {
            inner.next_stream += 1;
            let sid = StreamId(inner.next_stream);
            inner.names.insert(sid, name.to_owned());
            inner.streams.insert(
                name.to_owned(),
                StreamEntry {
                    id: sid,
                    publisher: None,
                    viewers: 0,
                    status: watch::channel(StreamStatus::default()).0,
                },
            );
        }
        // Invariant: inserted just above when missing.
        let entry = inner.streams.get_mut(name).expect("stream entry");
        match role {
            Role::Publisher if entry.publisher.is_some() => return Err(SfuError::StreamBusy),
            Role::Publisher => entry.publisher = Some(id),
            Role::Viewer => {
                entry.viewers += 1;
                let v = entry.viewers;
                entry.status.send_modify(|s| s.viewers = v);
            }
        }
        let stream = entry.id;
        inner.sessions.insert(
            id,
            SessionInfo {
                worker,
                stream,
                stream_name: name.to_owned(),
                role,
            },
        );
        Ok(stream)
    }

    /// Forgets a session; frees the publisher slot or lowers the viewer count.
    pub fn release(&self, id: SessionId) -> Option<SessionInfo> {
        let mut g = self.lock();
        let info = g.sessions.remove(&id)?;
        let inner = &mut *g;
        if let Some(entry) = inner.streams.get_mut(&info.stream_name) {
            match info.role {
                Role::Publisher if entry.publisher == Some(id) => {
                    entry.publisher = None;
                    entry.status.send_modify(|s| {
                        s.active = false;
                        s.layers.clear();
                    });
                }
                Role::Publisher => {}
                Role::Viewer => {
                    entry.viewers = entry.viewers.saturating_sub(1);
                    let v = entry.viewers;
                    entry.status.send_modify(|s| s.viewers = v);
                }
            }
            if entry.publisher.is_none() && entry.viewers == 0 {
                inner.names.remove(&entry.id);
                inner.streams.remove(&info.stream_name);
            }
        }
        Some(info)
    }

    /// Where a session lives.
    pub fn session(&self, id: SessionId) -> Option<SessionInfo> {
        self.lock().sessions.get(&id).cloned()
    }

    /// Marks a stream live or not.
    pub fn set_active(&self, stream: StreamId, active: bool) {
        self.update(stream, |s| s.active = active);
    }

    /// Publishes a stream's layers.
    pub fn set_layers(&self, stream: StreamId, layers: Vec<EncodingInfo>) {
        self.update(stream, |s| s.layers = layers);
    }

    fn update(&self, stream: StreamId, f: impl FnOnce(&mut StreamStatus)) {
        let g = self.lock();
        let Some(entry) = g.names.get(&stream).and_then(|n| g.streams.get(n)) else {
            return;
        };
        entry.status.send_if_modified(|s| {
            let before = s.clone();
            f(s);
            *s != before
        });
    }

    /// Follows a stream's status, if the stream exists.
    pub fn watch(&self, name: &str) -> Option<watch::Receiver<StreamStatus>> {
        self.lock().streams.get(name).map(|e| e.status.subscribe())
    }

    /// Every stream and its status, sorted by name.
    pub fn list(&self) -> Vec<(String, StreamStatus)> {
        let g = self.lock();
        let mut v: Vec<_> = g
            .streams
            .iter()
            .map(|(n, e)| (n.clone(), e.status.borrow().clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Sessions open, by role.
    pub fn session_count(&self) -> usize {
        self.lock().sessions.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_publisher_per_stream_and_limit() {
        let d = Directory::new(3);
        let w = WorkerId(0);
        let s = d.admit(SessionId(1), "a", Role::Publisher, w).unwrap();
        assert!(matches!(
            d.admit(SessionId(2), "a", Role::Publisher, w),
            Err(SfuError::StreamBusy)
        ));
        assert_eq!(d.admit(SessionId(3), "a", Role::Viewer, w).unwrap(), s);
        d.admit(SessionId(4), "b", Role::Viewer, w).unwrap();
        assert!(matches!(
            d.admit(SessionId(5), "c", Role::Viewer, w),
            Err(SfuError::AtCapacity)
        ));
        assert_eq!(d.watch("a").unwrap().borrow().viewers, 1);
        d.release(SessionId(1));
        d.admit(SessionId(6), "a", Role::Publisher, w).unwrap();
        d.release(SessionId(6));
        d.release(SessionId(3));
        assert!(d.watch("a").is_none(), "an empty stream is forgotten");
        assert_eq!(d.session_count(), 1);
    }
}
