package console_test

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/claiim/claiim-operator/gate/chron"
)

// chronRows writes records in a stream of their own and returns the rows.
func (w *world) chronRows(t *testing.T, recs ...*chron.Record) []chron.Row {
	t.Helper()
	w.orgs(t)
	wr, err := chron.NewWriter(w.ctx, w.env.Chron, chron.WriterOptions{Stream: "gate/web-" + suffix()})
	if err != nil {
		t.Fatal(err)
	}
	defer wr.Close()
	rows := make([]chron.Row, len(recs))
	for i, r := range recs {
		if rows[i], err = wr.Write(w.ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	return rows
}

// decision is a gate decision of agent ns/name in org.
func decision(ns, name, org, outcome string) *chron.Record {
	return &chron.Record{Time: time.Now(), Kind: chron.KindDecision, AgentName: name, AgentNamespace: ns, Org: org,
		Action: "deploy:production", Context: map[string]any{"target": "prod-eu-1"}, Outcome: outcome, Reason: "POLICY_DENY",
		Anchor: adminUser, SkillVersionID: "deploy-bot-v1", SkillDigest: "sha256:9f2c",
		Policies:   []chron.PolicyMatch{{Name: "no-prod-deploys", Version: 3, Rule: "deploy:production", Effect: "Deny"}},
		SkillRules: []string{"forbidden:deploy:production"}, Replica: "test"}
}

func TestChronPageFiltersFromTheURL(t *testing.T) {
	w := kube(t)
	ns := "web-" + suffix()
	w.chronRows(t, decision(ns, "eng-bot", "engineering", chron.OutcomeAllow), decision(ns, "sales-bot", "sales", chron.OutcomeDeny))
	auditor := w.login(t, auditorUser)
	for query, want := range map[string][]bool{
		"namespace=" + ns:                    {true, true},
		"namespace=" + ns + "&outcome=DENY":  {false, true},
		"namespace=" + ns + "&org=sales":     {false, true},
		"agent=" + ns + "%2Feng-bot":         {true, false},
		"namespace=" + ns + "&kind=pim.test": {false, false},
	} {
		status, body := auditor.get("/chron?" + query)
		if status != http.StatusOK {
			t.Fatalf("/chron?%s: %d\n%s", query, status, body)
		}
		if got := []bool{strings.Contains(body, ns+"/eng-bot"), strings.Contains(body, ns+"/sales-bot")}; got[0] != want[0] || got[1] != want[1] {
			t.Errorf("/chron?%s shows engineering's, sales' rows: %v, want %v", query, got, want)
		}
	}
	// The filters come back filled in, and the exports carry them.
	_, body := auditor.get("/chron?namespace=" + ns + "&outcome=DENY")
	if !strings.Contains(body, `name="namespace" value="`+ns+`"`) || !strings.Contains(body, `<option value="DENY" selected>`) {
		t.Errorf("the filter form does not show the URL's filters")
	}
	csv := link(t, body, "export-csv")
	if csv != "/api/v1/chron/export?format=csv&namespace="+ns+"&outcome=DENY" {
		t.Fatalf("the CSV export link is %q", csv)
	}
	status, out := auditor.get(csv)
	if status != http.StatusOK || !strings.Contains(out, "sales-bot") || strings.Contains(out, "eng-bot") {
		t.Errorf("the CSV export through the page's link: %d\n%s", status, out)
	}
	if status, body := auditor.get("/chron?namespace=" + ns + "&outcome=maybe"); status != http.StatusBadRequest || !strings.Contains(body, "send ALLOW or DENY") {
		t.Errorf("a bad outcome: %d, want 400 with what to send\n%s", status, body)
	}
}

func TestChronPageShowsOnlyWhatThePersonMaySee(t *testing.T) {
	w := kube(t)
	ns := "web-" + suffix()
	w.chronRows(t, decision(ns, "eng-bot", "engineering", chron.OutcomeAllow), decision(ns, "sales-bot", "sales", chron.OutcomeDeny))
	eng := w.login(t, engUser)
	for _, q := range []string{"namespace=" + ns, "namespace=" + ns + "&org=sales"} {
		status, body := eng.get("/chron?" + q)
		if status != http.StatusOK || strings.Contains(body, ns+"/sales-bot") {
			t.Errorf("engineering's auditor on /chron?%s: %d, sales' row shown: %v", q, status, strings.Contains(body, ns+"/sales-bot"))
		}
		if q == "namespace="+ns && !strings.Contains(body, ns+"/eng-bot") {
			t.Errorf("engineering's auditor does not see engineering's row")
		}
	}
	status, body := w.login(t, nobodyUser).get("/chron")
	if status != http.StatusForbidden || !strings.Contains(body, "claiim-auditor") || strings.Contains(body, `id="chron-rows"`) {
		t.Errorf("a person who may read no Chron: %d, want 403 saying what to ask for\n%s", status, body)
	}
}

func TestChronPageLoadsMoreWithACursor(t *testing.T) {
	w := kube(t)
	ns := "web-" + suffix()
	rows := w.chronRows(t, decision(ns, "bot-1", "engineering", chron.OutcomeAllow), decision(ns, "bot-2", "engineering", chron.OutcomeAllow),
		decision(ns, "bot-3", "engineering", chron.OutcomeAllow))
	auditor := w.login(t, auditorUser)
	_, body := auditor.get("/chron?namespace=" + ns + "&limit=2")
	if got := strings.Count(body, `<tr class="row"`); got != 2 || !strings.Contains(body, ns+"/bot-3") || !strings.Contains(body, ns+"/bot-2") {
		t.Fatalf("the first page has %d rows, want bot-3 and bot-2\n%s", got, body)
	}
	if !strings.Contains(body, `data-tail-url="/api/v1/chron/tail?cursor=`) {
		t.Errorf("the first page offers no live tail")
	}
	more := link(t, body, "load-more")
	if !strings.Contains(more, "cursor=") || !strings.Contains(more, "namespace="+ns) || !strings.Contains(more, "limit=2") {
		t.Fatalf("load more is %q; want the cursor with the same filters and page size", more)
	}
	status, body := auditor.get(more)
	if status != http.StatusOK || strings.Count(body, `<tr class="row"`) != 1 || !strings.Contains(body, `data-id="`+rows[0].ID+`"`) {
		t.Fatalf("the next page: %d, want bot-1 alone\n%s", status, body)
	}
	if link(t, body, "load-more") != "" || strings.Contains(body, "data-tail-url") {
		t.Errorf("the last page offers more, or a tail from the middle")
	}
}

func TestChronRowShownWhole(t *testing.T) {
	w := kube(t)
	ns := "web-" + suffix()
	withAudit := decision(ns, "eng-bot", "engineering", chron.OutcomeDeny)
	withAudit.Policies = append(withAudit.Policies, chron.PolicyMatch{Name: "staging-freeze", Version: 1, Rule: "freeze", Effect: "Deny", Enforcement: "Audit"})
	rows := w.chronRows(t, withAudit, decision(ns, "sales-bot", "sales", chron.OutcomeDeny))
	auditor := w.login(t, auditorUser)
	status, body := auditor.get("/chron/" + rows[0].ID)
	for _, want := range []string{rows[0].Hash, rows[0].PrevHash, rows[0].Stream, "no-prod-deploys", "forbidden:deploy:production",
		"sha256:9f2c", "deploy-bot-v1", adminUser, `&#34;target&#34;: &#34;prod-eu-1&#34;`, "staging-freeze", "(Audit: would deny, not enforced)"} {
		if status != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("the row's page (%d) lacks %q", status, want)
		}
	}
	// In the list, each row opens to the same.
	if _, body := auditor.get("/chron?namespace=" + ns); !strings.Contains(body, "<details><summary>Whole decision</summary>") || !strings.Contains(body, rows[1].Hash) {
		t.Errorf("the list's rows do not expand to the whole decision")
	}
	if status, _ := w.login(t, engUser).get("/chron/" + rows[1].ID); status != http.StatusNotFound {
		t.Errorf("a sales row for engineering's auditor: %d, want 404", status)
	}
}

func TestChronPageEscapesWhatAgentsWrote(t *testing.T) {
	w := kube(t)
	ns := "web-" + suffix()
	r := decision(ns, "eng-bot", "engineering", chron.OutcomeDeny)
	r.Context = map[string]any{"note": "<script>alert('x')</script>"}
	r.Message = `<img src=x onerror="alert(1)">`
	rows := w.chronRows(t, r)
	auditor := w.login(t, auditorUser)
	for _, path := range []string{"/chron?namespace=" + ns, "/chron/" + rows[0].ID} {
		_, body := auditor.get(path)
		if strings.Contains(body, "<script>alert") || strings.Contains(body, "<img src=x") {
			t.Errorf("%s carries the row's markup unescaped", path)
		}
		if !strings.Contains(body, "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;") || !strings.Contains(body, "&lt;img src=x") {
			t.Errorf("%s does not show the row's text, escaped\n%s", path, body)
		}
	}
}

// The page's tail link works with the session cookie and brings rows
// committed after the page.
func TestChronPageTailFollowsNewRows(t *testing.T) {
	w := kube(t)
	ns := "web-" + suffix()
	w.chronRows(t, decision(ns, "old-bot", "engineering", chron.OutcomeAllow))
	auditor := w.login(t, auditorUser)
	_, body := auditor.get("/chron?namespace=" + ns)
	_, rest, ok := strings.Cut(body, `data-tail-url="`)
	if !ok {
		t.Fatal("no tail on the first page")
	}
	tailURL, _, _ := strings.Cut(rest, `"`)
	tailURL = strings.ReplaceAll(tailURL, "&amp;", "&")
	ctx, cancel := context.WithTimeout(w.ctx, 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, w.srv.URL+tailURL, nil)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err := auditor.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the page's tail: %d", resp.StatusCode)
	}
	w.chronRows(t, decision(ns, "new-bot", "engineering", chron.OutcomeAllow))
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "data: ") {
			if strings.Contains(line, "old-bot") {
				t.Fatal("the tail repeats a row the page already shows")
			}
			if strings.Contains(line, "new-bot") {
				return
			}
		}
	}
	t.Fatalf("the tail ended without the new row: %v", sc.Err())
}
