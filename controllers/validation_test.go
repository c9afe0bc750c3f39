package controllers_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

// These specs exercise the schema and CEL rules in the generated CRDs,
// the first lock on each rule (the admission webhooks are the second).
var _ = Describe("CRD validation", func() {
	expectInvalid := func(err error, msg string) {
		GinkgoHelper()
		Expect(err).To(HaveOccurred())
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(ContainSubstring(msg))
	}

	Context("Skill versions are append-only", func() {
		var s *claiimv1.Skill
		BeforeEach(func() {
			s = deployBot(uniq("deploy-bot"), "engineering")
			Expect(k8s.Create(ctx, s)).To(Succeed())
		})

		It("refuses editing a published version", func() {
			expectInvalid(update(s, func() {
				s.Spec.Versions[0].AllowedActions = append(s.Spec.Versions[0].AllowedActions, "deploy:production")
			}), "a published skill version is immutable")
		})
		It("refuses removing a published version", func() {
			Expect(update(s, func() {
				s.Spec.Versions = append(s.Spec.Versions, skillVersion(2, []claiimv1.ActionPattern{"deploy:*"}, nil))
			})).To(Succeed())
			expectInvalid(update(s, func() { s.Spec.Versions = s.Spec.Versions[:1] }), "cannot be removed")
		})
		It("refuses a gap in the numbering", func() {
			expectInvalid(update(s, func() { s.Spec.Versions = append(s.Spec.Versions, skillVersion(3, nil, nil)) }), "numbered 1, 2, 3")
		})
		It("refuses moving the skill to another org", func() {
			expectInvalid(update(s, func() { s.Spec.Org = "finance" }), "org is immutable")
		})
		It("accepts appending the next version", func() {
			Expect(update(s, func() {
				s.Spec.Versions = append(s.Spec.Versions, skillVersion(2, []claiimv1.ActionPattern{"deploy:*"}, nil))
			})).To(Succeed())
		})
	})

	DescribeTable("action patterns",
		func(pattern string, ok bool) {
			s := deployBot(uniq("p"), "engineering")
			s.Spec.Versions[0].AllowedActions = []claiimv1.ActionPattern{claiimv1.ActionPattern(pattern)}
			err := k8s.Create(ctx, s)
			if ok {
				Expect(err).NotTo(HaveOccurred())
			} else {
				expectInvalid(err, "allowedActions")
			}
		},
		Entry("exact", "deploy:staging", true),
		Entry("one-segment wildcard", "*:read", true),
		Entry("trailing wildcard segment", "deploy:*", true),
		Entry("trailing prefix", "deploy:stag*", true),
		Entry("everything", "*", true),
		Entry("three segments", "db:orders:read", true),
		Entry("uppercase", "Deploy:staging", false),
		Entry("a star inside a segment", "dep*oy:staging", false),
		Entry("a regular expression", "deploy:(staging|prod)", false),
		Entry("double star", "**", false),
		Entry("empty segment", "deploy::staging", false),
		Entry("spaces", "deploy: staging", false),
	)

	It("refuses an unknown policy effect", func() {
		p := policy(uniq("bad-effect"), "", denyRule("r", "deploy:production"))
		p.Spec.Rules[0].Effect = "Maybe"
		expectInvalid(k8s.Create(ctx, p), "effect")
	})

	It("refuses an agent rule with both names and a selector", func() {
		r := denyRule("r", "deploy:production")
		r.Agents = &claiimv1.AgentSelector{Names: []string{"ns/bot"}, Selector: &metav1.LabelSelector{}}
		expectInvalid(k8s.Create(ctx, policy(uniq("both"), "", r)), "not both")
	})

	It("defaults an agent to Active and a PIM session to one hour", func() {
		a := agent(newNamespace(), "bot", "engineering", "deploy-bot", 1, anchor)
		Expect(k8s.Create(ctx, a)).To(Succeed())
		Expect(a.Spec.Lifecycle).To(Equal(claiimv1.LifecycleActive))

		pim := &claiimv1.PIMRequest{
			ObjectMeta: metav1.ObjectMeta{Name: uniq("pim")},
			Spec:       claiimv1.PIMRequestSpec{Reason: "Initial onboarding -- setting up first agent fleet"},
		}
		Expect(k8s.Create(ctx, pim)).To(Succeed())
		Expect(pim.Spec.Duration.Duration).To(Equal(time.Hour))
	})

	Context("PIMRequest", func() {
		newPIM := func(d time.Duration) *claiimv1.PIMRequest {
			return &claiimv1.PIMRequest{
				ObjectMeta: metav1.ObjectMeta{Name: uniq("pim")},
				Spec:       claiimv1.PIMRequestSpec{Reason: "Initial onboarding -- setting up first agent fleet", Duration: &metav1.Duration{Duration: d}},
			}
		}
		It("bounds the duration to 8h", func() {
			expectInvalid(k8s.Create(ctx, newPIM(9*time.Hour)), "between 1m and 8h")
		})
		It("requires a reason", func() {
			p := newPIM(time.Hour)
			p.Spec.Reason = ""
			expectInvalid(k8s.Create(ctx, p), "reason")
		})
		It("cannot be changed once made", func() {
			p := newPIM(time.Hour)
			Expect(k8s.Create(ctx, p)).To(Succeed())
			expectInvalid(update(p, func() { p.Spec.Subject = "someone-else" }), "cannot be changed once made")
		})
	})

	Context("CrossOrgGrant", func() {
		newGrant := func() *claiimv1.CrossOrgGrant {
			return &claiimv1.CrossOrgGrant{
				ObjectMeta: metav1.ObjectMeta{Name: uniq("grant")},
				Spec: claiimv1.CrossOrgGrantSpec{
					GrantingOrg: "platform", ReceivingOrg: "engineering", Skills: []string{"deploy-bot"},
					Duration: &metav1.Duration{Duration: 24 * time.Hour},
				},
			}
		}
		It("refuses granting an org to itself", func() {
			g := newGrant()
			g.Spec.ReceivingOrg = g.Spec.GrantingOrg
			expectInvalid(k8s.Create(ctx, g), "must differ")
		})
		It("must be time-bound", func() {
			g := newGrant()
			g.Spec.Duration = nil
			expectInvalid(k8s.Create(ctx, g), "time-bound")
		})
		It("bounds the duration to 90 days", func() {
			g := newGrant()
			g.Spec.Duration = &metav1.Duration{Duration: 91 * 24 * time.Hour}
			expectInvalid(k8s.Create(ctx, g), "2160h")
		})
		It("can only be revoked after it is made, and stays revoked", func() {
			g := newGrant()
			Expect(k8s.Create(ctx, g)).To(Succeed())
			expectInvalid(update(g, func() { g.Spec.Skills = []string{"other-skill"} }), "only revoked")
			Expect(update(g, func() { g.Spec.Revoked = true })).To(Succeed())
			expectInvalid(update(g, func() { g.Spec.Revoked = false }), "stays revoked")
		})
	})
})
