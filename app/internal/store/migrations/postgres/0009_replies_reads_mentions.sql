-- 0009: the same as migrations/sqlite/0009_replies_reads_mentions.sql: replies,
-- mentions (a JSON array on the message, and a row per user for counting) and read
-- markers that only move forward.
ALTER TABLE messages ADD COLUMN reply_to uuid;
ALTER TABLE messages ADD COLUMN mentions text NOT NULL DEFAULT '';
CREATE INDEX messages_replies ON messages (reply_to, id DESC) WHERE reply_to IS NOT NULL;

CREATE TABLE mentions (
    user_id    uuid NOT NULL REFERENCES users (id),
    channel_id uuid NOT NULL REFERENCES channels (id),
    message_id uuid NOT NULL REFERENCES messages (id),
    PRIMARY KEY (user_id, channel_id, message_id)
);

CREATE TABLE read_markers (
    user_id    uuid NOT NULL REFERENCES users (id),
    channel_id uuid NOT NULL REFERENCES channels (id),
    message_id uuid NOT NULL,
    PRIMARY KEY (user_id, channel_id)
);
CREATE INDEX read_markers_channel ON read_markers (channel_id, message_id);
