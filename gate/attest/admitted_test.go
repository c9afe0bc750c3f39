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
	"k8s.io/apimachinery/pkg/types"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

var t0 = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

func testPolicy() *claiimv1.Policy {
	return &claiimv1.Policy{ObjectMeta: metav1.ObjectMeta{Name: "freeze", Labels: map[string]string{"team": "sre"}},
		Spec: claiimv1.PolicySpec{Org: "engineering", Rules: []claiimv1.PolicyRule{{Name: "no-prod", Effect: claiimv1.PolicyEffectDeny,
			Actions: []claiimv1.ActionPattern{"deploy:production"}}}}}
}

// stored is obj as the apiserver stores a write stamped with val.
func stored(obj *claiimv1.Policy, val string, gen int64, uid string, created time.Time) *claiimv1.Policy {
	out := obj.DeepCopy()
	if out.Annotations == nil {
		out.Annotations = map[string]string{}
	}
	out.Annotations[claiimv1.AnnotationAdmitted] = val
	out.Generation, out.UID, out.CreationTimestamp = gen, types.UID(uid), metav1.NewTime(created)
	return out
}

func TestStampRoundTrip(t *testing.T) {
	s := NewSigner(NewKey())
	p := testPolicy()
	v, err := NewStamp(s, p, nil, t0)
	if err != nil {
		t.Fatal(err)
	}
	created := stored(p, v, 1, "uid-1", t0.Add(time.Second))
	if err := VerifyStamp(s.Public(), created); err != nil {
		t.Fatalf("a creation as admitted: %v", err)
	}

	// An update of the spec: stamped against the stored object, it
	// verifies at the next generation.
	next := created.DeepCopy()
	next.Spec.Rules[0].Actions = []claiimv1.ActionPattern{"deploy:*"}
	v2, err := NewStamp(s, next, created, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	next.Annotations[claiimv1.AnnotationAdmitted], next.Generation = v2, 2
	if err := VerifyStamp(s.Public(), next); err != nil {
		t.Fatalf("an update as admitted: %v", err)
	}
	// A metadata-only update keeps the generation: it verifies too.
	next.Generation = 1
	if err := VerifyStamp(s.Public(), next); err != nil {
		t.Fatalf("a metadata update as admitted: %v", err)
	}
	next.Generation = 2

	changes := map[string]struct {
		change func(p *claiimv1.Policy)
		want   func(error) bool
	}{
		"spec":                 {func(p *claiimv1.Policy) { p.Spec.Rules[0].Effect = claiimv1.PolicyEffectAllow }, is(ErrChanged)},
		"org":                  {func(p *claiimv1.Policy) { p.Spec.Org = "" }, is(ErrChanged)},
		"label":                {func(p *claiimv1.Policy) { p.Labels["team"] = "dev" }, is(ErrChanged)},
		"annotation added":     {func(p *claiimv1.Policy) { p.Annotations["x"] = "y" }, is(ErrChanged)},
		"name":                 {func(p *claiimv1.Policy) { p.Name = "freeze2" }, is(ErrChanged)},
		"uid":                  {func(p *claiimv1.Policy) { p.UID = "uid-2" }, is(ErrChanged)},
		"generation moved on":  {func(p *claiimv1.Policy) { p.Generation = 3 }, stale},
		"stamp removed":        {func(p *claiimv1.Policy) { delete(p.Annotations, claiimv1.AnnotationAdmitted) }, is(ErrNotStamped)},
		"upgrade placeholder":  {func(p *claiimv1.Policy) { p.Annotations[claiimv1.AnnotationAdmitted] = claiimv1.AdmitExisting }, is(ErrNotStamped)},
		"stamp garbled":        {func(p *claiimv1.Policy) { p.Annotations[claiimv1.AnnotationAdmitted] = "x" + v2 }, is(ErrMalformed)},
		"prior generation set": {func(p *claiimv1.Policy) { p.Annotations[claiimv1.AnnotationAdmitted] = "u2" + v2[2:] }, is(ErrChanged)},
		"signed by another key": {func(p *claiimv1.Policy) {
			p.Annotations[claiimv1.AnnotationAdmitted], _ = NewStamp(NewSigner(NewKey()), p, created, t0)
		}, func(err error) bool { var u UnknownKeyError; return errors.As(err, &u) }},
	}
	for name, c := range changes {
		b := next.DeepCopy()
		c.change(b)
		if err := VerifyStamp(s.Public(), b); !c.want(err) {
			t.Errorf("%s: %v", name, err)
		}
	}

	// Marked for deletion: one more generation, and only then.
	b := next.DeepCopy()
	b.Generation = 3
	now := metav1.NewTime(t0)
	b.DeletionTimestamp = &now
	if err := VerifyStamp(s.Public(), b); err != nil {
		t.Errorf("marked for deletion: %v", err)
	}
}

// An old admitted spec copied back with its stamp (the webhooks away) is
// a write of the spec: the generation moves past what the stamp names.
func TestStampReplay(t *testing.T) {
	s := NewSigner(NewKey())
	v1, _ := NewStamp(s, testPolicy(), nil, t0)
	gen1 := stored(testPolicy(), v1, 1, "uid-1", t0)
	gen2 := gen1.DeepCopy()
	gen2.Spec.Rules[0].Actions = append(gen2.Spec.Rules[0].Actions, "deploy:staging")
	v2, _ := NewStamp(s, gen2, gen1, t0.Add(time.Minute))
	gen2.Annotations[claiimv1.AnnotationAdmitted], gen2.Generation = v2, 2

	replayed := gen1.DeepCopy()
	replayed.Generation = 3 // the write that put it back
	if err := VerifyStamp(s.Public(), replayed); !stale(err) {
		t.Errorf("a replayed spec and stamp: %v", err)
	}
	// The same object deleted and re-created from a copy, later.
	recreated := stored(testPolicy(), v1, 1, "uid-2", t0.Add(time.Hour))
	if err := VerifyStamp(s.Public(), recreated); err == nil || !strings.Contains(err.Error(), "copied from an earlier object") {
		t.Errorf("a re-created copy: %v", err)
	}
}

// A stamp of one kind never verifies for another with the same name.
func TestStampKindBound(t *testing.T) {
	s := NewSigner(NewKey())
	org := &claiimv1.AIOrg{ObjectMeta: metav1.ObjectMeta{Name: "freeze"}}
	v, _ := NewStamp(s, org, nil, t0)
	p := stored(&claiimv1.Policy{ObjectMeta: metav1.ObjectMeta{Name: "freeze"}}, v, 1, "", t0)
	if err := VerifyStamp(s.Public(), p); !errors.Is(err, ErrChanged) {
		t.Errorf("an AIOrg's stamp on a Policy: %v", err)
	}
	if _, err := NewStamp(s, &claiimv1.PIMRequest{}, nil, t0); err == nil {
		t.Error("a PIMRequest was stamped")
	}
}

// The stamp's encoding is a contract between manager and gate versions.
func TestGoldenStamp(t *testing.T) {
	p := testPolicy()
	p.Namespace, p.UID = "", "uid-1"
	m, err := admitted(p, "uid-1", stamp{prior: 4, at: t0.Unix()})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(m.Bytes())
	if got, want := hex.EncodeToString(sum[:]), "e4ba1a88e6d48c79610983fb6d026363b661e4230a85eb81203f9ee8740a5272"; got != want {
		t.Errorf("sha256 of the message = %s, want %s", got, want)
	}
	s := NewSigner(ed25519.NewKeyFromSeed(make([]byte, 32)))
	v, _ := NewStamp(s, p, p, t0)
	if !strings.HasPrefix(v, "u0.1795687200.v1."+s.KeyID()+".") {
		t.Errorf("stamp %q", v)
	}
}

func is(target error) func(error) bool { return func(err error) bool { return errors.Is(err, target) } }

func stale(err error) bool { var s StaleStampError; return errors.As(err, &s) }
