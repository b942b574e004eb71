-- Integrations: outbound webhooks (endpoints, the events sent, the queue of deliveries
-- and the log of attempts) and API keys. Times are BIGINT milliseconds, booleans BIGINT
-- 0/1 and lists JSON text, as elsewhere.

-- Where a channel's (or, with channel_id NULL, every channel's: admins only) events go.
CREATE TABLE webhook_endpoints (
    id TEXT PRIMARY KEY,
    channel_id TEXT REFERENCES channels(id) ON DELETE CASCADE,
    created_by TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    -- JSON list of event types, e.g. ["stream.started","stream.ended"].
    events TEXT NOT NULL,
    -- The signing secret, sealed under the secret key (it must be read back to sign).
    secret_sealed TEXT NOT NULL,
    -- The secret before the last rotation: it still signs until old_secret_until.
    old_secret_sealed TEXT,
    old_secret_until BIGINT,
    enabled BIGINT NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX webhook_endpoints_channel ON webhook_endpoints (channel_id);

-- One event as sent: the body is stored exactly, so a retry or a redelivery signs the
-- same bytes under the same id.
CREATE TABLE webhook_events (
    id TEXT PRIMARY KEY,
    channel_id TEXT,
    type TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- The queue: one row per event and endpoint. Due when next_attempt_at <= now and no
-- live claim (claimed_until in the future) holds it; finished when next_attempt_at is
-- NULL (delivered_at or failed_at says how).
CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    event_id TEXT NOT NULL REFERENCES webhook_events(id) ON DELETE CASCADE,
    endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT,
    claimed_until BIGINT,
    last_status BIGINT,
    last_error TEXT,
    delivered_at BIGINT,
    failed_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, created_at);

-- Every attempt, for the endpoint's delivery log (pruned after a week).
CREATE TABLE webhook_attempts (
    id TEXT PRIMARY KEY,
    delivery_id TEXT NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    endpoint_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    at BIGINT NOT NULL,
    status BIGINT,
    error TEXT,
    duration_ms BIGINT NOT NULL
);
CREATE INDEX webhook_attempts_endpoint ON webhook_attempts (endpoint_id, at);

-- Server-to-server credentials: `cak_<id>_<secret>`, stored as the SHA-256 of the whole
-- key. channel_id NULL: every channel the user may act on.
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    channel_id TEXT REFERENCES channels(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    -- Space-separated scopes, e.g. "analytics:read chat:moderate".
    scopes TEXT NOT NULL,
    key_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX api_keys_user ON api_keys (user_id);
