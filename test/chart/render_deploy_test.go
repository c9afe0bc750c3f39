package chart

// The manager's Deployment and its webhook certificate, and the bundled
// PostgreSQL, as the chart renders them.

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// The manager's Deployment runs the manager with the gate, the image, the
// database Secret and the security settings the brief asks for.
func TestManagerDeployment(t *testing.T) {
	needsHelm(t)
	g := NewWithT(t)
	var chart struct{ AppVersion string }
	readYAML(t, filepath.Join("charts", "claiim", "Chart.yaml"), &chart)
	image := "ghcr.io/claiim/claiim:" + chart.AppVersion

	for _, c := range []struct {
		set               []string
		image, db, gateDB string
		replicas          int32
		gateReplicas      int
	}{
		{nil, image, "claiim-chron-manager", "claiim-chron-gate", 2, 2},
		{[]string{"image.tag=v9.9.9", "manager.replicas=3", "gate.replicas=5", "database.existingSecret=chron"}, "ghcr.io/claiim/claiim:v9.9.9", "claiim-chron-manager", "claiim-chron-gate", 3, 5},
		{[]string{"image.digest=sha256:" + strings.Repeat("ab", 32), "gate.databaseSecret=chron-gate"}, "ghcr.io/claiim/claiim@sha256:" + strings.Repeat("ab", 32), "claiim-chron-manager", "chron-gate", 2, 2},
		{[]string{"database.manager.existingSecret=mine", "database.gate.existingSecret=gates"}, image, "mine", "gates", 2, 2},
		{[]string{"postgresql.bundled.enabled=true"}, image, "claiim-chron-manager", "claiim-chron-gate", 2, 2},
	} {
		objs := render(t, c.set...)
		dep := convert[appsv1.Deployment](t, find(t, objs, "Deployment", "claiim-manager"))
		g.Expect(dep.Namespace).To(Equal(releaseNS))
		g.Expect(dep.Spec.Replicas).To(HaveValue(Equal(c.replicas)))
		pod := dep.Spec.Template.Spec
		g.Expect(pod.ServiceAccountName).To(Equal("claiim-manager"))
		g.Expect(pod.SecurityContext.RunAsNonRoot).To(HaveValue(BeTrue()))
		g.Expect(pod.SecurityContext.SeccompProfile).To(HaveValue(HaveField("Type", corev1.SeccompProfileTypeRuntimeDefault)))
		g.Expect(pod.Containers).To(HaveLen(1))
		m := pod.Containers[0]
		g.Expect(m.Image).To(Equal(c.image))
		g.Expect(m.Args).To(Equal([]string{
			"manager",
			"--leader-elect",
			"--gate-url=https://claiim-gate." + releaseNS + ".svc:8181/v",
			"--manage-gate",
			"--gate-image=" + c.image,
			fmt.Sprintf("--gate-replicas=%d", c.gateReplicas),
			"--gate-port=8181",
			"--gate-tls=true",
			"--gate-database-secret=" + c.gateDB,
			"--gate-cpu-request=250m",
			"--gate-memory-request=128Mi",
			"--gate-cpu-limit=",
			"--gate-memory-limit=512Mi",
			"--webhook-cert-dir=/tmp/k8s-webhook-server/serving-certs",
			"--webhook-cert-secret=claiim-webhook-tls",
			"--webhook-service=claiim-webhook-service",
			"--webhook-mutating-configuration=claiim-mutating-webhook-configuration",
			"--webhook-validating-configuration=claiim-validating-webhook-configuration",
			"--pim-pending-ttl=24h",
			"--zap-log-level=info",
		}), "%v", c.set)
		g.Expect(m.Env).To(ContainElements(
			corev1.EnvVar{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
			corev1.EnvVar{Name: "DATABASE_URL", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: c.db}, Key: "DATABASE_URL"}}},
			corev1.EnvVar{Name: "CLAIIM_MANAGER_USERNAME", Value: "system:serviceaccount:" + releaseNS + ":claiim-manager"},
			// The what-if of admitted changes reads the gate's decisions,
			// which the manager's own role may not: the reader role.
			corev1.EnvVar{Name: "CLAIIM_WHATIF_DATABASE_URL", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "claiim-chron-reader"}, Key: "DATABASE_URL"}}},
		))
		g.Expect(m.Ports).To(ContainElements(
			And(HaveField("Name", "metrics"), HaveField("ContainerPort", int32(8080))),
			And(HaveField("Name", "probes"), HaveField("ContainerPort", int32(8081))),
		))
		g.Expect(m.LivenessProbe.HTTPGet).To(HaveValue(And(HaveField("Path", "/healthz"), HaveField("Port.StrVal", "probes"))))
		g.Expect(m.ReadinessProbe.HTTPGet).To(HaveValue(And(HaveField("Path", "/readyz"), HaveField("Port.StrVal", "probes"))))
		g.Expect(m.Resources.Requests).NotTo(BeEmpty())
		sc := m.SecurityContext
		g.Expect(sc.ReadOnlyRootFilesystem).To(HaveValue(BeTrue()))
		g.Expect(sc.AllowPrivilegeEscalation).To(HaveValue(BeFalse()))
		g.Expect(sc.Capabilities.Drop).To(Equal([]corev1.Capability{"ALL"}))
		// The manager writes its own certificate into /tmp (an emptyDir).
		g.Expect(m.VolumeMounts).To(ConsistOf(corev1.VolumeMount{Name: "tmp", MountPath: "/tmp"}))
		g.Expect(pod.Volumes).To(ContainElement(HaveField("Name", "tmp")))
		g.Expect(volume(pod, "tmp").EmptyDir).NotTo(BeNil())
	}
}

// gate.resources reach the manager as its four gate resource flags; an
// emptied value is passed empty (none). Anything but cpu and memory is
// refused by the schema rather than dropped (TestSchemaRejectsBadValues).
func TestGateResourcesFlags(t *testing.T) {
	needsHelm(t)
	g := NewWithT(t)
	objs := render(t, "gate.resources.requests.memory=null", "gate.resources.limits.cpu=2", "gate.resources.limits.memory=1Gi")
	m := convert[appsv1.Deployment](t, find(t, objs, "Deployment", "claiim-manager")).Spec.Template.Spec.Containers[0]
	g.Expect(m.Args).To(ContainElements("--gate-cpu-request=250m", "--gate-memory-request=", "--gate-cpu-limit=2", "--gate-memory-limit=1Gi"))
}

func volume(pod corev1.PodSpec, name string) corev1.Volume {
	for _, v := range pod.Volumes {
		if v.Name == name {
			return v
		}
	}
	return corev1.Volume{}
}

// Without cert-manager the manager issues, renews and injects the
// certificate: the chart renders no certificate and no caBundle (so Helm's
// three-way merge keeps the one the manager injects).
func TestManagerIssuedWebhookCertificate(t *testing.T) {
	needsHelm(t)
	g := NewWithT(t)
	objs := render(t)
	for _, sec := range ofKind(objs, "Secret") { // the webhook certificate is the manager's to write
		g.Expect(sec.GetLabels()).To(HaveKey("claiim.io/chron-role"), "the chart renders Secret %s", sec.GetName())
	}
	for _, kind := range []string{"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"} {
		for _, o := range ofKind(objs, kind) {
			g.Expect(o.GetAnnotations()).NotTo(HaveKey("cert-manager.io/inject-ca-from"))
			hooks, _, _ := unstructured.NestedSlice(o.Object, "webhooks")
			g.Expect(hooks).NotTo(BeEmpty())
			for _, h := range hooks {
				_, found, _ := unstructured.NestedString(h.(map[string]any), "clientConfig", "caBundle")
				g.Expect(found).To(BeFalse(), "%s %s renders a caBundle; the manager injects it", kind, o.GetName())
			}
		}
	}
	g.Expect(ofKind(objs, "Certificate", "Issuer")).To(BeEmpty())
}

// With cert-manager: a Certificate from a self-signed Issuer (or the one
// given), its Secret mounted, its CA injected.
func TestCertManagerWebhookCertificate(t *testing.T) {
	needsHelm(t)
	g := NewWithT(t)
	objs := render(t, "webhook.certManager.enabled=true")
	for _, sec := range ofKind(objs, "Secret") {
		g.Expect(sec.GetLabels()).To(HaveKey("claiim.io/chron-role"), "cert-manager writes the serving certificate; the chart must not")
	}

	issuer := find(t, objs, "Issuer", "claiim-selfsigned")
	g.Expect(issuer.GetAPIVersion()).To(Equal("cert-manager.io/v1"))
	g.Expect(issuer.GetNamespace()).To(Equal(releaseNS))
	selfSigned, found, _ := unstructured.NestedMap(issuer.Object, "spec", "selfSigned")
	g.Expect(found).To(BeTrue(), "the Issuer is not selfSigned")
	g.Expect(selfSigned).To(BeEmpty())

	cert := find(t, objs, "Certificate", "claiim-webhook")
	g.Expect(cert.GetAPIVersion()).To(Equal("cert-manager.io/v1"))
	g.Expect(cert.GetNamespace()).To(Equal(releaseNS))
	secretName, _, _ := unstructured.NestedString(cert.Object, "spec", "secretName")
	g.Expect(secretName).NotTo(BeEmpty())
	dnsNames, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
	g.Expect(dnsNames).To(ContainElements("claiim-webhook-service."+releaseNS+".svc", "claiim-webhook-service."+releaseNS+".svc.cluster.local"))
	ref, _, _ := unstructured.NestedStringMap(cert.Object, "spec", "issuerRef")
	g.Expect(ref).To(Equal(map[string]string{"name": "claiim-selfsigned", "kind": "Issuer", "group": "cert-manager.io"}))

	dep := convert[appsv1.Deployment](t, find(t, objs, "Deployment", "claiim-manager"))
	g.Expect(volume(dep.Spec.Template.Spec, "webhook-cert").Secret).To(HaveValue(HaveField("SecretName", secretName)))
	for _, kind := range []string{"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"} {
		for _, o := range ofKind(objs, kind) {
			g.Expect(o.GetAnnotations()).To(HaveKeyWithValue("cert-manager.io/inject-ca-from", releaseNS+"/claiim-webhook"))
			hooks, _, _ := unstructured.NestedSlice(o.Object, "webhooks")
			for _, h := range hooks {
				_, found, _ := unstructured.NestedFieldNoCopy(h.(map[string]any), "clientConfig", "caBundle")
				g.Expect(found).To(BeFalse(), "%s: caBundle is cert-manager's to inject", kind)
			}
		}
	}

	// An issuer of one's own replaces the self-signed one.
	objs = render(t, "webhook.certManager.enabled=true", "webhook.certManager.issuerRef.name=corp-ca", "webhook.certManager.issuerRef.kind=ClusterIssuer")
	g.Expect(ofKind(objs, "Issuer")).To(BeEmpty())
	ref, _, _ = unstructured.NestedStringMap(find(t, objs, "Certificate", "claiim-webhook").Object, "spec", "issuerRef")
	g.Expect(ref).To(Equal(map[string]string{"name": "corp-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}))
}

// The bundled PostgreSQL is off by default and, when on, says on every
// object that it is for evaluation only.
func TestBundledPostgreSQL(t *testing.T) {
	needsHelm(t)
	g := NewWithT(t)
	for _, o := range render(t) {
		g.Expect(o.GetName()).NotTo(ContainSubstring("postgresql"), "%s %s rendered without postgresql.bundled.enabled", o.GetKind(), o.GetName())
	}
	objs := render(t, "postgresql.bundled.enabled=true")
	pg := []*unstructured.Unstructured{
		find(t, objs, "StatefulSet", "claiim-postgresql"),
		find(t, objs, "Service", "claiim-postgresql"),
		find(t, objs, "Secret", "claiim-postgresql"),
	}
	for _, o := range pg {
		g.Expect(o.GetLabels()).To(HaveKeyWithValue("claiim.io/evaluation-only", "true"), o.GetKind())
		g.Expect(strings.ToLower(o.GetAnnotations()["claiim.io/warning"])).To(ContainSubstring("for evaluation only, not for production"), o.GetKind())
	}
	sts := convert[appsv1.StatefulSet](t, pg[0])
	g.Expect(sts.Spec.Replicas).To(HaveValue(Equal(int32(1))))
	g.Expect(strings.ToLower(sts.Spec.Template.Annotations["claiim.io/warning"])).To(ContainSubstring("for evaluation only, not for production"))
	g.Expect(sts.Spec.VolumeClaimTemplates).To(HaveLen(1))
	sec := convert[corev1.Secret](t, pg[2])
	g.Expect(string(sec.Data["DATABASE_URL"])).To(MatchRegexp(`^postgres://claiim:[A-Za-z0-9]{32}@claiim-postgresql\.` + releaseNS + `\.svc:5432/claiim\?sslmode=disable$`))
	g.Expect(string(sec.Data["DATABASE_URL"])).To(ContainSubstring(string(sec.Data["POSTGRES_PASSWORD"])))

	svc := convert[corev1.Service](t, pg[1])
	for k, v := range svc.Spec.Selector {
		g.Expect(sts.Spec.Template.Labels).To(HaveKeyWithValue(k, v))
	}
	// The manager's pods must not be selected by the database's Service.
	dep := convert[appsv1.Deployment](t, find(t, objs, "Deployment", "claiim-manager"))
	g.Expect(dep.Spec.Template.Labels["app.kubernetes.io/component"]).NotTo(Equal(svc.Spec.Selector["app.kubernetes.io/component"]))

	objs = render(t, "postgresql.bundled.enabled=true", "postgresql.bundled.persistence.enabled=false")
	sts = convert[appsv1.StatefulSet](t, find(t, objs, "StatefulSet", "claiim-postgresql"))
	g.Expect(sts.Spec.VolumeClaimTemplates).To(BeEmpty())
	g.Expect(volume(sts.Spec.Template.Spec, "data").EmptyDir).NotTo(BeNil())
}
