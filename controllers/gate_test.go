package controllers_test

import (
	"fmt"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/claiim/claiim-operator/controllers"
)

var _ = Describe("The gate's objects", Serial, func() {
	key := func(namespaced bool) client.ObjectKey {
		if namespaced {
			return client.ObjectKey{Namespace: gateNamespace, Name: controllers.GateName}
		}
		return client.ObjectKey{Name: controllers.GateName}
	}
	deployment := func(g Gomega) *appsv1.Deployment {
		d := &appsv1.Deployment{}
		g.Expect(k8s.Get(ctx, key(true), d)).To(Succeed())
		return d
	}

	It("are created as configured: Deployment, Service, ServiceAccount, read-only RBAC, PDB, NetworkPolicy, Chron stream Leases", func() {
		Eventually(func(g Gomega) {
			d := deployment(g)
			g.Expect(*d.Spec.Replicas).To(BeEquivalentTo(2))
			c := d.Spec.Template.Spec.Containers[0]
			g.Expect(c.Image).To(Equal(gateConfig.Image))
			g.Expect(c.Args).To(ContainElement("--listen=:8181"))
			g.Expect(c.Env).To(ContainElement(HaveField("ValueFrom.SecretKeyRef.Name", "claiim-database")))
			// The heap stays under the memory limit despite the gate's GOGC.
			g.Expect(c.Env).To(ContainElement(corev1.EnvVar{Name: "GOMEMLIMIT", Value: "943718400"}))
			g.Expect(*c.SecurityContext.ReadOnlyRootFilesystem).To(BeTrue())
			// The non-root gate reads its mounted keys (0440) through its group.
			g.Expect(d.Spec.Template.Spec.SecurityContext.FSGroup).To(HaveValue(BeEquivalentTo(65532)))
			g.Expect(d.Spec.Template.Spec.ServiceAccountName).To(Equal(controllers.GateName))
			for _, o := range []client.Object{&corev1.Service{}, &corev1.ServiceAccount{}, &policyv1.PodDisruptionBudget{}, &networkingv1.NetworkPolicy{}} {
				g.Expect(k8s.Get(ctx, key(true), o)).To(Succeed())
			}
			role := &rbacv1.ClusterRole{}
			g.Expect(k8s.Get(ctx, key(false), role)).To(Succeed())
			for _, rule := range role.Rules {
				g.Expect(rule.Resources).NotTo(ContainElement("secrets"), "the gate reads no Secrets")
				g.Expect(rule.Verbs).NotTo(ContainElements("update", "patch", "delete"))
			}
			g.Expect(k8s.Get(ctx, key(false), &rbacv1.ClusterRoleBinding{})).To(Succeed())

			// Chron: the keys come mounted, never through the API; the
			// gate may get and renew the Leases of its stream set, by name,
			// which the manager creates (two per replica plus one).
			g.Expect(d.Spec.Template.Spec.Volumes).To(ContainElement(HaveField("VolumeSource.Secret.SecretName", "claiim-chron-gate-keys")))
			g.Expect(c.Args).To(ContainElements("--chron-streams=5", "--chron-keys=/etc/claiim/chron-keys"))
			leases := &rbacv1.Role{}
			g.Expect(k8s.Get(ctx, key(true), leases)).To(Succeed())
			g.Expect(leases.Rules).To(ConsistOf(And(HaveField("Resources", ConsistOf("leases")), HaveField("Verbs", ConsistOf("get", "update")),
				HaveField("ResourceNames", HaveLen(5)))))
			g.Expect(k8s.Get(ctx, key(true), &rbacv1.RoleBinding{})).To(Succeed())
			for i := range 5 {
				g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: gateNamespace, Name: fmt.Sprintf("claiim-chron-gate-%d", i)},
					&coordinationv1.Lease{})).To(Succeed())
			}
		}).Should(Succeed())
	})

	It("undo drift: an edited field is restored, a deleted object re-created", func() {
		Eventually(func(g Gomega) { deployment(g) }).Should(Succeed())
		d := deployment(Default)
		d.Spec.Replicas = ptr.To(int32(0))
		d.Spec.Template.Spec.Containers[0].Image = "evil/gate:latest"
		Expect(k8s.Update(ctx, d)).To(Succeed())
		Eventually(func(g Gomega) {
			d := deployment(g)
			g.Expect(*d.Spec.Replicas).To(BeEquivalentTo(2))
			g.Expect(d.Spec.Template.Spec.Containers[0].Image).To(Equal(gateConfig.Image))
		}).Should(Succeed())
		By("the correction is visible where kubectl describe shows it")
		Eventually(func(g Gomega) {
			evs := &eventsv1.EventList{}
			g.Expect(k8s.List(ctx, evs, client.InNamespace(gateNamespace))).To(Succeed())
			g.Expect(evs.Items).To(ContainElement(And(HaveField("Regarding.Name", controllers.GateName),
				HaveField("Reason", "Reconciled"), HaveField("Note", ContainSubstring("restored Deployment")))))
		}).Should(Succeed())

		svc := &corev1.Service{}
		Expect(k8s.Get(ctx, key(true), svc)).To(Succeed())
		uid := svc.UID
		Expect(k8s.Delete(ctx, svc)).To(Succeed())
		Expect(k8s.Delete(ctx, deployment(Default))).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, key(true), svc)).To(Succeed())
			g.Expect(svc.UID).NotTo(Equal(uid))
			deployment(g)
		}).Should(Succeed())
	})

	It("rolls the Deployment when the configuration changes", func() {
		ns := newNamespace()
		cfg := gateConfig
		cfg.Namespace = ns
		r := &controllers.GateReconciler{Client: k8s, Recorder: nil, Config: cfg}
		_, err := r.Reconcile(ctx, reconcile.Request{})
		Expect(err).NotTo(HaveOccurred())
		get := func() *appsv1.Deployment {
			d := &appsv1.Deployment{}
			Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: controllers.GateName}, d)).To(Succeed())
			return d
		}
		before := get().Spec.Template.Annotations["claiim.io/gate-config-hash"]

		r.Config.Image = "ghcr.io/claiim/claiim:v0.2.0"
		_, err = r.Reconcile(ctx, reconcile.Request{})
		Expect(err).NotTo(HaveOccurred())
		d := get()
		Expect(d.Spec.Template.Spec.Containers[0].Image).To(Equal("ghcr.io/claiim/claiim:v0.2.0"))
		Expect(d.Spec.Template.Annotations["claiim.io/gate-config-hash"]).NotTo(Equal(before), "a new pod template rolls the pods")

		Expect(k8s.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	})
})
