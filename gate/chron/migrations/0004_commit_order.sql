-- 0004: commit order, for readers that page or tail.
--
-- time is set by the writer before its commit, and streams commit in any
-- order, so a reader that pages or tails by time (or by id) can pass a row
-- that commits later with an earlier key, and never see it. txid is the
-- writing transaction's id: every row a transaction writes carries it, and
-- a reader takes only rows whose txid is below the oldest transaction still
-- running (pg_snapshot_xmin), so everything before its cursor has ended
-- and nothing can commit behind it. Readers order by (txid, stream, seq):
-- transactions, then each stream's chain. list.go and query.go read it.
--
-- txid is not part of a row's hash (canonical.go): the encoding and its
-- format versions are unchanged. pg_current_xact_id() is stable, so the
-- column is added without rewriting the table; rows stored before this
-- migration all get its transaction's id and keep (stream, seq) order
-- among themselves, before every later row.
ALTER TABLE chron_records ADD COLUMN txid xid8 NOT NULL DEFAULT pg_current_xact_id();

-- Readers' orders. stream compares bytewise (COLLATE "C") so the order,
-- and the cursors built on it, do not depend on the database's locale.
CREATE INDEX chron_records_commit_idx ON chron_records (txid, stream COLLATE "C", seq);
CREATE INDEX chron_records_org_commit_idx ON chron_records (org, txid, stream COLLATE "C", seq);
CREATE INDEX chron_records_agent_commit_idx ON chron_records (agent_name, txid, stream COLLATE "C", seq);
-- Control-plane kinds are few among the decisions: a partial index finds
-- them without a scan and costs a decision's insert nothing.
CREATE INDEX chron_records_kind_commit_idx ON chron_records (kind, txid, stream COLLATE "C", seq)
    WHERE kind <> 'decision';

-- The time-ordered indexes served the previous List only; each costs
-- every insert. The BRIN index on time stays for time ranges.
DROP INDEX chron_records_time_id_idx, chron_records_agent_idx, chron_records_org_idx, chron_records_outcome_idx;

-- A writer that chose its own txid could hide a row from every reader (a
-- txid never below the horizon) or slip it behind their cursors. The
-- writers may insert every column but the two the database fills; a
-- column added later that writers fill must be granted here the same way.
REVOKE INSERT ON chron_records FROM chron_gate_writer, chron_manager_writer;
GRANT INSERT (id, stream, seq, time, kind, actor, agent_name, agent_namespace, agent_uid, org, action,
    context, outcome, reason, message, anchor, skill_version_id, skill_digest, policies, skill_rules,
    replica, request_id, prev_hash, hash, format, key_id)
    ON chron_records TO chron_gate_writer, chron_manager_writer;
