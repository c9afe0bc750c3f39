package controllers_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/controllers"
	"github.com/claiim/claiim-operator/gate/attest"
)

func org(name, parent string) *claiimv1.AIOrg {
	return &claiimv1.AIOrg{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       claiimv1.AIOrgSpec{DisplayName: name, Parent: claiimv1.OrgName(parent)},
	}
}

func skillVersion(n int32, allowed, forbidden []claiimv1.ActionPattern) claiimv1.SkillVersion {
	return claiimv1.SkillVersion{
		Version: n, AgentEmail: "deploy-bot@yourcompany.com",
		SystemPrompt: "You deploy services.", AllowedActions: allowed, ForbiddenActions: forbidden,
	}
}

// deployBot is the seed's skill: allows deploy:staging, forbids
// deploy:production.
func deployBot(name, orgName string) *claiimv1.Skill {
	return &claiimv1.Skill{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: claiimv1.SkillSpec{
			Org: claiimv1.OrgName(orgName), DisplayName: "Deploy Bot",
			Versions: []claiimv1.SkillVersion{skillVersion(1, []claiimv1.ActionPattern{"deploy:staging"}, []claiimv1.ActionPattern{"deploy:production"})},
		},
	}
}

func agent(ns, name, orgName, skill string, version int32, anchor string) *claiimv1.Agent {
	return &claiimv1.Agent{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: claiimv1.AgentSpec{
			Org: claiimv1.OrgName(orgName), DisplayName: "Prod Deploy Bot",
			AccountabilityAnchor: claiimv1.Username(anchor),
			SkillRef:             claiimv1.SkillRef{Name: skill, Version: version},
		},
	}
}

// readyCond fetches obj and returns its Ready condition (or nil).
func cond(g Gomega, obj client.Object, conds func() []metav1.Condition, typ string) *metav1.Condition {
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed())
	return meta.FindStatusCondition(conds(), typ)
}

// haveReady matches a condition with the given status and reason.
func expectReady(g Gomega, c *metav1.Condition, status metav1.ConditionStatus, reason string) {
	g.Expect(c).NotTo(BeNil(), "no Ready condition yet")
	g.Expect(c.Status).To(Equal(status), "message: %s", c.Message)
	g.Expect(c.Reason).To(Equal(reason), "message: %s", c.Message)
}

// readyOrg creates an org and waits until it is Ready.
func readyOrg(name, parent string) *claiimv1.AIOrg {
	o := org(name, parent)
	ExpectWithOffset(1, k8s.Create(ctx, o)).To(Succeed())
	EventuallyWithOffset(1, func(g Gomega) {
		expectReady(g, cond(g, o, func() []metav1.Condition { return o.Status.Conditions }, claiimv1.ConditionReady), metav1.ConditionTrue, claiimv1.ReasonReconciled)
	}).Should(Succeed())
	return o
}

// update re-reads obj, applies mutate and writes it, retrying when a
// reconciler's status write raced it; other errors are returned.
func update(obj client.Object, mutate func()) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		mutate()
		return k8s.Update(ctx, obj)
	})
}

// createApproved creates p, approved as admission approves it in a real
// cluster: it stamps and signs the approval with the manager's key (this
// suite has no webhooks). The signature covers the UID, so it comes after
// the create.
func createApproved(p *claiimv1.PIMRequest) {
	GinkgoHelper()
	Expect(k8s.Create(ctx, p)).To(Succeed())
	signer, err := controllers.LoadSigner(ctx, k8s, k8s, gateNamespace)
	Expect(err).NotTo(HaveOccurred())
	// A patch of the annotation alone: a full update would re-encode the
	// spec's duration ("1h0m0s"), which the immutable spec refuses.
	patch := client.MergeFrom(p.DeepCopy())
	p.Annotations[claiimv1.AnnotationApprovalAttestation] = signer.Sign(attest.PIMApproval(p))
	Expect(k8s.Patch(ctx, p, patch)).To(Succeed())
}
