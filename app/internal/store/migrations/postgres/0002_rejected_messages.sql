-- 0002: messages the store refused for good (their author or channel no longer exists,
-- or data a column cannot hold), parked by the batch writer so that they never hold up
-- the others. The message is kept whole as JSON: a column that refused it must not
-- refuse it again here.
CREATE TABLE rejected_messages (
    id          text        NOT NULL PRIMARY KEY,
    body        bytea       NOT NULL,
    reason      text        NOT NULL,
    rejected_at timestamptz NOT NULL
);
