-- 0005: history, every stored generation of the control-plane objects.
--
-- A row is one generation of one object (its UID), as the manager saw it
-- stored: its spec in canonical JSON and that JSON's SHA-256, who made the
-- change and under which PIM session (from admission's changed-by
-- annotation, only when admission's stamp covers it; '' when it does not),
-- and whether the generation was admitted. A Chron decision row names a
-- policy and its generation: this table turns that into content. The
-- manager writes a row once it has seen the generation stored (never the
-- webhook, which sees changes that may not be stored); a generation it
-- never saw is recorded in Chron as object.gap, never invented here.
CREATE TABLE chron_history (
    uid          text        NOT NULL,
    generation   bigint      NOT NULL,
    kind         text        NOT NULL,
    namespace    text        NOT NULL DEFAULT '',
    name         text        NOT NULL,
    spec_digest  text        NOT NULL,
    spec         jsonb       NOT NULL,
    changed_by   text        NOT NULL DEFAULT '',
    pim_session  text        NOT NULL DEFAULT '',
    admitted     boolean     NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT chron_history_pkey PRIMARY KEY (uid, generation),
    CONSTRAINT chron_history_generation_check CHECK (generation > 0),
    CONSTRAINT chron_history_kind_check CHECK (kind IN ('AIOrg', 'Skill', 'Policy', 'Agent')),
    CONSTRAINT chron_history_name_check CHECK (name <> ''),
    CONSTRAINT chron_history_digest_check CHECK (spec_digest ~ '^sha256:[0-9a-f]{64}$')
);

-- `claiim history KIND/NAME`: an object's generations by name, across the
-- objects that had the name (a deleted and re-created object is another UID).
CREATE INDEX chron_history_name_idx ON chron_history (kind, name, namespace, generation);

-- Evidence, like chron_records: the database refuses changes, whoever asks.
CREATE FUNCTION chron_history_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'Chron is append-only: % on chron_history is not allowed', TG_OP
        USING HINT = 'History rows are evidence; a generation is recorded once.';
END;
$$;

CREATE TRIGGER chron_history_no_update_delete
    BEFORE UPDATE OR DELETE ON chron_history
    FOR EACH ROW EXECUTE FUNCTION chron_history_append_only();

CREATE TRIGGER chron_history_no_truncate
    BEFORE TRUNCATE ON chron_history
    FOR EACH STATEMENT EXECUTE FUNCTION chron_history_append_only();

-- The manager records (INSERT of every column but the time the database
-- fills, so a writer cannot back-date a row) and reads back what it
-- recorded (SELECT, for idempotency and gaps); readers read. The gate
-- neither reads nor writes it.
REVOKE ALL ON chron_history FROM PUBLIC;
GRANT SELECT ON chron_history TO chron_manager_writer, chron_reader;
GRANT INSERT (uid, generation, kind, namespace, name, spec_digest, spec, changed_by, pim_session, admitted)
    ON chron_history TO chron_manager_writer;
