-- sora-actors schema, version 2: local copies of finished videos (issue 6).
-- The upstream's media needs our API key and expires, so every completed task keeps its own
-- copy in the content store. video_tasks says whether the copy is there (what the API needs
-- to answer), task_content says what exactly was stored (size and SHA-256 per variant).

-- (Comments stay off the ALTER lines: SQLite copies a column's text into its schema.)
-- content_stored_at: when the local copy was complete; content_expired_at: when it was
-- removed (retention, or lost and gone upstream); content_variants: 'video thumbnail'.
ALTER TABLE video_tasks ADD COLUMN content_stored_at BIGINT
;
ALTER TABLE video_tasks ADD COLUMN content_expired_at BIGINT
;
ALTER TABLE video_tasks ADD COLUMN content_variants TEXT
;
-- The retention sweep's question: which copies are older than N days and still on disk?
CREATE INDEX video_tasks_content_age ON video_tasks (content_stored_at)
    WHERE content_stored_at IS NOT NULL AND content_expired_at IS NULL
;
CREATE TABLE task_content (
    video_id        TEXT NOT NULL REFERENCES video_tasks (video_id) ON DELETE CASCADE,
    variant         TEXT NOT NULL,          -- video | thumbnail
    storage_key     TEXT NOT NULL,          -- the content store's key (a path under the store root)
    content_type    TEXT NOT NULL,
    size_bytes      BIGINT NOT NULL,
    sha256          TEXT NOT NULL,          -- hex digest of the stored bytes
    stored_at       BIGINT NOT NULL,
    PRIMARY KEY (video_id, variant)
)
