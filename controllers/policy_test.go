package controllers_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

func policy(name, orgName string, rules ...claiimv1.PolicyRule) *claiimv1.Policy {
	return &claiimv1.Policy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       claiimv1.PolicySpec{Org: claiimv1.OrgName(orgName), DisplayName: "No production deploys", Rules: rules},
	}
}

func denyRule(name string, actions ...claiimv1.ActionPattern) claiimv1.PolicyRule {
	return claiimv1.PolicyRule{Name: name, Actions: actions, Effect: claiimv1.PolicyEffectDeny}
}

var _ = Describe("Policy", func() {
	ready := func(g Gomega, p *claiimv1.Policy) *metav1.Condition {
		return cond(g, p, func() []metav1.Condition { return p.Status.Conditions }, claiimv1.ConditionReady)
	}

	It("compiles the seed's policy for every org", func() {
		p := policy(uniq("no-production-deploys"), "", denyRule("deny-prod", "deploy:production"))
		Expect(k8s.Create(ctx, p)).To(Succeed())
		Eventually(func(g Gomega) {
			c := ready(g, p)
			expectReady(g, c, metav1.ConditionTrue, claiimv1.ReasonReconciled)
			g.Expect(c.Message).To(ContainSubstring("every org"))
			g.Expect(p.Status.Rules).To(BeEquivalentTo(1))
			g.Expect(p.Status.ObservedGeneration).To(Equal(p.Generation))
		}).Should(Succeed())
	})

	It("compiles a CEL condition and a label selector", func() {
		o := readyOrg(uniq("engineering"), "")
		r := denyRule("eu-only", "deploy:*")
		r.Condition = `has(context.target) && context.target.startsWith("us-")`
		r.Agents = &claiimv1.AgentSelector{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "prod"}}}
		p := policy(uniq("eu"), o.Name, r)
		Expect(k8s.Create(ctx, p)).To(Succeed())
		Eventually(func(g Gomega) {
			expectReady(g, ready(g, p), metav1.ConditionTrue, claiimv1.ReasonReconciled)
		}).Should(Succeed())
	})

	DescribeTable("reports a rule the gate could not enforce, with the compiler's words",
		func(mutate func(*claiimv1.PolicyRule), want string) {
			r := denyRule("broken", "deploy:production")
			mutate(&r)
			p := policy(uniq("broken"), "", r)
			Expect(k8s.Create(ctx, p)).To(Succeed())
			Eventually(func(g Gomega) {
				c := ready(g, p)
				expectReady(g, c, metav1.ConditionFalse, claiimv1.ReasonInvalidRule)
				g.Expect(c.Message).To(ContainSubstring(`rule "broken"`))
				g.Expect(c.Message).To(ContainSubstring(want))
			}).Should(Succeed())
		},
		Entry("CEL that doesn't parse", func(r *claiimv1.PolicyRule) { r.Condition = `context.target ==` }, "does not compile"),
		Entry("CEL with an unknown variable", func(r *claiimv1.PolicyRule) { r.Condition = `request.user == "x"` }, "undeclared reference"),
		Entry("CEL that is not a bool", func(r *claiimv1.PolicyRule) { r.Condition = `"yes"` }, "must evaluate to a bool"),
		Entry("CEL too expensive", func(r *claiimv1.PolicyRule) {
			r.Condition = `context.all(a, context.all(b, context.all(c, string(context[a]) + string(context[b]) != string(context[c]))))`
		}, "too expensive"),
		Entry("a bad label selector", func(r *claiimv1.PolicyRule) {
			r.Agents = &claiimv1.AgentSelector{Selector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: "Near"}}}}
		}, "agents.selector"),
	)

	It("is not ready while its org is missing", func() {
		orgName := uniq("nowhere")
		p := policy(uniq("scoped"), orgName, denyRule("deny-prod", "deploy:production"))
		Expect(k8s.Create(ctx, p)).To(Succeed())
		Eventually(func(g Gomega) {
			c := ready(g, p)
			expectReady(g, c, metav1.ConditionFalse, claiimv1.ReasonOrgNotFound)
			g.Expect(c.Message).To(ContainSubstring(orgName))
		}).Should(Succeed())
	})
})
