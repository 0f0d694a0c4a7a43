-- Licences keep only a hash of their key (issue 14).
--
-- 0001 created `licenses` with the key itself as primary key. No version of sora-actors
-- ever wrote to it (no route did), so it is empty and is replaced. Should someone have
-- put rows there by hand, the guard below stops the migration (a CHECK violation naming
-- licenses_must_be_empty) instead of dropping their keys: move them out first.
CREATE TABLE licenses_guard_0005 (
    n INTEGER NOT NULL CONSTRAINT licenses_must_be_empty CHECK (n = 0)
)
;
INSERT INTO licenses_guard_0005 (n) SELECT COUNT(*) FROM licenses
;
DROP TABLE licenses_guard_0005
;
DROP TABLE licenses
;
CREATE TABLE licenses (
    id              TEXT PRIMARY KEY,
    key_hash        TEXT NOT NULL UNIQUE,   -- SHA-256 (hex) of the normalised key
    key_last4       TEXT NOT NULL,          -- shown as SORA-…-ABCD
    type            TEXT NOT NULL CHECK (type IN ('TRIAL', 'PRO', 'ENTERPRISE')),
    user_id         TEXT REFERENCES users (id) ON DELETE SET NULL,
    device_id       TEXT,
    features        TEXT NOT NULL DEFAULT '[]',  -- JSON
    duration_days   INTEGER,                -- counted from activation; NULL: never expires
    is_active       BOOLEAN NOT NULL DEFAULT TRUE,  -- FALSE once revoked
    revoked_at      BIGINT,
    revoked_by      TEXT,
    created_by      TEXT,
    activated_at    BIGINT,
    expires_at      BIGINT,
    created_at      BIGINT NOT NULL
)
;
CREATE INDEX licenses_user ON licenses (user_id)
;
CREATE INDEX licenses_created ON licenses (created_at, id)
