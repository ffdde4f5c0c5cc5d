-- 0008: the same as migrations/sqlite/0008_message_life.sql: edits, deletions and
-- reactions are log entries folded into the message they act on (target_id);
-- reactions keeps each user's reaction per emoji as the latest entry (op_id) left it.
ALTER TABLE messages ADD COLUMN target_id uuid;
ALTER TABLE messages ADD COLUMN edited_at timestamptz;
ALTER TABLE messages ADD COLUMN edit_id uuid;
ALTER TABLE messages ADD COLUMN deleted boolean NOT NULL DEFAULT false;
CREATE INDEX messages_target ON messages (target_id) WHERE target_id IS NOT NULL;

CREATE TABLE reactions (
    message_id uuid    NOT NULL REFERENCES messages (id),
    user_id    uuid    NOT NULL REFERENCES users (id),
    emoji      text    NOT NULL,
    present    boolean NOT NULL,
    op_id      uuid    NOT NULL,
    PRIMARY KEY (message_id, user_id, emoji)
);
