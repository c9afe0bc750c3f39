package kubectlclaiim_test

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

// The seed's two-person control through the plugin: one person requests,
// the same person can't approve (the webhook's words, exit status 1), the
// other one can.
func TestPIMRequestApprove(t *testing.T) {
	g := NewWithT(t)
	var p claiimv1.PIMRequest
	okJSON(t, &p, adminUser, "pim", "request", "--reason", "Initial onboarding -- setting up first agent fleet", "--duration", "30m")
	g.Expect(p.Name).To(HavePrefix("pim-"))
	g.Expect(p.Spec.Requester).To(BeEquivalentTo(adminUser))

	self := kc(adminUser, "pim", "approve", p.Name, "--reason", "ok")
	g.Expect(self.code).To(Equal(1))
	g.Expect(self.err).To(HavePrefix("Error from server (Forbidden): admission webhook"))
	g.Expect(self.err).To(ContainSubstring("you cannot approve your own request: two-person control needs a second admin"))

	var pending claiimv1.PIMRequestList
	okJSON(t, &pending, adminUser, "pim", "ls", "--mine", "--pending")
	g.Expect(pending.Items).To(ContainElement(HaveField("Name", p.Name)))
	okJSON(t, &pending, peerUser, "pim", "ls", "--mine")
	g.Expect(pending.Items).NotTo(ContainElement(HaveField("Name", p.Name)))

	g.Expect(ok(t, peerUser, "pim", "approve", p.Name, "--reason", "onboarding agreed")).To(Equal("pimrequest.claiim.io/" + p.Name + " approved\n"))
	g.Eventually(func(g Gomega) {
		g.Expect(ok(t, adminUser, "pim", "ls")).To(MatchRegexp(p.Name + `\s+admin@claiim\.io\s+admin@claiim\.io\s+Active\s+peer@claiim\.io\s+in \d+m`))
	}).WithTimeout(20 * time.Second).Should(Succeed())
	okJSON(t, &pending, adminUser, "pim", "ls", "--pending")
	g.Expect(pending.Items).NotTo(ContainElement(HaveField("Name", p.Name)))

	// A decision is final: the webhook says so.
	again := kc(peerUser, "pim", "deny", p.Name, "--reason", "changed my mind")
	g.Expect(again.code).To(Equal(1))
	g.Expect(again.err).To(ContainSubstring("this request is already Active; a decision already made cannot change"))

	g.Expect(ok(t, adminUser, "pim", "revoke", p.Name, "--reason", "done")).To(ContainSubstring("revoked"))
	g.Eventually(func(g Gomega) {
		g.Expect(ok(t, adminUser, "pim", "ls")).To(MatchRegexp(p.Name + `\s+\S+\s+\S+\s+Revoked`))
	}).WithTimeout(20 * time.Second).Should(Succeed())
}

func TestPIMDeny(t *testing.T) {
	g := NewWithT(t)
	var p claiimv1.PIMRequest
	okJSON(t, &p, adminUser, "pim", "request", "--reason", "I would like to change the production policy")
	own := kc(adminUser, "pim", "deny", p.Name, "--reason", "no")
	g.Expect(own.code).To(Equal(1))
	g.Expect(own.err).To(ContainSubstring("you cannot deny your own request"))

	missing := kc(peerUser, "pim", "deny", p.Name)
	g.Expect(missing.code).To(Equal(1))
	g.Expect(missing.err).To(ContainSubstring("--reason is required"))

	okJSON(t, &p, peerUser, "pim", "deny", p.Name, "--reason", "not without a change ticket")
	g.Expect(p.Annotations).To(HaveKeyWithValue(claiimv1.AnnotationDeniedBy, peerUser))
	g.Eventually(func(g Gomega) {
		var l claiimv1.PIMRequestList
		okJSON(t, &l, peerUser, "pim", "ls")
		g.Expect(l.Items).To(ContainElement(And(HaveField("Name", p.Name), HaveField("Status.Phase", claiimv1.PIMDenied))))
	}).WithTimeout(20 * time.Second).Should(Succeed())
}

// A request that needs two approvers: the first approval is recorded and
// says how many are in; the list shows it; the same approver can't count twice.
func TestPIMTwoApprovers(t *testing.T) {
	g := NewWithT(t)
	var p claiimv1.PIMRequest
	okJSON(t, &p, adminUser, "pim", "request", "--reason", "Change the production deploy policy (CHG-1234)", "--approvals", "2")
	g.Expect(p.Spec.ApprovalsRequired).To(BeEquivalentTo(2))

	g.Expect(ok(t, peerUser, "pim", "approve", p.Name, "--reason", "fine by me")).To(Equal(
		"pimrequest.claiim.io/" + p.Name + " approved (1 of 2 approvals; the session starts when another approver approves)\n"))
	g.Eventually(func(g Gomega) {
		g.Expect(ok(t, adminUser, "pim", "ls")).To(MatchRegexp(p.Name + `\s+admin@claiim\.io\s+admin@claiim\.io\s+Pending\s+peer@claiim\.io \(1/2\)`))
	}).WithTimeout(20 * time.Second).Should(Succeed())
	again := kc(peerUser, "pim", "approve", p.Name, "--reason", "still fine")
	g.Expect(again.code).To(Equal(1))
	g.Expect(again.err).To(ContainSubstring("you already approved this request"))
}
