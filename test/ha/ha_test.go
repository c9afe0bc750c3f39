// Package ha runs the manager as it is deployed, two replicas with
// leader election, and holds it to what HA promises: a renewed webhook
// certificate (same CA, or a CA rollover) is served by every replica with
// no admission refused for a TLS reason, and when the leader dies the
// follower takes over while admissions keep being answered.
//
// Real parts: the production binary (built once), an envtest apiserver
// that routes the webhook Service to the replicas' EndpointSlices,
// config/default's RBAC and webhook configurations, PostgreSQL.
package ha

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/controllers"
)

func setup(t *testing.T, lifetimes string) *cluster {
	RegisterTestingT(t)
	SetDefaultEventuallyTimeout(time.Minute)
	SetDefaultEventuallyPollingInterval(100 * time.Millisecond)
	return newCluster(t, lifetimes)
}

func TestRenewalServedByEveryReplica(t *testing.T) {
	c := setup(t, fastRenewals)
	a, b := c.start("a"), c.start("b")
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	loads := []*load{c.direct(ctx, a), c.direct(ctx, b)}
	api := c.viaAPI(ctx)
	var s stored
	Eventually(func(g Gomega) { s = c.stored(g) }).Should(Succeed())

	// The leader renews the serving certificate with the same CA: every
	// replica serves the new one and answers 100 more admissions.
	s = c.renewal(s, true)
	c.serves(100, loads...)
	apiBefore := api.ok.Load()

	// Then the CA rolls over: the new CA signs only after it has been in
	// the caBundle, and the old one stays there.
	s = c.renewal(s, false)
	c.serves(100, loads...)
	Eventually(api.ok.Load).Should(BeNumerically(">", apiBefore), "%v", api)

	stop()
	for _, l := range append(loads, api) {
		t.Log(l)
		Expect(l.refused.Load()).To(BeZero(), "%v", l)
	}
}

func TestLeaderKilledFollowerTakesOver(t *testing.T) {
	c := setup(t, survivesFailovers)
	a, b := c.start("a"), c.start("b")
	lead := leader(a, b)
	follower := a
	if lead == a {
		follower = b
	}
	holder := func(g Gomega) string {
		l := &coordinationv1.Lease{}
		g.Expect(c.admin.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: leaseName}, l)).To(Succeed())
		return *l.Spec.HolderIdentity
	}
	var was string
	Eventually(func(g Gomega) { was = holder(g) }).Should(Succeed())

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	toLeader, stopLeader := context.WithCancel(ctx)
	fromLeader := c.direct(toLeader, lead)
	toFollower := c.direct(ctx, follower)
	api := c.viaAPI(ctx)
	Eventually(func() int64 { return min(fromLeader.ok.Load(), toFollower.ok.Load(), api.ok.Load()) }).Should(BeNumerically(">=", 10))

	// SIGKILL: no Lease release, no graceful anything.
	stopLeader()
	killed := time.Now()
	c.kill(lead)
	before := toFollower.ok.Load()
	Eventually(func(g Gomega) {
		g.Expect(holder(g)).NotTo(Equal(was))
		g.Expect(follower.leads()).To(BeTrue())
	}).Should(Succeed(), "the follower did not take the Lease")
	t.Logf("the follower leads %.1fs after the leader's SIGKILL", time.Since(killed).Seconds())

	// The new leader reconciles: a session approved now turns Active and
	// a new Agent gets its token Secret.
	elevate(c)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "ha-"}}
	Expect(c.admin.Create(ctx, ns)).To(Succeed())
	admin := c.as[adminUser]
	Expect(admin.Create(ctx, &claiimv1.AIOrg{ObjectMeta: metav1.ObjectMeta{Name: "engineering"}, Spec: claiimv1.AIOrgSpec{DisplayName: "Engineering"}})).To(Succeed())
	Expect(admin.Create(ctx, &claiimv1.Skill{ObjectMeta: metav1.ObjectMeta{Name: "deploy-bot"}, Spec: claiimv1.SkillSpec{Org: "engineering", DisplayName: "Deploy Bot",
		Versions: []claiimv1.SkillVersion{{Version: 1, AgentEmail: "deploy-bot@yourcompany.com", AllowedActions: []claiimv1.ActionPattern{"deploy:staging"}}}}})).To(Succeed())
	agent := &claiimv1.Agent{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "prod-deploy-bot"}, Spec: claiimv1.AgentSpec{
		Org: "engineering", DisplayName: "Prod Deploy Bot", AccountabilityAnchor: adminUser, SkillRef: claiimv1.SkillRef{Name: "deploy-bot", Version: 1}}}
	Expect(admin.Create(ctx, agent)).To(Succeed())
	Eventually(func() error {
		return c.admin.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: controllers.TokenSecretName(agent.Name)}, &corev1.Secret{})
	}).Should(Succeed(), "the new leader did not issue the agent's token")

	// It renews the webhook certificate too, and the follower serves it.
	var s stored
	Eventually(func(g Gomega) { s = c.stored(g) }).Should(Succeed())
	c.renewal(s, true)
	c.serves(100, toFollower)
	Expect(toFollower.ok.Load() - before).To(BeNumerically(">=", 100))

	stop()
	for _, l := range []*load{fromLeader, toFollower, api} {
		t.Log(l)
	}
	Expect(toFollower.refused.Load()).To(BeZero(), "%v", toFollower)
	Expect(fromLeader.tlsFault.Load()+api.tlsFault.Load()).To(BeZero(), "%v; %v", fromLeader, api)
}

// elevate gets admin a session approved by peer, and waits until the
// leader reports it Active.
func elevate(c *cluster) {
	p := &claiimv1.PIMRequest{ObjectMeta: metav1.ObjectMeta{GenerateName: "onboarding-"}, Spec: claiimv1.PIMRequestSpec{Reason: "Initial onboarding -- after the leader died"}}
	Expect(c.as[adminUser].Create(context.Background(), p)).To(Succeed())
	Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		peer := c.as[peerUser]
		if err := peer.Get(context.Background(), client.ObjectKeyFromObject(p), p); err != nil {
			return err
		}
		p.Annotations = map[string]string{claiimv1.AnnotationApprove: "ok"}
		return peer.Update(context.Background(), p)
	})).To(Succeed())
	Eventually(func(g Gomega) {
		g.Expect(c.admin.Get(context.Background(), client.ObjectKeyFromObject(p), p)).To(Succeed())
		g.Expect(p.Status.Phase).To(Equal(claiimv1.PIMActive))
	}).Should(Succeed(), "the session was not activated")
}
