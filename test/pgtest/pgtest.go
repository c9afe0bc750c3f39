// Package pgtest provides a throwaway PostgreSQL for tests: a fresh
// cluster made with initdb and run by pg_ctl as the `postgres` user on a
// random free port in a temp dir, torn down afterwards. If
// CLAIIM_TEST_DATABASE_URL is set, that database is used instead.
package pgtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL names the variable that points tests at an existing database.
const EnvURL = "CLAIIM_TEST_DATABASE_URL"

// Server is a running PostgreSQL.
type Server struct {
	// URL connects as a superuser to the `postgres` database.
	URL   string
	dir   string
	bin   string
	port  int
	runAs string
	cpus  string
	extra string
}

func (s *Server) options() string {
	return fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=200", s.port, s.dir) + s.extra
}

// BinDir finds PostgreSQL's server binaries: $PG_BIN, pg_config
// --bindir, or the newest /usr/lib/postgresql/<v>/bin.
func BinDir() (string, error) {
	if d := os.Getenv("PG_BIN"); d != "" {
		return d, nil
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		d := strings.TrimSpace(string(out))
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) > pgMajor(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("no PostgreSQL server binaries found: install them (apt-get install postgresql) or set %s to an existing database", EnvURL)
}

func pgMajor(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

// Start returns the database named by CLAIIM_TEST_DATABASE_URL, or starts
// a throwaway cluster. Call Stop when done.
func Start(ctx context.Context) (*Server, error) { return StartWith(ctx, Options{}) }

// Options adjust a throwaway cluster, for benchmarks.
type Options struct {
	// CPUs pins the cluster's processes (a taskset list such as "1"), to
	// keep the database and a load generator apart.
	CPUs string
	// Settings are extra server settings, "name=value".
	Settings []string
	// HBA are extra pg_hba.conf lines, for clients beyond loopback (pods
	// of the one-node cluster).
	HBA []string
}

// StartWith is Start with options.
func StartWith(ctx context.Context, o Options) (*Server, error) {
	if u := os.Getenv(EnvURL); u != "" {
		return &Server{URL: u}, nil
	}
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin, cpus: o.CPUs}
	for _, kv := range o.Settings {
		s.extra += " -c " + kv
	}
	s.dir, err = os.MkdirTemp("", "claiim-pg-")
	if err != nil {
		return nil, err
	}
	// PostgreSQL refuses to run as root: run it as `postgres`.
	if os.Geteuid() == 0 {
		s.runAs = "postgres"
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root, PostgreSQL needs the 'postgres' user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(s.dir, uid, gid); err != nil {
			return nil, err
		}
	}
	if s.port, err = FreePort(); err != nil {
		return nil, err
	}
	data := filepath.Join(s.dir, "data")
	if out, err := s.run(ctx, "initdb", "-D", data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8").CombinedOutput(); err != nil {
		s.Stop()
		return nil, fmt.Errorf("initdb: %w: %s", err, out)
	}
	if len(o.HBA) > 0 {
		f, err := os.OpenFile(filepath.Join(data, "pg_hba.conf"), os.O_APPEND|os.O_WRONLY, 0)
		if err == nil {
			_, err = f.WriteString(strings.Join(o.HBA, "\n") + "\n")
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			s.Stop()
			return nil, fmt.Errorf("pg_hba.conf: %w", err)
		}
	}
	// fsync stays on: Chron's durability is what these tests are about.
	opts := s.options()
	if out, err := s.run(ctx, "pg_ctl", "-D", data, "-o", opts, "-l", filepath.Join(s.dir, "log"), "-w", "-t", "60", "start").CombinedOutput(); err != nil {
		logb, _ := os.ReadFile(filepath.Join(s.dir, "log"))
		s.Stop()
		return nil, fmt.Errorf("pg_ctl start: %w: %s\n%s", err, out, logb)
	}
	s.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port)
	if err := waitReady(ctx, s.URL); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// Stop stops a throwaway cluster and removes its files. It does nothing
// for a database given by CLAIIM_TEST_DATABASE_URL.
func (s *Server) Stop() {
	if s == nil || s.dir == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_ = s.run(ctx, "pg_ctl", "-D", filepath.Join(s.dir, "data"), "-m", "immediate", "-w", "stop").Run()
	_ = os.RemoveAll(s.dir)
	s.dir = ""
}

// Port is the throwaway server's port (0 for an external database).
func (s *Server) Port() int { return s.port }

// Control runs `pg_ctl stop` or `pg_ctl start` on a throwaway server
// (same port and data), for tests of what happens while it is down.
func (s *Server) Control(ctx context.Context, action string) error {
	if s.dir == "" {
		return fmt.Errorf("cannot %s an external database", action)
	}
	data := filepath.Join(s.dir, "data")
	args := []string{"-D", data, "-w", "-t", "60"}
	if action == "stop" {
		args = append(args, "-m", "fast", "stop")
	} else {
		args = append(args, "-o", s.options(), "-l", filepath.Join(s.dir, "log"), action)
	}
	if out, err := s.run(ctx, "pg_ctl", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctl %s: %w: %s", action, err, out)
	}
	return nil
}

// CreateDatabase makes a fresh database and returns its URL, so tests
// don't see each other's rows.
func (s *Server) CreateDatabase(ctx context.Context, name string) (string, error) {
	conn, err := pgx.Connect(ctx, s.URL)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("creating database %s: %w", name, err)
	}
	cfg, err := pgx.ParseConfig(s.URL)
	if err != nil {
		return "", err
	}
	return strings.Replace(s.URL, "/"+cfg.Database+"?", "/"+name+"?", 1), nil
}

func (s *Server) run(ctx context.Context, name string, args ...string) *exec.Cmd {
	argv := append([]string{filepath.Join(s.bin, name)}, args...)
	if s.runAs != "" {
		argv = append([]string{"runuser", "-u", s.runAs, "--"}, argv...)
	}
	if s.cpus != "" { // the postmaster and every backend inherit it
		argv = append([]string{"taskset", "-c", s.cpus}, argv...)
	}
	return exec.CommandContext(ctx, argv[0], argv[1:]...)
}

// FreePort is a TCP port on 127.0.0.1 that nothing listens on right now.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitReady(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, url)
		if err == nil {
			return conn.Close(ctx)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("PostgreSQL at %s did not accept connections: %w", url, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
