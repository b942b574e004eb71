-- Videos (recordings and uploads), resumable uploads in progress, and each channel's
-- retention of recordings (issue 14). Times are Unix ms, as elsewhere.

-- A video whose bytes are in the media storage under `storage_key`. A row exists only
-- for a file that is complete and was checked: nothing half-made is listed.
CREATE TABLE videos (
    id TEXT PRIMARY KEY,
    channel_id TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('recording', 'upload')),
    title TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    visibility TEXT NOT NULL DEFAULT 'public'
        CHECK (visibility IN ('public', 'unlisted', 'private', 'subscribers')),
    status TEXT NOT NULL DEFAULT 'ready' CHECK (status IN ('ready')),
    storage_key TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    video_codec TEXT,
    audio_codec TEXT,
    width BIGINT,
    height BIGINT,
    thumbnail_url TEXT,
    -- A recording's stream (the channel's slug when it was recorded).
    source_stream TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    -- The newest read of its media (written at most once a minute): the retention
    -- sweeper keeps a video someone is watching.
    last_read_at BIGINT
);
CREATE INDEX videos_channel ON videos (channel_id, created_at);
CREATE INDEX videos_kind ON videos (kind, created_at);

-- How long a channel's recordings are kept; no row, or NULL days: forever.
CREATE TABLE channel_retention (
    channel_id TEXT PRIMARY KEY REFERENCES channels(id) ON DELETE CASCADE,
    keep_days BIGINT CHECK (keep_days IS NULL OR keep_days > 0),
    updated_at BIGINT NOT NULL
);

-- A tus upload in progress: its bytes so far are in the staging directory of the
-- process that created it; `received` is what a HEAD answers.
CREATE TABLE uploads (
    id TEXT PRIMARY KEY,
    channel_id TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL,
    length BIGINT NOT NULL CHECK (length > 0),
    received BIGINT NOT NULL DEFAULT 0,
    title TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX uploads_expiry ON uploads (expires_at);
