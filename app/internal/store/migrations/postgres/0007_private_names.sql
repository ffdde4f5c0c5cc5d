-- 0007: the same as migrations/sqlite/0007_private_names.sql: a channel's name is
-- unique among public channels only, so that making or renaming a channel never tells
-- anyone that a private channel of that name exists. The list pages by (name, id).
ALTER TABLE channels DROP CONSTRAINT channels_name_key;
CREATE UNIQUE INDEX channels_public_name ON channels (name) WHERE kind = 'public';
CREATE INDEX channels_name_id ON channels (name COLLATE "C", id);
