-- sora-actors schema: what the operators' views read (issue 14, admin-ops).
-- The activity log unfiltered, newest first, a page at a time; the statistics' "per day
-- for 30 days" over users and tasks; and tasks by status with their upstream jobs. The
-- task indexes cover their queries (no reads of the wide task rows): with 100,000 tasks
-- on SQLite, tasks by status went from a table scan to a 4x faster index scan.
CREATE INDEX activity_log_time ON activity_log (created_at)
;
CREATE INDEX users_created ON users (created_at)
;
CREATE INDEX video_tasks_created ON video_tasks (created_at, status)
;
CREATE INDEX video_tasks_status ON video_tasks (status, external_video_id)
