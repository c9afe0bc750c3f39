package console_test

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/internal/console"
)

var rowsOnce sync.Once

// visibilityRows writes one decision in each org and one row with no
// org, in a stream of their own, once.
func (w *world) visibilityRows(t *testing.T) {
	t.Helper()
	w.orgs(t)
	rowsOnce.Do(func() {
		wr, err := chron.NewWriter(w.ctx, w.env.Chron, chron.WriterOptions{Stream: "gate/visibility"})
		if err != nil {
			t.Fatal(err)
		}
		defer wr.Close()
		for _, org := range []string{"engineering", "platform", "sales", ""} {
			r := &chron.Record{Time: time.Now(), Kind: chron.KindDecision, AgentName: "bot-" + org, AgentNamespace: "default", Org: org,
				Action: "visibility:test", Outcome: chron.OutcomeAllow, Reason: "ALLOWED", Replica: "test"}
			if org == "" {
				r.Kind, r.AgentName, r.Actor = chron.KindPIMRequested, "", adminUser
			}
			if _, err := wr.Write(w.ctx, r); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// api calls the Chron API as user, with their own bearer token.
func (w *world) api(t *testing.T, user, path string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequestWithContext(w.ctx, http.MethodGet, w.srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+w.env.Token(user))
	resp, err := w.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// orgsSeen are the orgs of the visibility rows user sees ("-" for none).
func (w *world) orgsSeen(t *testing.T, user string) []string {
	t.Helper()
	status, body := w.api(t, user, "/api/v1/chron/entries?limit=500&action=visibility:test")
	if status != http.StatusOK {
		t.Fatalf("entries as %s: %d %s", user, status, body)
	}
	var resp console.EntriesResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	var orgs []string
	for _, e := range resp.Entries {
		if e.Action != "visibility:test" {
			continue
		}
		o := e.Org
		if o == "" {
			o = "-"
		}
		if !slices.Contains(orgs, o) {
			orgs = append(orgs, o)
		}
	}
	slices.Sort(orgs)
	return orgs
}

func TestChronVisibilityFollowsRBAC(t *testing.T) {
	w := kube(t)
	w.visibilityRows(t)
	for user, want := range map[string][]string{
		// claiim-auditor: every org, and the rows with no org.
		auditorUser: {"-", "engineering", "platform", "sales"},
		// get aiorgs/chron on engineering: it and its child platform; not
		// sales, not the control plane's rows.
		engUser: {"engineering", "platform"},
	} {
		if got := w.orgsSeen(t, user); !slices.Equal(got, want) {
			t.Errorf("%s sees rows of %v, want %v", user, got, want)
		}
	}
}

func TestChronRefusesWhoMaySeeNothing(t *testing.T) {
	w := kube(t)
	w.visibilityRows(t)
	status, body := w.api(t, nobodyUser, "/api/v1/chron/entries")
	if status != http.StatusForbidden || !strings.Contains(string(body), "claiim-auditor") {
		t.Fatalf("entries as a person without a role: %d %s; want 403 saying what to ask for", status, body)
	}
	req, _ := http.NewRequestWithContext(w.ctx, http.MethodGet, w.srv.URL+"/api/v1/chron/entries", nil)
	req.Header.Set("Authorization", "Bearer forged-token")
	resp, err := w.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("entries with a forged token: %d, want 401", resp.StatusCode)
	}
}

func TestChronEntryHiddenOutsideOwnOrgs(t *testing.T) {
	w := kube(t)
	w.visibilityRows(t)
	status, body := w.api(t, auditorUser, "/api/v1/chron/entries?org=sales&action=visibility:test")
	var resp console.EntriesResponse
	if status != http.StatusOK || json.Unmarshal(body, &resp) != nil || len(resp.Entries) == 0 {
		t.Fatalf("sales' rows as the auditor: %d %s", status, body)
	}
	id := resp.Entries[0].ID
	if status, _ := w.api(t, engUser, "/api/v1/chron/entries/"+id); status != http.StatusNotFound {
		t.Errorf("a sales row as engineering's auditor: %d, want 404", status)
	}
	if status, _ := w.api(t, auditorUser, "/api/v1/chron/entries/"+id); status != http.StatusOK {
		t.Errorf("a sales row as the auditor: %d, want 200", status)
	}
}
