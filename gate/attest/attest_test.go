package attest

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

func testAgent() *claiimv1.Agent {
	return &claiimv1.Agent{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "bot", UID: "3f1c", Annotations: map[string]string{claiimv1.AnnotationTokenEpoch: "1"}},
		Status: claiimv1.AgentStatus{ObservedGeneration: 2, Phase: claiimv1.AgentActive,
			Token: &claiimv1.AgentToken{ID: "00112233aabbccdd", Hash: "sha256:ab"}},
	}
}

func TestSignVerify(t *testing.T) {
	s := NewSigner(ed25519.NewKeyFromSeed(make([]byte, 32)))
	a := testAgent()
	att := s.Sign(Agent(a))
	if len(att) > MaxLen {
		t.Fatalf("attestation is %d bytes, more than MaxLen", len(att))
	}
	if err := s.Public().Verify(Agent(a), att); err != nil {
		t.Fatal(err)
	}
	changes := map[string]func(*claiimv1.Agent){
		"hash":       func(a *claiimv1.Agent) { a.Status.Token.Hash = "sha256:cd" },
		"token id":   func(a *claiimv1.Agent) { a.Status.Token.ID = "00112233aabbccde" },
		"revoked":    func(a *claiimv1.Agent) { now := metav1.Now(); a.Status.Token.RevokedAt = &now },
		"phase":      func(a *claiimv1.Agent) { a.Status.Phase = claiimv1.AgentSuspended },
		"generation": func(a *claiimv1.Agent) { a.Status.ObservedGeneration = 3 },
		"epoch":      func(a *claiimv1.Agent) { a.Annotations[claiimv1.AnnotationTokenEpoch] = "2" },
		"uid":        func(a *claiimv1.Agent) { a.UID = "other" },
		"name":       func(a *claiimv1.Agent) { a.Name = "bot2" },
		"no token":   func(a *claiimv1.Agent) { a.Status.Token = nil },
	}
	for name, change := range changes {
		b := testAgent()
		change(b)
		if err := s.Verify(Agent(b), att); !errors.Is(err, ErrBad) {
			t.Errorf("changed %s: %v, want ErrBad", name, err)
		}
	}
	g := &claiimv1.CrossOrgGrant{ObjectMeta: metav1.ObjectMeta{Name: "bot", UID: "3f1c"}}
	if err := s.Verify(Grant(g), att); !errors.Is(err, ErrBad) {
		t.Errorf("an agent's attestation verifies as a grant's: %v", err)
	}
}

func TestVerifyRefusals(t *testing.T) {
	s := NewSigner(NewKey())
	m := Agent(testAgent())
	att := s.Sign(m)
	other := NewSigner(NewKey())
	var unknown UnknownKeyError
	cases := map[string]struct {
		keys Verifier
		att  string
		ok   func(error) bool
	}{
		"missing":     {s, "", func(err error) bool { return errors.Is(err, ErrMissing) }},
		"no keys":     {PublicKeys{}, att, func(err error) bool { return errors.Is(err, ErrNoKeys) }},
		"unknown key": {other, att, func(err error) bool { return errors.As(err, &unknown) && unknown.ID == s.KeyID() }},
		"version":     {s, "v2" + att[2:], func(err error) bool { return errors.Is(err, ErrMalformed) }},
		"truncated":   {s, att[:len(att)-4], func(err error) bool { return errors.Is(err, ErrMalformed) }},
		"too long":    {s, att + strings.Repeat("A", MaxLen), func(err error) bool { return errors.Is(err, ErrMalformed) }},
		"garbage":     {s, "v1." + s.KeyID() + ".!!!", func(err error) bool { return errors.Is(err, ErrMalformed) }},
	}
	for name, c := range cases {
		if err := c.keys.Verify(m, c.att); !c.ok(err) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestKeysRoundTrip(t *testing.T) {
	old := NewKey()
	data := SecretData(old)
	s, err := SignerFromSecret(data)
	if err != nil {
		t.Fatal(err)
	}
	att := s.Sign(Agent(testAgent()))

	// Rotation: a new active key, the old one kept to verify until re-signed.
	next := NewKey()
	for k, v := range SecretData(next) {
		data[k] = v
	}
	s2, err := SignerFromSecret(data)
	if err != nil {
		t.Fatal(err)
	}
	if s2.KeyID() == s.KeyID() {
		t.Fatal("the active key did not change")
	}
	pub, err := PublicKeysFromConfigMap(s2.Public().ConfigMapData())
	if err != nil {
		t.Fatal(err)
	}
	if len(pub) != 2 {
		t.Fatalf("%d keys published, want both", len(pub))
	}
	if err := pub.Verify(Agent(testAgent()), att); err != nil {
		t.Fatalf("a retired key's attestation: %v", err)
	}

	bad := map[string]map[string][]byte{
		"no active key":          {SecretKeyActive: []byte("nope")},
		"short seed":             {SecretKeyActive: []byte("x"), "x": []byte("short")},
		"key under the wrong id": {SecretKeyActive: []byte("x"), "x": old.Seed()},
	}
	for name, d := range bad {
		if _, err := SignerFromSecret(d); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := PublicKeysFromConfigMap(map[string]string{"abc": "AAAA"}); err == nil {
		t.Error("a published key that is no key was accepted")
	}
	if _, err := PublicKeysFromConfigMap(map[string]string{"0000000000000000": s.Public().ConfigMapData()[s.KeyID()]}); err == nil {
		t.Error("a published key under the wrong id was accepted")
	}
}

// The encoding is a contract between manager and gate of different
// versions: these vectors change only with a new version prefix. The
// agent's was computed independently: each field one length byte, then
// its bytes.
func TestGoldenMessages(t *testing.T) {
	exp := metav1.NewTime(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	g := &claiimv1.CrossOrgGrant{ObjectMeta: metav1.ObjectMeta{Name: "g", UID: "u"},
		Status: claiimv1.CrossOrgGrantStatus{Phase: claiimv1.GrantActive, ActivatedAt: &exp, ExpiresAt: &exp}}
	p := &claiimv1.PIMRequest{ObjectMeta: metav1.ObjectMeta{Name: "p", UID: "u", Annotations: map[string]string{
		claiimv1.AnnotationApprovedBy: "peer", claiimv1.AnnotationApprovedAt: "2026-11-26T12:00:00Z"}},
		Spec: claiimv1.PIMRequestSpec{Requester: "admin", Subject: "admin"}}
	ts := TokenSecret{AgentUID: "u", Namespace: "ns", Name: "bot-claiim-token", Epoch: "1", Hash: "sha256:ab", IssuedAt: "2026-11-26T12:00:00Z"}
	for name, c := range map[string]struct {
		m    Message
		want string
	}{
		"agent":        {Agent(testAgent()), "7d43c304f55583e5b7108bde03eef50d4f469c04d84cccbda2f342d83b1ee1ae"},
		"grant":        {Grant(g), "e5ccbf6c02c8d08c073ac065b4e09ebbe38c662d25521cf5b1625cefff6960d1"},
		"pim approval": {PIMApproval(p), "5b59fcefc3f21ad3cf6ca49457c146e8fba77a041e3f88275b387109bfb2d0b0"},
		"token secret": {ts.Message(), "e6c0e39349b96aeea776408d658af4bb4ca2ca1c002c4c922cedbae77cd2f0b5"},
	} {
		sum := sha256.Sum256(c.m.Bytes())
		if got := hex.EncodeToString(sum[:]); got != c.want {
			t.Errorf("%s: sha256 of the message = %s, want %s", name, got, c.want)
		}
	}
}
