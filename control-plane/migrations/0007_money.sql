-- Money (issue 13): subscription tiers, viewers' subscriptions, tips, the gateway's
-- events, and a double-entry ledger. Amounts are integer minor units (cents) with a
-- lowercase ISO 4217 currency; booleans are BIGINT 0/1 as elsewhere.

-- A channel's paywall: always subscribers-only, or only until a time (this stream).
CREATE TABLE channel_paywalls (
    channel_id TEXT PRIMARY KEY REFERENCES channels(id) ON DELETE CASCADE,
    subscribers_only BIGINT NOT NULL DEFAULT 0,
    -- Unix ms: the current stream is subscribers-only until then.
    stream_until BIGINT,
    updated_at BIGINT NOT NULL
);

-- A channel's offer: a price per period, mirrored at the gateway (product + price).
CREATE TABLE tiers (
    id TEXT PRIMARY KEY,
    channel_id TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    amount BIGINT NOT NULL CHECK (amount > 0),
    currency TEXT NOT NULL CHECK (length(currency) = 3),
    period TEXT NOT NULL CHECK (period IN ('month', 'year')),
    gateway_product TEXT NOT NULL,
    gateway_price TEXT NOT NULL,
    active BIGINT NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX tiers_channel ON tiers (channel_id);

-- A user's customer at the gateway.
CREATE TABLE payment_customers (
    user_id TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    gateway_customer TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

-- A viewer's subscription to a tier. `status` follows the gateway's events: it is set
-- only by an event at least as new (`status_at`, the event's `created`, Unix seconds),
-- and never leaves `canceled`.
CREATE TABLE subscriptions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    channel_id TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    tier_id TEXT NOT NULL REFERENCES tiers(id) ON DELETE CASCADE,
    gateway_subscription TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    status_at BIGINT NOT NULL,
    -- The client's Idempotency-Key: a repeat answers with this row.
    idempotency_key TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (user_id, idempotency_key)
);
CREATE INDEX subscriptions_viewer ON subscriptions (channel_id, user_id, status);

-- A tip: a payment with a message, recorded when the gateway says it succeeded.
CREATE TABLE tips (
    id TEXT PRIMARY KEY,
    channel_id TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    user_id TEXT REFERENCES users(id) ON DELETE SET NULL,
    amount BIGINT NOT NULL CHECK (amount > 0),
    currency TEXT NOT NULL CHECK (length(currency) = 3),
    message TEXT NOT NULL,
    gateway_intent TEXT NOT NULL UNIQUE,
    -- 'pending', then 'succeeded' (once).
    status TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    succeeded_at BIGINT
);
CREATE UNIQUE INDEX tips_idempotency ON tips (user_id, idempotency_key);
CREATE INDEX tips_channel ON tips (channel_id, created_at);

-- Every gateway event applied (a repeat is answered and changes nothing).
CREATE TABLE gateway_events (
    id TEXT PRIMARY KEY,
    gateway TEXT NOT NULL,
    type TEXT NOT NULL,
    created BIGINT NOT NULL,
    received_at BIGINT NOT NULL
);

-- The ledger: append-only. A transaction is one money-moving fact under a unique
-- idempotency key (a repeat returns the first and moves nothing).
CREATE TABLE ledger_transactions (
    id TEXT PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
    -- 'subscription', 'tip' or 'payout'.
    kind TEXT NOT NULL,
    -- No foreign key: the ledger outlives a deleted channel.
    channel_id TEXT,
    -- The gateway's object (invoice, payment intent) or the payout's note.
    reference TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX ledger_transactions_channel ON ledger_transactions (channel_id, created_at);

-- A posting moves `amount` of `currency` from `credit_account` to `debit_account`: one
-- debit and one credit of the same amount, so every transaction balances by the
-- schema's own shape (sum of debits = sum of credits per currency).
CREATE TABLE ledger_postings (
    txn_id TEXT NOT NULL REFERENCES ledger_transactions(id),
    seq BIGINT NOT NULL,
    debit_account TEXT NOT NULL,
    credit_account TEXT NOT NULL,
    amount BIGINT NOT NULL CHECK (amount > 0),
    currency TEXT NOT NULL CHECK (length(currency) = 3),
    CHECK (debit_account <> credit_account),
    PRIMARY KEY (txn_id, seq)
);
CREATE INDEX ledger_postings_debit ON ledger_postings (debit_account, currency);
CREATE INDEX ledger_postings_credit ON ledger_postings (credit_account, currency);
