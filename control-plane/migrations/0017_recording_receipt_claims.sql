-- A node's recording key is claimed before its file is stored: a receipt row whose
-- video_id is NULL until the file is listed (and removed again if storing fails), so a
-- send of the same key while the first is still being stored finds the claim instead of
-- storing a second copy. created_at is the claim's time until the video is listed, then
-- the listing's. (Rebuilt: SQLite cannot drop a NOT NULL in place.)
CREATE TABLE recording_receipts_claimed (
    key TEXT PRIMARY KEY,
    video_id TEXT,
    created_at BIGINT NOT NULL
);
INSERT INTO recording_receipts_claimed (key, video_id, created_at)
    SELECT key, video_id, created_at FROM recording_receipts;
DROP TABLE recording_receipts;
ALTER TABLE recording_receipts_claimed RENAME TO recording_receipts;
CREATE INDEX recording_receipts_created ON recording_receipts (created_at);
