-- The cluster's media nodes (`/api/v1/cluster/nodes`). A node registers once per start
-- (a new id; the same name replaces its old row) and reports stats every second; it is
-- dead when last_seen is older than the liveness window, judged at read time.
CREATE TABLE cluster_nodes (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    -- 'origin', 'relay' or 'edge'.
    role TEXT NOT NULL,
    zone TEXT NOT NULL,
    http_url TEXT NOT NULL,
    relay_addr TEXT NOT NULL,
    capacity BIGINT NOT NULL,
    -- The last stats report, JSON: {cpu, egress_bps, viewers, streams: [...]}.
    stats TEXT NOT NULL,
    -- 1 once drained: no new viewers or children.
    draining BIGINT NOT NULL DEFAULT 0,
    registered_at BIGINT NOT NULL,
    last_seen BIGINT NOT NULL
);
