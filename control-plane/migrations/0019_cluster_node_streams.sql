-- A node's stream list apart from its load: `cluster_nodes.stats` keeps the load figures,
-- rewritten at every report (every second), and this row the list, written only when the
-- node sends a new one (a whole row is rewritten by any update on SQLite, and up to 10,000
-- streams are megabytes). The registry drops the row when the node registers again.
CREATE TABLE cluster_node_streams (
    node_id TEXT PRIMARY KEY,
    -- The node's own number for this list (its `streams_rev`, rising with each new list
    -- of one registration); NULL for a node that numbers none and sends its whole list at
    -- every report.
    rev BIGINT,
    -- Drawn at random at each write: a replica keeps the list it parsed while this stays.
    version BIGINT NOT NULL,
    -- JSON: [{name, publishing, parent, backup}, ...].
    streams TEXT NOT NULL
);
