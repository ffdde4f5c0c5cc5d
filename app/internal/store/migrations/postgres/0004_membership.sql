-- 0004: who may see and say what; the same as migrations/sqlite/0004_membership.sql.
-- A channel is public, private (its members only) or a direct-message channel of two
-- users (dm_key: their ids, sorted). Members are owner, admin or member. Existing
-- channels stay public and their creators become their owners.
ALTER TABLE channels ADD COLUMN kind text NOT NULL DEFAULT 'public'
    CHECK (kind IN ('public', 'private', 'dm'));
ALTER TABLE channels ADD COLUMN dm_key text;
CREATE UNIQUE INDEX channels_dm_key ON channels (dm_key) WHERE dm_key IS NOT NULL;

CREATE TABLE channel_members (
    channel_id uuid        NOT NULL REFERENCES channels (id),
    user_id    uuid        NOT NULL REFERENCES users (id),
    role       text        NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    added_at   timestamptz NOT NULL,
    PRIMARY KEY (channel_id, user_id)
);
CREATE INDEX channel_members_user ON channel_members (user_id, channel_id);

INSERT INTO channel_members (channel_id, user_id, role, added_at)
    SELECT id, created_by, 'owner', created_at FROM channels WHERE created_by IS NOT NULL;
