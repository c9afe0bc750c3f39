package chron

// Database roles: the group roles of 0002_roles.sql and the login roles
// `claiim chron migrate` makes members of them. docs/security.md
// ("Database roles") says what each may do.

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Group roles (NOLOGIN), made by 0002_roles.sql. Row-level security binds
// each writer to the streams whose names start with its prefix.
const (
	GateWriterRole    = "chron_gate_writer"    // streams GateStreamPrefix…
	ManagerWriterRole = "chron_manager_writer" // streams ManagerStreamPrefix…
	ReaderRole        = "chron_reader"         // every row, SELECT only
)

// Stream name prefixes: the part after the slash is the writer's own.
const (
	GateStreamPrefix    = "gate/"
	ManagerStreamPrefix = "manager/"
)

var groupRoles = []string{GateWriterRole, ManagerWriterRole, ReaderRole}

// Login is a login role to create or update as a member of Group.
type Login struct {
	Group string // GateWriterRole, ManagerWriterRole or ReaderRole
	Name  string
	// Password is set on the role; empty keeps an existing role's password
	// (a new role needs one). Only its SCRAM verifier reaches the server.
	Password string
}

var roleName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Password bounds: long enough not to be guessed, short enough to bound
// the input; printable ASCII, so that the verifier made here matches what
// the server derives from the same password (SASLprep leaves it alone).
const (
	minPasswordLen = 16
	maxPasswordLen = 1024
)

func checkLogin(l Login) error {
	if !roleName.MatchString(l.Name) || strings.HasPrefix(l.Name, "pg_") || strings.HasPrefix(l.Name, "chron_") {
		return fmt.Errorf("chron: role name %q: use 1-63 lower-case letters, digits and _, not starting with a digit, pg_ or chron_", l.Name)
	}
	if l.Password == "" {
		return nil
	}
	if len(l.Password) < minPasswordLen || len(l.Password) > maxPasswordLen {
		return fmt.Errorf("chron: the password of role %q must have %d to %d characters (e.g. openssl rand -base64 32)",
			l.Name, minPasswordLen, maxPasswordLen)
	}
	for i := 0; i < len(l.Password); i++ {
		if c := l.Password[i]; c < 0x20 || c > 0x7e {
			return fmt.Errorf("chron: the password of role %q must be printable ASCII (e.g. openssl rand -base64 32)", l.Name)
		}
	}
	return nil
}

// SetupLogins creates each login role, or updates an existing one (its
// password set when one is given), and makes it a member of its group role
// and of no other Chron group, in one transaction. It refuses a superuser,
// the tables' owner (or a member of it), the role running it, and a role
// that may create roles, bypass row security or replicate: their rights
// could not be narrowed to a writer's or a reader's. Privileges granted to
// the login directly on Chron's tables are revoked: it holds only its
// group's. Run it after Migrate, as the owner; the owner needs CREATEROLE.
func SetupLogins(ctx context.Context, pool *pgxpool.Pool, logins []Login) error {
	seen := map[string]bool{}
	for _, l := range logins {
		if !isGroup(l.Group) {
			return fmt.Errorf("chron: %q is not a Chron group role", l.Group)
		}
		if err := checkLogin(l); err != nil {
			return err
		}
		if seen[l.Name] {
			return fmt.Errorf("chron: role %q is named twice: each component needs its own role", l.Name)
		}
		seen[l.Name] = true
	}
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if err := checkGroups(ctx, tx); err != nil {
			return err
		}
		for _, l := range logins {
			if err := setupLogin(ctx, tx, l); err != nil {
				return err
			}
		}
		return nil
	})
}

func isGroup(g string) bool {
	for _, r := range groupRoles {
		if g == r {
			return true
		}
	}
	return false
}

// checkGroups refuses group roles someone made or changed to hold more
// than 0002 gives them (roles are cluster-wide: they may predate Chron).
func checkGroups(ctx context.Context, tx pgx.Tx) error {
	for _, g := range groupRoles {
		var login, broad, owner bool
		err := tx.QueryRow(ctx, `
			SELECT r.rolcanlogin, r.rolsuper OR r.rolcreaterole OR r.rolbypassrls OR r.rolreplication,
			       pg_has_role(r.oid, c.relowner, 'MEMBER')
			FROM pg_roles r, pg_class c
			WHERE r.rolname = $1 AND c.oid = 'chron_records'::regclass`, g).Scan(&login, &broad, &owner)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("chron: group role %s does not exist: run `claiim chron migrate` first", g)
		}
		if err != nil {
			return fmt.Errorf("chron: checking group role %s: %w", g, err)
		}
		if login || broad || owner {
			return fmt.Errorf("chron: group role %s can log in, is privileged or is a member of the tables' owner; "+
				"make it NOLOGIN NOSUPERUSER NOCREATEROLE NOBYPASSRLS NOREPLICATION and outside the owner's role, then migrate again", g)
		}
	}
	return nil
}

func setupLogin(ctx context.Context, tx pgx.Tx, l Login) error {
	var exists, refused bool
	err := tx.QueryRow(ctx, `
		SELECT true, r.rolsuper OR r.rolcreaterole OR r.rolbypassrls OR r.rolreplication
		       OR pg_has_role(r.oid, c.relowner, 'MEMBER') OR r.rolname = current_user
		FROM pg_roles r, pg_class c
		WHERE r.rolname = $1 AND c.oid = 'chron_records'::regclass`, l.Name).Scan(&exists, &refused)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("chron: role %q: %w", l.Name, err)
	}
	if refused {
		return fmt.Errorf("chron: role %q is a superuser, the owner of Chron's tables (or a member of it), the role running "+
			"this migration, or may create roles, bypass row security or replicate; a component needs a role of its own "+
			"without those rights (name another, or drop them from it)", l.Name)
	}
	name := pgx.Identifier{l.Name}.Sanitize()
	var stmts []string
	var pw string
	if l.Password != "" {
		v, err := scramVerifier(l.Password)
		if err != nil {
			return err
		}
		pw = " PASSWORD " + quoteLiteral(v)
	}
	switch {
	case !exists && l.Password == "":
		return fmt.Errorf("chron: role %q does not exist and no password was given to create it with", l.Name)
	case !exists:
		stmts = append(stmts, "CREATE ROLE "+name+" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT"+pw)
	default:
		stmts = append(stmts, "ALTER ROLE "+name+" LOGIN INHERIT"+pw)
	}
	stmts = append(stmts, "GRANT "+l.Group+" TO "+name)
	for _, g := range groupRoles {
		if g != l.Group {
			stmts = append(stmts, "REVOKE "+g+" FROM "+name)
		}
	}
	stmts = append(stmts, "REVOKE ALL ON chron_records, chron_history, schema_migrations FROM "+name)
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil {
			return fmt.Errorf("chron: setting up role %q: %w", l.Name, redact(err, pw))
		}
	}
	// Membership through some other role would survive the revokes.
	for _, g := range groupRoles {
		var member bool
		if err := tx.QueryRow(ctx, "SELECT pg_has_role($1, $2, 'MEMBER')", l.Name, g).Scan(&member); err != nil {
			return fmt.Errorf("chron: role %q: %w", l.Name, err)
		}
		if member != (g == l.Group) {
			return fmt.Errorf("chron: role %q is still a member of %s through another role; revoke that membership", l.Name, g)
		}
	}
	return nil
}

// redact keeps a statement's verifier out of an error, should the server
// echo it.
func redact(err error, secret string) error {
	var pgErr *pgconn.PgError
	if secret == "" || !errors.As(err, &pgErr) {
		return err
	}
	return errors.New(strings.ReplaceAll(pgErr.Error(), secret, "'…'"))
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// scramIterations is PostgreSQL's default (scram_iterations).
const scramIterations = 4096

// scramVerifier is what PostgreSQL stores for a SCRAM-SHA-256 password
// (RFC 5802/7677), made here as psql's \password does, so the plain
// password never reaches the server, its statement log or
// pg_stat_activity.
func scramVerifier(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	return scramVerifierWith(password, salt, scramIterations)
}

func scramVerifierWith(password string, salt []byte, iter int) (string, error) {
	salted, err := pbkdf2.Key(sha256.New, password, salt, iter, sha256.Size)
	if err != nil {
		return "", err
	}
	mac := func(key []byte, msg string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	stored := sha256.Sum256(mac(salted, "Client Key"))
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iter, b64(salt), b64(stored[:]), b64(mac(salted, "Server Key"))), nil
}

// SchemaVersion is the newest migration applied to the database, 0 when
// none is (no schema_migrations table).
func SchemaVersion(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	var v int
	err := pool.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&v)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table
		return 0, nil
	}
	return v, err
}

// RequiredVersion is the newest migration this binary embeds: the schema
// version its components need.
func RequiredVersion() int {
	ms, err := migrations()
	if err != nil || len(ms) == 0 {
		panic(fmt.Sprintf("chron: embedded migrations: %v", err)) // a build mistake, caught by every test
	}
	return ms[len(ms)-1].version
}
