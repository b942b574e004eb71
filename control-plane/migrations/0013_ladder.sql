-- The transcoded ladder per channel (issue 15). A node started with `--ladder` may ladder
-- every channel's single-layer stream; a row here: the owner turned it off for this
-- channel. Times are Unix ms, as elsewhere.
CREATE TABLE channel_ladder_off (
    channel_id TEXT PRIMARY KEY REFERENCES channels(id) ON DELETE CASCADE,
    updated_at BIGINT NOT NULL
);
