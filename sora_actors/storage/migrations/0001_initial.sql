-- sora-actors schema, version 1.
-- Portable SQL for SQLite and PostgreSQL: ids are text, times are Unix milliseconds (BIGINT),
-- JSON is text. Statements are separated by lines holding only ';'.

CREATE TABLE users (
    id              TEXT PRIMARY KEY,
    username        TEXT NOT NULL,
    username_key    TEXT NOT NULL UNIQUE,   -- lower-cased: usernames are unique ignoring case
    email           TEXT,
    email_key       TEXT UNIQUE,            -- lower-cased email, NULL when none
    password_hash   TEXT NOT NULL,
    role            TEXT NOT NULL DEFAULT 'USER' CHECK (role IN ('USER', 'ADMIN')),
    is_active       BOOLEAN NOT NULL DEFAULT TRUE,
    last_login      BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
)
;
CREATE TABLE licenses (
    license_key     TEXT PRIMARY KEY,
    type            TEXT NOT NULL CHECK (type IN ('TRIAL', 'PRO', 'ENTERPRISE')),
    user_id         TEXT REFERENCES users (id) ON DELETE SET NULL,
    features        TEXT NOT NULL DEFAULT '[]',
    activated_at    BIGINT,
    expires_at      BIGINT,
    created_at      BIGINT NOT NULL
)
;
CREATE INDEX licenses_user ON licenses (user_id)
;
CREATE TABLE activity_log (
    id              TEXT PRIMARY KEY,
    user_id         TEXT REFERENCES users (id) ON DELETE SET NULL,
    action          TEXT NOT NULL,
    details         TEXT,                   -- JSON
    ip              TEXT,
    user_agent      TEXT,
    created_at      BIGINT NOT NULL
)
;
CREATE INDEX activity_log_user_time ON activity_log (user_id, created_at)
;
CREATE INDEX activity_log_action_time ON activity_log (action, created_at)
;
CREATE TABLE system_config (
    key             TEXT PRIMARY KEY,
    value           TEXT NOT NULL,          -- JSON
    updated_at      BIGINT NOT NULL
)
;
CREATE TABLE video_tasks (
    video_id              TEXT PRIMARY KEY,
    user_id               TEXT NOT NULL REFERENCES users (id),
    external_video_id     TEXT,
    status                TEXT NOT NULL,    -- public status: QUEUED PROCESSING COMPLETED FAILED CANCELLED
    phase                 TEXT NOT NULL,    -- the actor's state (see sora_actors/lifecycle.py)
    progress              INTEGER NOT NULL DEFAULT 0,
    prompt                TEXT NOT NULL,
    model                 TEXT NOT NULL,
    size                  TEXT NOT NULL,
    duration              INTEGER NOT NULL,
    media_type            TEXT NOT NULL DEFAULT 'VIDEO',
    error_code            TEXT,
    error_message         TEXT,
    poll_count            INTEGER NOT NULL DEFAULT 0,
    last_poll_at          BIGINT,
    next_poll_at          BIGINT,
    seq                   BIGINT NOT NULL DEFAULT 1,  -- +1 in every unit of work that changes the task
    restarts              INTEGER NOT NULL DEFAULT 0,
    submit_started_at     BIGINT,           -- the submission intent, stored before create is called
    remixed_from_video_id TEXT,
    idempotency_key       TEXT,
    request_hash          TEXT,
    upstream_expires_at   BIGINT,
    deadline_at           BIGINT,
    owner                 TEXT,
    lease_expires_at      BIGINT,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL,
    started_at            BIGINT,
    completed_at          BIGINT
)
;
CREATE INDEX video_tasks_user_time ON video_tasks (user_id, created_at, video_id)
;
CREATE INDEX video_tasks_user_status_time ON video_tasks (user_id, status, created_at, video_id)
;
CREATE INDEX video_tasks_unfinished ON video_tasks (created_at) WHERE status IN ('QUEUED', 'PROCESSING')
;
-- One upstream job belongs to at most one task.
CREATE UNIQUE INDEX video_tasks_external ON video_tasks (external_video_id)
    WHERE external_video_id IS NOT NULL
;
CREATE UNIQUE INDEX video_tasks_idempotency ON video_tasks (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL
;
-- A reference image is kept until the task is submitted, so a restart can still submit it.
CREATE TABLE task_inputs (
    video_id        TEXT PRIMARY KEY REFERENCES video_tasks (video_id) ON DELETE CASCADE,
    content_type    TEXT NOT NULL,
    filename        TEXT NOT NULL,
    data_base64     TEXT NOT NULL
)
