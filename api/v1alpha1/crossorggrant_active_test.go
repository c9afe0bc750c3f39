package v1alpha1

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestGrantActiveAt(t *testing.T) {
	end := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	grant := func(phase GrantPhase, revoked bool, expires *time.Time) *CrossOrgGrant {
		g := &CrossOrgGrant{Spec: CrossOrgGrantSpec{GrantingOrg: "finance", ReceivingOrg: "engineering", Skills: []string{"ledger"}, Revoked: revoked},
			Status: CrossOrgGrantStatus{Phase: phase}}
		if expires != nil {
			e := metav1.NewTime(*expires)
			g.Status.ExpiresAt = &e
		}
		return g
	}
	cases := []struct {
		name string
		g    *CrossOrgGrant
		at   time.Time
		want bool
	}{
		{"active, before its end", grant(GrantActive, false, &end), end.Add(-time.Second), true},
		{"active, exactly at its end", grant(GrantActive, false, &end), end, false},
		{"active, after its end (the status not yet caught up)", grant(GrantActive, false, &end), end.Add(time.Minute), false},
		{"revoked while recorded active", grant(GrantActive, true, &end), end.Add(-time.Hour), false},
		{"pending: one side has not approved", grant(GrantPending, false, &end), end.Add(-time.Hour), false},
		{"expired", grant(GrantExpired, false, &end), end.Add(-time.Hour), false},
		{"revoked", grant(GrantRevoked, true, &end), end.Add(-time.Hour), false},
		{"active without a recorded end", grant(GrantActive, false, nil), end, false},
		{"no status yet", grant("", false, nil), end, false},
	}
	for _, c := range cases {
		if got := c.g.ActiveAt(c.at); got != c.want {
			t.Errorf("%s: ActiveAt = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestGrantCovers(t *testing.T) {
	g := &CrossOrgGrant{Spec: CrossOrgGrantSpec{GrantingOrg: "finance", ReceivingOrg: "engineering", Skills: []string{"ledger", "payroll"}}}
	cases := []struct {
		skill    string
		from, to OrgName
		want     bool
	}{
		{"ledger", "finance", "engineering", true},
		{"payroll", "finance", "engineering", true},
		{"ledger", "engineering", "finance", false}, // the other direction
		{"ledger", "finance", "sales", false},       // another receiving org
		{"ledger", "hr", "engineering", false},      // a same-named skill of another org
		{"deploy-bot", "finance", "engineering", false},
		{"", "finance", "engineering", false},
	}
	for _, c := range cases {
		if got := g.Covers(c.skill, c.from, c.to); got != c.want {
			t.Errorf("Covers(%q, %s, %s) = %v, want %v", c.skill, c.from, c.to, got, c.want)
		}
	}
}
