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

func TestGrantEnd(t *testing.T) {
	act := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	at := func(t time.Time) *metav1.Time { m := metav1.NewTime(t); return &m }
	day := 24 * time.Hour
	cases := []struct {
		name      string
		duration  time.Duration
		expiresAt *metav1.Time
		activated *metav1.Time
		want      *time.Time
	}{
		{"duration, not yet activated", 8 * time.Hour, nil, nil, nil},
		{"duration from activation", 8 * time.Hour, nil, at(act), ptrTime(act.Add(8 * time.Hour))},
		{"a fixed end, pending", 0, at(act.Add(7 * day)), nil, ptrTime(act.Add(7 * day))},
		{"a fixed end within the bound", 0, at(act.Add(7 * day)), at(act), ptrTime(act.Add(7 * day))},
		{"a fixed end ten years away is cut to 90 days after activation", 0, at(act.Add(3650 * day)), at(act), ptrTime(act.Add(90 * day))},
	}
	for _, c := range cases {
		g := &CrossOrgGrant{Spec: CrossOrgGrantSpec{ExpiresAt: c.expiresAt}, Status: CrossOrgGrantStatus{ActivatedAt: c.activated}}
		if c.duration != 0 {
			g.Spec.Duration = &metav1.Duration{Duration: c.duration}
		}
		got := g.End()
		switch {
		case c.want == nil && got != nil:
			t.Errorf("%s: End = %v, want none yet", c.name, got)
		case c.want != nil && (got == nil || !got.Time.Equal(*c.want)):
			t.Errorf("%s: End = %v, want %v", c.name, got, *c.want)
		}
	}
}

func ptrTime(t time.Time) *time.Time { return &t }
