-- 0001: users, channels, messages.
-- Times are Unix milliseconds (UTC) so ordering and comparison need no parsing.

CREATE TABLE users (
    id            TEXT    NOT NULL PRIMARY KEY,           -- UUIDv7
    username      TEXT    NOT NULL COLLATE NOCASE UNIQUE, -- "Alice" and "alice" are the same account
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL
);

CREATE TABLE channels (
    id         TEXT    NOT NULL PRIMARY KEY,              -- UUIDv7
    name       TEXT    NOT NULL UNIQUE,
    created_by TEXT    REFERENCES users(id),              -- NULL for system channels such as "general"
    created_at INTEGER NOT NULL
);

CREATE TABLE messages (
    id         TEXT    NOT NULL PRIMARY KEY,              -- UUIDv7 assigned by the node, so id order is time order
    channel_id TEXT    NOT NULL REFERENCES channels(id),
    author_id  TEXT    NOT NULL REFERENCES users(id),
    author     TEXT    NOT NULL,                          -- username at send time, so history needs no join
    text       TEXT    NOT NULL,
    nonce      TEXT    NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL
);

-- A client retry carries the same nonce: this index is what makes it a no-op.
CREATE UNIQUE INDEX messages_author_nonce ON messages (author_id, nonce) WHERE nonce <> '';

-- History pages: WHERE channel_id = ? AND id < ? ORDER BY id DESC LIMIT ?.
CREATE INDEX messages_channel_id ON messages (channel_id, id);
