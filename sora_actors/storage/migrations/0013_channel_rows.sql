-- sora-actors schema: channels admins manage at run time (issue 15). A row overrides the
-- settings file's channel of the same name (or adds one); `deleted` = 1 is a tombstone: no
-- channel of that name, even if the settings file has one. `spec` is the channel as JSON,
-- in the settings' `[[channels]]` schema (its keys too: the settings file holds them the
-- same way).
CREATE TABLE channels (
    name            TEXT PRIMARY KEY,
    spec            TEXT NOT NULL,          -- JSON: ChannelSettings
    deleted         INTEGER NOT NULL DEFAULT 0,
    updated_at      BIGINT NOT NULL
)
