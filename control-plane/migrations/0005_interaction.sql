-- Chat, moderation, polls, surveys and Q&A, per channel. Booleans are BIGINT 0/1 and
-- lists JSON text, as elsewhere; message ids are per room, from chat_rooms.last_id.

-- One row per channel with a room: its id counter, settings and pinned message.
CREATE TABLE chat_rooms (
    channel_id TEXT PRIMARY KEY REFERENCES channels(id) ON DELETE CASCADE,
    last_id BIGINT NOT NULL DEFAULT 0,
    slow_mode_secs BIGINT NOT NULL DEFAULT 0,
    -- 'everyone' (any signed-in account), 'followers' or 'moderators'.
    mode TEXT NOT NULL DEFAULT 'everyone',
    -- 1: the built-in list of blocked terms applies besides the channel's own.
    default_terms BIGINT NOT NULL DEFAULT 1,
    pinned_id BIGINT
);

CREATE TABLE chat_messages (
    channel_id TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    id BIGINT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    text TEXT NOT NULL,
    reply_to BIGINT,
    mentions TEXT NOT NULL DEFAULT '[]',
    created_at BIGINT NOT NULL,
    deleted_at BIGINT,
    PRIMARY KEY (channel_id, id)
);
CREATE INDEX chat_messages_author ON chat_messages (channel_id, user_id, id);

CREATE TABLE channel_moderators (
    channel_id TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    added_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (channel_id, user_id)
);

CREATE TABLE channel_follows (
    channel_id TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (channel_id, user_id)
);

-- A ban (expires_at NULL) or a timeout; watch = 1 also refuses watching.
CREATE TABLE channel_bans (
    channel_id TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    reason TEXT NOT NULL DEFAULT '',
    actor_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    watch BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (channel_id, user_id)
);

CREATE TABLE global_bans (
    user_id TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    reason TEXT NOT NULL DEFAULT '',
    actor_id TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE blocked_terms (
    id TEXT PRIMARY KEY,
    channel_id TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    term TEXT NOT NULL,
    -- 'mask' or 'reject'.
    action TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX blocked_terms_channel ON blocked_terms (channel_id);

CREATE TABLE chat_reports (
    id TEXT PRIMARY KEY,
    channel_id TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    message_id BIGINT NOT NULL,
    reporter_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    reason TEXT NOT NULL DEFAULT '',
    -- 'open', 'dismissed' or 'deleted'.
    status TEXT NOT NULL DEFAULT 'open',
    created_at BIGINT NOT NULL,
    resolved_by TEXT,
    resolved_at BIGINT
);
CREATE INDEX chat_reports_channel ON chat_reports (channel_id, status, created_at);

-- Every moderation action: who, on whom, why. channel_id NULL: a global action.
CREATE TABLE moderation_log (
    id TEXT PRIMARY KEY,
    channel_id TEXT,
    at BIGINT NOT NULL,
    actor_id TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX moderation_log_channel ON moderation_log (channel_id, at);

CREATE TABLE polls (
    id TEXT PRIMARY KEY,
    channel_id TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    question TEXT NOT NULL,
    options TEXT NOT NULL,
    multiple BIGINT NOT NULL DEFAULT 0,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    closes_at BIGINT,
    closed_at BIGINT
);
CREATE INDEX polls_channel ON polls (channel_id, created_at);

CREATE TABLE poll_votes (
    poll_id TEXT NOT NULL REFERENCES polls(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    choices TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (poll_id, user_id)
);

CREATE TABLE questions (
    id TEXT PRIMARY KEY,
    channel_id TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    text TEXT NOT NULL,
    upvotes BIGINT NOT NULL DEFAULT 0,
    answered BIGINT NOT NULL DEFAULT 0,
    pinned BIGINT NOT NULL DEFAULT 0,
    hidden BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);
CREATE INDEX questions_channel ON questions (channel_id, created_at);

CREATE TABLE question_votes (
    question_id TEXT NOT NULL REFERENCES questions(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (question_id, user_id)
);

CREATE TABLE surveys (
    id TEXT PRIMARY KEY,
    channel_id TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    title TEXT NOT NULL,
    questions TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    closed_at BIGINT
);
CREATE INDEX surveys_channel ON surveys (channel_id, created_at);

CREATE TABLE survey_responses (
    survey_id TEXT NOT NULL REFERENCES surveys(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    answers TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (survey_id, user_id)
);
