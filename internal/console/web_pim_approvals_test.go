package console_test

import (
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

// pimStatus is the request as the manager last wrote it.
func (w *world) pimStatus(g Gomega, name string) claiimv1.PIMRequestStatus {
	p := &claiimv1.PIMRequest{}
	g.Expect(w.env.Client.Get(w.ctx, client.ObjectKey{Name: name}, p)).To(Succeed())
	return p.Status
}

// rowOf is the table row of body that links to PIM request name, or "".
func rowOf(body, name string) string {
	i := strings.Index(body, `href="/pim/`+name+`"`)
	if i < 0 {
		return ""
	}
	start := strings.LastIndex(body[:i], "<tr>")
	row, _, _ := strings.Cut(body[max(start, 0):], "</tr>")
	return row
}

// A pending request lapses at the deadline the manager recorded
// (status.pendingExpiresAt, its --pim-pending-ttl after the request was
// made), which the console reads: past it the request is Expired on every
// page, out of the approval queue, with nothing left to decide. The
// console whose clock runs a day ahead sees what the manager will write.
func TestPIMPendingLapsesAtTheManagersDeadline(t *testing.T) {
	w := kube(t)
	p := &claiimv1.PIMRequest{ObjectMeta: metav1.ObjectMeta{GenerateName: "pim-"},
		Spec: claiimv1.PIMRequestSpec{Reason: "console test " + suffix() + ": rotate the deploy keys"}}
	if err := w.env.As(peerUser).Create(w.ctx, p); err != nil {
		t.Fatal(err)
	}
	var deadline time.Time
	eventually(t, func(g Gomega) {
		st := w.pimStatus(g, p.Name)
		g.Expect(st.PendingExpiresAt).NotTo(BeNil())
		deadline = st.PendingExpiresAt.Time
	})
	if want := p.CreationTimestamp.Add(claiimv1.DefaultPIMPendingTTL); !deadline.Equal(want) {
		t.Fatalf("the manager's deadline %v, want %v (its default TTL after creation)", deadline, want)
	}

	// Now: pending, in admin's queue, saying when it lapses.
	admin, peer := w.login(t, adminUser), w.login(t, peerUser)
	_, body := admin.get("/pim")
	if !strings.Contains(section(body, "queue"), p.Name) {
		t.Errorf("admin's queue lacks the pending request %s:\n%s", p.Name, section(body, "queue"))
	}
	_, body = peer.get("/pim/" + p.Name)
	if want := "<th>Lapses</th><td>" + deadline.UTC().Format(time.RFC3339) + " unless approved by then"; !strings.Contains(body, want) {
		t.Errorf("the pending request's page lacks %q\n%s", want, body)
	}
	if _, body = peer.get("/"); !strings.Contains(body, "<code>"+p.Name+"</code>") {
		t.Errorf("peer's dashboard does not list %s as waiting for approval\n%s", p.Name, body)
	}

	// A day later, before the manager says so: Expired everywhere.
	later := w.ahead(t, claiimv1.DefaultPIMPendingTTL+time.Minute)
	admin, peer = later.login(t, adminUser), later.login(t, peerUser)
	_, body = admin.get("/pim")
	if strings.Contains(section(body, "queue"), p.Name) {
		t.Errorf("admin's queue still shows the lapsed request %s:\n%s", p.Name, section(body, "queue"))
	}
	_, body = peer.get("/pim")
	if row := rowOf(section(body, "mine"), p.Name); !strings.Contains(row, `<span class="Expired">Expired</span> <span class="muted">unapproved in time</span>`) ||
		strings.Contains(row, "/approve") || strings.Contains(row, "/revoke") {
		t.Errorf("peer's own lapsed request: want Expired, unapproved in time, with no decision left; got\n%s", row)
	}
	_, body = peer.get("/pim/" + p.Name)
	for _, want := range []string{`<span class="Expired">Expired</span>`, "<th>Lapsed</th>", "nobody approved it in time", "Nothing left to decide: Expired."} {
		if !strings.Contains(body, want) {
			t.Errorf("the lapsed request's page lacks %q\n%s", want, body)
		}
	}
	if _, body = peer.get("/"); strings.Contains(body, "<code>"+p.Name+"</code>") {
		t.Errorf("peer's dashboard still lists the lapsed %s as waiting for approval\n%s", p.Name, body)
	}
}

// A request that needs two approvers: each page says how far it got and
// who approved, a person's second approval is refused in words, and the
// session starts with the second person's.
func TestPIMTwoApproversInTheConsole(t *testing.T) {
	w := kube(t)
	p := &claiimv1.PIMRequest{ObjectMeta: metav1.ObjectMeta{GenerateName: "pim-"},
		Spec: claiimv1.PIMRequestSpec{Reason: "console test " + suffix() + ": production database access", ApprovalsRequired: 2}}
	if err := w.env.As(adminUser).Create(w.ctx, p); err != nil {
		t.Fatal(err)
	}
	admin, peer, ciso := w.login(t, adminUser), w.login(t, peerUser), w.login(t, cisoUser)
	status, body := peer.post("/pim/"+p.Name+"/approve", url.Values{"reason": {"first of two"}})
	if status != http.StatusOK || !strings.Contains(body, "PIM request "+p.Name+" approved: 1 of 2 approvals; the session starts when another approver approves") {
		t.Fatalf("peer's approval, the first of two: %d\n%s", status, body)
	}
	eventually(t, func(g Gomega) { g.Expect(w.pimStatus(g, p.Name).Approvals).To(HaveLen(1)) })
	if w.pimPhase(NewWithT(t), p.Name) != claiimv1.PIMPending {
		t.Fatal("one approval of two started the session")
	}

	_, body = admin.get("/pim")
	if row := rowOf(section(body, "mine"), p.Name); !strings.Contains(row, peerUser+` <span class="progress">(1 of 2 approvals)</span>`) {
		t.Errorf("admin's row lacks who approved and the progress:\n%s", row)
	}
	_, body = admin.get("/pim/" + p.Name)
	if !strings.Contains(body, `<td id="approvals">1 of 2 approvals: `+peerUser+" (") {
		t.Errorf("the request's page lacks 1 of 2 approvals by %s\n%s", peerUser, body)
	}
	_, body = peer.get("/pim")
	approve := form(section(body, "queue"), "/pim/"+p.Name+"/approve")
	if !strings.Contains(approve, "disabled") || !strings.Contains(approve, "you approved already, and each person counts once: it has 1 of 2 approvals") {
		t.Errorf("peer's queue: want the approval disabled, saying peer approved already; got %q", approve)
	}
	if row := rowOf(section(body, "queue"), p.Name); !strings.Contains(row, `(1 of 2 approvals)`) {
		t.Errorf("peer's queue lacks the progress:\n%s", row)
	}
	// Posting it anyway gets the webhook's refusal.
	if status, body = peer.post("/pim/"+p.Name+"/approve", url.Values{"reason": {"again"}}); status != http.StatusForbidden ||
		!strings.Contains(body, "you already approved this request") {
		t.Errorf("peer approving twice: %d, want 403 with the webhook's words\n%s", status, body)
	}

	status, body = ciso.post("/pim/"+p.Name+"/approve", url.Values{"reason": {"second of two"}})
	if status != http.StatusOK || !strings.Contains(body, "PIM request "+p.Name+" approved") || strings.Contains(body, "of 2 approvals;") {
		t.Fatalf("ciso's approval, the second: %d\n%s", status, body)
	}
	eventually(t, func(g Gomega) { g.Expect(w.pimPhase(g, p.Name)).To(Equal(claiimv1.PIMActive)) })
	_, body = admin.get("/pim/" + p.Name)
	for _, want := range []string{`<span class="Active">Active</span>`, `<td id="approvals">` + peerUser + " (", ", " + cisoUser + " ("} {
		if !strings.Contains(body, want) {
			t.Errorf("the active request's page lacks %q\n%s", want, body)
		}
	}
}

// A change made under a session: its what-if (status.whatIf, written by
// the manager's admission) is on the session's page. Admin may hold more
// than one session (other tests'): the one admission chose carries it.
func TestPIMWhatIfOnTheSessionsPage(t *testing.T) {
	w := kube(t)
	w.orgs(t)
	w.elevate(t, adminUser)
	pol := &claiimv1.Policy{ObjectMeta: metav1.ObjectMeta{Name: unique("whatif-policy")},
		Spec: claiimv1.PolicySpec{Org: "engineering", Rules: []claiimv1.PolicyRule{{Name: "no-prod-deletes", Effect: claiimv1.PolicyEffectDeny,
			Actions: []claiimv1.ActionPattern{"*:delete"}}}}}
	if err := w.env.As(adminUser).Create(w.ctx, pol); err != nil {
		t.Fatal(err)
	}
	var session string
	var entry claiimv1.PIMWhatIf
	eventually(t, func(g Gomega) {
		var list claiimv1.PIMRequestList
		g.Expect(w.env.Client.List(w.ctx, &list)).To(Succeed())
		for _, p := range list.Items {
			for _, e := range p.Status.WhatIf {
				if e.Object == "create Policy/"+pol.Name {
					session, entry = p.Name, e
				}
			}
		}
		g.Expect(session).NotTo(BeEmpty(), "no PIM session carries the what-if of creating %s", pol.Name)
	})
	_, body := w.login(t, adminUser).get("/pim/" + session)
	whatIf := html.UnescapeString(section(body, "whatif"))
	for _, want := range []string{"create Policy/" + pol.Name, entry.Summary, "what-if: replayed "} {
		if !strings.Contains(whatIf, want) {
			t.Errorf("the session's what-if lacks %q\n%s", want, whatIf)
		}
	}
}
