-- A node's stream list apart from its load: `cluster_nodes.stats` keeps the load figures,
-- rewritten at every report (every second), and this row the list, written only when the
-- node sends a new one (SQLite writes a row whose length changed whole, and up to 10,000
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
-- The rows' stats lose the lists they held (read no more, but parsed at every view load
-- while a row is not written again: a node gone for good is never); a live node writes its
-- load again within a second. Every control-plane replica runs this version from here:
-- an older one would read no streams.
UPDATE cluster_nodes SET stats = '{"cpu":0.0,"egress_bps":0,"viewers":0,"pressure":0}';
