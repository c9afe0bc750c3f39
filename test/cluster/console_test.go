package cluster

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// console reads the agent pod's decisions through the chart's console, as
// an auditor with their own ServiceAccount token: the console in a pod,
// Chron as the reader role, TokenReview and SubjectAccessReview against
// the real apiserver.
func (c *cluster) console(t *testing.T) {
	c.kubectl("-n", ns, "rollout", "status", "deploy/claiim-console", "--timeout=2m")
	c.kubectl("-n", "default", "create", "serviceaccount", "e2e-auditor")
	c.kubectl("create", "clusterrolebinding", "e2e-auditor", "--clusterrole=claiim-auditor", "--serviceaccount=default:e2e-auditor")
	c.kubectl("-n", "default", "create", "serviceaccount", "e2e-nobody")
	auditor := strings.TrimSpace(c.kubectl("-n", "default", "create", "token", "e2e-auditor"))
	nobody := strings.TrimSpace(c.kubectl("-n", "default", "create", "token", "e2e-nobody"))
	ip := strings.TrimSpace(c.kubectl("-n", ns, "get", "svc/claiim-console", "-o", "jsonpath={.spec.clusterIP}"))
	base := fmt.Sprintf("http://%s:3001", ip)
	hc := &http.Client{Timeout: 10 * time.Second}
	get := func(path, token string) (int, string, http.Header) {
		req, err := http.NewRequest(http.MethodGet, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}

	status, body, hdr := get("/login", "")
	if status != http.StatusOK || !strings.Contains(body, `name="token"`) || !strings.Contains(hdr.Get("Content-Security-Policy"), "script-src 'self'") {
		t.Fatalf("the login page: %d, CSP %q", status, hdr.Get("Content-Security-Policy"))
	}
	status, body, _ = get("/api/v1/chron/entries?agent=default/prod-deploy-bot&kind=decision&limit=1000", auditor)
	var page struct {
		Entries []struct{ Outcome, Action, Anchor string }
	}
	if status != http.StatusOK || json.Unmarshal([]byte(body), &page) != nil {
		t.Fatalf("the auditor's entries: %d %s", status, body)
	}
	seen := map[string]bool{}
	for _, e := range page.Entries {
		seen[e.Action+" "+e.Outcome] = true
	}
	if !seen["deploy:staging ALLOW"] || !seen["deploy:production DENY"] {
		t.Fatalf("the auditor does not see the agent pod's decisions: %v", seen)
	}
	if status, body, _ = get("/api/v1/chron/entries", nobody); status != http.StatusForbidden || !strings.Contains(body, "claiim-auditor") {
		t.Errorf("a ServiceAccount without a role: %d %s; want 403 naming the role", status, body)
	}
	if status, _, _ = get("/api/v1/chron/entries", "not-a-token"); status != http.StatusUnauthorized {
		t.Errorf("a forged token: %d, want 401", status)
	}
}
