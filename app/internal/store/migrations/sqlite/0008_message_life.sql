-- 0008: a message's life after it is sent. Edits, deletions and reactions are entries
-- of the channel's log like the message (kind message:update, message:delete,
-- reaction; target_id: the message they act on); the store folds each into its
-- message: edited_at/edit_id are the last edit applied (edit_id its entry, so that a
-- later entry wins whatever the order of writing), deleted marks a tombstone (its
-- text gone). reactions holds each user's reaction with an emoji, present or taken
-- back, set by the latest entry (op_id). Existing messages are neither edited nor
-- deleted and have no reactions.
ALTER TABLE messages ADD COLUMN target_id TEXT;
ALTER TABLE messages ADD COLUMN edited_at INTEGER;
ALTER TABLE messages ADD COLUMN edit_id TEXT;
ALTER TABLE messages ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
CREATE INDEX messages_target ON messages (target_id) WHERE target_id IS NOT NULL;

CREATE TABLE reactions (
    message_id TEXT    NOT NULL REFERENCES messages(id),
    user_id    TEXT    NOT NULL REFERENCES users(id),
    emoji      TEXT    NOT NULL,
    present    INTEGER NOT NULL,
    op_id      TEXT    NOT NULL,                     -- the entry that set present
    PRIMARY KEY (message_id, user_id, emoji)
);
