-- Recording of live streams (issue 14). A row: the channel records every live stream,
-- `layers` 'top' (the largest picture, one file) or 'all' (one file per layer). Times are
-- Unix ms, as elsewhere.
CREATE TABLE channel_recording (
    channel_id TEXT PRIMARY KEY REFERENCES channels(id) ON DELETE CASCADE,
    layers TEXT NOT NULL CHECK (layers IN ('top', 'all')),
    updated_at BIGINT NOT NULL
);
