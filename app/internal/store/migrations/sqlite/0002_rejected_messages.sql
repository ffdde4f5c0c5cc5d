-- 0002: messages the store refused for good, parked by the batch writer; the same
-- shape as migrations/postgres/0002_rejected_messages.sql.
CREATE TABLE rejected_messages (
    id          TEXT    NOT NULL PRIMARY KEY,
    body        BLOB    NOT NULL,
    reason      TEXT    NOT NULL,
    rejected_at INTEGER NOT NULL  -- Unix ms
);
