-- sora-actors schema, version 6: personal API keys (issue 16, "an OpenAI-compatible door").
-- A user's key (sk-sora-...) authenticates as that user. Only its SHA-256 is kept (the key
-- is random, 256 bits: a salted slow hash would add nothing but a cost per request), with
-- a short prefix and the last four characters so that a list can tell keys apart.

CREATE TABLE api_keys (
    id              TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    key_hash        TEXT NOT NULL UNIQUE,   -- hex SHA-256 of the whole key
    prefix          TEXT NOT NULL,          -- "sk-sora-" and the first characters after it
    last4           TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    last_used_at    BIGINT,                 -- recorded at most once a minute per key
    revoked_at      BIGINT                  -- NULL while the key works
)
;
CREATE INDEX api_keys_user_time ON api_keys (user_id, created_at)
