package chart

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/claiim/claiim-operator/test/testenv"
)

// The chart's CRDs must be byte-for-byte the generated ones.
func TestCRDsMatchConfig(t *testing.T) {
	src := filepath.Join(testenv.RepoRoot(), "config", "crd", "bases")
	dst := filepath.Join(chartDir(), "crds")
	list := func(dir string) []string {
		m, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		for i := range m {
			m[i] = filepath.Base(m[i])
		}
		sort.Strings(m)
		return m
	}
	want, got := list(src), list(dst)
	if len(want) == 0 {
		t.Fatalf("no CRDs in %s", src)
	}
	if !reflect.DeepEqual(want, got) {
		t.Fatalf("charts/claiim/crds has %v, config/crd/bases has %v; run 'make manifests'", got, want)
	}
	for _, f := range want {
		a, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(dst, f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("charts/claiim/crds/%s differs from config/crd/bases/%s; run 'make manifests'", f, f)
		}
	}
}

func needsHelm(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs helm")
	}
	helmBin(t)
}

func TestHelmLint(t *testing.T) {
	needsHelm(t)
	for _, set := range [][]string{nil, {"webhook.certManager.enabled=true"}, {"postgresql.bundled.enabled=true"}} {
		args := []string{"lint", "--strict", chartDir(), "--namespace", releaseNS}
		for _, s := range set {
			args = append(args, "--set", s)
		}
		if out, err := helm(t, args...); err != nil {
			t.Errorf("helm lint %v: %v\n%s", set, err, out)
		}
	}
}

// values.schema.json refuses wrong values before anything is rendered.
func TestSchemaRejectsBadValues(t *testing.T) {
	needsHelm(t)
	for _, c := range []struct {
		set  []string
		want string // in helm's error
	}{
		{[]string{"manager.replicas=-1"}, "replicas"},
		{[]string{"manager.replicas=1.5"}, "replicas"},
		{[]string{"gate.replicas=0"}, "replicas"},
		{[]string{"gate.port=70000"}, "port"},
		{[]string{"database.mode=external"}, "mode"}, // no such database mode
		{[]string{"database.existingSecret="}, "existingSecret"},
		{[]string{"postgresql.bundled.enabled=maybe"}, "enabled"},
		{[]string{"postgresql.mode=bundled"}, "mode"},
		{[]string{"image.pullPolicy=Sometimes"}, "pullPolicy"},
		{[]string{"manager.logLevel=loud"}, "logLevel"},
		{[]string{"rbac.bindings.admins[0].kind=Robot", "rbac.bindings.admins[0].name=r2"}, "kind"},
		{[]string{"rbac.bindings.viewers[0].kind=ServiceAccount", "rbac.bindings.viewers[0].name=ci"}, "namespace"},
		{[]string{"rbac.bindings.owners[0].kind=User", "rbac.bindings.owners[0].name=me"}, "owners"},
		{[]string{"webhook.certManager.issuerRef.kind=Vault", "webhook.certManager.issuerRef.name=v"}, "kind"},
		{[]string{"unknownTopLevel=1"}, "unknownTopLevel"},
	} {
		out, err := helm(t, templateArgs(c.set...)...)
		if err == nil {
			t.Errorf("--set %v: rendered, want a schema error", c.set)
			continue
		}
		if !strings.Contains(out, "schema") || !strings.Contains(out, c.want) {
			t.Errorf("--set %v: the error does not come from the schema or does not name %q:\n%s", c.set, c.want, out)
		}
	}
	// The same keys with good values render.
	render(t, "manager.replicas=1", "gate.replicas=3", "gate.port=9000", "image.pullPolicy=Always", "manager.logLevel=debug",
		"rbac.bindings.viewers[0].kind=ServiceAccount", "rbac.bindings.viewers[0].name=ci", "rbac.bindings.viewers[0].namespace=ci",
		"webhook.certManager.enabled=true", "webhook.certManager.issuerRef.kind=ClusterIssuer", "webhook.certManager.issuerRef.name=v")
}

// The manager's ClusterRole has exactly the generated rules, and the
// people's roles are those of config/rbac/user_roles.yaml.
func TestRBACMatchesConfig(t *testing.T) {
	needsHelm(t)
	g := NewWithT(t)
	objs := render(t)

	var generated rbacv1.ClusterRole
	readYAML(t, filepath.Join("config", "rbac", "role.yaml"), &generated)
	got := convert[rbacv1.ClusterRole](t, find(t, objs, "ClusterRole", "claiim-manager"))
	g.Expect(got.Rules).To(Equal(generated.Rules),
		"the manager's ClusterRole in the chart differs from config/rbac/role.yaml; run make manifests")

	userRoles := 0
	for _, doc := range splitYAML(t, filepath.Join("config", "rbac", "user_roles.yaml")) {
		var want rbacv1.ClusterRole
		g.Expect(yaml.Unmarshal(doc, &want)).To(Succeed())
		if want.Name == "" {
			continue
		}
		userRoles++
		got := convert[rbacv1.ClusterRole](t, find(t, objs, "ClusterRole", want.Name))
		g.Expect(got.Rules).To(Equal(want.Rules),
			"ClusterRole %s in charts/claiim/templates/user-roles.yaml differs from config/rbac/user_roles.yaml", want.Name)
	}
	g.Expect(userRoles).To(Equal(4))

	// Only the manager is bound by default; the people's bindings come from values.
	crbs := ofKind(objs, "ClusterRoleBinding")
	g.Expect(crbs).To(HaveLen(1))
	crb := convert[rbacv1.ClusterRoleBinding](t, crbs[0])
	g.Expect(crb.RoleRef.Name).To(Equal("claiim-manager"))
	g.Expect(crb.Subjects).To(Equal([]rbacv1.Subject{{Kind: "ServiceAccount", Name: "claiim-manager", Namespace: releaseNS}}))

	role := convert[rbacv1.Role](t, find(t, objs, "Role", "claiim-leader-election"))
	g.Expect(role.Namespace).To(Equal(releaseNS))
	// controller-runtime's leader elector records core events about its
	// Lease; the manager's own events are events.k8s.io.
	g.Expect(role.Rules).To(ConsistOf(
		And(HaveField("APIGroups", []string{"coordination.k8s.io"}), HaveField("Resources", []string{"leases"})),
		And(HaveField("APIGroups", []string{"", "events.k8s.io"}), HaveField("Resources", []string{"events"})),
	))
	rb := convert[rbacv1.RoleBinding](t, find(t, objs, "RoleBinding", "claiim-leader-election"))
	g.Expect(rb.Subjects).To(Equal(crb.Subjects))

	// The gate's objects are the manager's: the chart renders none.
	for _, o := range objs {
		g.Expect(o.GetName()).NotTo(Equal("claiim-gate"), "the chart renders %s claiim-gate; the manager owns the gate's objects (--manage-gate)", o.GetKind())
	}

	// Without user roles nothing of them renders.
	g.Expect(ofKind(render(t, "rbac.createUserRoles=false"), "ClusterRole")).To(HaveLen(1))
}

func TestUserRoleBindings(t *testing.T) {
	needsHelm(t)
	g := NewWithT(t)
	objs := render(t,
		"rbac.bindings.admins[0].kind=Group", "rbac.bindings.admins[0].name=platform-admins",
		"rbac.bindings.approvers[0].kind=User", "rbac.bindings.approvers[0].name=admin@claiim.io",
		"rbac.bindings.approvers[1].kind=User", "rbac.bindings.approvers[1].name=peer@claiim.io",
		"rbac.bindings.viewers[0].kind=ServiceAccount", "rbac.bindings.viewers[0].name=argocd", "rbac.bindings.viewers[0].namespace=argocd",
	)
	for _, c := range []struct {
		name, role string
		subjects   []rbacv1.Subject
	}{
		{"claiim-admins", "claiim-admin", []rbacv1.Subject{{Kind: "Group", APIGroup: rbacv1.GroupName, Name: "platform-admins"}}},
		{"claiim-approvers", "claiim-approver", []rbacv1.Subject{
			{Kind: "User", APIGroup: rbacv1.GroupName, Name: "admin@claiim.io"}, {Kind: "User", APIGroup: rbacv1.GroupName, Name: "peer@claiim.io"}}},
		{"claiim-viewers", "claiim-viewer", []rbacv1.Subject{{Kind: "ServiceAccount", Name: "argocd", Namespace: "argocd"}}},
	} {
		crb := convert[rbacv1.ClusterRoleBinding](t, find(t, objs, "ClusterRoleBinding", c.name))
		g.Expect(crb.RoleRef).To(Equal(rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: c.role}))
		g.Expect(crb.Subjects).To(Equal(c.subjects), c.name)
	}
	// Nobody is bound to grant approvals.
	g.Expect(ofKind(objs, "ClusterRoleBinding")).To(HaveLen(4))
}

// The webhook configurations are config/webhook/manifests.yaml's, pointed
// at the chart's Service.
func TestWebhooksMatchConfig(t *testing.T) {
	needsHelm(t)
	g := NewWithT(t)
	docs := splitYAML(t, filepath.Join("config", "webhook", "manifests.yaml"))
	var wantM admissionv1.MutatingWebhookConfiguration
	var wantV admissionv1.ValidatingWebhookConfiguration
	for _, d := range docs {
		var tm struct{ Kind string }
		g.Expect(yaml.Unmarshal(d, &tm)).To(Succeed())
		switch tm.Kind {
		case "MutatingWebhookConfiguration":
			g.Expect(yaml.Unmarshal(d, &wantM)).To(Succeed())
		case "ValidatingWebhookConfiguration":
			g.Expect(yaml.Unmarshal(d, &wantV)).To(Succeed())
		}
	}
	g.Expect(wantM.Webhooks).NotTo(BeEmpty())
	g.Expect(wantV.Webhooks).NotTo(BeEmpty())
	retarget := func(c *admissionv1.WebhookClientConfig) {
		c.Service.Name, c.Service.Namespace, c.Service.Port = "claiim-webhook-service", releaseNS, ptr.To[int32](443)
		c.CABundle = nil
	}
	for i := range wantM.Webhooks {
		retarget(&wantM.Webhooks[i].ClientConfig)
	}
	for i := range wantV.Webhooks {
		retarget(&wantV.Webhooks[i].ClientConfig)
	}

	for _, set := range [][]string{nil, {"webhook.certManager.enabled=true"}} {
		objs := render(t, set...)
		gotM := convert[admissionv1.MutatingWebhookConfiguration](t, find(t, objs, "MutatingWebhookConfiguration", "claiim-mutating-webhook-configuration"))
		gotV := convert[admissionv1.ValidatingWebhookConfiguration](t, find(t, objs, "ValidatingWebhookConfiguration", "claiim-validating-webhook-configuration"))
		for i := range gotM.Webhooks {
			gotM.Webhooks[i].ClientConfig.CABundle = nil
		}
		for i := range gotV.Webhooks {
			gotV.Webhooks[i].ClientConfig.CABundle = nil
		}
		g.Expect(gotM.Webhooks).To(ConsistOf(toElems(wantM.Webhooks)...),
			"the mutating webhooks of charts/claiim/templates/webhook.yaml differ from config/webhook/manifests.yaml (make manifests)")
		g.Expect(gotV.Webhooks).To(ConsistOf(toElems(wantV.Webhooks)...),
			"the validating webhooks of charts/claiim/templates/webhook.yaml differ from config/webhook/manifests.yaml (make manifests)")

		svc := convert[corev1.Service](t, find(t, objs, "Service", "claiim-webhook-service"))
		g.Expect(svc.Spec.Ports).To(HaveExactElements(And(HaveField("Port", int32(443)), HaveField("TargetPort.StrVal", "webhook-server"))))
		dep := convert[appsv1.Deployment](t, find(t, objs, "Deployment", "claiim-manager"))
		g.Expect(dep.Spec.Template.Labels).To(HaveKeyWithValue("app.kubernetes.io/component", "manager"))
		for k, v := range svc.Spec.Selector {
			g.Expect(dep.Spec.Template.Labels).To(HaveKeyWithValue(k, v), "the webhook Service does not select the manager's pods")
		}
		g.Expect(dep.Spec.Template.Spec.Containers[0].Ports).To(ContainElement(And(HaveField("Name", "webhook-server"), HaveField("ContainerPort", int32(9443)))))
	}
}

func toElems[T any](s []T) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = Equal(v)
	}
	return out
}

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
		{nil, image, "claiim-database", "claiim-database", 2, 2},
		{[]string{"image.tag=v9.9.9", "manager.replicas=3", "gate.replicas=5", "database.existingSecret=chron"}, "ghcr.io/claiim/claiim:v9.9.9", "chron", "chron", 3, 5},
		{[]string{"image.digest=sha256:" + strings.Repeat("ab", 32), "gate.databaseSecret=chron-gate"}, "ghcr.io/claiim/claiim@sha256:" + strings.Repeat("ab", 32), "claiim-database", "chron-gate", 2, 2},
		{[]string{"postgresql.bundled.enabled=true"}, image, "claiim-postgresql", "claiim-postgresql", 2, 2},
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
			"--gate-url=http://claiim-gate." + releaseNS + ".svc:8181/v",
			"--manage-gate",
			"--gate-image=" + c.image,
			fmt.Sprintf("--gate-replicas=%d", c.gateReplicas),
			"--gate-port=8181",
			"--gate-database-secret=" + c.gateDB,
			"--webhook-cert-dir=/tmp/k8s-webhook-server/serving-certs",
			"--webhook-cert-secret=claiim-webhook-tls",
			"--webhook-service=claiim-webhook-service",
			"--webhook-mutating-configuration=claiim-mutating-webhook-configuration",
			"--webhook-validating-configuration=claiim-validating-webhook-configuration",
			"--zap-log-level=info",
		}), "%v", c.set)
		g.Expect(m.Env).To(ContainElements(
			corev1.EnvVar{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
			corev1.EnvVar{Name: "DATABASE_URL", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: c.db}, Key: "DATABASE_URL"}}},
			corev1.EnvVar{Name: "CLAIIM_MANAGER_USERNAME", Value: "system:serviceaccount:" + releaseNS + ":claiim-manager"},
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
	g.Expect(ofKind(objs, "Secret")).To(BeEmpty())
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
	g.Expect(ofKind(objs, "Secret")).To(BeEmpty(), "cert-manager writes the serving certificate; the chart must not")

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

// Every object the chart templates carries the standard labels.
func TestLabels(t *testing.T) {
	needsHelm(t)
	var chart struct{ Version, AppVersion string }
	readYAML(t, filepath.Join("charts", "claiim", "Chart.yaml"), &chart)
	want := map[string]string{
		"app.kubernetes.io/name":       "claiim",
		"app.kubernetes.io/instance":   releaseName,
		"app.kubernetes.io/version":    chart.AppVersion,
		"app.kubernetes.io/managed-by": "Helm",
		"helm.sh/chart":                "claiim-" + chart.Version,
	}
	for _, set := range [][]string{nil, {"webhook.certManager.enabled=true"}, {"postgresql.bundled.enabled=true"},
		{"rbac.bindings.admins[0].kind=User", "rbac.bindings.admins[0].name=a"}} {
		for _, o := range render(t, set...) {
			if o.GetKind() == "CustomResourceDefinition" { // copies of config/crd/bases
				continue
			}
			for k, v := range want {
				if got := o.GetLabels()[k]; got != v {
					t.Errorf("%v: %s %s: label %s=%q, want %q", set, o.GetKind(), o.GetName(), k, got, v)
				}
			}
		}
	}
}

func readYAML(t *testing.T, rel string, into any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), rel))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, into); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
}

// splitYAML returns the documents of a multi-document YAML file.
func splitYAML(t *testing.T, rel string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), rel))
	if err != nil {
		t.Fatal(err)
	}
	var docs [][]byte
	for _, d := range strings.Split("\n"+string(b), "\n---") {
		if strings.TrimSpace(d) != "" {
			docs = append(docs, []byte(d))
		}
	}
	return docs
}
