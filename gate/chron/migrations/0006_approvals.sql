-- 0006: approvals of exact calls (RequireApproval policy rules).
--
-- An approved call is allowed once. A gate that allows it inserts the
-- approval's id here in the same transaction as the decision's row: the
-- primary key lets one transaction in, whichever replica it runs on; any
-- other waits for it to end and then finds the id taken, and its decision
-- becomes DENY APPROVAL_USED (writer.go, approval.go). Not hashed, not
-- part of a stream: the decision row it names is the evidence; this table
-- is the lock.
CREATE TABLE chron_approval_uses (
    approval_id text        PRIMARY KEY CHECK (length(approval_id) BETWEEN 1 AND 64),
    decision_id text        NOT NULL CHECK (length(decision_id) BETWEEN 1 AND 64),
    stream      text        NOT NULL CHECK (length(stream) BETWEEN 1 AND 128),
    used_at     timestamptz NOT NULL DEFAULT now()
);

-- A use is final: nobody frees an approval for a second call.
CREATE TRIGGER chron_approval_uses_no_update_delete
    BEFORE UPDATE OR DELETE ON chron_approval_uses
    FOR EACH ROW EXECUTE FUNCTION chron_records_append_only();
CREATE TRIGGER chron_approval_uses_no_truncate
    BEFORE TRUNCATE ON chron_approval_uses
    FOR EACH STATEMENT EXECUTE FUNCTION chron_records_append_only();

REVOKE ALL ON chron_approval_uses FROM PUBLIC;
GRANT SELECT, INSERT (approval_id, decision_id, stream) ON chron_approval_uses TO chron_gate_writer;
GRANT SELECT ON chron_approval_uses TO chron_manager_writer, chron_reader;

-- The manager's leader turns the gates' approval.requested rows into
-- ActionApproval objects (the gate may not write to the apiserver): its
-- role reads those rows of every stream, and no other row of the gates'.
CREATE POLICY chron_manager_reads_approval_requests ON chron_records FOR SELECT TO chron_manager_writer
    USING (kind = 'approval.requested');
