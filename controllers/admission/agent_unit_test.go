package admission

import (
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/attest"
)

func testAgent(ns, name, org, skill, anchor string) *claiimv1.Agent {
	return &claiimv1.Agent{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + name)}, Spec: claiimv1.AgentSpec{
		Org: claiimv1.OrgName(org), DisplayName: "Prod Deploy Bot", AccountabilityAnchor: claiimv1.Username(anchor),
		SkillRef: claiimv1.SkillRef{Name: skill, Version: 1}, Lifecycle: claiimv1.LifecycleActive}}
}

func testGrant(phase claiimv1.GrantPhase, expires time.Time) *claiimv1.CrossOrgGrant {
	e := metav1.NewTime(expires)
	g := &claiimv1.CrossOrgGrant{ObjectMeta: metav1.ObjectMeta{Name: "finance-to-engineering"},
		Spec:   claiimv1.CrossOrgGrantSpec{GrantingOrg: "finance", ReceivingOrg: "engineering", Skills: []string{"ledger"}, Duration: &metav1.Duration{Duration: time.Hour}},
		Status: claiimv1.CrossOrgGrantStatus{Phase: phase, ExpiresAt: &e}}
	g.Status.Attestation = signer.Sign(attest.Grant(g))
	return g
}

func TestAgentWebhook(t *testing.T) {
	skill, ledger := testSkill("deploy-bot", "engineering", 1), testSkill("ledger", "finance", 1)
	a := testAgent("t", "bot", "engineering", "deploy-bot", admin)
	with := func(mutate func(a *claiimv1.Agent)) *claiimv1.Agent {
		b := a.DeepCopy()
		mutate(b)
		return b
	}
	accepted := func(by string) func(*claiimv1.Agent) {
		return func(a *claiimv1.Agent) { a.Annotations = map[string]string{claiimv1.AnnotationAnchorAccepted: by} }
	}
	lifecycle := func(l claiimv1.AgentLifecycle) func(*claiimv1.Agent) {
		return func(a *claiimv1.Agent) { a.Spec.Lifecycle = l }
	}
	suspended, decommissioned := with(lifecycle(claiimv1.LifecycleSuspended)), with(lifecycle(claiimv1.LifecycleDecommissioned))
	ofPeer := with(func(a *claiimv1.Agent) { a.Spec.AccountabilityAnchor = peer })
	onLedger := with(func(a *claiimv1.Agent) { a.Spec.SkillRef.Name = "ledger" })
	elevated := []client.Object{session(admin), skill, ledger}

	cases := []struct {
		name     string
		user     string
		op       admissionv1.Operation
		old, obj *claiimv1.Agent
		existing []client.Object
		reason   string
		refusal  []string
	}{
		{"provision", admin, admissionv1.Create, nil, a, elevated, ReasonPIMSession, nil},
		{"provision without a session", admin, admissionv1.Create, nil, a, []client.Object{skill}, ReasonNoPIMSession, []string{"creating Agent \"bot\" needs an active PIM session"}},
		{"provision on a missing skill", admin, admissionv1.Create, nil, with(func(a *claiimv1.Agent) { a.Spec.SkillRef.Name = "nope" }), elevated, ReasonInvalid, []string{"skill \"nope\" does not exist"}},
		{"provision on an unpublished version", admin, admissionv1.Create, nil, with(func(a *claiimv1.Agent) { a.Spec.SkillRef.Version = 3 }), elevated, ReasonInvalid, []string{"no published version 3 (it has 1 to 1)"}},
		{"provision on another org's skill, no grant", admin, admissionv1.Create, nil, onLedger, elevated, ReasonInvalid, []string{"no active CrossOrgGrant shares it"}},
		{"provision on another org's skill under an active grant", admin, admissionv1.Create, nil, onLedger, append(elevated, testGrant(claiimv1.GrantActive, t0.Add(time.Hour))), ReasonPIMSession, nil},
		{"provision under a grant that ended just now", admin, admissionv1.Create, nil, onLedger, append(elevated, testGrant(claiimv1.GrantActive, t0)), ReasonInvalid, []string{"no active CrossOrgGrant"}},
		{"provision under a pending grant", admin, admissionv1.Create, nil, onLedger, append(elevated, testGrant(claiimv1.GrantPending, t0.Add(time.Hour))), ReasonInvalid, []string{"no active CrossOrgGrant"}},
		{"suspend: a safety action, no session", admin, admissionv1.Update, a, suspended, nil, ReasonSafety, nil},
		{"resume without a session", admin, admissionv1.Update, suspended, a, nil, ReasonNoPIMSession, []string{"changing Agent \"bot\" needs an active PIM session"}},
		{"resume with a session", admin, admissionv1.Update, suspended, a, elevated, ReasonPIMSession, nil},
		{"decommission without a session", admin, admissionv1.Update, a, decommissioned, nil, ReasonNoPIMSession, []string{"needs an active PIM session"}},
		{"decommission with a session", admin, admissionv1.Update, a, decommissioned, elevated, ReasonPIMSession, nil},
		{"revive a decommissioned agent", admin, admissionv1.Update, decommissioned, a, elevated, ReasonInvalid, []string{"decommissioned, which is permanent"}},
		{"rename a decommissioned agent", admin, admissionv1.Update, decommissioned, with(func(a *claiimv1.Agent) { lifecycle(claiimv1.LifecycleDecommissioned)(a); a.Spec.DisplayName = "zombie" }), elevated, ReasonInvalid, []string{"decommission"}},
		{"the anchor accepts, no session", peer, admissionv1.Update, ofPeer, with(func(a *claiimv1.Agent) { a.Spec.AccountabilityAnchor = peer; accepted(peer)(a) }), nil, ReasonOwnAct, nil},
		{"someone else accepts for the anchor", admin, admissionv1.Update, ofPeer, with(func(a *claiimv1.Agent) { a.Spec.AccountabilityAnchor = peer; accepted(peer)(a) }), elevated, ReasonInvalid, []string{"only the accountability anchor peer@claiim.io can accept this agent"}},
		{"someone else accepts as themself", admin, admissionv1.Update, ofPeer, with(func(a *claiimv1.Agent) { a.Spec.AccountabilityAnchor = peer; accepted(admin)(a) }), nil, ReasonInvalid, []string{"only the accountability anchor"}},
		{"accept and change more: needs a session", peer, admissionv1.Update, ofPeer, with(func(a *claiimv1.Agent) {
			a.Spec.AccountabilityAnchor = peer
			accepted(peer)(a)
			a.Spec.DisplayName = "x"
		}), nil, ReasonNoPIMSession, []string{"needs an active PIM session for peer@claiim.io"}},
		{"suspend and relabel: needs a session", admin, admissionv1.Update, a, with(func(a *claiimv1.Agent) {
			lifecycle(claiimv1.LifecycleSuspended)(a)
			a.Labels = map[string]string{"x": "y"}
		}), nil, ReasonNoPIMSession, []string{"needs an active PIM session"}},
		{"re-pin to an unpublished version", admin, admissionv1.Update, a, with(func(a *claiimv1.Agent) { a.Spec.SkillRef.Version = 3 }), elevated, ReasonInvalid, []string{"no published version 3"}},
		{"delete without a session", admin, admissionv1.Delete, a, nil, nil, ReasonNoPIMSession, []string{"deleting Agent \"bot\" needs an active PIM session"}},
		{"delete with a session", admin, admissionv1.Delete, a, nil, elevated, ReasonPIMSession, nil},
		{"the manager's own change", manager, admissionv1.Update, decommissioned, a, nil, "", nil},
	}
	for _, c := range cases {
		f := newFixture(t, c.existing...)
		f.expect(c.name, f.validate(c.op, c.user, orNil(c.old), orNil(c.obj)), c.reason, c.refusal...)
		if r := f.last(); r != nil && r.Outcome == "ALLOW" && (r.AgentName != "bot" || r.AgentNamespace != "t" || r.AgentUID != "uid-bot" || r.Org != "engineering") {
			t.Errorf("%s: the record does not name the agent: %+v", c.name, r)
		}
	}
}

func TestAgentDefaulter(t *testing.T) {
	f := newFixture(t)
	w := agentWebhook{f.h}
	mine := testAgent("t", "bot", "engineering", "deploy-bot", admin)
	if got := defaults(f, w, admissionv1.Create, admin, nil, mine); got.Annotations[claiimv1.AnnotationAnchorAccepted] != admin {
		t.Errorf("the creator is the anchor: acceptance is implicit; got %v", got.Annotations)
	}
	theirs := testAgent("t", "bot", "engineering", "deploy-bot", peer)
	theirs.Annotations = map[string]string{claiimv1.AnnotationAnchorAccepted: peer, "keep": "me"}
	if got := defaults(f, w, admissionv1.Create, admin, nil, theirs); got.Annotations[claiimv1.AnnotationAnchorAccepted] != "" || got.Annotations["keep"] != "me" {
		t.Errorf("accepting on someone else's behalf is stripped, nothing else; got %v", got.Annotations)
	}
	if got := defaults(f, w, admissionv1.Update, admin, theirs, theirs); got.Annotations[claiimv1.AnnotationAnchorAccepted] != peer {
		t.Errorf("an update is left to the validator; got %v", got.Annotations)
	}

	// On the wire: a create is patched, an update of what a client read
	// is not.
	routes, err := f.h.routes()
	if err != nil {
		t.Fatal(err)
	}
	if resp := routes[PathMutateAgent].Handle(t.Context(), f.request(admissionv1.Create, admin, nil, mine)); !resp.Allowed || len(resp.Patches) != 1 {
		t.Errorf("create: %+v", resp)
	}
	if resp := routes[PathMutateAgent].Handle(t.Context(), f.request(admissionv1.Update, peer, theirs, theirs)); !resp.Allowed || len(resp.Patches) != 0 {
		t.Errorf("update: %+v", resp)
	}
}
