-- 0003: a user's token version; tokens carry the version they were issued under, and
-- raising it (logout) revokes every token issued before.
ALTER TABLE users ADD COLUMN token_version INTEGER NOT NULL DEFAULT 0;
