-- sora-actors schema, version 4: login sessions and banned accounts (issue 14).
-- Every issued token names a session (its `sid`); logout, a ban, a deactivation or a password
-- reset revokes sessions here, and each request checks its session against this table
-- (through a per-process cache that account changes invalidate: sora_actors/access.py).
CREATE TABLE sessions (
    id              TEXT PRIMARY KEY,       -- the token's sid
    user_id         TEXT NOT NULL REFERENCES users (id),
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,        -- the token's exp (Unix ms)
    revoked_at      BIGINT,                 -- logout / admin action; NULL while good
    ip              TEXT,
    user_agent      TEXT
)
;
CREATE INDEX sessions_user ON sessions (user_id, revoked_at)
;
-- A banned account keeps its row and its tasks; it can neither log in nor use a token.
ALTER TABLE users ADD COLUMN banned BOOLEAN NOT NULL DEFAULT FALSE
