package kubectlclaiim_test

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

// newAgent provisions an agent of the seed's org and skill as admin.
func newAgent(t *testing.T, name, anchor string) {
	t.Helper()
	seed(t)
	a := &claiimv1.Agent{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name}, Spec: claiimv1.AgentSpec{
		Org: "engineering", AccountabilityAnchor: claiimv1.Username(anchor), SkillRef: claiimv1.SkillRef{Name: "deploy-bot", Version: 1}}}
	if err := env.As(adminUser).Create(ctx, a); err != nil {
		t.Fatal(err)
	}
}

func getAgent(t *testing.T, name string) *claiimv1.Agent {
	t.Helper()
	a := &claiimv1.Agent{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: "default", Name: name}, a); err != nil {
		t.Fatal(err)
	}
	return a
}

// Suspending is a safety action anyone with the right to patch agents may
// take without a session; resuming and rotating need one.
func TestAgentSuspendActivateRotate(t *testing.T) {
	g := NewWithT(t)
	newAgent(t, "ops-bot", adminUser)
	waitPhase(t, "ops-bot", claiimv1.AgentActive)
	g.Expect(askGate(t, "ops-bot", "deploy:staging").Outcome).To(Equal("ALLOW"))

	g.Expect(ok(t, peerUser, "agent", "suspend", "ops-bot", "-n", "default")).To(Equal("agent.claiim.io/ops-bot suspended\n"))
	waitPhase(t, "ops-bot", claiimv1.AgentSuspended)
	g.Eventually(func() string { return askGate(t, "ops-bot", "deploy:staging").Reason }).WithTimeout(10 * time.Second).Should(Equal("AGENT_INACTIVE"))

	refused := kc(peerUser, "agent", "activate", "ops-bot")
	g.Expect(refused.code).To(Equal(1))
	g.Expect(refused.err).To(ContainSubstring("needs an active PIM session for peer@claiim.io"))

	var a claiimv1.Agent
	okJSON(t, &a, adminUser, "agent", "activate", "ops-bot")
	g.Expect(a.Spec.Lifecycle).To(Equal(claiimv1.LifecycleActive))
	waitPhase(t, "ops-bot", claiimv1.AgentActive)

	before := getAgent(t, "ops-bot").Status.Token.ID
	refused = kc(peerUser, "agent", "token", "rotate", "ops-bot")
	g.Expect(refused.code).To(Equal(1))
	g.Expect(refused.err).To(ContainSubstring("needs an active PIM session"))
	g.Expect(ok(t, adminUser, "agent", "token", "rotate", "ops-bot", "--value", "ticket-42")).To(ContainSubstring("token rotation requested (claiim.io/rotate-token=ticket-42)"))
	g.Expect(getAgent(t, "ops-bot").Annotations).To(HaveKeyWithValue(claiimv1.AnnotationRotateToken, "ticket-42"))
	g.Eventually(func() string { return getAgent(t, "ops-bot").Status.Token.ID }).WithTimeout(20 * time.Second).ShouldNot(Equal(before))
	same := kc(adminUser, "agent", "token", "rotate", "ops-bot", "--value", "ticket-42")
	g.Expect(same.code).To(Equal(1))
	g.Expect(same.err).To(ContainSubstring("already has this value"))
	// Without --value, the time is the new value.
	ok(t, adminUser, "agent", "token", "rotate", "ops-bot")
	g.Expect(getAgent(t, "ops-bot").Annotations[claiimv1.AnnotationRotateToken]).NotTo(Equal("ticket-42"))

	var list claiimv1.AgentList
	okJSON(t, &list, peerUser, "agent", "ls", "-A")
	g.Expect(list.Items).To(ContainElement(HaveField("Name", "ops-bot")))
	g.Expect(ok(t, peerUser, "agent", "ls")).To(MatchRegexp(`default\s+ops-bot\s+engineering\s+admin@claiim\.io\s+yes\s+deploy-bot v1\s+Active\s+Active`))
}

// Only the anchor accepts an agent, as themself; decommissioning asks for
// --yes.
func TestAgentAcceptDecommission(t *testing.T) {
	g := NewWithT(t)
	newAgent(t, "peer-bot", peerUser)
	waitPhase(t, "peer-bot", claiimv1.AgentInactive)

	refused := kc(adminUser, "agent", "accept", "peer-bot")
	g.Expect(refused.code).To(Equal(1))
	g.Expect(refused.err).To(ContainSubstring("only the accountability anchor peer@claiim.io can accept this agent"))

	g.Expect(ok(t, peerUser, "agent", "accept", "peer-bot")).To(Equal("agent.claiim.io/peer-bot accepted by peer@claiim.io\n"))
	waitPhase(t, "peer-bot", claiimv1.AgentActive)
	g.Expect(ok(t, peerUser, "agent", "accept", "peer-bot")).To(ContainSubstring("already accepted"))

	unconfirmed := kc(adminUser, "agent", "decommission", "peer-bot")
	g.Expect(unconfirmed.code).To(Equal(1))
	g.Expect(unconfirmed.err).To(ContainSubstring("decommissioning is permanent"))
	g.Expect(getAgent(t, "peer-bot").Spec.Lifecycle).To(Equal(claiimv1.LifecycleActive))

	ok(t, adminUser, "agent", "decommission", "peer-bot", "--yes")
	waitPhase(t, "peer-bot", claiimv1.AgentDecommissioned)
	back := kc(adminUser, "agent", "activate", "peer-bot")
	g.Expect(back.code).To(Equal(1))
	g.Expect(back.err).To(ContainSubstring("decommission"))
}
