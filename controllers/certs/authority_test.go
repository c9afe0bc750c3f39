package certs

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

// TestRenewTimeline lives twelve years of the default lifetimes a day at
// a time, as the leader would, and checks at every renewal what keeps
// replicas from being refused: the certificate served until now still
// verifies against the new caBundle (a replica that has not reloaded),
// and the new certificate already verifies against the caBundle stored
// before (the apiserver has not seen the new one yet).
func TestRenewTimeline(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r, clock, p := firstIssue(t, start)
	d := p.data
	leaves, cas, bundleMax := map[string]bool{}, map[string]bool{}, 0
	for day := 1; day <= 12*365; day++ {
		now := start.Add(time.Duration(day) * 24 * time.Hour)
		clock.SetTime(now)
		p, err := r.renew(d)
		if err != nil {
			t.Fatalf("day %d: %v", day, err)
		}
		if !p.changed {
			if !now.Before(p.next) {
				t.Fatalf("day %d: nothing changed, yet it was due at %s", day, p.next)
			}
			continue
		}
		if _, err := r.servingCert(p.data, now); err != nil {
			t.Fatalf("day %d: the new certificate does not verify against its own bundle: %v", day, err)
		}
		if verify(t, d[keyCert], p.data[keyCA], now) != nil {
			t.Fatalf("day %d: a replica still serving the previous certificate is refused by the new caBundle", day)
		}
		if err := verify(t, p.data[keyCert], d[keyCA], now); err != nil {
			t.Fatalf("day %d: the new certificate is signed by a CA the apiserver does not trust yet: %v", day, err)
		}
		leaves[string(p.data[keyCert])] = true
		bundle := certsIn(t, p.data[keyCA])
		bundleMax = max(bundleMax, len(bundle))
		for _, c := range bundle {
			cas[string(c.Raw)] = true
			if !now.Before(c.NotAfter) {
				t.Fatalf("day %d: an expired CA stays in the bundle", day)
			}
		}
		d = p.data
	}
	t.Logf("%d serving certificates, %d CAs, at most %d at once in the bundle", len(leaves), len(cas), bundleMax)
	// A year's certificate renewed 30 days ahead: one per 335 days; CAs of
	// five years, each signing from its first half-life on.
	if len(leaves) < 12 || len(cas) < 3 || bundleMax > 3 {
		t.Fatalf("%d serving certificates, %d CAs, at most %d at once in the bundle", len(leaves), len(cas), bundleMax)
	}
}

func TestRenewKeepsAnOldSecretsCertificate(t *testing.T) {
	// A Secret written before CA keys were kept: no ca.key. The served
	// certificate is kept while fresh; the next one comes from a new CA
	// published in the bundle now, beside the old one.
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r, _, p := firstIssue(t, now)
	old := map[string][]byte{keyCA: p.data[keyCA], keyCert: p.data[keyCert], keyCertKey: p.data[keyCertKey]}
	q, err := r.renew(old)
	if err != nil {
		t.Fatal(err)
	}
	if string(q.data[keyCert]) != string(old[keyCert]) || len(certsIn(t, q.data[keyCA])) != 2 || len(q.data[keyCAKey]) == 0 {
		t.Fatalf("want the served certificate kept and a new signing CA beside the old one")
	}
}

func TestServeKeepsAWorkingCertificate(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := clocktesting.NewFakePassiveClock(now)
	r := &Rotator{Namespace: "claiim-system", Service: "claiim-webhook-service", CertDir: t.TempDir(), Clock: clock}
	if err := r.init(); err != nil {
		t.Fatal(err)
	}
	good, err := r.renew(nil)
	if err != nil {
		t.Fatal(err)
	}
	other, err := r.renew(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.serve(good.data); err != nil {
		t.Fatal(err)
	}
	foreign := map[string][]byte{keyCA: good.data[keyCA], keyCert: other.data[keyCert], keyCertKey: other.data[keyCertKey]}
	mismatched := map[string][]byte{keyCA: good.data[keyCA], keyCert: good.data[keyCert], keyCertKey: other.data[keyCertKey]}
	for name, d := range map[string]map[string][]byte{"signed by another CA": foreign, "with another key": mismatched, "empty": {}} {
		if err := r.serve(d); err == nil {
			t.Errorf("a Secret %s was served", name)
		}
	}
	clock.SetTime(now.Add(r.Validity + time.Second))
	if err := r.serve(good.data); err == nil {
		t.Error("an expired certificate was served")
	}
	if b, _ := os.ReadFile(filepath.Join(r.CertDir, keyCert)); string(b) != string(good.data[keyCert]) {
		t.Fatal("the working certificate was replaced")
	}
}

func verify(t *testing.T, certPEM, bundle []byte, now time.Time) error {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(bundle)
	b, _ := pem.Decode(certPEM)
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Verify(x509.VerifyOptions{Roots: pool, DNSName: "claiim-webhook-service.claiim-system.svc", CurrentTime: now})
	return err
}

func certsIn(t *testing.T, bundle []byte) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for b, rest := pem.Decode(bundle); b != nil; b, rest = pem.Decode(rest) {
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

// firstIssue is a leader's first visit at now: a Rotator on a fake clock
// and the CA and certificate it issues.
func firstIssue(t *testing.T, now time.Time) (*Rotator, *clocktesting.FakePassiveClock, plan) {
	t.Helper()
	clock := clocktesting.NewFakePassiveClock(now)
	r := &Rotator{Namespace: "claiim-system", Service: "claiim-webhook-service", Clock: clock}
	if err := r.init(); err != nil {
		t.Fatal(err)
	}
	p, err := r.renew(nil)
	if err != nil {
		t.Fatal(err)
	}
	return r, clock, p
}
