package chart

import (
	"bytes"
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
		args := []string{"lint", "--strict", chartDir(), "--namespace", releaseNS, "--set", "database.host=" + testDBHost}
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
		{[]string{"gate.resources.limits.gpu=1"}, "gpu"},
		{[]string{"gate.resources.requests.cpu=lots"}, "cpu"},
		{[]string{"database.mode=external"}, "mode"}, // no such database mode
		{[]string{"database.existingSecret="}, "existingSecret"},
		{[]string{"database.gate.role=chron_gate_writer"}, "role"}, // a group role is not a login
		{[]string{"database.manager.role=Manager"}, "role"},
		{[]string{"database.sslmode=maybe"}, "sslmode"},
		{[]string{"database.host=db:5432"}, "host"},
		{[]string{"migration.backoffLimit=-1"}, "backoffLimit"},
		{[]string{"postgresql.bundled.enabled=maybe"}, "enabled"},
		{[]string{"postgresql.mode=bundled"}, "mode"},
		{[]string{"image.pullPolicy=Sometimes"}, "pullPolicy"},
		{[]string{"manager.logLevel=loud"}, "logLevel"},
		{[]string{"manager.pimPendingTTL=a day"}, "pimPendingTTL"},
		{[]string{"rbac.bindings.admins[0].kind=Robot", "rbac.bindings.admins[0].name=r2"}, "kind"},
		{[]string{"rbac.bindings.viewers[0].kind=ServiceAccount", "rbac.bindings.viewers[0].name=ci"}, "namespace"},
		{[]string{"rbac.bindings.owners[0].kind=User", "rbac.bindings.owners[0].name=me"}, "owners"},
		{[]string{"webhook.certManager.issuerRef.kind=Vault", "webhook.certManager.issuerRef.name=v"}, "kind"},
		{[]string{"console.replicas=-1"}, "replicas"},
		{[]string{"console.service.type=ExternalName"}, "type"},
		{[]string{"console.tls.secretName=Not_A_Name"}, "secretName"},
		{[]string{"console.sessions=redis"}, "sessions"},
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
	render(t, "manager.replicas=1", "gate.replicas=3", "console.replicas=2", "console.service.type=LoadBalancer", "console.tls.secretName=console-tls", "gate.port=9000", "image.pullPolicy=Always", "manager.logLevel=debug",
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
	g.Expect(userRoles).To(Equal(6))

	// The console's own identity, and what its verify reads.
	var consoleRole rbacv1.ClusterRole
	readYAML(t, filepath.Join("config", "rbac", "console_role.yaml"), &consoleRole)
	g.Expect(convert[rbacv1.ClusterRole](t, find(t, objs, "ClusterRole", consoleRole.Name)).Rules).To(Equal(consoleRole.Rules),
		"ClusterRole claiim-console in charts/claiim/templates/console.yaml differs from config/rbac/console_role.yaml")
	var consoleChron rbacv1.Role
	g.Expect(yaml.Unmarshal(splitYAML(t, filepath.Join("config", "console", "chron_role.yaml"))[0], &consoleChron)).To(Succeed())
	g.Expect(convert[rbacv1.Role](t, find(t, objs, "Role", consoleChron.Name)).Rules).To(Equal(consoleChron.Rules),
		"Role claiim-console-chron in charts/claiim/templates/console.yaml differs from config/console/chron_role.yaml")

	var reader rbacv1.ClusterRole
	readYAML(t, filepath.Join("config", "rbac", "metrics_reader_role.yaml"), &reader)
	g.Expect(convert[rbacv1.ClusterRole](t, find(t, objs, "ClusterRole", reader.Name)).Rules).To(Equal(reader.Rules),
		"ClusterRole claiim-metrics-reader in charts/claiim/templates/metrics-reader.yaml differs from config/rbac/metrics_reader_role.yaml")

	// Only the manager and the console are bound by default; the people's
	// bindings come from values.
	g.Expect(ofKind(objs, "ClusterRoleBinding")).To(HaveLen(2))
	crb := convert[rbacv1.ClusterRoleBinding](t, find(t, objs, "ClusterRoleBinding", "claiim-manager"))
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
	g.Expect(ofKind(render(t, "rbac.createUserRoles=false", "rbac.createMetricsReaderRole=false", "console.enabled=false"), "ClusterRole")).To(HaveLen(1))
}

func TestUserRoleBindings(t *testing.T) {
	needsHelm(t)
	g := NewWithT(t)
	objs := render(t,
		"rbac.bindings.admins[0].kind=Group", "rbac.bindings.admins[0].name=platform-admins",
		"rbac.bindings.approvers[0].kind=User", "rbac.bindings.approvers[0].name=admin@claiim.io",
		"rbac.bindings.approvers[1].kind=User", "rbac.bindings.approvers[1].name=peer@claiim.io",
		"rbac.bindings.viewers[0].kind=ServiceAccount", "rbac.bindings.viewers[0].name=argocd", "rbac.bindings.viewers[0].namespace=argocd",
		"rbac.bindings.auditors[0].kind=Group", "rbac.bindings.auditors[0].name=auditors",
		"rbac.bindings.actionApprovers[0].kind=Group", "rbac.bindings.actionApprovers[0].name=payment-approvers",
	)
	for _, c := range []struct {
		name, role string
		subjects   []rbacv1.Subject
	}{
		{"claiim-admins", "claiim-admin", []rbacv1.Subject{{Kind: "Group", APIGroup: rbacv1.GroupName, Name: "platform-admins"}}},
		{"claiim-approvers", "claiim-approver", []rbacv1.Subject{
			{Kind: "User", APIGroup: rbacv1.GroupName, Name: "admin@claiim.io"}, {Kind: "User", APIGroup: rbacv1.GroupName, Name: "peer@claiim.io"}}},
		{"claiim-viewers", "claiim-viewer", []rbacv1.Subject{{Kind: "ServiceAccount", Name: "argocd", Namespace: "argocd"}}},
		{"claiim-auditors", "claiim-auditor", []rbacv1.Subject{{Kind: "Group", APIGroup: rbacv1.GroupName, Name: "auditors"}}},
		{"claiim-action-approvers", "claiim-action-approver", []rbacv1.Subject{{Kind: "Group", APIGroup: rbacv1.GroupName, Name: "payment-approvers"}}},
	} {
		crb := convert[rbacv1.ClusterRoleBinding](t, find(t, objs, "ClusterRoleBinding", c.name))
		g.Expect(crb.RoleRef).To(Equal(rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: c.role}))
		g.Expect(crb.Subjects).To(Equal(c.subjects), c.name)
	}
	// Nobody is bound to grant approvals; the manager and the console are.
	g.Expect(ofKind(objs, "ClusterRoleBinding")).To(HaveLen(7))
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
