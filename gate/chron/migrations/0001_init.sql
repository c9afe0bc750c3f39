-- 0001: Chron's append-only, hash-chained record table.
--
-- Every column is NOT NULL so that a row reads back exactly as it was hashed.
-- context, policies and skill_rules hold the canonical JSON the writer hashed.
CREATE TABLE chron_records (
    id               text        NOT NULL,
    stream           text        NOT NULL,
    seq              bigint      NOT NULL,
    time             timestamptz NOT NULL,
    kind             text        NOT NULL,
    actor            text        NOT NULL DEFAULT '',
    agent_name       text        NOT NULL DEFAULT '',
    agent_namespace  text        NOT NULL DEFAULT '',
    agent_uid        text        NOT NULL DEFAULT '',
    org              text        NOT NULL DEFAULT '',
    action           text        NOT NULL DEFAULT '',
    context          jsonb       NOT NULL DEFAULT '{}',
    outcome          text        NOT NULL,
    reason           text        NOT NULL DEFAULT '',
    message          text        NOT NULL DEFAULT '',
    anchor           text        NOT NULL DEFAULT '',
    skill_version_id text        NOT NULL DEFAULT '',
    skill_digest     text        NOT NULL DEFAULT '',
    policies         jsonb       NOT NULL DEFAULT '[]',
    skill_rules      jsonb       NOT NULL DEFAULT '[]',
    replica          text        NOT NULL DEFAULT '',
    request_id       text        NOT NULL DEFAULT '',
    prev_hash        text        NOT NULL,
    hash             text        NOT NULL,
    committed_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT chron_records_pkey PRIMARY KEY (id),
    -- One writer per stream: a second writer on the same stream collides here
    -- instead of forking the chain.
    CONSTRAINT chron_records_stream_seq_key UNIQUE (stream, seq),
    CONSTRAINT chron_records_seq_check CHECK (seq > 0),
    CONSTRAINT chron_records_kind_check CHECK (kind <> ''),
    CONSTRAINT chron_records_outcome_check CHECK (outcome IN ('ALLOW', 'DENY'))
);

-- Rows arrive roughly in time order: a BRIN index is tiny and serves range scans.
CREATE INDEX chron_records_time_brin ON chron_records USING brin (time);
-- Keyset pagination, newest first: ORDER BY time DESC, id DESC.
CREATE INDEX chron_records_time_id_idx ON chron_records (time DESC, id DESC);
CREATE INDEX chron_records_agent_idx ON chron_records (agent_name, time DESC);
CREATE INDEX chron_records_org_idx ON chron_records (org, time DESC);
CREATE INDEX chron_records_outcome_idx ON chron_records (outcome, time DESC);

-- The database itself refuses changes, whoever asks. A superuser can still
-- disable the trigger; the hash chain is what catches that.
CREATE FUNCTION chron_records_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'Chron is append-only: % on chron_records is not allowed', TG_OP
        USING HINT = 'Chron rows are evidence; write a new row instead.';
END;
$$;

CREATE TRIGGER chron_records_no_update_delete
    BEFORE UPDATE OR DELETE ON chron_records
    FOR EACH ROW EXECUTE FUNCTION chron_records_append_only();

CREATE TRIGGER chron_records_no_truncate
    BEFORE TRUNCATE ON chron_records
    FOR EACH STATEMENT EXECUTE FUNCTION chron_records_append_only();
