-- 0005: a channel's history keeps its changes of state beside what users wrote: kind
-- is empty for a message, else the event (member:join, member:update, member:leave),
-- data its payload as JSON ('' for none). Existing rows are messages.
ALTER TABLE messages ADD COLUMN kind TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN data TEXT NOT NULL DEFAULT '';
