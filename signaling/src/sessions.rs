//! The WHIP/WHEP resources this front created: each session's current ETag (ICE restarts
//! bump it) and the revocation tags its [`Grant`](crate::auth::Grant) bound it to, so that
//! revoking a key, a channel or a user ends the sessions opened with them.
//!
//! Bounded by the node's sessions: entries leave on DELETE, on revocation, and in a
//! periodic sweep of sessions that ended on their own (ICE timeout, peer gone).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sfu::{Node, Role, SessionId};

#[derive(Debug)]
struct Entry {
    role: Role,
    generation: u32,
    tags: Vec<String>,
    /// Who watches, when the grant named them.
    viewer: Option<String>,
}

/// How long a revocation is remembered for sessions being opened: longer than any
/// opening takes (an SDP offer is answered in milliseconds).
const RECENT: Duration = Duration::from_secs(30);
/// Most revocations remembered: far more than 30 s bring (a burst must not push out the
/// one a session being opened needs), bounded all the same.
const RECENT_MAX: usize = 65_536;

#[derive(Debug, Default)]
struct Map {
    entries: HashMap<SessionId, Entry>,
    /// Revocations of the last [`RECENT`], oldest first (what expires next).
    recent: VecDeque<(Instant, String)>,
    /// Each tag of [`Map::recent`] with its latest revocation (what an opening checks)
    /// and how many of its revocations `recent` holds (it leaves with the last).
    latest: HashMap<String, (Instant, u32)>,
}

/// Sessions opened through this front.
#[derive(Debug, Default, Clone)]
pub struct Sessions(Arc<Mutex<Map>>);

impl Sessions {
    fn lock(&self) -> MutexGuard<'_, Map> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new session at its first ETag generation, granted at `decided`. Refused (false)
    /// when one of its tags was revoked since: the grant was decided before a revocation
    /// that could not yet find the session to end it (a paywall closing while a viewer's
    /// offer is answered), so the caller ends it.
    #[must_use]
    pub(crate) fn insert(
        &self,
        id: SessionId,
        role: Role,
        grant: crate::Grant,
        decided: Instant,
    ) -> bool {
        let mut map = self.lock();
        let revoked = grant
            .tags
            .iter()
            .any(|tag| map.latest.get(tag).is_some_and(|(at, _)| *at >= decided));
        if revoked {
            return false;
        }
        map.entries.insert(
            id,
            Entry {
                role,
                generation: 1,
                tags: grant.tags,
                viewer: grant.viewer,
            },
        );
        true
    }

    /// Who watches in session `id`, when its grant named them.
    pub fn viewer(&self, id: SessionId) -> Option<String> {
        self.lock().entries.get(&id).and_then(|e| e.viewer.clone())
    }

    /// The session's current ETag generation.
    pub(crate) fn generation(&self, id: SessionId) -> Option<u32> {
        self.lock().entries.get(&id).map(|e| e.generation)
    }

    /// Moves the session to its next ETag generation (after an ICE restart).
    pub(crate) fn bump(&self, id: SessionId) -> u32 {
        let mut map = self.lock();
        match map.entries.get_mut(&id) {
            Some(e) => {
                e.generation += 1;
                e.generation
            }
            None => 1,
        }
    }

    pub(crate) fn remove(&self, id: SessionId) {
        self.lock().entries.remove(&id);
    }

    /// Drops entries of sessions that ended on their own.
    pub(crate) fn prune(&self, node: &Node) {
        self.lock()
            .entries
            .retain(|id, e| node.session_stream(*id, e.role).is_some());
    }

    /// Ends every session bound to `tag`; returns how many.
    pub async fn revoke(&self, node: &Node, tag: &str) -> usize {
        let ended = self.take(tag, Instant::now());
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

impl Sessions {
    /// Removes the sessions bound to `tag`, revoked at `now`, and remembers the revocation
    /// for those being opened.
    fn take(&self, tag: &str, now: Instant) -> Vec<(SessionId, Role)> {
        let mut guard = self.lock();
        let map = &mut *guard;
        while map
            .recent
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > RECENT)
            || map.recent.len() >= RECENT_MAX
        {
            if let Some((_, old)) = map.recent.pop_front() {
                // Revoked again since, the tag stays for its latest revocation.
                if let Some((_, n)) = map.latest.get_mut(&old) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        map.latest.remove(&old);
                    }
                }
            }
        }
        map.recent.push_back((now, tag.to_owned()));
        // Two revocations of a tag may take the lock out of their order.
        let (latest, n) = map.latest.entry(tag.to_owned()).or_insert((now, 0));
        *latest = (*latest).max(now);
        *n += 1;
        let ids: Vec<SessionId> = map
            .entries
            .iter()
            .filter(|(_, e)| e.tags.iter().any(|t| t == tag))
            .map(|(id, _)| *id)
            .collect();
        ids.into_iter()
            .filter_map(|id| map.entries.remove(&id).map(|e| (id, e.role)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(tags: &[&str]) -> crate::Grant {
        crate::Grant {
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            ..crate::Grant::open()
        }
    }

    #[test]
    fn a_session_granted_before_a_revocation_it_missed_is_refused() {
        let sessions = Sessions::default();
        let decided = Instant::now();
        // The paywall closes while the viewer's offer is being answered.
        assert!(sessions.take("paywall:c", decided).is_empty());
        let id = SessionId(7);
        assert!(!sessions.insert(id, Role::Viewer, grant(&["paywall:c"]), decided));
        assert!(sessions.generation(id).is_none(), "not kept");
        // Granted after it (the paywall open again), or bound to other tags: kept.
        let later = decided + Duration::from_millis(1);
        assert!(sessions.insert(id, Role::Viewer, grant(&["paywall:c"]), later));
        assert!(sessions.insert(SessionId(8), Role::Viewer, grant(&["user:u"]), decided));
        // A later revocation finds both of them that carry the tag.
        let ended = sessions.take("paywall:c", later + Duration::from_millis(1));
        assert_eq!(ended, vec![(id, Role::Viewer)]);
    }

    #[test]
    fn a_tag_revoked_again_is_remembered_from_its_latest_revocation() {
        let sessions = Sessions::default();
        let t0 = Instant::now();
        sessions.take("paywall:c", t0);
        let again = t0 + RECENT / 2;
        sessions.take("paywall:c", again);
        // The first revocation expires (another tag's revocation sweeps it out); the
        // second still refuses a grant decided before it.
        sessions.take("key:k", t0 + RECENT + Duration::from_millis(1));
        let decided = again - Duration::from_millis(1);
        assert!(!sessions.insert(SessionId(1), Role::Viewer, grant(&["paywall:c"]), decided));
        // Once it expires too, nothing is remembered of the tag.
        sessions.take("key:k", again + RECENT + Duration::from_millis(1));
        assert!(!sessions.lock().latest.contains_key("paywall:c"));
        assert!(sessions.insert(SessionId(2), Role::Viewer, grant(&["paywall:c"]), decided));
    }

    #[test]
    fn revocations_taking_the_lock_out_of_order_keep_the_latest() {
        let sessions = Sessions::default();
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(10);
        // The later revocation takes the lock first.
        sessions.take("paywall:c", t1);
        sessions.take("paywall:c", t0);
        // A grant decided between the two is still refused: it missed the later one.
        let between = t0 + Duration::from_millis(5);
        assert!(!sessions.insert(SessionId(1), Role::Viewer, grant(&["paywall:c"]), between));
    }
}
