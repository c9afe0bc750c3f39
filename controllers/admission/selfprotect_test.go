package admission_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/controllers"
	"github.com/claiim/claiim-operator/gate/attest"
	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/gate/decide"
)

// The manager of this suite keeps the configurations as envtest installed
// them (ProtectConfig in suite_test.go): every change below is undone.
var _ = Describe("Self-protection", Serial, Ordered, func() {
	BeforeAll(func() {
		// No session from earlier specs may let a change through.
		clock.SetTime(clock.Now().Add(9 * time.Hour))
	})
	restorations := func(name string) []chron.Row {
		var mine []chron.Row
		for _, r := range chronRows(string(controllers.KindManifestRestored)) {
			if r.Context["name"] == name {
				mine = append(mine, r)
			}
		}
		return mine
	}

	It("re-creates a deleted validating webhook configuration, and PIM holds again", func() {
		cfg := &admissionregistrationv1.ValidatingWebhookConfiguration{}
		Expect(root.Get(ctx, client.ObjectKey{Name: validatingConfig}, cfg)).To(Succeed())
		uid, hooks := cfg.UID, len(cfg.Webhooks)
		before := len(chronRows(string(controllers.KindManifestRestored)))
		earlier := restorations(validatingConfig) // by other specs
		Expect(root.Delete(ctx, cfg)).To(Succeed())
		Eventually(func(g Gomega) {
			now := &admissionregistrationv1.ValidatingWebhookConfiguration{}
			g.Expect(root.Get(ctx, client.ObjectKey{Name: validatingConfig}, now)).To(Succeed())
			g.Expect(now.UID).NotTo(Equal(uid))
			g.Expect(now.Webhooks).To(HaveLen(hooks))
		}).Should(Succeed())
		Eventually(func() error { return admin.Create(ctx, org(uniq("engineering"))) }).
			Should(MatchError(ContainSubstring("needs an active PIM session")), "the webhooks are back: a change without a session is refused")
		Eventually(func() []chron.Row { return without(restorations(validatingConfig), earlier) }).Should(ConsistOf(And(
			HaveField("Outcome", chron.OutcomeDeny), HaveField("Reason", "MANIFEST_RESTORED"),
			HaveField("Message", ContainSubstring("was deleted")))))
		By("nothing that was intact is reported")
		Expect(chronRows(string(controllers.KindManifestRestored))).To(HaveLen(before + 1))
	})

	It("puts back an edited mutating webhook configuration, its CA left as it was", func() {
		earlier := restorations(mutatingConfig) // by other specs
		cfg := &admissionregistrationv1.MutatingWebhookConfiguration{}
		Expect(root.Get(ctx, client.ObjectKey{Name: mutatingConfig}, cfg)).To(Succeed())
		want := cfg.DeepCopy()
		ignore := admissionregistrationv1.Ignore
		for i := range cfg.Webhooks {
			cfg.Webhooks[i].FailurePolicy = &ignore
		}
		cfg.Webhooks = cfg.Webhooks[1:]
		Expect(root.Update(ctx, cfg)).To(Succeed())
		Eventually(func(g Gomega) {
			now := &admissionregistrationv1.MutatingWebhookConfiguration{}
			g.Expect(root.Get(ctx, client.ObjectKey{Name: mutatingConfig}, now)).To(Succeed())
			g.Expect(now.Webhooks).To(Equal(want.Webhooks))
		}).Should(Succeed())
		Eventually(func() []chron.Row { return without(restorations(mutatingConfig), earlier) }).Should(ConsistOf(HaveField("Message", ContainSubstring("was edited"))))
	})

	It("puts back an edited CRD", func() {
		crd := &unstructured.Unstructured{}
		crd.SetGroupVersionKind(apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition"))
		Expect(root.Get(ctx, client.ObjectKey{Name: "policies.claiim.io"}, crd)).To(Succeed())
		want, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
		versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
		v0 := versions[0].(map[string]any)
		delete(v0, "additionalPrinterColumns")
		unstructured.RemoveNestedField(v0, "schema", "openAPIV3Schema", "properties", "spec", "x-kubernetes-validations")
		Expect(unstructured.SetNestedSlice(crd.Object, versions, "spec", "versions")).To(Succeed())
		Expect(root.Update(ctx, crd)).To(Succeed())
		Eventually(func(g Gomega) {
			now := &unstructured.Unstructured{}
			now.SetGroupVersionKind(crd.GroupVersionKind())
			g.Expect(root.Get(ctx, client.ObjectKey{Name: "policies.claiim.io"}, now)).To(Succeed())
			got, _, _ := unstructured.NestedSlice(now.Object, "spec", "versions")
			g.Expect(got).To(Equal(want))
		}).Should(Succeed())
		Eventually(func() []chron.Row { return restorations("policies.claiim.io") }).Should(HaveLen(1))
	})
})

// without is rows less those in earlier.
func without(rows, earlier []chron.Row) []chron.Row {
	var out []chron.Row
	for _, r := range rows {
		seen := false
		for _, e := range earlier {
			seen = seen || e.ID == r.ID
		}
		if !seen {
			out = append(out, r)
		}
	}
	return out
}

// Changes made past admission: while the webhook configurations are away,
// a person without a session can change a Policy. The change is found
// (condition, event, Chron row) and not used by the gate until it is
// re-applied under PIM.
var _ = Describe("Changes made past admission", Serial, Ordered, func() {
	BeforeAll(func() { clock.SetTime(clock.Now().Add(9 * time.Hour)) })

	admittedCond := func(g Gomega, obj client.Object, conds *[]metav1.Condition) *metav1.Condition {
		g.Expect(root.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed())
		c := meta.FindStatusCondition(*conds, claiimv1.ConditionAdmitted)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.ObservedGeneration).To(Equal(obj.GetGeneration()))
		return c
	}

	It("are reported and do not count in the gate until re-applied under a PIM session", func() {
		orgName, skillName, ns := world()
		pol := &claiimv1.Policy{ObjectMeta: metav1.ObjectMeta{Name: uniq("no-staging")}, Spec: claiimv1.PolicySpec{Org: claiimv1.OrgName(orgName),
			Rules: []claiimv1.PolicyRule{{Name: "freeze", Effect: claiimv1.PolicyEffectDeny, Actions: []claiimv1.ActionPattern{"deploy:staging"}}}}}
		Expect(admin.Create(ctx, pol)).To(Succeed())
		a := agent(ns, orgName, skillName, adminUser)
		Expect(admin.Create(ctx, a)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(admittedCond(g, pol, &pol.Status.Conditions).Status).To(Equal(metav1.ConditionTrue))
			g.Expect(root.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			g.Expect(a.Status.Phase).To(Equal(claiimv1.AgentActive))
			g.Expect(gateSays(a)).To(Equal(decide.ReasonPolicyDeny))
		}).Should(Succeed())

		By("the webhook configurations deleted, a person without a session lifts the Deny")
		clock.SetTime(clock.Now().Add(2 * time.Hour)) // the session is over
		Eventually(func() error {
			_ = client.IgnoreNotFound(root.Delete(ctx, &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: validatingConfig}}))
			_ = client.IgnoreNotFound(root.Delete(ctx, &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: mutatingConfig}}))
			return edit(admin, pol, func() { pol.Spec.Rules[0].Effect = claiimv1.PolicyEffectAllow })
		}).Should(Succeed(), "a write lands while the webhooks are away")
		Eventually(func() error { return admin.Create(ctx, org(uniq("engineering"))) }).
			Should(MatchError(ContainSubstring("needs an active PIM session")), "self-protection put the webhooks back")

		By("the manager reports it")
		Eventually(func(g Gomega) {
			c := admittedCond(g, pol, &pol.Status.Conditions)
			g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(c.Reason).To(Equal(claiimv1.ReasonChangedPastAdmission))
			g.Expect(c.Message).To(And(ContainSubstring("Policy "+pol.Name), ContainSubstring("Re-apply it under a PIM session")))
			g.Expect(chronRows(string(chron.KindAdmissionBypassed))).To(ContainElement(And(HaveField("Outcome", chron.OutcomeDeny),
				HaveField("Reason", "CHANGED_PAST_ADMISSION"), HaveField("Org", orgName), HaveField("Context", HaveKeyWithValue("name", pol.Name)))))
			events := &eventsv1.EventList{}
			g.Expect(root.List(ctx, events)).To(Succeed())
			g.Expect(events.Items).To(ContainElement(And(HaveField("Regarding.Name", pol.Name), HaveField("Reason", claiimv1.ReasonChangedPastAdmission),
				HaveField("Type", corev1.EventTypeWarning))))
		}).Should(Succeed())
		By("the gate does not use it: what the Deny forbade stays denied")
		Expect(gateSays(a)).To(Equal(decide.ReasonNotAdmitted))

		By("a write without a session does not re-admit it")
		Expect(edit(admin, a, func() { a.Spec.Lifecycle = claiimv1.LifecycleSuspended })).To(Succeed(), "suspending needs no session")
		Expect(edit(root, pol, func() { pol.Labels = map[string]string{"touched": "yes"} })).NotTo(Succeed(), "root has no session either")

		By("re-applied under a PIM session, it counts again")
		elevate(admin)
		Expect(edit(admin, pol, func() { pol.Spec.Rules[0].Effect = claiimv1.PolicyEffectDeny })).To(Succeed())
		Expect(edit(admin, a, func() { a.Spec.Lifecycle = claiimv1.LifecycleActive })).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(admittedCond(g, pol, &pol.Status.Conditions).Status).To(Equal(metav1.ConditionTrue))
			g.Expect(root.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			g.Expect(a.Status.Phase).To(Equal(claiimv1.AgentActive))
			g.Expect(gateSays(a)).To(Equal(decide.ReasonPolicyDeny))
		}).Should(Succeed())
		Expect(chronRows(string(chron.KindAdmissionBypassed))).To(ContainElement(HaveField("Context", HaveKeyWithValue("name", pol.Name))),
			"the finding stays on record")
	})

	It("puts back the published attestation keys", func() {
		key := client.ObjectKey{Namespace: "claiim-system", Name: controllers.AttestationKeysConfigMap}
		want := signer.Public().ConfigMapData()
		published := func(g Gomega) {
			cm := &corev1.ConfigMap{}
			g.Expect(root.Get(ctx, key, cm)).To(Succeed())
			g.Expect(cm.Data).To(Equal(want))
		}
		keyRows := func() []chron.Row {
			var mine []chron.Row
			for _, r := range chronRows(string(controllers.KindManifestRestored)) {
				if r.Context["name"] == key.Name {
					mine = append(mine, r)
				}
			}
			return mine
		}
		cm := &corev1.ConfigMap{}
		Expect(root.Get(ctx, key, cm)).To(Succeed())
		cm.Data = attest.NewSigner(attest.NewKey()).Public().ConfigMapData() // someone's own key
		Expect(root.Update(ctx, cm)).To(Succeed())
		Eventually(published).Should(Succeed())
		Eventually(keyRows).Should(ConsistOf(HaveField("Message", ContainSubstring("was edited"))))

		Expect(root.Delete(ctx, cm)).To(Succeed())
		Eventually(published).Should(Succeed())
		Eventually(keyRows).Should(HaveLen(2))
	})
})
