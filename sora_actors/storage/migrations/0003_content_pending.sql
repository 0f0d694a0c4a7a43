-- sora-actors schema, version 3: a finished video waiting for space in the content store
-- (issue 12). The upstream still holds it, so the task stays FETCHING and retries; clients
-- see contentStatus PENDING_SPACE instead of a failure.

-- content_pending_since: when the task first found the content store full (wall ms); null
-- once stored, or when nothing is waiting.
ALTER TABLE video_tasks ADD COLUMN content_pending_since BIGINT
