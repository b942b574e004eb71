-- Signing keys sealed at rest and rotated; the first account's admin role claimed once.

-- The private key sealed (AES-256-GCM) with the secret key from the environment or a
-- file; `private_pkcs8` is emptied once a row is sealed (the column stays for 0001's
-- NOT NULL). A key signs from `signs_from` and verifies until `retired_at`.
ALTER TABLE signing_keys ADD COLUMN private_sealed TEXT;
ALTER TABLE signing_keys ADD COLUMN signs_from BIGINT NOT NULL DEFAULT 0;
ALTER TABLE signing_keys ADD COLUMN retired_at BIGINT;

-- One row at most: the sign-up that inserts it is the admin. A primary key conflict is
-- what makes the claim atomic on both databases (see accounts::signup).
CREATE TABLE bootstrap (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    user_id TEXT,
    claimed_at BIGINT NOT NULL
);
-- A database that already has accounts already has its admin.
INSERT INTO bootstrap (id, user_id, claimed_at) SELECT 1, NULL, 0 WHERE EXISTS (SELECT 1 FROM users);
