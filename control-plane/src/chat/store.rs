//! The record: messages in the database, ids from the room's counter.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::oneshot;

use super::event::{Author, Message};
use super::rules::Earlier;
use crate::error::ApiResult;
use crate::{ControlPlane, Error};

/// Messages a client gets on join without `since`.
pub(crate) const JOIN_HISTORY: i64 = 50;
/// Most messages one history answer holds.
pub(crate) const MAX_HISTORY: i64 = 500;

#[derive(sqlx::FromRow)]
struct MessageRow {
    id: i64,
    username: String,
    display_name: String,
    text: String,
    reply_to: Option<i64>,
    mentions: String,
    created_at: i64,
}

impl From<MessageRow> for Message {
    fn from(r: MessageRow) -> Message {
        Message {
            id: r.id,
            user: Author {
                username: r.username,
                display_name: r.display_name,
            },
            text: r.text,
            reply_to: r.reply_to,
            mentions: serde_json::from_str(&r.mentions).unwrap_or_default(),
            created_at: r.created_at,
        }
    }
}

const SELECT: &str = "SELECT m.id, u.username, u.display_name, m.text, m.reply_to, \
    m.mentions, m.created_at FROM chat_messages m JOIN users u ON u.id = m.user_id";

/// A message to store.
#[derive(Debug)]
pub(crate) struct NewMessage {
    pub user_id: String,
    pub text: String,
    pub reply_to: Option<i64>,
    pub mentions: Vec<String>,
    pub at: i64,
}

/// Most messages one transaction stores.
const MAX_BATCH: usize = 200;

type Waiting = (NewMessage, oneshot::Sender<Result<i64, String>>);

/// Group commit: the posts that arrive while a room's transaction runs are stored
/// together by the next one (one id range, one multi-row insert, one commit), so a room's
/// rate is not one commit's latency (the counter row serializes a room's writers; with
/// PostgreSQL's synchronous commit that held a room near 500 posts a second).
#[derive(Debug, Default)]
pub(crate) struct Writer {
    rooms: Mutex<HashMap<String, Vec<Waiting>>>,
}

impl Writer {
    /// Stores a message under the room's next id.
    pub(crate) async fn insert(
        &self,
        cp: &ControlPlane,
        room: &str,
        m: NewMessage,
    ) -> ApiResult<i64> {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
            match rooms.get_mut(room) {
                // A flush is running for the room: it takes this one next.
                Some(queue) => {
                    queue.push((m, tx));
                    false
                }
                None => {
                    rooms.insert(room.to_owned(), vec![(m, tx)]);
                    true
                }
            }
        };
        if start {
            let (cp, room) = (cp.clone(), room.to_owned());
            tokio::spawn(async move { cp.chat().writer.flush(&cp, &room).await });
        }
        match rx.await {
            Ok(Ok(id)) => Ok(id),
            Ok(Err(e)) => Err(Error::Internal(format!("storing a chat message: {e}"))),
            Err(_) => Err(Error::Internal("the chat writer stopped".into())),
        }
    }

    /// Writes the room's waiting messages, batch after batch, until none wait.
    async fn flush(&self, cp: &ControlPlane, room: &str) {
        loop {
            let batch: Vec<Waiting> = {
                let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
                let Some(queue) = rooms.get_mut(room) else {
                    return;
                };
                if queue.is_empty() {
                    rooms.remove(room);
                    return;
                }
                let n = queue.len().min(MAX_BATCH);
                queue.drain(..n).collect()
            };
            let (messages, replies): (Vec<NewMessage>, Vec<_>) = batch.into_iter().unzip();
            match write(cp, room, &messages).await {
                Ok(first) => {
                    for (i, reply) in replies.into_iter().enumerate() {
                        let _ = reply.send(Ok(first + i as i64));
                    }
                }
                Err(e) => {
                    for reply in replies {
                        let _ = reply.send(Err(e.to_string()));
                    }
                }
            }
        }
    }
}

/// One transaction: the ids, then every row; returns the first id.
async fn write(cp: &ControlPlane, room: &str, list: &[NewMessage]) -> Result<i64, sqlx::Error> {
    let n = list.len() as i64;
    let mut tx = cp.pool().begin().await?;
    let (last,): (i64,) = sqlx::query_as(
        "UPDATE chat_rooms SET last_id = last_id + $2 WHERE channel_id = $1 RETURNING last_id",
    )
    .bind(room)
    .bind(n)
    .fetch_one(&mut *tx)
    .await?;
    let first = last - n + 1;
    let mut sql = String::from(
        "INSERT INTO chat_messages (channel_id, id, user_id, text, reply_to, mentions, \
         created_at) VALUES ",
    );
    for i in 0..list.len() {
        let b = i * 7;
        if i > 0 {
            sql.push(',');
        }
        sql.push_str(&format!(
            "(${}, ${}, ${}, ${}, ${}, ${}, ${})",
            b + 1,
            b + 2,
            b + 3,
            b + 4,
            b + 5,
            b + 6,
            b + 7
        ));
    }
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for (i, m) in list.iter().enumerate() {
        q = q
            .bind(room)
            .bind(first + i as i64)
            .bind(&m.user_id)
            .bind(&m.text)
            .bind(m.reply_to)
            .bind(serde_json::to_string(&m.mentions).unwrap_or_else(|_| "[]".into()))
            .bind(m.at);
    }
    q.execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(first)
}

/// A live message.
pub(crate) async fn one(cp: &ControlPlane, room: &str, id: i64) -> ApiResult<Option<Message>> {
    let row: Option<MessageRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE m.channel_id = $1 AND m.id = $2 AND m.deleted_at IS NULL"
    )))
    .bind(room)
    .bind(id)
    .fetch_optional(cp.pool())
    .await?;
    Ok(row.map(Message::from))
}

/// Who wrote message `id` (deleted or not).
pub(crate) async fn author(cp: &ControlPlane, room: &str, id: i64) -> ApiResult<Option<String>> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT user_id FROM chat_messages WHERE channel_id = $1 AND id = $2")
            .bind(room)
            .bind(id)
            .fetch_optional(cp.pool())
            .await?;
    Ok(row.map(|(u,)| u))
}

/// Live messages after `since` (oldest first, at most `limit`), or the latest `limit`;
/// and whether more were left out.
pub(crate) async fn history(
    cp: &ControlPlane,
    room: &str,
    since: Option<i64>,
    limit: i64,
) -> ApiResult<(Vec<Message>, bool)> {
    let limit = limit.clamp(1, MAX_HISTORY);
    let rows: Vec<MessageRow> = match since {
        // The newest `limit + 1` after `since`: a client that missed more than it can take
        // gets the recent end, and `truncated` says the rest was skipped.
        Some(since) => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{SELECT} WHERE m.channel_id = $1 AND m.id > $2 AND m.deleted_at IS NULL \
             ORDER BY m.id DESC LIMIT $3"
            )))
            .bind(room)
            .bind(since)
            .bind(limit + 1)
            .fetch_all(cp.pool())
            .await?
        }
        None => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{SELECT} WHERE m.channel_id = $1 AND m.deleted_at IS NULL \
             ORDER BY m.id DESC LIMIT $2"
            )))
            .bind(room)
            .bind(limit + 1)
            .fetch_all(cp.pool())
            .await?
        }
    };
    let truncated = since.is_some() && rows.len() as i64 > limit;
    let mut out: Vec<Message> = rows
        .into_iter()
        .take(limit as usize)
        .map(Message::from)
        .collect();
    out.reverse();
    Ok((out, truncated))
}

/// The author's latest posts in the room, newest first (what pacing needs).
pub(crate) async fn recent(
    cp: &ControlPlane,
    room: &str,
    user_id: &str,
) -> ApiResult<Vec<Earlier>> {
    let rows: Vec<(i64, String)> = sqlx::query_as(
        "SELECT created_at, text FROM chat_messages WHERE channel_id = $1 AND user_id = $2 \
         ORDER BY id DESC LIMIT $3",
    )
    .bind(room)
    .bind(user_id)
    .bind(super::rules::FLOOD_MAX as i64)
    .fetch_all(cp.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(at, text)| Earlier { at, text })
        .collect())
}

/// Marks messages deleted: one, or all of a user's; returns the ids.
pub(crate) async fn delete(
    cp: &ControlPlane,
    room: &str,
    which: Which<'_>,
    now: i64,
) -> ApiResult<Vec<i64>> {
    let q = match which {
        Which::One(id) => sqlx::query_as(
            "UPDATE chat_messages SET deleted_at = $3 WHERE channel_id = $1 \
             AND deleted_at IS NULL AND id = $2 RETURNING id",
        )
        .bind(room)
        .bind(id),
        Which::ByUser(user) => sqlx::query_as(
            "UPDATE chat_messages SET deleted_at = $3 WHERE channel_id = $1 \
             AND deleted_at IS NULL AND user_id = $2 RETURNING id",
        )
        .bind(room)
        .bind(user),
    };
    let ids: Vec<(i64,)> = q.bind(now).fetch_all(cp.pool()).await?;
    Ok(ids.into_iter().map(|(i,)| i).collect())
}

/// Which messages [`delete`] removes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Which<'a> {
    /// This one.
    One(i64),
    /// All of this user's.
    ByUser(&'a str),
}
