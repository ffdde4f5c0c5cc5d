-- 0003: a user's token version; tokens carry the version they were issued under, and
-- raising it (logout) revokes every token issued before. The same as
-- migrations/sqlite/0003_token_version.sql.
ALTER TABLE users ADD COLUMN token_version bigint NOT NULL DEFAULT 0;
