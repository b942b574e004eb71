//! A node's recording key (`Cascade-Recording-Key`), claimed before its file is stored so
//! that one file is listed once however often the node sends it. The claim is a row of
//! `recording_receipts` with no video yet, inserted `ON CONFLICT DO NOTHING`: the database
//! decides which of two concurrent sends (two requests, two replicas) stores the file.
//! The other finds the claim and is answered 409 (the node tries again later, and then
//! gets the video listed by the first); a claim whose storing failed is removed, so that
//! a later send stores the file. A claim left by a process stopped mid-store is taken
//! over once it is [`STALE_MS`] old.

use crate::db::now_ms;
use crate::error::ApiResult;
use crate::ControlPlane;

/// How long a listed key is remembered.
const KEEP_MS: i64 = 30 * 24 * 3600 * 1000;
/// A claim older than this was left by a process that stopped while storing (a store of
/// the largest recording to object storage ends well within it): the next send takes it.
pub(super) const STALE_MS: i64 = 3600 * 1000;

/// What claiming a key found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Claim {
    /// The key is this request's: store the file, then [`listed`] or [`release`].
    Ours,
    /// Listed already, as this video: the answer, nothing stored again.
    Listed(String),
    /// Another send of the same key is being stored now.
    Pending,
}

/// Claims `key` for a request about to store its file.
pub(super) async fn claim(cp: &ControlPlane, key: &str) -> ApiResult<Claim> {
    // Twice at most: a claim released between the insert and the read is taken again.
    for _ in 0..2 {
        let now = now_ms();
        let inserted = sqlx::query(
            "INSERT INTO recording_receipts (key, video_id, created_at) VALUES ($1, NULL, $2) \
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(now)
        .execute(cp.pool())
        .await?;
        if inserted.rows_affected() == 1 {
            return Ok(Claim::Ours);
        }
        let row: Option<(Option<String>, i64)> =
            sqlx::query_as("SELECT video_id, created_at FROM recording_receipts WHERE key = $1")
                .bind(key)
                .fetch_optional(cp.pool())
                .await?;
        match row {
            Some((Some(video), _)) => return Ok(Claim::Listed(video)),
            Some((None, at)) if at > now - STALE_MS => return Ok(Claim::Pending),
            // Stale: taken over only if no one else took it since (the same time).
            Some((None, at)) => {
                let taken = sqlx::query(
                    "UPDATE recording_receipts SET created_at = $3 \
                     WHERE key = $1 AND video_id IS NULL AND created_at = $2",
                )
                .bind(key)
                .bind(at)
                .bind(now)
                .execute(cp.pool())
                .await?;
                return Ok(if taken.rows_affected() == 1 {
                    Claim::Ours
                } else {
                    Claim::Pending
                });
            }
            None => continue,
        }
    }
    Ok(Claim::Pending)
}

/// Records that the file claimed as `key` is listed as `video`, and forgets old keys. A
/// failure leaves the claim until it is stale (sends of the key are answered 409 until
/// then, and a second copy may be listed after): logged.
pub(super) async fn listed(cp: &ControlPlane, key: &str, video: &str) {
    let now = now_ms();
    let kept =
        sqlx::query("UPDATE recording_receipts SET video_id = $2, created_at = $3 WHERE key = $1")
            .bind(key)
            .bind(video)
            .bind(now)
            .execute(cp.pool())
            .await;
    let swept = sqlx::query("DELETE FROM recording_receipts WHERE created_at < $1")
        .bind(now - KEEP_MS)
        .execute(cp.pool())
        .await;
    if let Err(e) = kept.and(swept) {
        tracing::warn!(key, video, "remembering a node's recording: {e}");
    }
}

/// Gives up the claim on `key` after its file was not stored: the next send stores it. A
/// failure leaves the claim until it is stale: logged.
pub(super) async fn release(cp: &ControlPlane, key: &str) {
    let released =
        sqlx::query("DELETE FROM recording_receipts WHERE key = $1 AND video_id IS NULL")
            .bind(key)
            .execute(cp.pool())
            .await;
    if let Err(e) = released {
        tracing::warn!(key, "releasing a node's recording key: {e}");
    }
}
