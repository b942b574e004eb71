//! The WHIP/WHEP resources this front created: each session's current ETag (ICE restarts
//! bump it) and the revocation tags its [`Grant`](crate::auth::Grant) bound it to, so that
//! revoking a key, a channel or a user ends the sessions opened with them.
//!
//! Bounded by the node's sessions: entries leave on DELETE, on revocation, and in a
//! periodic sweep of sessions that ended on their own (ICE timeout, peer gone).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use sfu::{Node, Role, SessionId};

#[derive(Debug)]
struct Entry {
    role: Role,
    generation: u32,
    tags: Vec<String>,
    /// Who watches, when the grant named them.
    viewer: Option<String>,
}

/// Sessions opened through this front.
#[derive(Debug, Default, Clone)]
pub struct Sessions(Arc<Mutex<HashMap<SessionId, Entry>>>);

impl Sessions {
    fn lock(&self) -> MutexGuard<'_, HashMap<SessionId, Entry>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new session at its first ETag generation.
    pub(crate) fn insert(&self, id: SessionId, role: Role, grant: crate::Grant) {
        self.lock().insert(
            id,
            Entry {
                role,
                generation: 1,
                tags: grant.tags,
                viewer: grant.viewer,
            },
        );
    }

    /// Who watches in session `id`, when its grant named them.
    pub fn viewer(&self, id: SessionId) -> Option<String> {
        self.lock().get(&id).and_then(|e| e.viewer.clone())
    }

    /// The session's current ETag generation.
    pub(crate) fn generation(&self, id: SessionId) -> Option<u32> {
        self.lock().get(&id).map(|e| e.generation)
    }

    /// Moves the session to its next ETag generation (after an ICE restart).
    pub(crate) fn bump(&self, id: SessionId) -> u32 {
        let mut map = self.lock();
        match map.get_mut(&id) {
            Some(e) => {
                e.generation += 1;
                e.generation
            }
            None => 1,
        }
    }

    pub(crate) fn remove(&self, id: SessionId) {
        self.lock().remove(&id);
    }

    /// Drops entries of sessions that ended on their own.
    pub(crate) fn prune(&self, node: &Node) {
        self.lock()
            .retain(|id, e| node.session_stream(*id, e.role).is_some());
    }

    /// Ends every session bound to `tag`; returns how many.
    pub async fn revoke(&self, node: &Node, tag: &str) -> usize {
        let ended: Vec<(SessionId, Role)> = {
            let mut map = self.lock();
            let ids: Vec<SessionId> = map
                .iter()
                .filter(|(_, e)| e.tags.iter().any(|t| t == tag))
                .map(|(id, _)| *id)
                .collect();
            ids.into_iter()
                .filter_map(|id| map.remove(&id).map(|e| (id, e.role)))
                .collect()
        };
        for (id, role) in &ended {
            // Already gone on its own is fine: it is ended either way.
            let _ = node.close(*id, *role).await;
        }
        if !ended.is_empty() {
            tracing::info!(sessions = ended.len(), "ended sessions after a revocation");
        }
        ended.len()
    }
}
