package controllers_test

import (
	"os"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/test/testenv"
)

// kstatusOf computes what Argo CD / Flux (kstatus) make of an object.
func kstatusOf(g Gomega, obj client.Object) status.Status {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(claiimv1.GroupVersion.WithKind(kindOf(obj)))
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(obj), u)).To(Succeed())
	res, err := status.Compute(u)
	g.Expect(err).NotTo(HaveOccurred())
	return res.Status
}

func kindOf(obj client.Object) string {
	switch obj.(type) {
	case *claiimv1.AIOrg:
		return "AIOrg"
	case *claiimv1.Skill:
		return "Skill"
	case *claiimv1.Policy:
		return "Policy"
	case *claiimv1.Agent:
		return "Agent"
	case *claiimv1.PIMRequest:
		return "PIMRequest"
	case *claiimv1.CrossOrgGrant:
		return "CrossOrgGrant"
	}
	panic("unknown kind")
}

var _ = Describe("GitOps", func() {
	It("every kind reports kstatus Current when Ready, InProgress while not", func() {
		o := readyOrg(uniq("engineering"), "")
		other := readyOrg(uniq("finance"), "")
		s := deployBot(uniq("deploy-bot"), o.Name)
		Expect(k8s.Create(ctx, s)).To(Succeed())
		p := policy(uniq("no-production-deploys"), o.Name, denyRule("deny-prod", "deploy:production"))
		Expect(k8s.Create(ctx, p)).To(Succeed())
		ns := newNamespace()
		active := agent(ns, "active", o.Name, s.Name, 1, anchor)
		active.Annotations = map[string]string{claiimv1.AnnotationAnchorAccepted: anchor}
		Expect(k8s.Create(ctx, active)).To(Succeed())
		waiting := agent(ns, "waiting", o.Name, s.Name, 1, anchor) // anchor has not accepted
		Expect(k8s.Create(ctx, waiting)).To(Succeed())
		pim := &claiimv1.PIMRequest{ObjectMeta: metav1.ObjectMeta{Name: uniq("pim"), Annotations: map[string]string{
			claiimv1.AnnotationApprovedBy: "peer@claiim.io", claiimv1.AnnotationApprovedAt: time.Now().UTC().Format(time.RFC3339)}},
			Spec: claiimv1.PIMRequestSpec{Reason: "Initial onboarding -- setting up first agent fleet", Requester: "admin@claiim.io"}}
		createApproved(pim)
		grant := &claiimv1.CrossOrgGrant{ObjectMeta: metav1.ObjectMeta{Name: uniq("grant"), Annotations: map[string]string{
			claiimv1.AnnotationGrantingApprovedBy: "cfo@claiim.io", claiimv1.AnnotationReceivingApprovedBy: "cto@claiim.io"}},
			Spec: claiimv1.CrossOrgGrantSpec{GrantingOrg: claiimv1.OrgName(other.Name), ReceivingOrg: claiimv1.OrgName(o.Name),
				Skills: []string{"ledger"}, Duration: &metav1.Duration{Duration: time.Hour}}}
		Expect(k8s.Create(ctx, grant)).To(Succeed())

		Eventually(func(g Gomega) {
			for _, obj := range []client.Object{o, s, p, active, pim, grant} {
				g.Expect(kstatusOf(g, obj)).To(Equal(status.CurrentStatus), "%s %s", kindOf(obj), obj.GetName())
			}
			g.Expect(kstatusOf(g, waiting)).To(Equal(status.InProgressStatus))
		}).Should(Succeed())
	})

	It("server-side applies the samples, and a second apply changes nothing", func() {
		files, err := filepath.Glob(filepath.Join(testenv.RepoRoot(), "config", "samples", "claiim_v1alpha1_*.yaml"))
		Expect(err).NotTo(HaveOccurred())
		ns := newNamespace()
		suffix := "-" + ns // cluster-scoped samples must not collide with other specs'
		apply := func() map[string]string {
			versions := map[string]string{}
			for _, f := range files {
				b, err := os.ReadFile(f)
				Expect(err).NotTo(HaveOccurred())
				u := &unstructured.Unstructured{}
				Expect(yaml.Unmarshal(b, &u.Object)).To(Succeed())
				if u.GetKind() == "PIMRequest" {
					continue // generateName: each create is a new request
				}
				u.SetName(u.GetName() + suffix)
				if u.GetNamespace() != "" {
					u.SetNamespace(ns)
				}
				// Point the samples at each other under their new names.
				for _, path := range [][]string{{"spec", "org"}, {"spec", "skillRef", "name"}} {
					if v, ok, _ := unstructured.NestedString(u.Object, path...); ok {
						Expect(unstructured.SetNestedField(u.Object, v+suffix, path...)).To(Succeed())
					}
				}
				Expect(k8s.Patch(ctx, u, client.Apply, client.FieldOwner("gitops"), client.ForceOwnership)).To(Succeed(), f) //nolint:staticcheck // unstructured apply
				versions[u.GetKind()] = u.GetResourceVersion()
			}
			return versions
		}
		first := apply()
		Expect(first).To(HaveLen(4))
		// Let the reconcilers settle, then a second apply is a no-op.
		Eventually(func(g Gomega) {
			a := &claiimv1.Agent{}
			g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "prod-deploy-bot" + suffix}, a)).To(Succeed())
			g.Expect(a.Status.Phase).To(Equal(claiimv1.AgentInactive)) // the sample's anchor has not accepted here
		}).Should(Succeed())
		settled := map[string]string{}
		for kind, obj := range map[string]client.Object{"AIOrg": &claiimv1.AIOrg{}, "Skill": &claiimv1.Skill{}, "Policy": &claiimv1.Policy{}, "Agent": &claiimv1.Agent{}} {
			key := client.ObjectKey{Name: map[string]string{"AIOrg": "engineering", "Skill": "deploy-bot", "Policy": "no-production-deploys", "Agent": "prod-deploy-bot"}[kind] + suffix}
			if kind == "Agent" {
				key.Namespace = ns
			}
			Expect(k8s.Get(ctx, key, obj)).To(Succeed())
			settled[kind] = obj.GetResourceVersion()
		}
		Expect(apply()).To(Equal(settled), "a second apply of unchanged samples must not write")
	})
})
