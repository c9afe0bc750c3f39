package main

// Loading a Chron table of N rows for `bench chron-pages`, fast: the
// rows are made by PostgreSQL (generate_series) as the owner, in
// transactions of a writer's batch, so they spread over many txids as a
// gate's do. Hashes are not real: this measures reading, not verifying.

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Shape of the loaded rows.
const (
	loadBatch   = 1000 // rows per transaction (one txid)
	loadStreams = 3    // gate/0..2, one per batch in turn
	loadOrgs    = 50   // org-0..49
	loadAgents  = 5000
	// RareOrg holds every 1000th row: 0.1% of the table.
	rareOrg = "org-rare"
	// One row in 500 is a control-plane row: kind pim.approved, no org.
	controlEvery = 500
)

// loadSQL inserts batches [$1, $2) in one transaction each (a DO block
// may COMMIT between statements when not itself in a transaction).
const loadSQL = `
DO $$
DECLARE
  b int := %d; s int := %d; i bigint;
BEGIN
  FOR i IN %d..%d LOOP
    INSERT INTO chron_records (id, stream, seq, time, kind, actor, agent_name, agent_namespace, org, action, context,
        outcome, reason, anchor, skill_version_id, skill_digest, policies, skill_rules, replica, prev_hash, hash)
    SELECT '00000000-0000-7000-8000-' || lpad(to_hex(g), 12, '0'), 'gate/' || (i %% s), (i / s) * b + j,
        timestamptz '2026-01-01' + make_interval(secs => g / 100.0),
        CASE WHEN g %% %d = %d THEN 'pim.approved' ELSE 'decision' END,
        CASE WHEN g %% %d = %d THEN 'peer@claiim.io' ELSE '' END,
        'agent-' || (g %% %d), 'agents',
        CASE WHEN g %% %d = %d THEN '' WHEN g %% 1000 = 0 THEN '%s' ELSE 'org-' || (g %% %d) END,
        CASE WHEN g %% 2 = 0 THEN 'deploy:staging' ELSE 'deploy:production' END,
        jsonb_build_object('target', 'prod-eu-1', 'attempt', g),
        CASE WHEN g %% 2 = 0 THEN 'ALLOW' ELSE 'DENY' END,
        CASE WHEN g %% 2 = 0 THEN 'OWN_AIORG' ELSE 'POLICY_DENY' END,
        'admin@claiim.io', 'deploy-bot-v1', 'sha256:9f2c',
        '[{"name":"no-production-deploys","version":3,"rule":"deploy:production","effect":"Deny"}]',
        '["forbidden:deploy:production"]', 'gate-0',
        md5(g::text) || md5((g + 1)::text), md5((g + 2)::text) || md5((g + 3)::text)
    FROM generate_series(1, b) j, LATERAL (SELECT i * b + j AS g) x;
    COMMIT;
  END LOOP;
END $$`

// loadChron fills the table up to rows (whole batches), reporting progress,
// and returns how long it took. Rows already there count.
func loadChron(ctx context.Context, owner *pgxpool.Pool, rows int64) (time.Duration, error) {
	// The loaded ids end in the row's number in hex: the greatest is the
	// count, read with one probe of the primary key instead of a scan
	// that would warm the cache before a cold measurement.
	var have int64
	if err := owner.QueryRow(ctx, `SELECT coalesce(('x' || lpad(right(max(id), 12), 16, '0'))::bit(64)::bigint, 0)
		FROM chron_records WHERE id LIKE '00000000-0000-7000-8000-%'`).Scan(&have); err != nil {
		return 0, err
	}
	if have%loadBatch != 0 {
		return 0, fmt.Errorf("the table has %d rows, not whole batches of %d: load into an empty database", have, loadBatch)
	}
	conn, err := owner.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Release()
	// The load's durability is not what is measured.
	if _, err := conn.Exec(ctx, "SET synchronous_commit = off"); err != nil {
		return 0, err
	}
	start := time.Now()
	const step = 500 // batches per statement, between progress lines
	for from := have / loadBatch; from < rows/loadBatch; from += step {
		to := min(from+step, rows/loadBatch) - 1
		sql := fmt.Sprintf(loadSQL, loadBatch, loadStreams, from, to, controlEvery, controlEvery/2, controlEvery,
			controlEvery/2, loadAgents, controlEvery, controlEvery/2, rareOrg, loadOrgs)
		if _, err := conn.Exec(ctx, sql); err != nil {
			return 0, fmt.Errorf("loading batches %d-%d: %w", from, to, err)
		}
		done := (to + 1) * loadBatch
		el := time.Since(start)
		fmt.Printf("  loaded %d rows, %.0f rows/s\n", done, float64(done-have)/el.Seconds())
	}
	fmt.Println("  VACUUM ANALYZE")
	if _, err := conn.Exec(ctx, "VACUUM (ANALYZE) chron_records"); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// sizes reports the table's and each index's size on disk.
func sizes(ctx context.Context, pool *pgxpool.Pool) (string, error) {
	rows, err := pool.Query(ctx, `
		SELECT 'table (heap + TOAST)', pg_size_pretty(pg_table_size('chron_records'))
		UNION ALL
		SELECT c.relname, pg_size_pretty(pg_relation_size(c.oid))
		FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
		WHERE i.indrelid = 'chron_records'::regclass
		UNION ALL
		SELECT 'total', pg_size_pretty(pg_total_relation_size('chron_records'))`)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	out := ""
	for rows.Next() {
		var name, size string
		if err := rows.Scan(&name, &size); err != nil {
			return "", err
		}
		out += fmt.Sprintf("  %-36s %s\n", name, size)
	}
	return out, rows.Err()
}
