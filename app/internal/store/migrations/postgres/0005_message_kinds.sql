-- 0005: the same as migrations/sqlite/0005_message_kinds.sql: kind is empty for a
-- message, else the event of a change of the channel's state; data its JSON payload.
ALTER TABLE messages ADD COLUMN kind text NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN data text NOT NULL DEFAULT '';
