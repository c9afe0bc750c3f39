package decide

import (
	"maps"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/attest"
	"github.com/claiim/claiim-operator/gate/token"
)

// testSigner stands for the manager's key in these tests.
var testSigner = attest.NewSigner(attest.NewKey())

// buildSigned builds a snapshot of in as the manager would have signed
// it: every agent's and grant's status attested.
func buildSigned(in Inputs) *Snapshot {
	return Build(signed(in))
}

func signed(in Inputs) Inputs {
	in = stamped(in)
	in.Agents = append([]claiimv1.Agent(nil), in.Agents...)
	for i := range in.Agents {
		in.Agents[i].Status.Attestation = testSigner.Sign(attest.Agent(&in.Agents[i]))
	}
	in.Grants = append([]claiimv1.CrossOrgGrant(nil), in.Grants...)
	for i := range in.Grants {
		in.Grants[i].Status.Attestation = testSigner.Sign(attest.Grant(&in.Grants[i]))
	}
	in.Keys = testSigner.Public()
	return in
}

// stamped is in as admission admitted it: every object stamped for its
// current generation and content.
func stamped(in Inputs) Inputs {
	in.Orgs = stampEach(in.Orgs)
	in.Skills = stampEach(in.Skills)
	in.Policies = stampEach(in.Policies)
	in.Agents = stampEach(in.Agents)
	in.Grants = stampEach(in.Grants)
	return in
}

func stampEach[T any, P interface {
	*T
	metav1.Object
}](objs []T) []T {
	out := append([]T(nil), objs...)
	for i := range out {
		stamp(P(&out[i]))
	}
	return out
}

// stamp stamps o as an update admitted at its current generation.
func stamp(o metav1.Object) {
	ann := maps.Clone(o.GetAnnotations())
	if ann == nil {
		ann = map[string]string{}
	}
	delete(ann, claiimv1.AnnotationAdmitted)
	o.SetAnnotations(ann)
	v, err := attest.NewStamp(testSigner, o, o, time.Now())
	if err != nil {
		panic(err)
	}
	ann[claiimv1.AnnotationAdmitted] = v
	o.SetAnnotations(ann)
}

// withToken gives the agent a real token, so a test can present it.
func withToken(a *claiimv1.Agent) string {
	tok, id, hash := token.New()
	a.Status.Token = &claiimv1.AgentToken{ID: id, Hash: hash}
	return tok
}

func TestUnsignedStatusCountsForNothing(t *testing.T) {
	base := seedInputs()
	tok := withToken(&base.Agents[0])
	id := base.Agents[0].Status.Token.ID
	if a, ok := buildSigned(base).AgentByToken(id); !ok || !a.Active {
		t.Fatal("a signed agent does not authenticate or is not active")
	}
	for _, c := range []struct {
		name   string
		mutate func(*Inputs)
	}{
		{"a token hash set through agents/status", func(in *Inputs) { _, _, in.Agents[0].Status.Token.Hash = token.New() }},
		{"a phase set through agents/status", func(in *Inputs) { in.Agents[0].Status.ObservedGeneration = 7 }},
		{"no attestation at all", func(in *Inputs) { in.Agents[0].Status.Attestation = "" }},
		{"another agent's attestation", func(in *Inputs) { in.Agents[0].Status.Attestation = in.Agents[1].Status.Attestation }},
		{"a status from before a token rotation (older epoch)", func(in *Inputs) {
			in.Agents[0].Annotations = map[string]string{claiimv1.AnnotationAnchorAccepted: "admin@claiim.io", claiimv1.AnnotationTokenEpoch: "2"}
		}},
		{"signed by a key the gate does not hold", func(in *Inputs) {
			in.Agents[0].Status.Attestation = attest.NewSigner(attest.NewKey()).Sign(attest.Agent(&in.Agents[0]))
		}},
		{"no keys loaded", func(in *Inputs) { in.Keys = nil }},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := signed(base)
			in.Agents[0].Status.Token = in.Agents[0].Status.Token.DeepCopy()
			c.mutate(&in)
			in.Agents[0].Generation = in.Agents[0].Status.ObservedGeneration
			s := Build(in)
			if _, ok := s.AgentByToken(id); ok {
				t.Fatal("a token authenticates under a status the manager did not sign")
			}
			if a, _ := s.Agent("default", "bot"); a.Active {
				t.Fatal("an agent is active under a status the manager did not sign")
			}
		})
	}

	t.Run("the holder of the real token hears why, a guess hears nothing", func(t *testing.T) {
		s := Build(base) // nothing signed
		if why := s.RefusedToken(id, tok); !strings.Contains(why, "not signed by the CLAIIM manager") {
			t.Fatalf("refusal = %q", why)
		}
		if why := s.RefusedToken(id, "clm_"+id+"_guessguessguessguessguessguessguessguessgue"); why != "" {
			t.Fatalf("a guess is told %q", why)
		}
	})
}

func TestSharedTokenIDAuthenticatesNobody(t *testing.T) {
	in := seedInputs()
	tok := withToken(&in.Agents[0])
	t2 := withToken(&in.Agents[1])
	id := in.Agents[0].Status.Token.ID
	in.Agents[1].Status.Token.ID = id // both signed: a collision the manager somehow let through
	s := buildSigned(in)
	if a, ok := s.AgentByToken(id); ok {
		t.Fatalf("a shared token id authenticates %s/%s", a.Namespace, a.Name)
	}
	for _, presented := range []string{tok, t2} {
		if why := s.RefusedToken(id, presented); !strings.Contains(why, "claimed by 2 agents (default/bot, default/platform-bot)") {
			t.Fatalf("refusal = %q", why)
		}
	}

	t.Run("an unsigned duplicate takes nothing from the real agent", func(t *testing.T) {
		in := seedInputs()
		withToken(&in.Agents[0])
		in = signed(in)
		in.Agents[1].Status.Token = in.Agents[0].Status.Token.DeepCopy() // forged through agents/status
		s := Build(in)
		if a, ok := s.AgentByToken(in.Agents[0].Status.Token.ID); !ok || a.Name != "bot" {
			t.Fatal("a forged duplicate took the token from its agent")
		}
	})
}

func TestUnsignedGrantDoesNotCount(t *testing.T) {
	in := seedInputs()
	in.Agents[0].Spec.SkillRef.Name = "ledger"
	exp := metav1.NewTime(now.Add(time.Hour))
	in.Grants = []claiimv1.CrossOrgGrant{{ObjectMeta: metav1.ObjectMeta{Name: "fin-to-eng", UID: "g1"},
		Spec:   claiimv1.CrossOrgGrantSpec{GrantingOrg: "finance", ReceivingOrg: "engineering", Skills: []string{"ledger"}},
		Status: claiimv1.CrossOrgGrantStatus{Phase: claiimv1.GrantActive, ExpiresAt: &exp}}}
	ask := func(in Inputs) Decision {
		s := Build(in)
		a, _ := s.Agent("default", "bot")
		sv, _ := s.PinnedVersion(a)
		return Decide(s, Request{Agent: a, Action: "ledger:read", SkillVersionID: sv.ID, Now: now})
	}
	in = signed(in)
	if d := ask(in); d.Reason != ReasonCrossAIOrgGrant {
		t.Fatalf("signed grant: %s %s", d.Reason, d.Message)
	}

	// Phase and expiry set through crossorggrants/status, never signed.
	forged := in
	forged.Grants = []claiimv1.CrossOrgGrant{*in.Grants[0].DeepCopy()}
	forged.Grants[0].Status.Attestation = ""
	if d := ask(forged); d.Reason != ReasonNotPermitted {
		t.Fatalf("forged grant: %s %s", d.Reason, d.Message)
	}

	// A grant the manager signed as expired, its expiry pushed out since.
	extended := in
	extended.Grants = []claiimv1.CrossOrgGrant{*in.Grants[0].DeepCopy()}
	g := &extended.Grants[0]
	past := metav1.NewTime(now.Add(-time.Minute))
	g.Status.ExpiresAt = &past
	g.Status.Attestation = testSigner.Sign(attest.Grant(g))
	g.Status.ExpiresAt = &exp
	if d := ask(extended); d.Reason != ReasonNotPermitted {
		t.Fatalf("extended grant: %s %s", d.Reason, d.Message)
	}
}
