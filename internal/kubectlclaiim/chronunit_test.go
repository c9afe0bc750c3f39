package kubectlclaiim

import (
	"errors"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/internal/console"
)

// The EventSource rules the tail follows: comments skipped, data lines
// joined, an id moves the resume point even without data, an event cut
// before its blank line is dropped, the retry delay bounded.
func TestSSERead(t *testing.T) {
	g := NewWithT(t)
	stream := "retry: 10\nid: c0\n\n" +
		": keepalive\nid: c1\nevent: entry\ndata: {\"id\":\"a\",\ndata: \"kind\":\"decision\"}\n\n" +
		"id: c2\n: keepalive\n\n" +
		"event: error\ndata: \"resuming shortly\"\n\n" +
		"id: c3\r\nevent: entry\r\ndata: {\"id\":\"b\"}\r\n\r\n" +
		"id: c4\nevent: entry\ndata: {\"id\":\"cut\"}\n"
	s := &sseStream{retry: time.Second}
	var got, warned []string
	err := s.read(strings.NewReader(stream), func(es []console.Entry) error {
		for _, e := range es {
			got = append(got, e.ID+"/"+e.Kind)
		}
		return nil
	}, func(m string) { warned = append(warned, m) })
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(Equal([]string{"a/decision", "b/"}))
	g.Expect(s.last).To(Equal("c3"))
	g.Expect(s.retry).To(Equal(minRetry))
	g.Expect(warned).To(Equal([]string{"the console: resuming shortly"}))

	// A row that cannot be printed, or an entry that is not one, ends the tail.
	s = &sseStream{}
	err = s.read(strings.NewReader("id: x\nevent: entry\ndata: {}\n\n"), func([]console.Entry) error { return errors.New("stdout closed") }, nil)
	g.Expect(retryable(err)).To(BeFalse())
	err = s.read(strings.NewReader("event: entry\ndata: [\n\n"), func([]console.Entry) error { return nil }, nil)
	g.Expect(retryable(err)).To(BeFalse())
	g.Expect(retryable(&apiError{status: 503})).To(BeTrue())
	g.Expect(retryable(&apiError{status: 401})).To(BeFalse())
}

func TestConsoleURL(t *testing.T) {
	g := NewWithT(t)
	for raw, ok := range map[string]bool{
		"https://console.example.com":         true,
		"https://console.example.com:8443/c/": true,
		"http://localhost:8080":               true,
		"http://127.0.0.1:8080":               true,
		"http://[::1]:8080":                   true,
		"http://console.example.com":          false,
		"http://10.0.0.1":                     false,
		"http://localhost.example.com":        false,
		"https://user:pw@console.example.com": false,
		"https://console.example.com/?a=b":    false,
		"console.example.com":                 false,
		"ftp://console.example.com":           false,
	} {
		_, err := consoleURL(raw)
		g.Expect(err == nil).To(Equal(ok), raw)
	}
}

// explain's table marks an Audit policy's match as a would-deny that
// decided nothing.
func TestExplainTableShowsAudit(t *testing.T) {
	ex := &explanation{Agent: "agents/bot", Outcome: "ALLOW", Reason: "OWN_AIORG", Policies: []policyMatch{
		{Policy: "freeze", Version: 2, Rule: "all", Effect: "Deny", Enforcement: "Audit"}}}
	var b strings.Builder
	ex.table(&b)
	if !strings.Contains(b.String(), "freeze/all (v2) Deny (Audit: would deny, not enforced)") {
		t.Fatalf("explain does not mark the Audit match:\n%s", b.String())
	}
}

// A Chron row read through the console marks an Audit policy's match.
func TestChronRowShowsAudit(t *testing.T) {
	var b strings.Builder
	rowTable(&b, &console.Entry{ID: "d-1", Outcome: "ALLOW", Reason: "OWN_AIORG", Policies: []chron.PolicyMatch{
		{Name: "freeze", Version: 2, Rule: "all", Effect: "Deny", Enforcement: "Audit"}}})
	if !strings.Contains(b.String(), "freeze/all (v2) Deny (Audit: would deny, not enforced)") {
		t.Fatalf("the row does not mark the Audit match:\n%s", b.String())
	}
}
