-- 0004: who may see and say what. A channel is public (anyone joins), private (its
-- members only) or a direct-message channel of two users (dm_key: their ids, sorted,
-- so one pair has one DM). Members have a role: owner, admin or member. Existing
-- channels stay public and their creators become their owners.
ALTER TABLE channels ADD COLUMN kind TEXT NOT NULL DEFAULT 'public';
ALTER TABLE channels ADD COLUMN dm_key TEXT;
CREATE UNIQUE INDEX channels_dm_key ON channels (dm_key) WHERE dm_key IS NOT NULL;

CREATE TABLE channel_members (
    channel_id TEXT    NOT NULL REFERENCES channels(id),
    user_id    TEXT    NOT NULL REFERENCES users(id),
    role       TEXT    NOT NULL,                     -- owner, admin or member
    added_at   INTEGER NOT NULL,
    PRIMARY KEY (channel_id, user_id)
);
-- A user's channels, for the channel list.
CREATE INDEX channel_members_user ON channel_members (user_id, channel_id);

INSERT INTO channel_members (channel_id, user_id, role, added_at)
    SELECT id, created_by, 'owner', created_at FROM channels WHERE created_by IS NOT NULL;
