package chart

// The console as the chart renders it: its Deployment reads Chron as the
// reader role under the restricted security settings, and its own identity
// can review tokens and list AIOrgs but never impersonate anyone.

import (
	"context"
	"slices"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

func TestConsoleDeployment(t *testing.T) {
	needsHelm(t)
	g := NewWithT(t)
	for _, c := range []struct {
		set    []string
		reader string
		tls    bool
	}{
		{nil, "claiim-chron-reader", false},
		{[]string{"database.reader.existingSecret=my-reader", "console.tls.secretName=console-tls", "console.replicas=2"}, "my-reader", true},
		{[]string{"postgresql.bundled.enabled=true"}, "claiim-chron-reader", false},
	} {
		objs := render(t, c.set...)
		dep := convert[appsv1.Deployment](t, find(t, objs, "Deployment", "claiim-console"))
		g.Expect(dep.Namespace).To(Equal(releaseNS))
		pod := dep.Spec.Template.Spec
		g.Expect(pod.ServiceAccountName).To(Equal("claiim-console"))
		g.Expect(pod.SecurityContext.RunAsNonRoot).To(HaveValue(BeTrue()))
		g.Expect(pod.SecurityContext.SeccompProfile).To(HaveValue(HaveField("Type", corev1.SeccompProfileTypeRuntimeDefault)))
		g.Expect(pod.Containers).To(HaveLen(1))
		m := pod.Containers[0]
		g.Expect(m.Args[0]).To(Equal("console"))
		g.Expect(m.Args).To(ContainElements("--listen=:3001", "--gate-url=https://claiim-gate."+releaseNS+".svc:8181/v"))
		// Chron as the reader role: no other Secret, above all not the
		// owner's nor a writer's.
		secrets := []string{c.reader}
		if c.tls {
			secrets = append(secrets, "console-tls")
		}
		g.Expect(secretsOf(pod)).To(ConsistOf(secrets), "%v", c.set)
		g.Expect(m.Env).To(ContainElement(corev1.EnvVar{Name: "DATABASE_URL", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: c.reader}, Key: "DATABASE_URL"}}}))
		sc := m.SecurityContext
		g.Expect(sc.ReadOnlyRootFilesystem).To(HaveValue(BeTrue()))
		g.Expect(sc.AllowPrivilegeEscalation).To(HaveValue(BeFalse()))
		g.Expect(sc.RunAsNonRoot).To(HaveValue(BeTrue()))
		g.Expect(sc.Capabilities.Drop).To(Equal([]corev1.Capability{"ALL"}))
		g.Expect(m.Ports).To(ConsistOf(And(HaveField("Name", "http"), HaveField("ContainerPort", int32(3001)))))
		scheme := corev1.URISchemeHTTP
		if c.tls {
			scheme = corev1.URISchemeHTTPS
			g.Expect(m.Args).To(ContainElement("--tls-cert-dir=/etc/claiim/console-tls"))
			g.Expect(m.VolumeMounts).To(ConsistOf(corev1.VolumeMount{Name: "tls", MountPath: "/etc/claiim/console-tls", ReadOnly: true}))
			g.Expect(dep.Spec.Replicas).To(HaveValue(Equal(int32(2))))
		} else {
			g.Expect(m.Args).NotTo(ContainElement(HavePrefix("--tls-cert-dir")))
			g.Expect(dep.Spec.Replicas).To(HaveValue(Equal(int32(1))), "sessions live in memory: one replica by default")
		}
		g.Expect(m.LivenessProbe.HTTPGet).To(HaveValue(And(HaveField("Path", "/healthz"), HaveField("Port.StrVal", "http"), HaveField("Scheme", scheme))))
		g.Expect(m.ReadinessProbe.HTTPGet).To(HaveValue(And(HaveField("Path", "/readyz"), HaveField("Port.StrVal", "http"), HaveField("Scheme", scheme))))

		svc := convert[corev1.Service](t, find(t, objs, "Service", "claiim-console"))
		g.Expect(svc.Spec.Type).To(Equal(corev1.ServiceTypeClusterIP))
		g.Expect(svc.Spec.Ports).To(HaveExactElements(And(HaveField("Port", int32(3001)), HaveField("TargetPort.StrVal", "http"))))
		for k, v := range svc.Spec.Selector {
			g.Expect(dep.Spec.Template.Labels).To(HaveKeyWithValue(k, v))
		}
		g.Expect(svc.Spec.Selector).To(HaveKeyWithValue("app.kubernetes.io/component", "console"), "the Service must not select the manager")
		crb := convert[rbacv1.ClusterRoleBinding](t, find(t, objs, "ClusterRoleBinding", "claiim-console"))
		g.Expect(crb.RoleRef.Name).To(Equal("claiim-console"))
		g.Expect(crb.Subjects).To(Equal([]rbacv1.Subject{{Kind: "ServiceAccount", Name: "claiim-console", Namespace: releaseNS}}))
	}

	// Off: nothing of the console renders.
	for _, o := range render(t, "console.enabled=false") {
		g.Expect(o.GetName()).NotTo(ContainSubstring("console"), "%s %s rendered with console.enabled=false", o.GetKind(), o.GetName())
	}
}

// The console's own identity may not act for anyone else nor read a
// Secret: no impersonate, escalate or bind, no wildcard, no write but
// TokenReviews.
func TestConsoleRBACIsNarrow(t *testing.T) {
	needsHelm(t)
	objs := render(t)
	var rules []rbacv1.PolicyRule
	rules = append(rules, convert[rbacv1.ClusterRole](t, find(t, objs, "ClusterRole", "claiim-console")).Rules...)
	rules = append(rules, convert[rbacv1.Role](t, find(t, objs, "Role", "claiim-console-chron")).Rules...)
	for _, r := range rules {
		for _, v := range r.Verbs {
			if slices.Contains([]string{"impersonate", "escalate", "bind", "*"}, v) {
				t.Errorf("the console may %s: %+v", v, r)
			}
			reviews := v == "create" && slices.Equal(r.Resources, []string{"tokenreviews"})
			if !slices.Contains([]string{"get", "list", "watch"}, v) && !reviews {
				t.Errorf("the console may write (%s): %+v", v, r)
			}
		}
		for _, s := range append(append([]string{}, r.Resources...), r.APIGroups...) {
			if s == "*" || s == "secrets" {
				t.Errorf("the console's rule names %q: %+v", s, r)
			}
		}
		if len(r.NonResourceURLs) > 0 {
			t.Errorf("the console's rule names non-resource URLs: %+v", r)
		}
	}
}

// The same, asked of a real apiserver after installing the chart's RBAC:
// the console's ServiceAccount may review tokens and read what it must,
// and may impersonate nobody.
func TestConsoleServiceAccountAccess(t *testing.T) {
	needsHelm(t)
	admin := controlPlane(t).Client
	ctx := context.Background()
	objs := render(t)
	for _, o := range ofKind(objs, "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding") {
		if err := admin.Create(ctx, o.DeepCopy()); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("creating %s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}
	sa := convert[appsv1.Deployment](t, find(t, objs, "Deployment", "claiim-console")).Spec.Template.Spec.ServiceAccountName
	for _, c := range []struct {
		ra    authorizationv1.ResourceAttributes
		allow bool
	}{
		{authorizationv1.ResourceAttributes{Verb: "create", Group: "authentication.k8s.io", Resource: "tokenreviews"}, true},
		{authorizationv1.ResourceAttributes{Verb: "list", Group: "claiim.io", Resource: "aiorgs"}, true},
		{authorizationv1.ResourceAttributes{Verb: "list", Group: "coordination.k8s.io", Resource: "leases", Namespace: releaseNS}, true},
		{authorizationv1.ResourceAttributes{Verb: "get", Resource: "configmaps", Namespace: releaseNS, Name: "claiim-chron-public"}, true},
		{authorizationv1.ResourceAttributes{Verb: "impersonate", Resource: "users"}, false},
		{authorizationv1.ResourceAttributes{Verb: "impersonate", Resource: "users", Name: "admin@claiim.io"}, false},
		{authorizationv1.ResourceAttributes{Verb: "impersonate", Resource: "groups"}, false},
		{authorizationv1.ResourceAttributes{Verb: "impersonate", Resource: "groups", Name: "system:masters"}, false},
		{authorizationv1.ResourceAttributes{Verb: "impersonate", Resource: "serviceaccounts", Namespace: releaseNS, Name: "claiim-manager"}, false},
		{authorizationv1.ResourceAttributes{Verb: "impersonate", Group: "authentication.k8s.io", Resource: "userextras", Subresource: "scopes"}, false},
		{authorizationv1.ResourceAttributes{Verb: "impersonate", Group: "authentication.k8s.io", Resource: "uids"}, false},
		{authorizationv1.ResourceAttributes{Verb: "get", Resource: "secrets", Namespace: releaseNS, Name: "claiim-chron-reader"}, false},
		{authorizationv1.ResourceAttributes{Verb: "get", Resource: "configmaps", Namespace: releaseNS, Name: "claiim-gate-ca"}, false},
		{authorizationv1.ResourceAttributes{Verb: "get", Group: "claiim.io", Resource: "aiorgs", Subresource: "chron"}, false},
		{authorizationv1.ResourceAttributes{Verb: "create", Group: "claiim.io", Resource: "pimrequests"}, false},
		{authorizationv1.ResourceAttributes{Verb: "create", Group: "authorization.k8s.io", Resource: "subjectaccessreviews"}, false},
	} {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:               "system:serviceaccount:" + releaseNS + ":" + sa,
			Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:" + releaseNS, "system:authenticated"},
			ResourceAttributes: &c.ra}}
		if err := admin.Create(ctx, sar); err != nil {
			t.Fatal(err)
		}
		if sar.Status.Allowed != c.allow {
			t.Errorf("the console's ServiceAccount %+v: allowed=%v, want %v (%s)", c.ra, sar.Status.Allowed, c.allow, sar.Status.Reason)
		}
	}
}
