//! Sponsors' overlays, scheduled per channel: told to viewers as `sponsor` events when
//! they start and end ([`announce_due`], run every second by each control plane; each
//! announcement claimed by one UPDATE), and listed for players that join later.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::{url, Cue};
use crate::channels::{by_slug, may_watch, owned};
use crate::db::now_ms;
use crate::error::{ApiResult, Problem};
use crate::extract::{Caller, Json, MaybeCaller, Path};
use crate::tokens::random_id;
use crate::{ControlPlane, Error};

/// Slots scheduled (not yet ended) per channel.
pub const MAX_SCHEDULED: i64 = 50;
/// Longest slot, ms.
pub const MAX_SLOT_MS: i64 = 24 * 3600 * 1000;

/// A slot from `starts` to `ends` (Unix ms, any i64 a client sends): after its start, not
/// over yet, at most [`MAX_SLOT_MS`] long.
fn check_slot(starts: i64, ends: i64, now: i64) -> Result<(), Error> {
    if ends <= starts || ends <= now {
        return Err(Error::Invalid(
            "ends_at must be after starts_at and in the future".into(),
        ));
    }
    if ends.checked_sub(starts).is_none_or(|d| d > MAX_SLOT_MS) {
        return Err(Error::Invalid("a slot lasts at most a day".into()));
    }
    Ok(())
}

/// `POST /channels/{slug}/sponsors`
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewSponsor {
    /// 1 to 100 characters.
    pub name: String,
    /// The overlay's picture, http(s).
    pub image_url: String,
    /// Where a click goes, http(s).
    pub link: String,
    /// Unix ms.
    pub starts_at: i64,
    /// Unix ms, after `starts_at` and in the future, at most a day later.
    pub ends_at: i64,
}

/// A sponsor's slot.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Sponsor {
    /// Opaque id.
    pub id: String,
    /// The sponsor's name.
    pub name: String,
    /// The overlay's picture.
    pub image_url: String,
    /// Where a click goes.
    pub link: String,
    /// Unix ms.
    pub starts_at: i64,
    /// Unix ms.
    pub ends_at: i64,
}

impl Sponsor {
    fn cue(&self, stream: &str, state: &str) -> Cue {
        Cue {
            stream: stream.to_owned(),
            event: "sponsor",
            data: json!({
                "id": self.id,
                "state": state,
                "name": self.name,
                "image_url": self.image_url,
                "link": self.link,
                "starts_at": self.starts_at,
                "ends_at": self.ends_at,
            }),
            // A player that joins during the slot is told its start, and an early end.
            until_ms: self.ends_at,
            exempt: Arc::default(),
        }
    }
}

const SELECT: &str = "SELECT id, name, image_url, link, starts_at, ends_at FROM sponsors";

/// Schedule a sponsor's overlay on the channel's stream (its owner).
#[utoipa::path(post, path = "/api/v1/channels/{slug}/sponsors", tag = "ads", security(("access_token" = []), ("api_key" = [])), params(("slug" = String, Path)), request_body = NewSponsor,
    responses((status = 201, body = Sponsor), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn create(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path(slug): Path<String>,
    Json(req): Json<NewSponsor>,
) -> ApiResult<(StatusCode, axum::Json<Sponsor>)> {
    let ch = owned(&cp, &caller, &slug).await?;
    let name = crate::model::text("name", req.name.trim(), 100)?;
    if name.is_empty() {
        return Err(Error::Invalid("name must not be empty".into()));
    }
    let now = now_ms();
    check_slot(req.starts_at, req.ends_at, now)?;
    let s = Sponsor {
        id: random_id(),
        name,
        image_url: url("image_url", &req.image_url)?,
        link: url("link", &req.link)?,
        starts_at: req.starts_at,
        ends_at: req.ends_at,
    };
    let (n,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM sponsors WHERE channel_id = $1 AND ends_at > $2")
            .bind(&ch.id)
            .bind(now)
            .fetch_one(cp.pool())
            .await?;
    if n >= MAX_SCHEDULED {
        return Err(Error::Conflict(
            "a channel schedules at most 50 sponsor slots",
        ));
    }
    sqlx::query(
        "INSERT INTO sponsors (id, channel_id, name, image_url, link, starts_at, ends_at, \
         announced, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8)",
    )
    .bind(&s.id)
    .bind(&ch.id)
    .bind(&s.name)
    .bind(&s.image_url)
    .bind(&s.link)
    .bind(s.starts_at)
    .bind(s.ends_at)
    .bind(now)
    .execute(cp.pool())
    .await?;
    Ok((StatusCode::CREATED, axum::Json(s)))
}

/// The channel's sponsor slots now and to come (anyone who may watch it): what a player
/// that joins shows.
#[utoipa::path(get, path = "/api/v1/channels/{slug}/sponsors", tag = "ads", params(("slug" = String, Path)),
    responses((status = 200, body = [Sponsor]), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn list(
    State(cp): State<ControlPlane>,
    caller: MaybeCaller,
    Path(slug): Path<String>,
) -> ApiResult<axum::Json<Vec<Sponsor>>> {
    let ch = by_slug(&cp, &slug).await?.ok_or(Error::NotFound)?;
    if !may_watch(&cp, &ch, caller.0.as_ref()).await? {
        return Err(Error::NotFound);
    }
    let rows: Vec<Sponsor> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE channel_id = $1 AND ends_at > $2 ORDER BY starts_at LIMIT 50"
    )))
    .bind(&ch.id)
    .bind(now_ms())
    .fetch_all(cp.pool())
    .await?;
    Ok(axum::Json(rows))
}

/// Remove a slot (its owner); one showing ends at once.
#[utoipa::path(delete, path = "/api/v1/channels/{slug}/sponsors/{id}", tag = "ads", security(("access_token" = []), ("api_key" = [])), params(("slug" = String, Path), ("id" = String, Path)),
    responses((status = 204), (status = "4XX", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn remove(
    State(cp): State<ControlPlane>,
    caller: Caller,
    Path((slug, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let ch = owned(&cp, &caller, &slug).await?;
    let row: Option<(String, String, String, String, i64, i64, i64)> = sqlx::query_as(
        "SELECT id, name, image_url, link, starts_at, ends_at, announced FROM sponsors \
         WHERE id = $1 AND channel_id = $2",
    )
    .bind(&id)
    .bind(&ch.id)
    .fetch_optional(cp.pool())
    .await?;
    let (id, name, image_url, link, starts_at, ends_at, announced) =
        row.ok_or(Error::Missing("no such sponsor slot"))?;
    sqlx::query("DELETE FROM sponsors WHERE id = $1")
        .bind(&id)
        .execute(cp.pool())
        .await?;
    if announced == 1 {
        let s = Sponsor {
            id,
            name,
            image_url,
            link,
            starts_at,
            ends_at,
        };
        cp.send_cue(s.cue(&ch.slug, "end")).await;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Tells viewers the slots that started or ended by now (each once, whichever process
/// claims it); slots that started and ended unseen are closed silently.
pub async fn announce_due(cp: &ControlPlane) -> Result<(), sqlx::Error> {
    let now = now_ms();
    // (announced before, after, state told; None: closed silently)
    let steps: [(i64, i64, Option<&str>, &str); 3] = [
        (0, 2, None, "announced = 0 AND ends_at <= $1"),
        (0, 1, Some("start"), "announced = 0 AND starts_at <= $1"),
        (1, 2, Some("end"), "announced = 1 AND ends_at <= $1"),
    ];
    for (from, to, state, due) in steps {
        let rows: Vec<(String, String, String, String, String, i64, i64)> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT s.id, c.slug, s.name, s.image_url, s.link, s.starts_at, s.ends_at \
                 FROM sponsors s JOIN channels c ON c.id = s.channel_id WHERE s.{due} \
                 ORDER BY s.starts_at LIMIT 100"
            )))
            .bind(now)
            .fetch_all(cp.pool())
            .await?;
        for (id, slug, name, image_url, link, starts_at, ends_at) in rows {
            let claimed =
                sqlx::query("UPDATE sponsors SET announced = $1 WHERE id = $2 AND announced = $3")
                    .bind(to)
                    .bind(&id)
                    .bind(from)
                    .execute(cp.pool())
                    .await?
                    .rows_affected()
                    == 1;
            if let (true, Some(state)) = (claimed, state) {
                let s = Sponsor {
                    id,
                    name,
                    image_url,
                    link,
                    starts_at,
                    ends_at,
                };
                cp.send_cue(s.cue(&slug, state)).await;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_checked_without_overflow() {
        let now = 1_800_000_000_000;
        assert!(check_slot(now, now + 60_000, now).is_ok());
        assert!(check_slot(i64::MIN, now + 1, now).is_err(), "no overflow");
        assert!(check_slot(now, now + MAX_SLOT_MS + 1, now).is_err());
        assert!(check_slot(now - 10, now - 5, now).is_err(), "over already");
        assert!(check_slot(now + 5, now + 5, now).is_err());
    }
}
