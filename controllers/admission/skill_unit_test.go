package admission

import (
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

func testSkill(name, org string, versions ...int32) *claiimv1.Skill {
	s := &claiimv1.Skill{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: claiimv1.SkillSpec{Org: claiimv1.OrgName(org), DisplayName: "Deploy Bot"}}
	for _, v := range versions {
		s.Spec.Versions = append(s.Spec.Versions, claiimv1.SkillVersion{Version: v, AgentEmail: "deploy-bot@yourcompany.com",
			AllowedActions: []claiimv1.ActionPattern{"deploy:staging"}, ForbiddenActions: []claiimv1.ActionPattern{"deploy:production"}})
	}
	return s
}

func TestSkillWebhook(t *testing.T) {
	v1, v12 := testSkill("deploy-bot", "engineering", 1), testSkill("deploy-bot", "engineering", 1, 2)
	v1changed := testSkill("deploy-bot", "engineering", 1)
	v1changed.Spec.Versions[0].ForbiddenActions = nil
	user := testAgent("t", "bot", "engineering", "deploy-bot", admin)
	gone := testAgent("t", "old-bot", "engineering", "deploy-bot", admin)
	gone.Spec.Lifecycle = claiimv1.LifecycleDecommissioned

	cases := []struct {
		name     string
		user     string
		op       admissionv1.Operation
		old, obj *claiimv1.Skill
		existing []client.Object
		reason   string
		refusal  []string
	}{
		{"create without a session", admin, admissionv1.Create, nil, v1, nil, ReasonNoPIMSession, []string{"creating Skill \"deploy-bot\" needs an active PIM session"}},
		{"create with a session", admin, admissionv1.Create, nil, v1, []client.Object{session(admin)}, ReasonPIMSession, nil},
		{"publish version 2", admin, admissionv1.Update, v1, v12, []client.Object{session(admin)}, ReasonPIMSession, nil},
		{"publish version 2 without a session", admin, admissionv1.Update, v1, v12, nil, ReasonNoPIMSession, []string{"needs an active PIM session"}},
		{"change a published version", admin, admissionv1.Update, v1, v1changed, []client.Object{session(admin)}, ReasonInvalid, []string{"skill version 1 is published and immutable"}},
		{"change a published version without a session: the session comes first", admin, admissionv1.Update, v1, v1changed, nil, ReasonNoPIMSession, []string{"needs an active PIM session"}},
		{"drop a published version", admin, admissionv1.Update, v12, v1, []client.Object{session(admin)}, ReasonInvalid, []string{"skill version 2 is published and cannot be removed"}},
		{"delete while an agent uses it", admin, admissionv1.Delete, v1, nil, []client.Object{session(admin), user, gone}, ReasonInvalid, []string{"used by agent(s) t/bot;"}},
		{"delete when only a decommissioned agent used it", admin, admissionv1.Delete, v1, nil, []client.Object{session(admin), gone}, ReasonPIMSession, nil},
		{"the manager's own change", manager, admissionv1.Update, v1, v1changed, nil, "", nil},
	}
	for _, c := range cases {
		f := newFixture(t, c.existing...)
		f.expect(c.name, f.validate(c.op, c.user, orNil(c.old), orNil(c.obj)), c.reason, c.refusal...)
	}
}

func TestOrgAndPolicyWebhooks(t *testing.T) {
	org := &claiimv1.AIOrg{ObjectMeta: metav1.ObjectMeta{Name: "engineering"}}
	pol := &claiimv1.Policy{ObjectMeta: metav1.ObjectMeta{Name: "no-production-deploys"}, Spec: claiimv1.PolicySpec{
		Rules: []claiimv1.PolicyRule{{Name: "deny", Effect: claiimv1.PolicyEffectDeny, Actions: []claiimv1.ActionPattern{"deploy:production"}}}}}
	for _, obj := range []client.Object{org, pol} {
		changed := obj.DeepCopyObject().(client.Object)
		changed.SetLabels(map[string]string{"team": "platform"})
		for _, op := range operations {
			old, nw := change(op, obj, changed)
			name := obj.GetName() + " " + string(op)
			f := newFixture(t)
			f.expect(name+" without a session", f.validate(op, admin, old, nw), ReasonNoPIMSession, "PIM: ", "needs an active PIM session for admin@claiim.io", "kubectl annotate pimrequest")
			f = newFixture(t, session(peer))
			f.expect(name+" with someone else's session", f.validate(op, admin, old, nw), ReasonNoPIMSession, "needs an active PIM session")
			f = newFixture(t, session(admin))
			f.expect(name+" with a session", f.validate(op, admin, old, nw), ReasonPIMSession)
			if r := f.last(); r.Context["pim_session"] != "pim-admin" || r.Context["approved_by"] != "approver@claiim.io" {
				t.Errorf("%s: the record names no session: %v", name, r.Context)
			}
		}
	}
}
