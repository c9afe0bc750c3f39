-- 0003: hash format v2, the keyed chain.
--
-- format says how a row's hash was made: 1 is the unkeyed SHA-256 chain of
-- 0001 (every row stored before this migration, which keeps verifying as
-- it was); 2 is HMAC-SHA256 under a chain key PostgreSQL never sees, named
-- by key_id so that rows made with an old key verify after a rotation.
-- Adding a column with a constant default rewrites no row.
ALTER TABLE chron_records
    ADD COLUMN format smallint NOT NULL DEFAULT 1,
    ADD COLUMN key_id text     NOT NULL DEFAULT '',
    ADD CONSTRAINT chron_records_format_check CHECK (
        (format = 1 AND key_id = '') OR (format = 2 AND key_id <> ''));
