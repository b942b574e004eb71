-- Recordings handed in by media nodes (POST /cluster/recordings), by the key the node
-- sent with the file: a node that did not see the answer sends the file again, and gets
-- the video listed the first time instead of a second one. Kept 30 days.
CREATE TABLE recording_receipts (
    key TEXT PRIMARY KEY,
    video_id TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX recording_receipts_created ON recording_receipts (created_at);
