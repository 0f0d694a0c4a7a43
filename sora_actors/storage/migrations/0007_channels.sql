-- sora-actors schema, version 7: several upstream channels (issue 15). A task records the
-- channel its create went to; its polls, lookups, download and cancel go there only, after a
-- restart too. Null: stored before channels existed (the "default" channel).
ALTER TABLE video_tasks ADD COLUMN channel TEXT
