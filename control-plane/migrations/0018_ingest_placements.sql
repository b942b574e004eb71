-- Where a replica sent a stream's broadcaster (POST /whip/{stream}, primary or backup
-- ingest), kept until the origin's own stats report it: every replica's view reads the
-- recent rows, so a standby placed on another replica (or after a reload of the view)
-- still goes to another origin than its primary's. Rows older than a minute are removed
-- by the next placement.
CREATE TABLE cluster_ingest_placements (
    stream TEXT NOT NULL,
    ingest TEXT NOT NULL,
    node_id TEXT NOT NULL,
    placed_at BIGINT NOT NULL,
    PRIMARY KEY (stream, ingest)
);
CREATE INDEX cluster_ingest_placements_at ON cluster_ingest_placements (placed_at);
