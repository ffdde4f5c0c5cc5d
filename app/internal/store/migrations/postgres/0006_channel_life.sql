-- 0006: the same as migrations/sqlite/0006_channel_life.sql: archived channels take no
-- new messages; deleted ones (deleted_at set) are no longer listed, joined or served.
ALTER TABLE channels ADD COLUMN archived boolean NOT NULL DEFAULT false;
ALTER TABLE channels ADD COLUMN deleted_at timestamptz;
