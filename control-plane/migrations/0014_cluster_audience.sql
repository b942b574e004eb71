-- What each media node of a cluster reports of its audience every second (the streams it
-- publishes or serves with their viewers, its viewer sessions), JSON; read by the replica
-- that holds the `audience` lease, for nodes alive by the registry's rule.
CREATE TABLE node_audiences (
    node_id TEXT PRIMARY KEY,
    report TEXT NOT NULL,
    reported_at BIGINT NOT NULL
);

-- Leases between control-plane replicas: `audience` is held by the one replica that feeds
-- the cluster's merged audience to webhooks and analytics (renewed every second).
CREATE TABLE cluster_leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
