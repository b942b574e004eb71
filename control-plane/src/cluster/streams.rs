//! A node's stream list, kept apart from its load: one `cluster_node_streams` row per
//! node, written only when the node sends a new list, and parsed by a replica only when
//! that row changed since its last view load ([`Lists`]).
//!
//! A node numbers its lists (`streams_rev`, rising with each new list of one registration)
//! and sends a list only while the control plane does not hold its current number: every
//! stats answer says which number the control plane holds (`StatsReply::streams_rev`), so
//! a node whose answer was lost, that registered again (its row starts without a list),
//! or whose control plane's database was restored sends its list again with its next
//! report. A list without a number (an older node, which sends its whole list at every
//! report) always replaces the stored one; a numbered list replaces it unless the stored
//! one has that number or a higher one (the same list again, or a late copy of an older
//! report).

use std::collections::HashMap;
use std::sync::Arc;

use super::registry::StreamStat;
use crate::error::ApiResult;
use crate::{ControlPlane, Error};

/// Ids asked for in one query when lists are fetched.
const FETCH_BATCH: usize = 500;

impl ControlPlane {
    /// Writes `streams` as the list of node `id`, numbered `rev` (see the module's rule);
    /// nothing for a node not registered. Returns whether it wrote.
    pub(crate) async fn store_streams(
        &self,
        id: &str,
        rev: Option<i64>,
        streams: &[StreamStat],
    ) -> ApiResult<bool> {
        let json = serde_json::to_string(streams).map_err(|e| Error::Internal(e.to_string()))?;
        let written = sqlx::query(
            "INSERT INTO cluster_node_streams (node_id, rev, version, streams) \
             SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM cluster_nodes WHERE id = $1) \
             ON CONFLICT (node_id) DO UPDATE SET rev = excluded.rev, \
             version = excluded.version, streams = excluded.streams \
             WHERE excluded.rev IS NULL OR cluster_node_streams.rev IS NULL \
             OR cluster_node_streams.rev < excluded.rev",
        )
        .bind(id)
        .bind(rev)
        .bind(rand::random::<i64>())
        .bind(&json)
        .execute(self.pool())
        .await?
        .rows_affected()
            > 0;
        if written {
            self.0.metrics.stream_lists_written.inc();
        }
        Ok(written)
    }

    /// Drops the lists of nodes no longer registered (their node registered again under a
    /// new id, or a report raced that).
    pub(crate) async fn drop_orphan_streams(&self) -> ApiResult<()> {
        sqlx::query(
            "DELETE FROM cluster_node_streams \
             WHERE node_id NOT IN (SELECT id FROM cluster_nodes)",
        )
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

/// Each registered node's stream list as one replica parsed it, by node id, with the
/// stored version it parsed. Holds the nodes of its last [`Lists::refresh`] only.
#[derive(Default)]
pub(crate) struct Lists(HashMap<String, (i64, Arc<[StreamStat]>)>);

impl Lists {
    /// Brings the lists to `versions` (every registered node's id and its stored list's
    /// version, `None` without one): fetches and parses only the lists whose version is
    /// not the one parsed, and forgets the nodes not named.
    pub(crate) async fn refresh(
        &mut self,
        cp: &ControlPlane,
        versions: &[(&str, Option<i64>)],
    ) -> ApiResult<()> {
        let wanted: HashMap<&str, i64> = versions
            .iter()
            .filter_map(|(id, v)| v.map(|v| (*id, v)))
            .collect();
        self.0
            .retain(|id, (v, _)| wanted.get(id.as_str()) == Some(v));
        let stale: Vec<&str> = wanted
            .keys()
            .copied()
            .filter(|id| !self.0.contains_key(*id))
            .collect();
        for batch in stale.chunks(FETCH_BATCH) {
            let marks: Vec<String> = (1..=batch.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT node_id, version, streams FROM cluster_node_streams WHERE node_id IN ({})",
                marks.join(", ")
            );
            let mut q = sqlx::query_as::<_, (String, i64, String)>(sqlx::AssertSqlSafe(sql));
            for id in batch {
                q = q.bind(*id);
            }
            for (id, version, json) in q.fetch_all(cp.pool()).await? {
                let list: Vec<StreamStat> = serde_json::from_str(&json).unwrap_or_else(|e| {
                    tracing::warn!(node = id, "a stored stream list does not parse: {e}");
                    Vec::new()
                });
                cp.0.metrics.stream_lists_parsed.inc();
                self.0.insert(id, (version, list.into()));
            }
        }
        Ok(())
    }

    /// The stream list of node `id` (empty when it has none).
    pub(crate) fn of(&self, id: &str) -> &[StreamStat] {
        self.0.get(id).map_or(&[], |(_, l)| l)
    }
}
