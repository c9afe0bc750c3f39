package chron

import (
	"context"
	"encoding/base64"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// roleDB is a migrated database with a login role for each group. Roles
// are cluster-wide, so their names carry a random suffix.
type roleDB struct {
	owner                 *pgxpool.Pool // the superuser that migrated it
	url                   string
	gate, manager, reader Login
}

func newRoleDB(t *testing.T) *roleDB {
	t.Helper()
	pool, url := newDB(t)
	sfx := strings.ToLower(randomSuffix())
	sfx = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, sfx)
	d := &roleDB{owner: pool, url: url,
		gate:    Login{Group: GateWriterRole, Name: "gate_" + sfx, Password: "gate-password-" + sfx},
		manager: Login{Group: ManagerWriterRole, Name: "manager_" + sfx, Password: "manager-password-" + sfx},
		reader:  Login{Group: ReaderRole, Name: "reader_" + sfx, Password: "reader-password-" + sfx},
	}
	if err := SetupLogins(context.Background(), pool, []Login{d.gate, d.manager, d.reader}); err != nil {
		t.Fatal(err)
	}
	return d
}

// as opens a pool logged in as role (the test server trusts local
// connections; passwords are checked by TestSetupLoginsRotates).
func (d *roleDB) as(t *testing.T, role string) *pgxpool.Pool {
	return newPool(t, d.url, func(c *pgxpool.Config) { c.ConnConfig.User = role })
}

func wantDenied(t *testing.T, who, stmt string, err error) {
	t.Helper()
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42501" { // insufficient_privilege, RLS violations included
		t.Errorf("%s: %s: got %v, want permission denied", who, stmt, err)
	}
}

// TestWriterRolesCannotTamper: each writer role, and the reader, is refused
// everything but its own INSERT and SELECT.
func TestWriterRolesCannotTamper(t *testing.T) {
	d := newRoleDB(t)
	ctx := context.Background()
	gw := newWriter(t, d.as(t, d.gate.Name), WriterOptions{Stream: "gate/g-0"})
	if _, err := gw.Write(ctx, decision(1)); err != nil {
		t.Fatal(err)
	}
	insert := func(stream, kind string) string {
		return "INSERT INTO chron_records (id, stream, seq, time, kind, outcome, prev_hash, hash) VALUES ('" +
			NewID() + "', '" + stream + "', 99, now(), '" + kind + "', 'ALLOW', '', '')"
	}
	// The columns the database fills, which order readers' cursors.
	txid := func(stream string) string {
		return "INSERT INTO chron_records (id, stream, seq, time, kind, outcome, prev_hash, hash, txid) VALUES ('" +
			NewID() + "', '" + stream + "', 99, now(), 'decision', 'ALLOW', '', '', '1')"
	}
	committedAt := func(stream string) string {
		return "INSERT INTO chron_records (id, stream, seq, time, kind, outcome, prev_hash, hash, committed_at) VALUES ('" +
			NewID() + "', '" + stream + "', 99, now(), 'decision', 'ALLOW', '', '', now())"
	}
	common := []string{
		"UPDATE chron_records SET outcome = 'ALLOW'",
		"DELETE FROM chron_records",
		"TRUNCATE chron_records",
		"ALTER TABLE chron_records DISABLE TRIGGER ALL",
		"ALTER TABLE chron_records DISABLE ROW LEVEL SECURITY",
		"ALTER TABLE chron_records ADD COLUMN x int",
		"DROP TABLE chron_records",
		"DROP POLICY chron_gate_writer_insert ON chron_records",
		"CREATE TRIGGER sneaky BEFORE INSERT ON chron_records FOR EACH ROW EXECUTE FUNCTION chron_records_append_only()",
		"INSERT INTO schema_migrations (version, name, checksum) VALUES (99, 'x', 'x')",
		"DELETE FROM schema_migrations",
		"GRANT " + ManagerWriterRole + " TO CURRENT_USER",
	}
	for _, c := range []struct {
		role  string
		extra []string
	}{
		{d.gate.Name, []string{insert("manager/x", "pim.approved"), txid("gate/x"), committedAt("gate/x"), insert("manager", "decision"), insert("gatex/1", "decision"), insert("", "decision"),
			"SET ROLE " + ManagerWriterRole, "GRANT " + GateWriterRole + " TO " + d.manager.Name}},
		{d.manager.Name, []string{insert("gate/x", "decision"), txid("manager/x"), insert("managers/x", "decision"), "SET ROLE " + GateWriterRole}},
		{d.reader.Name, []string{insert("gate/x", "decision"), insert("manager/x", "pim.approved"),
			"SET ROLE " + GateWriterRole, "SET ROLE " + ManagerWriterRole}},
	} {
		pool := d.as(t, c.role)
		for _, stmt := range append(common, c.extra...) {
			_, err := pool.Exec(ctx, stmt)
			wantDenied(t, c.role, stmt, err)
		}
	}

	// What the group roles hold, by the catalog: the writers insert every
	// column but the two the database fills (0004_commit_order.sql).
	for _, g := range []string{GateWriterRole, ManagerWriterRole, ReaderRole} {
		rows, err := d.owner.Query(ctx, `SELECT column_name FROM information_schema.role_column_grants
			WHERE grantee = $1 AND table_name = 'chron_records' AND privilege_type = 'INSERT' ORDER BY 1`, g)
		if err != nil {
			t.Fatal(err)
		}
		cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		want := []string{}
		if g != ReaderRole {
			want = slices.Sorted(slices.Values(insertColumns))
		}
		if !slices.Equal(cols, want) {
			t.Errorf("%s may insert %v, want %v", g, cols, want)
		}
	}

	for _, c := range []struct{ grantee, want string }{
		{GateWriterRole, "SELECT"}, {ManagerWriterRole, "SELECT"}, {ReaderRole, "SELECT"},
		{d.gate.Name, ""}, {d.manager.Name, ""}, {d.reader.Name, ""}, // through their group only
	} {
		rows, err := d.owner.Query(ctx, `SELECT privilege_type FROM information_schema.role_table_grants
			WHERE grantee = $1 AND table_name = 'chron_records' ORDER BY 1`, c.grantee)
		if err != nil {
			t.Fatal(err)
		}
		privs, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(privs, ","); got != c.want {
			t.Errorf("%s holds %q on chron_records, want %q", c.grantee, got, c.want)
		}
	}
}

// TestWriterUnderRowSecurity: the real Writer as each writer role writes,
// answers a retried ID, continues its chain after a restart, and across
// replicas of one component finds a record stored by another; the other
// component's rows it neither sees nor overwrites.
func TestWriterUnderRowSecurity(t *testing.T) {
	d := newRoleDB(t)
	ctx := context.Background()
	gatePool, mgrPool, readPool := d.as(t, d.gate.Name), d.as(t, d.manager.Name), d.as(t, d.reader.Name)
	for _, method := range []insertMethod{insertCopy, insertUnnest, insertSingle} {
		t.Run(method.String(), func(t *testing.T) {
			for _, c := range []struct {
				pool   *pgxpool.Pool
				prefix string
			}{{gatePool, GateStreamPrefix}, {mgrPool, ManagerStreamPrefix}} {
				stream := c.prefix + method.String() + "-0"
				w := newWriter(t, c.pool, WriterOptions{Stream: stream, method: method})
				r := decision(1)
				first, err := w.Write(ctx, r)
				if err != nil {
					t.Fatalf("%s: write: %v", stream, err)
				}
				again, err := w.Write(ctx, r) // the same ID: the stored row
				if err != nil || again.Seq != first.Seq || w.Stats().Duplicates != 1 {
					t.Fatalf("%s: retried ID: seq %d (first %d), %+v, %v", stream, again.Seq, first.Seq, w.Stats(), err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				if method == insertCopy && !w.noCopy { // read after Close: the loop has ended
					t.Errorf("%s: the writer kept COPY under row-level security", stream)
				}
				// A restarted writer reads its head and continues the chain.
				w2 := newWriter(t, c.pool, WriterOptions{Stream: stream, method: method})
				next, err := w2.Write(ctx, decision(2))
				if err != nil || next.Seq != first.Seq+1 || next.PrevHash != first.Hash {
					t.Fatalf("%s: after restart: seq %d prev %s, want %d after %s (%v)", stream, next.Seq, next.PrevHash, first.Seq+1, first.Hash, err)
				}
				// Another replica of the same component retries the ID.
				peer := newWriter(t, c.pool, WriterOptions{Stream: c.prefix + method.String() + "-1", method: method})
				r2 := *r
				if got, err := peer.Write(ctx, &r2); err != nil || got.ID != first.ID || got.Stream != stream {
					t.Fatalf("%s: a peer replica's retry: %+v, %v", stream, got, err)
				}
			}
		})
	}

	// Each writer sees its own component's rows only; the reader sees all.
	count := func(pool *pgxpool.Pool) (gate, manager int) {
		rows, _, err := List(ctx, pool, Filter{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			switch {
			case strings.HasPrefix(r.Stream, GateStreamPrefix):
				gate++
			case strings.HasPrefix(r.Stream, ManagerStreamPrefix):
				manager++
			}
		}
		return gate, manager
	}
	if g, m := count(gatePool); g != 6 || m != 0 {
		t.Errorf("the gate role sees %d gate and %d manager rows, want 6 and 0", g, m)
	}
	if g, m := count(mgrPool); g != 0 || m != 6 {
		t.Errorf("the manager role sees %d gate and %d manager rows, want 0 and 6", g, m)
	}
	if g, m := count(readPool); g != 6 || m != 6 {
		t.Errorf("the reader sees %d gate and %d manager rows, want 6 and 6", g, m)
	}
	if rep, err := Verify(ctx, readPool); err != nil || len(rep.Problems) > 0 || rep.Rows != 12 {
		t.Errorf("verify as the reader: %+v, %v", rep, err)
	}

	// An ID the gate stored, written by the manager: refused, never
	// reported stored (the manager cannot see that row to compare it).
	rows, _, err := List(ctx, gatePool, Filter{Limit: 1})
	if err != nil || len(rows) != 1 {
		t.Fatal(rows, err)
	}
	taken := rows[0].Record
	w := newWriter(t, mgrPool, WriterOptions{Stream: "manager/taken"})
	got, err := w.Write(ctx, &taken)
	if err == nil {
		t.Errorf("the manager's write under the gate's ID %s was reported stored: %+v", taken.ID, got)
	}
	t.Logf("the manager's write under a gate row's ID: %v", err)
}

// TestSetupLoginsRotates: running it again changes nothing but the
// passwords, which reach the server only as SCRAM verifiers; a privileged
// or shared role is refused.
func TestSetupLoginsRotates(t *testing.T) {
	d := newRoleDB(t)
	ctx := context.Background()
	verifier := func(role string) string {
		var v string
		if err := d.owner.QueryRow(ctx, "SELECT coalesce(rolpassword, '') FROM pg_authid WHERE rolname = $1", role).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	// matches recomputes a stored verifier from a password, as the server
	// does when a client logs in.
	matches := func(stored, password string) bool {
		_, rest, _ := strings.Cut(stored, "$")
		params, _, _ := strings.Cut(rest, "$")
		iterS, saltS, _ := strings.Cut(params, ":")
		iter, _ := strconv.Atoi(iterS)
		salt, err := base64.StdEncoding.DecodeString(saltS)
		if err != nil || iter == 0 {
			return false
		}
		v, err := scramVerifierWith(password, salt, iter)
		return err == nil && v == stored
	}
	// The verifier made here is the server's own for the same password.
	probe := "probe_" + strings.TrimPrefix(d.gate.Name, "gate_")
	if _, err := d.owner.Exec(ctx, "SET password_encryption = 'scram-sha-256'; CREATE ROLE "+probe+" PASSWORD 'server-hashed-password'"); err != nil {
		t.Fatal(err)
	}
	if s := verifier(probe); !matches(s, "server-hashed-password") {
		t.Fatalf("scramVerifierWith disagrees with PostgreSQL's verifier %q", s)
	}
	if !matches(verifier(d.gate.Name), d.gate.Password) {
		t.Fatal("the gate role's stored verifier does not match its password")
	}

	rotated := d.gate
	rotated.Password = "a-new-gate-password"
	mgr := d.manager
	mgr.Password = "" // kept
	for range 2 {
		if err := SetupLogins(ctx, d.owner, []Login{rotated, mgr, d.reader}); err != nil {
			t.Fatal(err)
		}
	}
	if !matches(verifier(d.gate.Name), rotated.Password) || matches(verifier(d.gate.Name), d.gate.Password) {
		t.Error("the gate role's password was not rotated")
	}
	if !matches(verifier(d.manager.Name), d.manager.Password) {
		t.Error("the manager role's password changed although none was given")
	}
	if err := Migrate(ctx, d.owner); err != nil {
		t.Fatalf("Migrate again: %v", err)
	}

	// A login moved to another group leaves its old one.
	moved := Login{Group: ReaderRole, Name: d.gate.Name}
	if err := SetupLogins(ctx, d.owner, []Login{moved}); err != nil {
		t.Fatal(err)
	}
	var gate, reader bool
	if err := d.owner.QueryRow(ctx, "SELECT pg_has_role($1, $2, 'MEMBER'), pg_has_role($1, $3, 'MEMBER')",
		d.gate.Name, GateWriterRole, ReaderRole).Scan(&gate, &reader); err != nil || gate || !reader {
		t.Errorf("after moving to the reader group: gate %v, reader %v (%v)", gate, reader, err)
	}

	creator := "creator_" + strings.TrimPrefix(d.gate.Name, "gate_")
	if _, err := d.owner.Exec(ctx, "CREATE ROLE "+creator+" LOGIN CREATEROLE"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		logins []Login
		want   string
	}{
		{[]Login{{Group: GateWriterRole, Name: "postgres", Password: "long-enough-password"}}, "superuser"},
		{[]Login{{Group: GateWriterRole, Name: creator}}, "create roles"},
		{[]Login{{Group: GateWriterRole, Name: "nobody_" + creator}}, "no password"},
		{[]Login{{Group: GateWriterRole, Name: "x_" + creator, Password: "short"}}, "characters"},
		{[]Login{{Group: GateWriterRole, Name: "x_" + creator, Password: "long-enough-password\n"}}, "printable"},
		{[]Login{{Group: GateWriterRole, Name: "Bad-Name", Password: "long-enough-password"}}, "role name"},
		{[]Login{{Group: GateWriterRole, Name: "chron_reader", Password: "long-enough-password"}}, "role name"},
		{[]Login{{Group: "postgres", Name: "x_" + creator, Password: "long-enough-password"}}, "group"},
		{[]Login{d.gate, {Group: ManagerWriterRole, Name: d.gate.Name}}, "twice"},
	} {
		err := SetupLogins(ctx, d.owner, c.logins)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("SetupLogins(%s): got %v, want an error saying %q", c.logins[0].Name, err, c.want)
		}
	}
}

func TestSchemaVersion(t *testing.T) {
	pool, _ := newDB(t)
	ctx := context.Background()
	if v, err := SchemaVersion(ctx, pool); err != nil || v != RequiredVersion() || v < 2 {
		t.Errorf("SchemaVersion of a migrated database: %d, %v; want %d", v, err, RequiredVersion())
	}
	url, err := server(t).CreateDatabase(ctx, "chron_"+randomSuffix())
	if err != nil {
		t.Fatal(err)
	}
	if v, err := SchemaVersion(ctx, newPool(t, url, nil)); err != nil || v != 0 {
		t.Errorf("SchemaVersion of an empty database: %d, %v; want 0", v, err)
	}
}
