package admission_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/claiim/claiim-operator/controllers"
	"github.com/claiim/claiim-operator/gate/chron"
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
		Expect(root.Delete(ctx, cfg)).To(Succeed())
		Eventually(func(g Gomega) {
			now := &admissionregistrationv1.ValidatingWebhookConfiguration{}
			g.Expect(root.Get(ctx, client.ObjectKey{Name: validatingConfig}, now)).To(Succeed())
			g.Expect(now.UID).NotTo(Equal(uid))
			g.Expect(now.Webhooks).To(HaveLen(hooks))
		}).Should(Succeed())
		Eventually(func() error { return admin.Create(ctx, org(uniq("engineering"))) }).
			Should(MatchError(ContainSubstring("needs an active PIM session")), "the webhooks are back: a change without a session is refused")
		Eventually(func() []chron.Row { return restorations(validatingConfig) }).Should(ConsistOf(And(
			HaveField("Outcome", chron.OutcomeDeny), HaveField("Reason", "MANIFEST_RESTORED"),
			HaveField("Message", ContainSubstring("was deleted")))))
		By("nothing that was intact is reported")
		Expect(chronRows(string(controllers.KindManifestRestored))).To(HaveLen(1))
	})

	It("puts back an edited mutating webhook configuration, its CA left as it was", func() {
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
		Eventually(func() []chron.Row { return restorations(mutatingConfig) }).Should(ConsistOf(HaveField("Message", ContainSubstring("was edited"))))
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
