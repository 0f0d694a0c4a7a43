-- sora-actors schema: the polling policy's estimate of when the upstream job ends (issue 15).
-- Clients read it as taskProgress.estimatedTimeRemaining; several instances share it.

-- estimated_end_at: wall ms at which the upstream job is expected to end; null: no estimate.
ALTER TABLE video_tasks ADD COLUMN estimated_end_at BIGINT
