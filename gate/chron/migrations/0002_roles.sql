-- 0002: least privilege. Three group roles (NOLOGIN) hold every right on
-- Chron that a running component has; `claiim chron migrate` makes the
-- login roles members of them (roles.go). The owner, who runs migrations,
-- is never a component's role.
--
--   chron_gate_writer     INSERT, SELECT on chron_records, rows of streams gate/…
--   chron_manager_writer  INSERT, SELECT on chron_records, rows of streams manager/…
--   chron_reader          SELECT on chron_records, every row
--
-- All three may read schema_migrations (a component checks the schema
-- version it needs). Nothing else: no UPDATE, DELETE, TRUNCATE, REFERENCES
-- or TRIGGER, and no ALTER or DROP, which only the owner can do.
--
-- Roles are cluster-wide and this may run in several databases of one
-- cluster, so a role another database's migration made is reused.
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['chron_gate_writer', 'chron_manager_writer', 'chron_reader'] LOOP
        BEGIN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL; -- made already (unique_violation: concurrently, by another database)
        END;
    END LOOP;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO chron_gate_writer, chron_manager_writer, chron_reader', current_schema());
END
$$;

REVOKE ALL ON chron_records, schema_migrations FROM PUBLIC;
GRANT SELECT, INSERT ON chron_records TO chron_gate_writer, chron_manager_writer;
GRANT SELECT ON chron_records TO chron_reader;
GRANT SELECT ON schema_migrations TO chron_gate_writer, chron_manager_writer, chron_reader;

-- Row-level security binds each writer to its own streams, for reading too:
-- a gate cannot write a pim.approved row into a manager stream, nor read
-- the manager's rows. ENABLE without FORCE: the owner is exempt, as it
-- must be for later migrations, and a FORCE would not bind it anyway (an
-- owner may turn row security off); superusers are always exempt. The
-- writers' duplicate-id path still sees a row stored under its id by
-- another replica of the same component. The primary key still spans
-- every stream: an id taken by another component's row is refused, never
-- overwritten.
ALTER TABLE chron_records ENABLE ROW LEVEL SECURITY;

CREATE POLICY chron_gate_writer_read ON chron_records FOR SELECT TO chron_gate_writer
    USING (starts_with(stream, 'gate/'));
CREATE POLICY chron_gate_writer_insert ON chron_records FOR INSERT TO chron_gate_writer
    WITH CHECK (starts_with(stream, 'gate/'));
CREATE POLICY chron_manager_writer_read ON chron_records FOR SELECT TO chron_manager_writer
    USING (starts_with(stream, 'manager/'));
CREATE POLICY chron_manager_writer_insert ON chron_records FOR INSERT TO chron_manager_writer
    WITH CHECK (starts_with(stream, 'manager/'));
CREATE POLICY chron_reader_read ON chron_records FOR SELECT TO chron_reader
    USING (true);
