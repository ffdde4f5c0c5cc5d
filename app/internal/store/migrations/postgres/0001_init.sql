-- 0001: users, channels, messages; the same shape as migrations/sqlite/0001_init.sql.
-- Ids are UUIDv7 stored as uuid (16 bytes, compared bytewise, which is the order of
-- their canonical text form, so id order is time order). Times are timestamptz kept
-- to the millisecond by the store, as in SQLite.

CREATE TABLE users (
    id            uuid        NOT NULL PRIMARY KEY,
    username      text        NOT NULL,
    password_hash text        NOT NULL,
    created_at    timestamptz NOT NULL
);
-- "Alice" and "alice" are the same account.
CREATE UNIQUE INDEX users_username_lower ON users (lower(username));

CREATE TABLE channels (
    id         uuid        NOT NULL PRIMARY KEY,
    name       text        NOT NULL UNIQUE,
    created_by uuid        REFERENCES users (id),        -- NULL for system channels such as "general"
    created_at timestamptz NOT NULL
);

CREATE TABLE messages (
    id         uuid        NOT NULL PRIMARY KEY,         -- assigned by the node
    channel_id uuid        NOT NULL REFERENCES channels (id),
    author_id  uuid        NOT NULL REFERENCES users (id),
    author     text        NOT NULL,                     -- username at send time, so history needs no join
    text       text        NOT NULL,
    nonce      text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL
);

-- A client retry carries the same nonce: this index is what makes it a no-op.
CREATE UNIQUE INDEX messages_author_nonce ON messages (author_id, nonce) WHERE nonce <> '';

-- History pages: WHERE channel_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3.
CREATE INDEX messages_channel_id ON messages (channel_id, id DESC);
