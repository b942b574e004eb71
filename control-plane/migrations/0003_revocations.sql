-- What stops a signed token, or a live session, before it expires: a stream key revoked or
-- rotated, a channel deleted, a user suspended or deleted or signed out, a private viewer
-- removed. Media nodes without the database follow this list (GET /api/v1/revocations).
-- An entry is kept until every token it can refuse has expired.
CREATE TABLE revocations (
    -- 'key:<id>', 'channel:<id>', 'user:<id>' or 'watch:<channel id>:<user id>'.
    tag TEXT PRIMARY KEY,
    -- For 'user:' tags: tokens carrying an older session version are refused.
    min_sv BIGINT NOT NULL DEFAULT 0,
    -- 1 when live sessions bound to the tag must end (not for a plain sign-out).
    end_live BIGINT NOT NULL DEFAULT 0,
    at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX revocations_expires ON revocations (expires_at);
