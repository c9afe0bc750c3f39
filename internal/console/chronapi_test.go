package console

import (
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/claiim/claiim-operator/gate/chron"
)

// seedRows writes 30 rows: engineering, sales and ops decisions by i%3,
// every fifth a control-plane row without an org. It returns their ids
// in the order written (commit order: one writer, one at a time).
func seedRows(t *testing.T, e *env) (ids []string, orgOf map[string]string) {
	t.Helper()
	w := e.writer(t, "gate/0")
	orgOf = map[string]string{}
	for i := range 30 {
		r := record(i, []string{"engineering", "sales", "ops"}[i%3])
		if i%5 == 0 {
			r.Org, r.Kind, r.AgentName, r.AgentNamespace, r.Actor = "", chron.KindPIMApproved, "", "", "peer@claiim.io"
		}
		if i == 7 {
			r.Outcome, r.Reason = chron.OutcomeAllow, "OWN_AIORG"
		}
		row, err := w.Write(e.ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, row.ID)
		orgOf[row.ID] = row.Org
	}
	return ids, orgOf
}

func TestEntries(t *testing.T) {
	e := newEnv(t)
	written, orgOf := seedRows(t, e)
	newest := slices.Clone(written)
	slices.Reverse(newest)
	only := func(orgs ...string) []string {
		var out []string
		for _, id := range newest {
			if slices.Contains(orgs, orgOf[id]) {
				out = append(out, id)
			}
		}
		return out
	}
	for _, c := range []struct {
		user, query string
		want        []string
	}{
		{"admin", "", newest},
		{"admin", "limit=4", newest},
		{"admin", "order=oldest&limit=7", written},
		{"admin", "org=sales&limit=3", only("sales")},
		{"admin", "org=-", only("")},
		{"admin", "org=sales&org=-&org=", only("sales", "")},
		{"eng", "", only("engineering")},
		{"eng", "org=sales", nil}, // asked for what is hidden: nothing, not an error
		{"eng", "org=-", nil},     // rows without an org are not engineering's
		{"auditor", "limit=2", only("engineering", "sales", "")},
		{"auditor", "org=sales&org=ops", only("sales")},
		{"none", "", nil},
		{"admin", "outcome=allow", written[7:8]},
		{"admin", "reason=OWN_AIORG&agent=agents/prod-deploy-bot", written[7:8]},
		{"admin", "kind=pim.approved&limit=2", only("")},
		{"admin", "since=2026-05-04T10:00:10Z&until=2026-05-04T10:00:12Z", []string{written[11], written[10]}},
	} {
		got, _ := e.list(t, c.user, "/api/v1/chron/entries?"+c.query)
		if !slices.Equal(got, c.want) {
			t.Errorf("%s ?%s: got %d entries %v\nwant %d %v", c.user, c.query, len(got), got, len(c.want), c.want)
		}
	}

	// The JSON of one entry: every field, lists never null.
	status, body := e.get(t, "admin", "/api/v1/chron/entries?limit=1&org=engineering")
	var page map[string]any
	if status != 200 || json.Unmarshal(body, &page) != nil {
		t.Fatalf("%d %s", status, body)
	}
	first := page["entries"].([]any)[0].(map[string]any)
	for _, k := range csvHeader {
		if _, ok := first[k]; !ok {
			t.Errorf("an entry lacks %q: %s", k, body)
		}
	}
	if page["next"] == "" || page["tail"] == "" || first["org"] != "engineering" || first["stream"] != "gate/0" ||
		first["policies"].([]any)[0].(map[string]any)["name"] != "no-prod-deploys" {
		t.Errorf("the first page: %s", body)
	}
	status, body = e.get(t, "admin", "/api/v1/chron/entries?org=nobody")
	if status != 200 || !strings.HasPrefix(string(body), `{"entries":[],"next":"","tail":"`) {
		t.Errorf("an empty page: %d %s", status, body)
	}
}

func TestEntry(t *testing.T) {
	e := newEnv(t)
	written, orgOf := seedRows(t, e)
	var eng, none string
	for _, id := range written {
		switch orgOf[id] {
		case "engineering":
			eng = id
		case "":
			none = id
		}
	}
	status, body := e.get(t, "eng", "/api/v1/chron/entries/"+eng)
	var got Entry
	if status != 200 || json.Unmarshal(body, &got) != nil {
		t.Fatalf("%d %s", status, body)
	}
	if got.ID != eng || got.Org != "engineering" || len(got.Hash) != 64 || got.PrevHash == "" || got.Seq == 0 ||
		got.Context["target"] != "prod-eu-1" || got.SkillRules[0] != "forbidden:deploy:production" || got.Anchor != "admin@claiim.io" ||
		got.SkillVersionID != "deploy-bot-v1" || got.Format != chron.FormatV1 || got.CommittedAt.IsZero() {
		t.Errorf("entry: %+v", got)
	}
	for _, c := range []struct {
		user, id string
		status   int
	}{
		{"eng", none, 404},           // hidden: the same answer as absent
		{"auditor", none, 200},       // rows without an org
		{"admin", "no-such-id", 404}, // absent
		{"eng", strings.Repeat("x", 129), 400},
		{"eng", url.PathEscape("a b"), 400},
		{"", eng, 401},
		{"outsider", eng, 403},
		{"broken", eng, 503},
	} {
		if status, body := e.get(t, c.user, "/api/v1/chron/entries/"+c.id); status != c.status {
			t.Errorf("%s GET entries/%s: %d %s, want %d", c.user, c.id, status, body, c.status)
		}
	}
}

// TestEntriesBadRequests: every bad input is a 400 that says what to send.
func TestEntriesBadRequests(t *testing.T) {
	e := newEnv(t)
	seedRows(t, e)
	_, tail := e.list(t, "admin", "/api/v1/chron/entries?limit=1000")
	for query, says := range map[string]string{
		"limit=0":                    "from 1 to 1000",
		"limit=1001":                 "from 1 to 1000",
		"limit=ten":                  "whole number",
		"outcome=MAYBE":              "ALLOW or DENY",
		"since=yesterday":            "RFC 3339",
		"until=2026-13-01T00:00:00Z": "RFC 3339",
		"since=-1h":                  "positive",
		"since=2026-05-05T00:00:00Z&until=2026-05-04T00:00:00Z": "before until",
		"order=sideways":                     "newest",
		"ogr=engineering":                    "unknown parameter",
		"limit=1&limit=2":                    "once",
		"action=" + strings.Repeat("a", 254): "at most 253",
		"agent=a/b&namespace=c":              "give one",
		"cursor=garbage":                     "cursor",
		"cursor=" + tail:                     "cursor", // an oldest-first cursor in a newest-first listing
		"org=%zz":                            "URL-encoded",
		"q=" + strings.Repeat("x", 9000):     "at most 8192",
	} {
		status, body := e.get(t, "admin", "/api/v1/chron/entries?"+query)
		var er ErrorResponse
		if status != 400 || json.Unmarshal(body, &er) != nil || !strings.Contains(er.Error, says) {
			t.Errorf("?%.60s: %d %s, want 400 saying %q", query, status, body, says)
		}
	}
	// A cursor edited by hand: refused, whatever the edit.
	_, _ = e.list(t, "admin", "/api/v1/chron/entries")
	status, body := e.get(t, "admin", "/api/v1/chron/entries?limit=2")
	var p EntriesResponse
	if status != 200 || json.Unmarshal(body, &p) != nil || p.Next == "" {
		t.Fatalf("%d %s", status, body)
	}
	for i := range p.Next {
		for _, c := range "AZaz09-_'\"" {
			edited := p.Next[:i] + string(c) + p.Next[i+1:]
			if edited == p.Next {
				continue
			}
			if status, body := e.get(t, "admin", "/api/v1/chron/entries?limit=2&cursor="+url.QueryEscape(edited)); status != 400 && status != 200 {
				t.Fatalf("cursor %q: %d %s", edited, status, body)
			}
		}
	}
	for user, status := range map[string]int{"": 401, "outsider": 403, "broken": 503} {
		if got, body := e.get(t, user, "/api/v1/chron/entries"); got != status {
			t.Errorf("as %q: %d %s, want %d", user, got, body, status)
		}
	}
}
