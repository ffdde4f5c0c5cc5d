-- 0009: replies, mentions and read markers. reply_to is the message a message answers
-- (of the same channel); mentions the JSON array of the users its text names ('' for
-- none), also kept one row per user in mentions, for counting. read_markers holds how
-- far each user has read each channel, set by the latest read entry of the channel's
-- log (it only moves forward). Existing messages answer nothing and mention no one.
ALTER TABLE messages ADD COLUMN reply_to TEXT;
ALTER TABLE messages ADD COLUMN mentions TEXT NOT NULL DEFAULT '';
-- A thread: WHERE reply_to = ? AND id < ? ORDER BY id DESC.
CREATE INDEX messages_replies ON messages (reply_to, id) WHERE reply_to IS NOT NULL;

CREATE TABLE mentions (
    user_id    TEXT NOT NULL REFERENCES users(id),
    channel_id TEXT NOT NULL REFERENCES channels(id),
    message_id TEXT NOT NULL REFERENCES messages(id),
    PRIMARY KEY (user_id, channel_id, message_id)
);

CREATE TABLE read_markers (
    user_id    TEXT NOT NULL REFERENCES users(id),
    channel_id TEXT NOT NULL REFERENCES channels(id),
    message_id TEXT NOT NULL,
    PRIMARY KEY (user_id, channel_id)
);
-- Who has read a channel how far ("seen by").
CREATE INDEX read_markers_channel ON read_markers (channel_id, message_id);
