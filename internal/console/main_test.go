package console

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/test/pgtest"
)

// One throwaway PostgreSQL for the package, started on first use; each
// test gets its own database.
var (
	srvOnce sync.Once
	srv     *pgtest.Server
	srvErr  error
)

// Cleanups run after every test of the binary: the external tests'
// shared control plane registers its stop here.
var Cleanups []func()

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	for _, f := range Cleanups {
		f()
	}
	srv.Stop()
	os.Exit(code)
}

// env is a migrated Chron database, written by its owner and read by the
// API as the reader role, served over HTTP.
type env struct {
	ctx    context.Context
	owner  *pgxpool.Pool
	reader *pgxpool.Pool
	api    *ChronAPI
	srv    *httptest.Server
}

// Test users, named by the X-Test-User header: what VisibleOrgs says of
// each, as the SubjectAccessReview-backed hook would.
var users = map[string]Visibility{
	"admin":   {All: true},
	"eng":     {Orgs: []string{"engineering"}},
	"auditor": {Orgs: []string{"engineering", "sales"}, NoOrg: true},
	"none":    {Orgs: []string{}},
}

func visibleOrgs(r *http.Request) ([]string, bool, bool, error) {
	switch u := r.Header.Get("X-Test-User"); u {
	case "":
		return nil, false, false, ErrUnauthenticated
	case "outsider":
		return nil, false, false, ErrForbidden
	case "broken":
		return nil, false, false, errors.New("the apiserver is away")
	default:
		v, ok := users[u]
		if !ok {
			return nil, false, false, fmt.Errorf("%w: unknown test user %q", ErrUnauthenticated, u)
		}
		return v.Orgs, v.All, v.NoOrg, nil
	}
}

func newEnv(t *testing.T) *env {
	t.Helper()
	if testing.Short() {
		t.Skip("needs PostgreSQL; skipped with -short")
	}
	srvOnce.Do(func() { srv, srvErr = pgtest.Start(context.Background()) })
	if srvErr != nil {
		t.Fatalf("starting PostgreSQL: %v", srvErr)
	}
	ctx := context.Background()
	sfx := strings.ReplaceAll(chron.NewID()[24:], "-", "")
	url, err := srv.CreateDatabase(ctx, "console_"+sfx)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{ctx: ctx, owner: pool(t, url, "")}
	if err := chron.Migrate(ctx, e.owner); err != nil {
		t.Fatal(err)
	}
	// The console reads as a login of the reader role, never the owner.
	login := chron.Login{Group: chron.ReaderRole, Name: "console_" + sfx, Password: "console-password-" + sfx}
	if err := chron.SetupLogins(ctx, e.owner, []chron.Login{login}); err != nil {
		t.Fatal(err)
	}
	e.reader = pool(t, url, login.Name)
	e.api = &ChronAPI{Pool: e.reader, VisibleOrgs: visibleOrgs, TailInterval: 20 * time.Millisecond}
	mux := http.NewServeMux()
	e.api.Register(mux)
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

func pool(t *testing.T, url, user string) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		cfg.ConnConfig.User = user // the test server trusts local connections
	}
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func (e *env) writer(t *testing.T, stream string) *chron.Writer {
	t.Helper()
	w, err := chron.NewWriter(e.ctx, e.owner, chron.WriterOptions{Stream: stream})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	return w
}

var base = time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)

// record is the seed's production deploy decision in org.
func record(i int, org string) *chron.Record {
	return &chron.Record{
		Time: base.Add(time.Duration(i) * time.Second), Kind: chron.KindDecision,
		AgentName: "prod-deploy-bot", AgentNamespace: "agents", Org: org, Action: "deploy:production",
		Context: map[string]any{"target": "prod-eu-1", "attempt": i}, Outcome: chron.OutcomeDeny, Reason: "POLICY_DENY",
		Anchor: "admin@claiim.io", SkillVersionID: "deploy-bot-v1", SkillDigest: "sha256:9f2c",
		Policies:   []chron.PolicyMatch{{Name: "no-prod-deploys", Version: 3, Rule: "deploy:production", Effect: "Deny"}},
		SkillRules: []string{"forbidden:deploy:production"}, Replica: "gate-0", RequestID: fmt.Sprintf("req-%d", i),
	}
}

// get requests path as user and returns the status and body.
func (e *env) get(t *testing.T, user, path string, hdr ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(e.ctx, http.MethodGet, e.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.Header.Set("X-Test-User", user)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s: reading the body: %v", path, err)
	}
	return resp.StatusCode, body
}

// list pages through path's listing as user and returns the ids, and
// the first page's tail.
func (e *env) list(t *testing.T, user, path string) (ids []string, tail string) {
	t.Helper()
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	cursor := ""
	for {
		p := path
		if cursor != "" {
			p += sep + "cursor=" + cursor
		}
		status, body := e.get(t, user, p)
		var resp EntriesResponse
		if status != http.StatusOK || json.Unmarshal(body, &resp) != nil {
			t.Fatalf("%s as %s: %d %s", p, user, status, body)
		}
		if cursor == "" {
			tail = resp.Tail
		}
		for _, en := range resp.Entries {
			ids = append(ids, en.ID)
		}
		if resp.Next == "" {
			return ids, tail
		}
		cursor = resp.Next
	}
}
