-- 0006: a channel's life. An archived channel keeps its history and takes no new
-- messages; a deleted one is gone for everyone (deleted_at set: no longer listed,
-- joined or served), its rows kept until an operator purges them.
ALTER TABLE channels ADD COLUMN archived INTEGER NOT NULL DEFAULT 0;
ALTER TABLE channels ADD COLUMN deleted_at INTEGER;
