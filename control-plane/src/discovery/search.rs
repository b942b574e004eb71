//! Full-text search over channels, live streams and videos: one table of documents
//! (`search_docs`) and, beside it, each database's own index: an FTS5 table on SQLite
//! (`search_fts`, its rows named by `search_docs.fts_rowid`), a GIN index over a weighted
//! tsvector on PostgreSQL. Both rank title above tags and category above the body, and
//! match every word of the query as a prefix ("casc" finds "cascade").
//!
//! The seam for other modules: [`upsert`] a [`Doc`] when it is made or edited, [`remove`]
//! it when it goes (documents of a deleted channel go with it). Videos are indexed by
//! whoever owns them, as `Kind::Video`.
//!
//! A query is never passed to either database's query language as typed: [`terms`] keeps
//! its words (letters and digits, lowercased), so no input is a syntax error.

use serde::{Deserialize, Serialize};
use sqlx::AnyPool;
use utoipa::ToSchema;

use crate::db::{now_ms, Backend};
use crate::ControlPlane;

/// What a document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A channel (its id).
    Channel,
    /// A channel's live stream (the channel's id), while it is live.
    Stream,
    /// A recording or an upload (the video's id).
    Video,
}

impl Kind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Channel => "channel",
            Kind::Stream => "stream",
            Kind::Video => "video",
        }
    }

    fn parse(s: &str) -> Option<Kind> {
        [Kind::Channel, Kind::Stream, Kind::Video]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// A document to index.
#[derive(Debug, Clone)]
pub struct Doc {
    /// What it is.
    pub kind: Kind,
    /// Its id (a channel's id for `Channel` and `Stream`).
    pub id: String,
    /// The channel it belongs to (its documents go when it is deleted).
    pub channel_id: String,
    /// Title (weighted highest).
    pub title: String,
    /// Description (weighted lowest).
    pub body: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Category.
    pub category: String,
}

/// At most this many words of a query are used.
const MAX_TERMS: usize = 8;
/// A word is cut to this many characters.
const MAX_TERM_CHARS: usize = 40;

/// The words of a query: runs of letters and digits, lowercased, at most [`MAX_TERMS`].
/// Everything else (quotes, `*`, `-`, parentheses, operators' punctuation) separates
/// words, so what remains has no meaning in either query language but a word's.
pub fn terms(q: &str) -> Vec<String> {
    q.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            w.chars()
                .take(MAX_TERM_CHARS)
                .collect::<String>()
                .to_lowercase()
        })
        .take(MAX_TERMS)
        .collect()
}

/// An FTS5 query: every word, quoted, as a prefix (`"casc"* "live"*`, all must match).
pub fn fts5_query(terms: &[String]) -> String {
    terms
        .iter()
        .map(|t| format!("\"{}\"*", t.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A tsquery: every word as a prefix (`casc:* & live:*`).
pub fn tsquery(terms: &[String]) -> String {
    terms
        .iter()
        .map(|t| {
            format!(
                "{}:*",
                t.replace(['\'', '\\', ':', '&', '|', '!', '(', ')'], "")
            )
        })
        .collect::<Vec<_>>()
        .join(" & ")
}

/// PostgreSQL's weighted vector of a document, kept in the stored generated column
/// `search_docs.tsv` (made on start): computed once per write, so neither the GIN
/// index's recheck nor `ts_rank` parses a document's text at query time.
const PG_VECTOR: &str = "setweight(to_tsvector('simple', title), 'A') || \
     setweight(to_tsvector('simple', tags), 'B') || \
     setweight(to_tsvector('simple', category), 'B') || \
     setweight(to_tsvector('simple', body), 'C')";

/// Makes the database's index if it is missing, and indexes channels that have no
/// document yet (a database made before search). Called once on start.
pub(crate) async fn prepare(cp: &ControlPlane) -> Result<(), sqlx::Error> {
    match cp.db().backend() {
        Backend::Sqlite => {
            sqlx::query(
                "CREATE VIRTUAL TABLE IF NOT EXISTS search_fts USING fts5(title, body, tags, \
                 category, tokenize = 'unicode61 remove_diacritics 2')",
            )
            .execute(cp.pool())
            .await?;
            // Rows of documents deleted with their channel (a foreign key's cascade).
            sqlx::query(
                "DELETE FROM search_fts WHERE rowid NOT IN \
                 (SELECT fts_rowid FROM search_docs WHERE fts_rowid IS NOT NULL)",
            )
            .execute(cp.pool())
            .await?;
        }
        Backend::Postgres => {
            // PostgreSQL only, so here rather than in the (shared) migrations. A database
            // made before had an expression index instead: it goes.
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "ALTER TABLE search_docs ADD COLUMN IF NOT EXISTS tsv tsvector \
                 GENERATED ALWAYS AS ({PG_VECTOR}) STORED"
            )))
            .execute(cp.pool())
            .await?;
            sqlx::query("DROP INDEX IF EXISTS search_docs_tsv")
                .execute(cp.pool())
                .await?;
            sqlx::query(
                "CREATE INDEX IF NOT EXISTS search_docs_tsv_gin ON search_docs USING GIN (tsv)",
            )
            .execute(cp.pool())
            .await?;
        }
    }
    loop {
        let missing: Vec<(String,)> = sqlx::query_as(
            "SELECT c.id FROM channels c LEFT JOIN search_docs d \
             ON d.kind = 'channel' AND d.id = c.id WHERE d.id IS NULL LIMIT 500",
        )
        .fetch_all(cp.pool())
        .await?;
        if missing.is_empty() {
            return Ok(());
        }
        for (id,) in missing {
            index_channel(cp, &id).await?;
        }
    }
}

/// Indexes (or re-indexes) `doc`.
pub async fn upsert(pool: &AnyPool, backend: Backend, doc: &Doc) -> Result<(), sqlx::Error> {
    let tags = doc.tags.join(" ");
    let mut tx = crate::db::begin_write(pool, backend).await?;
    let mut fts_rowid = None;
    if backend == Backend::Sqlite {
        let old: Option<(Option<i64>,)> =
            sqlx::query_as("SELECT fts_rowid FROM search_docs WHERE kind = $1 AND id = $2")
                .bind(doc.kind.as_str())
                .bind(&doc.id)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some((Some(rowid),)) = old {
            sqlx::query("DELETE FROM search_fts WHERE rowid = $1")
                .bind(rowid)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("INSERT INTO search_fts (title, body, tags, category) VALUES ($1, $2, $3, $4)")
            .bind(&doc.title)
            .bind(&doc.body)
            .bind(&tags)
            .bind(&doc.category)
            .execute(&mut *tx)
            .await?;
        // The Any driver does not report it; the same connection (the transaction's) does.
        let (rowid,): (i64,) = sqlx::query_as("SELECT last_insert_rowid()")
            .fetch_one(&mut *tx)
            .await?;
        fts_rowid = Some(rowid);
    }
    sqlx::query(
        "INSERT INTO search_docs (kind, id, channel_id, title, body, tags, category, \
         fts_rowid, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (kind, id) DO UPDATE SET channel_id = excluded.channel_id, \
         title = excluded.title, body = excluded.body, tags = excluded.tags, \
         category = excluded.category, fts_rowid = excluded.fts_rowid, \
         updated_at = excluded.updated_at",
    )
    .bind(doc.kind.as_str())
    .bind(&doc.id)
    .bind(&doc.channel_id)
    .bind(&doc.title)
    .bind(&doc.body)
    .bind(&tags)
    .bind(&doc.category)
    .bind(fts_rowid)
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Takes a document out of the index (nothing if it is not there).
pub async fn remove(
    pool: &AnyPool,
    backend: Backend,
    kind: Kind,
    id: &str,
) -> Result<(), sqlx::Error> {
    let mut tx = crate::db::begin_write(pool, backend).await?;
    let old: Option<(Option<i64>,)> =
        sqlx::query_as("SELECT fts_rowid FROM search_docs WHERE kind = $1 AND id = $2")
            .bind(kind.as_str())
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    if let Some((Some(rowid),)) = old {
        sqlx::query("DELETE FROM search_fts WHERE rowid = $1")
            .bind(rowid)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("DELETE FROM search_docs WHERE kind = $1 AND id = $2")
        .bind(kind.as_str())
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// The channel's row as search and the live list see it: (title, description, tags as
/// JSON, category), with the studio's title and category for its stream.
#[derive(sqlx::FromRow)]
struct Indexed {
    title: String,
    description: String,
    tags: String,
    category: String,
    stream_title: Option<String>,
    stream_category: Option<String>,
}

async fn indexed(cp: &ControlPlane, channel_id: &str) -> Result<Option<Indexed>, sqlx::Error> {
    sqlx::query_as(
        "SELECT c.title, c.description, c.tags, c.category, s.title AS stream_title, \
         s.category AS stream_category FROM channels c \
         LEFT JOIN stream_info s ON s.channel_id = c.id WHERE c.id = $1",
    )
    .bind(channel_id)
    .fetch_optional(cp.pool())
    .await
}

/// (Re-)indexes a channel: after it is made or edited.
pub(crate) async fn index_channel(cp: &ControlPlane, channel_id: &str) -> Result<(), sqlx::Error> {
    let Some(row) = indexed(cp, channel_id).await? else {
        return Ok(());
    };
    let doc = Doc {
        kind: Kind::Channel,
        id: channel_id.to_owned(),
        channel_id: channel_id.to_owned(),
        title: row.title,
        body: row.description,
        tags: serde_json::from_str(&row.tags).unwrap_or_default(),
        category: row.category,
    };
    upsert(cp.pool(), cp.db().backend(), &doc).await
}

/// Indexes a channel's live stream (the studio's title and category where set).
pub(crate) async fn index_stream(cp: &ControlPlane, channel_id: &str) -> Result<(), sqlx::Error> {
    let Some(row) = indexed(cp, channel_id).await? else {
        return Ok(());
    };
    let pick =
        |own: Option<String>, channel: String| own.filter(|s| !s.is_empty()).unwrap_or(channel);
    let doc = Doc {
        kind: Kind::Stream,
        id: channel_id.to_owned(),
        channel_id: channel_id.to_owned(),
        title: pick(row.stream_title, row.title),
        body: row.description,
        tags: serde_json::from_str(&row.tags).unwrap_or_default(),
        category: pick(row.stream_category, row.category),
    };
    upsert(cp.pool(), cp.db().backend(), &doc).await
}

/// Re-indexes a channel's stream if it is live (after an edit of the channel or of the
/// studio's title and category).
pub(crate) async fn reindex_stream_if_live(
    cp: &ControlPlane,
    channel_id: &str,
) -> Result<(), sqlx::Error> {
    let live: Option<(String,)> =
        sqlx::query_as("SELECT channel_id FROM live_streams WHERE channel_id = $1")
            .bind(channel_id)
            .fetch_optional(cp.pool())
            .await?;
    match live {
        Some(_) => index_stream(cp, channel_id).await,
        None => Ok(()),
    }
}

/// One thing found.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Hit {
    /// `channel`, `stream` or `video`.
    pub kind: String,
    /// The document's id.
    pub id: String,
    /// The channel's slug (its page is `/watch/{channel}`).
    pub channel: String,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Tags, space-separated.
    pub tags: String,
    /// Category.
    pub category: String,
    /// Relevance: higher is better (comparable within one answer only).
    pub score: f64,
}

/// A stream's document is found only while the stream is live.
const LIVE_ONLY: &str = "(d.kind <> 'stream' OR EXISTS (SELECT 1 FROM live_streams l \
    WHERE l.channel_id = d.channel_id AND l.updated_at > $4))";

/// Public documents matching every word of `q` as a prefix, best first (at most `limit`).
pub async fn find(
    cp: &ControlPlane,
    q: &str,
    kind: Option<&str>,
    limit: i64,
) -> Result<Vec<Hit>, crate::Error> {
    let terms = terms(q);
    let kind = match kind.filter(|k| !k.is_empty()) {
        None => String::new(),
        Some(k) => Kind::parse(k)
            .ok_or_else(|| crate::Error::Invalid("kind is channel, stream or video".into()))?
            .as_str()
            .to_owned(),
    };
    if terms.is_empty() {
        return Ok(Vec::new());
    }
    let sql = match cp.db().backend() {
        Backend::Sqlite => format!(
            "SELECT d.kind, d.id, c.slug AS channel, d.title, d.body AS description, d.tags, \
             d.category, -bm25(search_fts, 10.0, 1.0, 4.0, 4.0) AS score \
             FROM search_fts JOIN search_docs d ON d.fts_rowid = search_fts.rowid \
             JOIN channels c ON c.id = d.channel_id \
             WHERE search_fts MATCH $1 AND c.visibility = 'public' AND ($2 = '' OR d.kind = $2) \
             AND {LIVE_ONLY} \
             ORDER BY score DESC, d.updated_at DESC LIMIT $3"
        ),
        Backend::Postgres => format!(
            "SELECT d.kind, d.id, c.slug AS channel, d.title, d.body AS description, d.tags, \
             d.category, ts_rank(d.tsv, to_tsquery('simple', $1))::float8 AS score \
             FROM search_docs d JOIN channels c ON c.id = d.channel_id \
             WHERE d.tsv @@ to_tsquery('simple', $1) AND c.visibility = 'public' \
             AND ($2 = '' OR d.kind = $2) AND {LIVE_ONLY} ORDER BY score DESC, d.updated_at DESC LIMIT $3"
        ),
    };
    let query = match cp.db().backend() {
        Backend::Sqlite => fts5_query(&terms),
        Backend::Postgres => tsquery(&terms),
    };
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(query)
        .bind(kind)
        .bind(limit)
        .bind(now_ms() - super::LIVE_FRESH_MS)
        .fetch_all(cp.pool())
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_queries_are_words_or_nothing() {
        assert_eq!(terms("\"casc* OR -live)("), ["casc", "or", "live"]);
        assert_eq!(terms("  '' * - ()"), Vec::<String>::new());
        assert_eq!(terms("Ça Va-t-il"), ["ça", "va", "t", "il"]);
        assert_eq!(terms("日本語 ストリーム"), ["日本語", "ストリーム"]);
        assert_eq!(terms(&"a ".repeat(100)).len(), MAX_TERMS);
        assert_eq!(terms(&"x".repeat(500))[0].len(), MAX_TERM_CHARS);
    }

    #[test]
    fn every_word_is_a_prefix() {
        let t = terms("Cascade live");
        assert_eq!(fts5_query(&t), "\"cascade\"* \"live\"*");
        assert_eq!(tsquery(&t), "cascade:* & live:*");
    }
}
