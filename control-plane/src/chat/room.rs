//! A room as posting needs it: the channel, its settings, blocked terms and moderators,
//! cached per process for a moment (changes made here drop the entry at once; another
//! replica's show within [`ROOM_TTL`]); and a user's standing in it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::event::{Mode, Settings};
use super::rules::{Code, Refusal, TermAction, Terms};
use crate::channels::{self, ChannelRow};
use crate::db::now_ms;
use crate::extract::Caller;
use crate::model::{Role, UserRow};
use crate::{ApiResult, ControlPlane, Error};

/// How long a cached room is trusted.
pub(crate) const ROOM_TTL: Duration = Duration::from_secs(2);
/// Rooms cached at most.
const MAX_ROOMS: usize = 10_000;

/// A channel's room.
#[derive(Debug)]
pub(crate) struct Room {
    pub channel: ChannelRow,
    pub settings: Settings,
    pub terms: Terms,
    pub moderators: HashSet<String>,
    pub pinned_id: Option<i64>,
}

impl Room {
    /// The channel id: the room's key on the bus and in the tables.
    pub(crate) fn id(&self) -> &str {
        &self.channel.id
    }

    /// What `user` is here.
    pub(crate) fn role_of(&self, user: Option<&UserRow>) -> RoomRole {
        match user {
            None => RoomRole::Anonymous,
            Some(u) if u.role() == Role::Admin => RoomRole::Admin,
            Some(u) if u.id == self.channel.owner_id => RoomRole::Owner,
            Some(u) if self.moderators.contains(&u.id) => RoomRole::Moderator,
            Some(_) => RoomRole::Viewer,
        }
    }
}

/// What a user is in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RoomRole {
    /// Not signed in: reads only.
    Anonymous,
    /// Signed in.
    Viewer,
    /// Appointed by the owner.
    Moderator,
    /// Owns the channel.
    Owner,
    /// Administers the service.
    Admin,
}

impl RoomRole {
    /// May moderate (delete, pin, ban, run polls and the Q&A).
    pub(crate) fn moderates(self) -> bool {
        matches!(
            self,
            RoomRole::Moderator | RoomRole::Owner | RoomRole::Admin
        )
    }
}

/// The process's rooms.
#[derive(Debug, Default)]
pub(crate) struct Rooms {
    cache: Mutex<HashMap<String, (Instant, Arc<Room>)>>,
}

impl Rooms {
    /// The room of the channel `slug`; 404 when there is no such channel.
    pub(crate) async fn get(&self, cp: &ControlPlane, slug: &str) -> ApiResult<Arc<Room>> {
        if let Some((at, room)) = self.lock().get(slug) {
            if at.elapsed() < ROOM_TTL {
                return Ok(room.clone());
            }
        }
        let room = Arc::new(load(cp, slug).await?);
        let mut cache = self.lock();
        if cache.len() >= MAX_ROOMS {
            cache.retain(|_, (at, _)| at.elapsed() < ROOM_TTL);
            if cache.len() >= MAX_ROOMS {
                cache.clear();
            }
        }
        cache.insert(slug.to_owned(), (Instant::now(), room.clone()));
        Ok(room)
    }

    /// Forgets a room after a change made here.
    pub(crate) fn forget(&self, slug: &str) {
        self.lock().remove(slug);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Arc<Room>)>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(sqlx::FromRow)]
struct RoomRow {
    slow_mode_secs: i64,
    mode: String,
    default_terms: i64,
    pinned_id: Option<i64>,
}

async fn load(cp: &ControlPlane, slug: &str) -> ApiResult<Room> {
    let channel = channels::by_slug(cp, slug).await?.ok_or(Error::NotFound)?;
    sqlx::query("INSERT INTO chat_rooms (channel_id) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(&channel.id)
        .execute(cp.pool())
        .await?;
    let row: RoomRow = sqlx::query_as(
        "SELECT slow_mode_secs, mode, default_terms, pinned_id FROM chat_rooms \
         WHERE channel_id = $1",
    )
    .bind(&channel.id)
    .fetch_one(cp.pool())
    .await?;
    let settings = Settings {
        slow_mode_secs: row.slow_mode_secs,
        mode: Mode::parse(&row.mode),
        default_terms: row.default_terms != 0,
    };
    let list: Vec<(String, String)> =
        sqlx::query_as("SELECT term, action FROM blocked_terms WHERE channel_id = $1")
            .bind(&channel.id)
            .fetch_all(cp.pool())
            .await?;
    let mut terms = Terms::default();
    for (term, action) in &list {
        terms.push(term, TermAction::parse(action));
    }
    if settings.default_terms {
        terms = terms.with_defaults();
    }
    let moderators: Vec<(String,)> =
        sqlx::query_as("SELECT user_id FROM channel_moderators WHERE channel_id = $1")
            .bind(&channel.id)
            .fetch_all(cp.pool())
            .await?;
    Ok(Room {
        channel,
        settings,
        terms,
        moderators: moderators.into_iter().map(|(id,)| id).collect(),
        pinned_id: row.pinned_id,
    })
}

/// Why `user` cannot post in the room now, if they cannot: a global ban, the room's ban
/// or timeout. `watching` asks only about bans that also stop watching.
pub(crate) async fn restriction(
    cp: &ControlPlane,
    room: &Room,
    user: &UserRow,
    watching: bool,
) -> ApiResult<Option<Refusal>> {
    let global: Option<(String,)> =
        sqlx::query_as("SELECT reason FROM global_bans WHERE user_id = $1")
            .bind(&user.id)
            .fetch_optional(cp.pool())
            .await?;
    if let Some((reason,)) = global {
        return Ok(Some(Refusal::new(
            Code::Banned,
            with_reason("you are banned from chat on this service", &reason),
        )));
    }
    let now = now_ms();
    let ban: Option<(String, Option<i64>, i64)> = sqlx::query_as(
        "SELECT reason, expires_at, watch FROM channel_bans WHERE channel_id = $1 \
         AND user_id = $2 AND (expires_at IS NULL OR expires_at > $3)",
    )
    .bind(room.id())
    .bind(&user.id)
    .bind(now)
    .fetch_optional(cp.pool())
    .await?;
    Ok(match ban {
        None => None,
        Some((_, _, 0)) if watching => None,
        Some((reason, None, _)) => Some(Refusal::new(
            Code::Banned,
            with_reason("you are banned from this channel", &reason),
        )),
        Some((reason, Some(until), _)) => {
            let left = until - now;
            Some(Refusal {
                code: Code::TimedOut,
                detail: with_reason(
                    &format!(
                        "you are timed out in this channel for {} more seconds",
                        super::rules::secs_up(left)
                    ),
                    &reason,
                ),
                retry_after: Some(super::rules::secs_up(left)),
            })
        }
    })
}

/// Whether a ban in force stops `user_id` watching the channel.
pub(crate) async fn watch_banned(
    cp: &ControlPlane,
    channel_id: &str,
    user_id: &str,
) -> ApiResult<bool> {
    let row: Option<(i64,)> = sqlx::query_as(
        "SELECT created_at FROM channel_bans WHERE channel_id = $1 AND user_id = $2 \
         AND watch = 1 AND (expires_at IS NULL OR expires_at > $3)",
    )
    .bind(channel_id)
    .bind(user_id)
    .bind(now_ms())
    .fetch_optional(cp.pool())
    .await?;
    Ok(row.is_some())
}

fn with_reason(what: &str, reason: &str) -> String {
    if reason.is_empty() {
        what.to_owned()
    } else {
        format!("{what}: {reason}")
    }
}

/// The room if `caller` may read it (a private channel: its viewers; a user banned from
/// watching: no); 404 otherwise, as for the channel itself.
pub(crate) async fn readable(
    cp: &ControlPlane,
    slug: &str,
    caller: Option<&Caller>,
) -> ApiResult<Arc<Room>> {
    let room = cp.chat().rooms.get(cp, slug).await?;
    if !channels::may_watch(cp, &room.channel, caller).await? {
        return Err(Error::NotFound);
    }
    if let Some(c) = caller {
        if let Some(r) = restriction(cp, &room, &c.0, true).await? {
            if room.role_of(Some(&c.0)) == RoomRole::Viewer {
                return Err(r.into());
            }
        }
    }
    Ok(room)
}

/// The room if `caller` moderates it; 403 (or 404 when they cannot see it) otherwise.
pub(crate) async fn moderated(
    cp: &ControlPlane,
    slug: &str,
    caller: &Caller,
) -> ApiResult<Arc<Room>> {
    let room = readable(cp, slug, Some(caller)).await?;
    if room.role_of(Some(&caller.0)).moderates() {
        Ok(room)
    } else {
        Err(Refusal::new(Code::Forbidden, "only the channel's moderators may do this").into())
    }
}
