package cli

// `claiim chron migrate`: the schema, and the login roles of the gate, the
// manager and readers. Run with the owner's URL, by the Helm hook Job, the
// kustomize Job or `make dev`; no running component holds that URL.

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/claiim/claiim-operator/gate/chron"
)

// loginFlags are where one component's login role comes from.
type loginFlags struct {
	what, group string // "gate" and its group role
	role, file  string
	env         string // a database URL carrying the role and its password
}

var migrateLogins = []*loginFlags{
	{what: "gate", group: chron.GateWriterRole, env: "CLAIIM_GATE_DATABASE_URL"},
	{what: "manager", group: chron.ManagerWriterRole, env: "CLAIIM_MANAGER_DATABASE_URL"},
	{what: "reader", group: chron.ReaderRole, env: "CLAIIM_READER_DATABASE_URL"},
}

func bindMigrateFlags(fs *flag.FlagSet) []*loginFlags {
	var out []*loginFlags
	for _, l := range migrateLogins {
		l := *l
		fs.StringVar(&l.role, l.what+"-role", "", "login role of the "+l.what+" (member of "+l.group+"); default: the user of $"+l.env)
		fs.StringVar(&l.file, l.what+"-password-file", "", "file holding that role's password (default: the password of $"+l.env+"; none: an existing role keeps its own)")
		out = append(out, &l)
	}
	return out
}

// login resolves one component's role and password: the flags, else the
// user and password of the URL in its environment variable. Passwords
// never come from the command line.
func (l *loginFlags) login() (chron.Login, bool, error) {
	out := chron.Login{Group: l.group, Name: l.role}
	if l.role == "" {
		raw := os.Getenv(l.env)
		if raw == "" {
			if l.file != "" {
				return out, false, fmt.Errorf("--%s-password-file needs --%s-role", l.what, l.what)
			}
			return out, false, nil
		}
		u, err := url.Parse(raw)
		if err != nil || u.User == nil || u.User.Username() == "" {
			return out, false, fmt.Errorf("$%s is not a postgres:// URL with a user", l.env) // the URL may hold a password: not echoed
		}
		out.Name = u.User.Username()
		out.Password, _ = u.User.Password()
	}
	if l.file != "" {
		b, err := os.ReadFile(l.file)
		if err != nil {
			return out, false, fmt.Errorf("--%s-password-file: %w", l.what, err)
		}
		out.Password = strings.TrimRight(string(b), "\r\n")
	}
	return out, true, nil
}

// runMigrate applies the migrations, then creates or updates the login
// roles named.
func runMigrate(ctx context.Context, pool *pgxpool.Pool, flags []*loginFlags, out io.Writer) error {
	var logins []chron.Login
	for _, f := range flags {
		l, ok, err := f.login()
		if err != nil {
			return err
		}
		if ok {
			logins = append(logins, l)
		}
	}
	if err := chron.Migrate(ctx, pool); err != nil {
		return err
	}
	v, err := chron.SchemaVersion(ctx, pool)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Chron schema is up to date (version %d)\n", v)
	if len(logins) == 0 {
		return nil
	}
	if err := chron.SetupLogins(ctx, pool, logins); err != nil {
		return err
	}
	for _, l := range logins {
		pw := "password set"
		if l.Password == "" {
			pw = "password unchanged"
		}
		fmt.Fprintf(out, "role %s: member of %s only, %s\n", l.Name, l.Group, pw)
	}
	return nil
}
