-- Discovery (issue 14): categories, live streams and their trending score, search
-- documents, notifications, thumbnails. Times are Unix ms, as elsewhere. The full-text
-- index itself differs by database (an FTS5 table on SQLite, a GIN index over a
-- tsvector on PostgreSQL) and is made by `discovery::search::prepare` on start.

-- The categories browse offers. A channel's (or stream's) `category` is free text; it is
-- filed under the category whose slug or name it equals, ignoring case.
CREATE TABLE categories (
    slug TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    position BIGINT NOT NULL
);
INSERT INTO categories (slug, name, position) VALUES
    ('gaming', 'Gaming', 1),
    ('music', 'Music', 2),
    ('talk', 'Talk shows', 3),
    ('education', 'Education', 4),
    ('tech', 'Science and technology', 5),
    ('creative', 'Art and creative', 6),
    ('sports', 'Sports', 7),
    ('outdoors', 'Travel and outdoors', 8);

-- What the broadcaster set in the studio for the stream (empty: the channel's).
CREATE TABLE stream_info (
    channel_id TEXT PRIMARY KEY REFERENCES channels(id) ON DELETE CASCADE,
    title TEXT NOT NULL DEFAULT '',
    category TEXT NOT NULL DEFAULT '',
    updated_at BIGINT NOT NULL
);

-- A channel live now, as the process carrying its publisher last saw it: concurrent
-- viewers and the trending score (docs/DISCOVERY.md). Deleted when the stream ends.
CREATE TABLE live_streams (
    channel_id TEXT PRIMARY KEY REFERENCES channels(id) ON DELETE CASCADE,
    started_at BIGINT NOT NULL,
    viewers BIGINT NOT NULL DEFAULT 0,
    score DOUBLE PRECISION NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL
);
CREATE INDEX live_streams_viewers ON live_streams (viewers);

-- What search finds: a channel, a live stream or a video (kind), by its id. `fts_rowid`
-- is the row of the SQLite FTS5 table that indexes it (NULL on PostgreSQL).
CREATE TABLE search_docs (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    channel_id TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    tags TEXT NOT NULL,
    category TEXT NOT NULL,
    fts_rowid BIGINT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX search_docs_channel ON search_docs (channel_id);
CREATE INDEX search_docs_fts ON search_docs (fts_rowid);

-- A user's in-app notifications (a followed channel went live), newest kept.
CREATE TABLE notifications (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    channel_id TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    text TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    read_at BIGINT
);
CREATE INDEX notifications_user ON notifications (user_id, created_at);
CREATE INDEX channel_follows_user ON channel_follows (user_id);

-- The newest frame the studio posted of a live stream: a JPEG, base64 (one column type
-- both databases share), with its ETag.
CREATE TABLE thumbnails (
    channel_id TEXT PRIMARY KEY REFERENCES channels(id) ON DELETE CASCADE,
    jpeg TEXT NOT NULL,
    etag TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Co-viewing looks sessions up by viewer.
CREATE INDEX viewer_sessions_viewer ON viewer_sessions (viewer, channel_id);
