-- Ad breaks, sponsor slots and analytics (issue 13). Times are Unix ms, booleans
-- BIGINT 0/1, as elsewhere.

-- A tier whose subscribers skip ad breaks.
ALTER TABLE tiers ADD COLUMN ad_free BIGINT NOT NULL DEFAULT 0;

-- A channel's default ad tag (a VAST endpoint), `{stream}` and `{duration}` substituted.
CREATE TABLE channel_ads (
    channel_id TEXT PRIMARY KEY REFERENCES channels(id) ON DELETE CASCADE,
    ad_tag_url TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Every break cued: when it starts for every viewer, how long, which ad tag.
CREATE TABLE ad_breaks (
    id TEXT PRIMARY KEY,
    channel_id TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    duration_s BIGINT NOT NULL CHECK (duration_s > 0),
    ad_tag_url TEXT,
    starts_at BIGINT NOT NULL,
    created_by TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX ad_breaks_channel ON ad_breaks (channel_id, starts_at);

-- A sponsor's overlay, shown from `starts_at` to `ends_at`. `announced` is 0, then 1
-- once its start went to the viewers, 2 once its end did: claimed by one UPDATE, so one
-- process announces each.
CREATE TABLE sponsors (
    id TEXT PRIMARY KEY,
    channel_id TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    image_url TEXT NOT NULL,
    link TEXT NOT NULL,
    starts_at BIGINT NOT NULL,
    ends_at BIGINT NOT NULL CHECK (ends_at > starts_at),
    announced BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);
CREATE INDEX sponsors_due ON sponsors (announced, starts_at);
CREATE INDEX sponsors_channel ON sponsors (channel_id, ends_at);

-- A broadcast: a channel's publisher live from `started_at` to `ended_at`.
CREATE TABLE broadcasts (
    id TEXT PRIMARY KEY,
    channel_id TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    started_at BIGINT NOT NULL,
    ended_at BIGINT
);
CREATE INDEX broadcasts_channel ON broadcasts (channel_id, started_at);

-- A viewer's session as the node saw it: who (a user id, or `anon:` and the session),
-- when it opened and closed, its join time (first video after the offer), and what its
-- player reported (stalls, frames; the newest report's totals).
CREATE TABLE viewer_sessions (
    id TEXT PRIMARY KEY,
    channel_id TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    broadcast_id TEXT,
    viewer TEXT NOT NULL,
    opened_at BIGINT NOT NULL,
    closed_at BIGINT,
    join_ms BIGINT,
    stall_ms BIGINT NOT NULL DEFAULT 0,
    stalls BIGINT NOT NULL DEFAULT 0,
    frames BIGINT NOT NULL DEFAULT 0,
    watched_ms BIGINT NOT NULL DEFAULT 0,
    reported_at BIGINT
);
CREATE INDEX viewer_sessions_channel ON viewer_sessions (channel_id, opened_at);
CREATE INDEX viewer_sessions_broadcast ON viewer_sessions (broadcast_id);

-- Concurrent viewers sampled, folded per minute: one row per channel and minute.
CREATE TABLE analytics_minutes (
    channel_id TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    minute BIGINT NOT NULL,
    broadcast_id TEXT,
    samples BIGINT NOT NULL,
    viewer_sum BIGINT NOT NULL,
    peak BIGINT NOT NULL,
    PRIMARY KEY (channel_id, minute)
);

-- Every cue sent, for the media-only nodes of a cluster that follow them
-- (`GET /api/v1/cluster/cues`, a long poll); kept an hour.
CREATE TABLE cues (
    id TEXT PRIMARY KEY,
    stream TEXT NOT NULL,
    event TEXT NOT NULL,
    data TEXT NOT NULL,
    until_ms BIGINT NOT NULL,
    -- A JSON array of user ids told `skip`.
    exempt TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX cues_created ON cues (created_at);
