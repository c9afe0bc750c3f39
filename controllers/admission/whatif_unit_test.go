package admission

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

// A what-if that cannot run is a warning, never a refusal; the manager's
// own changes run none.
func TestWhatIfNeverRefuses(t *testing.T) {
	f := newFixture(t, session(admin))
	// Nothing listens on port 1: every read of Chron fails.
	pool, err := pgxpool.New(context.Background(), "postgres://nobody@127.0.0.1:1/chron?connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	f.h.WhatIf = &WhatIf{Chron: pool}
	f.may[admin+" get aiorgs/"] = true // may read every org's Chron rows, so the what-if reads them
	pol := &claiimv1.Policy{ObjectMeta: metav1.ObjectMeta{Name: "no-prod"}, Spec: claiimv1.PolicySpec{
		Rules: []claiimv1.PolicyRule{{Name: "deny", Effect: claiimv1.PolicyEffectDeny, Actions: []claiimv1.ActionPattern{"deploy:production"}}}}}

	resp := f.validate(admissionv1.Create, admin, nil, pol)
	if !resp.Allowed {
		t.Fatalf("refused: %v", resp.Result)
	}
	if len(resp.Warnings) != 1 || !strings.HasPrefix(resp.Warnings[0], "what-if: could not run, so nothing is known") ||
		!strings.Contains(resp.Warnings[0], "reading Chron") {
		t.Errorf("warnings %q", resp.Warnings)
	}
	if resp = f.validate(admissionv1.Create, manager, nil, pol); !resp.Allowed || len(resp.Warnings) != 0 {
		t.Errorf("the manager's own change: allowed %v, warnings %q", resp.Allowed, resp.Warnings)
	}
	// Out of time before anything was read: admitted, and the warning says so.
	f.h.WhatIf = &WhatIf{Chron: pool, Budget: time.Nanosecond}
	pol.Name = "no-prod-2"
	resp = f.validate(admissionv1.Create, admin, nil, pol)
	if !resp.Allowed || len(resp.Warnings) != 1 ||
		!strings.HasSuffix(resp.Warnings[0], "no request could be read: reading stopped at the time budget (1ns)") {
		t.Errorf("past the budget: allowed %v, warnings %q", resp.Allowed, resp.Warnings)
	}
	// An AIOrg is not a kind a what-if runs for.
	org := &claiimv1.AIOrg{ObjectMeta: metav1.ObjectMeta{Name: "engineering"}}
	if resp = f.validate(admissionv1.Create, admin, nil, org); !resp.Allowed || len(resp.Warnings) != 0 {
		t.Errorf("an AIOrg: allowed %v, warnings %q", resp.Allowed, resp.Warnings)
	}
}

// A request whose own checks used up the webhook's time gets no what-if,
// and hears why.
func TestWhatIfKeepsTheAnswerOnTime(t *testing.T) {
	f := newFixture(t)
	o := &WhatIf{}
	if _, _, err := o.run(context.Background(), f.h, admission.Request{}, 0); err == nil || !strings.Contains(err.Error(), "took its time") {
		t.Errorf("no time left: %v", err)
	}
}
