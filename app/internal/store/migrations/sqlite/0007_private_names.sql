-- 0007: a channel's name is unique among public channels only, so that making or
-- renaming a channel never tells anyone that a private channel of that name exists.
-- SQLite cannot drop a column's UNIQUE, so the table is rebuilt; the store migrates
-- with foreign keys off and checks them before it commits.
CREATE TABLE channels_new (
    id         TEXT    NOT NULL PRIMARY KEY,              -- UUIDv7
    name       TEXT    NOT NULL,
    created_by TEXT    REFERENCES users(id),              -- NULL for system channels such as "general"
    created_at INTEGER NOT NULL,
    kind       TEXT    NOT NULL DEFAULT 'public',         -- public, private or dm
    dm_key     TEXT,
    archived   INTEGER NOT NULL DEFAULT 0,
    deleted_at INTEGER
);
INSERT INTO channels_new (id, name, created_by, created_at, kind, dm_key, archived, deleted_at)
    SELECT id, name, created_by, created_at, kind, dm_key, archived, deleted_at FROM channels;
DROP TABLE channels;
ALTER TABLE channels_new RENAME TO channels;
CREATE UNIQUE INDEX channels_dm_key ON channels (dm_key) WHERE dm_key IS NOT NULL;
CREATE UNIQUE INDEX channels_public_name ON channels (name) WHERE kind = 'public';
-- The channel list pages by (name, id).
CREATE INDEX channels_name_id ON channels (name, id);
