-- sora-actors schema: what the operators' views read (issue 14, admin-ops).
-- The activity log unfiltered, newest first, a page at a time; and the statistics' "per
-- day for 30 days" over users and tasks: each needs its table ordered by creation time.
CREATE INDEX activity_log_time ON activity_log (created_at)
;
CREATE INDEX users_created ON users (created_at)
;
CREATE INDEX video_tasks_created ON video_tasks (created_at)
