-- sora-actors schema: a task its user deleted (issue 16, DELETE at the OpenAI door and at
-- /api/video/tasks/:id). The row stays (admins' counts, the activity log); its files go and
-- every user-facing read hides it.

-- deleted_at: wall ms at which the user deleted the task; null: not deleted.
ALTER TABLE video_tasks ADD COLUMN deleted_at BIGINT
