package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// managerArg returns the value of the manager's --NAME=VALUE argument.
func (c *cluster) managerArg(t *testing.T, name string) string {
	t.Helper()
	args := c.kubectl("-n", ns, "get", "deploy/claiim-manager", "-o", "jsonpath={.spec.template.spec.containers[0].args}")
	var list []string
	if err := json.Unmarshal([]byte(args), &list); err != nil {
		t.Fatal(err)
	}
	for _, a := range list {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
	}
	t.Fatalf("the manager has no --%s", name)
	return ""
}

// certRenewed deletes the webhook's certificate Secret, as a forced
// renewal: the leader issues a new one and injects its CA, and every
// replica (not only the leader) then serves a certificate under it, so
// admissions through the Service work whichever pod they reach.
func (c *cluster) certRenewed(t *testing.T) {
	secret, svc := c.managerArg(t, "webhook-cert-secret"), c.managerArg(t, "webhook-service")
	vwc := release + "-validating-webhook-configuration"
	bundle := func() string {
		return c.kubectl("get", "validatingwebhookconfiguration", vwc, "-o", "jsonpath={.webhooks[0].clientConfig.caBundle}")
	}
	old := bundle()
	c.kubectl("-n", ns, "delete", "secret", secret)
	var pool *x509.CertPool
	eventually(t, func(g Gomega) {
		now := bundle()
		g.Expect(now).NotTo(Equal(old), "the CA bundle in %s is still the old one", vwc)
		pem, err := base64.StdEncoding.DecodeString(now)
		g.Expect(err).NotTo(HaveOccurred())
		pool = x509.NewCertPool()
		g.Expect(pool.AppendCertsFromPEM(pem)).To(BeTrue())
	}, 2*time.Minute)
	ips := strings.Fields(c.kubectl("-n", ns, "get", "pods", "-l", "app.kubernetes.io/component=manager",
		"--field-selector=status.phase=Running", "-o", "jsonpath={.items[*].status.podIP}"))
	if len(ips) != 2 {
		t.Fatalf("want 2 running manager pods, have %v", ips)
	}
	for _, ip := range ips {
		eventually(t, func(g Gomega) {
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", net.JoinHostPort(ip, "9443"),
				&tls.Config{RootCAs: pool, ServerName: svc + "." + ns + ".svc", MinVersion: tls.VersionTLS12})
			g.Expect(err).NotTo(HaveOccurred(), "manager pod %s does not serve the renewed certificate", ip)
			_ = conn.Close()
		}, 2*time.Minute)
	}
	// Admission through the Service, several times so both replicas answer.
	for range 6 {
		if _, err := c.as(admin, "apply", "--dry-run=server", "-k", "config/samples"); err != nil {
			t.Fatal(err)
		}
	}
}

// podSecurity: the manager's and the gate's pods run the image as built,
// non-root (runAsNonRoot without a runAsUser: the kubelet starts them only
// because the image's user is not root) on a read-only root filesystem.
func (c *cluster) podSecurity(t *testing.T) {
	for _, component := range []string{"manager", "gate", "console"} {
		var pods corev1.PodList
		if err := json.Unmarshal([]byte(c.kubectl("-n", ns, "get", "pods", "-l", "app.kubernetes.io/component="+component, "-o", "json")), &pods); err != nil {
			t.Fatal(err)
		}
		if len(pods.Items) == 0 {
			t.Fatalf("no %s pods", component)
		}
		for _, p := range pods.Items {
			psc := p.Spec.SecurityContext
			for _, ctr := range p.Spec.Containers {
				sc := ctr.SecurityContext
				nonRoot := (sc != nil && sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) || (psc != nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot)
				if !nonRoot || (sc != nil && sc.RunAsUser != nil) || (psc != nil && psc.RunAsUser != nil) {
					t.Errorf("%s/%s: want runAsNonRoot and the image's own user", p.Name, ctr.Name)
				}
				if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
					t.Errorf("%s/%s: the root filesystem is writable", p.Name, ctr.Name)
				}
				if !strings.HasPrefix(ctr.Image, image+":") {
					t.Errorf("%s/%s runs %s, not the image built here", p.Name, ctr.Name, ctr.Image)
				}
			}
			if p.Status.Phase != corev1.PodRunning {
				t.Errorf("%s is %s", p.Name, p.Status.Phase)
			}
		}
	}
}

// networkPolicy checks the policy object the manager keeps for the gate.
// The cluster's bridge plugin does not enforce NetworkPolicy (docs/e2e.md):
// its content is what can be checked here.
func (c *cluster) networkPolicy(t *testing.T) {
	var np networkingv1.NetworkPolicy
	if err := json.Unmarshal([]byte(c.kubectl("-n", ns, "get", "networkpolicy", "claiim-gate", "-o", "json")), &np); err != nil {
		t.Fatal(err)
	}
	if got := np.Spec.PodSelector.MatchLabels["app.kubernetes.io/component"]; got != "gate" {
		t.Errorf("the policy selects %v, not the gate's pods", np.Spec.PodSelector.MatchLabels)
	}
	if len(np.Spec.Ingress) != 2 || len(np.Spec.Ingress[0].From) != 1 || np.Spec.Ingress[0].From[0].NamespaceSelector == nil ||
		np.Spec.Ingress[0].From[0].NamespaceSelector.MatchLabels["claiim.io/agents"] != "true" ||
		len(np.Spec.Ingress[0].Ports) != 1 || np.Spec.Ingress[0].Ports[0].Port.IntValue() != 8181 {
		t.Errorf("want the gate's port open only to namespaces labelled claiim.io/agents=true, got %+v", np.Spec.Ingress)
	}
	if got := c.kubectl("get", "namespace", "default", "-o", "jsonpath={.metadata.labels.claiim\\.io/agents}"); got != "true" {
		t.Errorf("the agent's namespace is not labelled claiim.io/agents=true (%q)", got)
	}
}

// kustomizeInstall replaces the Helm release with config/default, as
// docs/install.md says, on the same database and namespace, and checks
// that admissions and the gate work again.
func (c *cluster) kustomizeInstall(t *testing.T) {
	if out, err := c.helmRun("uninstall", release, "-n", ns, "--wait"); err != nil {
		t.Fatal(err)
	} else {
		t.Log(out)
	}
	// The four Secrets docs/install.md has the user create first.
	for _, s := range []struct{ name, url string }{
		{"claiim-database", c.pgURL},
		{"claiim-chron-gate", c.roleURL("claiim_gate", "gate-e2e-0123456789")},
		{"claiim-chron-manager", c.roleURL("claiim_manager", "manager-e2e-0123456789")},
		{"claiim-chron-reader", c.roleURL("claiim_reader", "reader-e2e-0123456789")},
	} {
		_, _ = c.as("", "-n", ns, "delete", "secret", s.name, "--ignore-not-found")
		c.kubectl("-n", ns, "create", "secret", "generic", s.name, "--from-literal=DATABASE_URL="+s.url)
	}
	// An overlay, as a user writes one: this cluster's image.
	dir := t.TempDir()
	rel, err := filepath.Rel(dir, filepath.Join(c.root, "config", "default"))
	if err != nil {
		t.Fatal(err)
	}
	overlay := `resources: [` + rel + `]
images: [{name: ghcr.io/claiim/claiim, newName: ` + image + `, newTag: dev}]
patches:
- patch: |
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: claiim-manager, namespace: claiim-system}
    spec: {template: {spec: {containers: [{name: manager, env: [{name: CLAIIM_IMAGE, value: "` + image + `:dev"}]}]}}}
`
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(overlay), 0o600); err != nil {
		t.Fatal(err)
	}
	c.kubectl("apply", "--server-side", "--force-conflicts", "-k", dir)
	c.kubectl("-n", ns, "wait", "--for=condition=Complete", "job/claiim-chron-migrate", "--timeout=3m")
	c.kubectl("-n", ns, "rollout", "status", "deploy/claiim-manager", "--timeout=3m")
	// The kustomize install has the roles; who holds them is the user's call.
	for _, role := range []string{"claiim-admin", "claiim-approver"} {
		c.kubectl("create", "clusterrolebinding", "e2e-"+role, "--clusterrole="+role, "--user="+admin, "--user="+peer)
	}
	c.elevate(t)
	eventually(t, func(g Gomega) {
		img, err := c.as("", "-n", ns, "get", "deploy/claiim-gate", "-o", "jsonpath={.spec.template.spec.containers[0].image}")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(img).To(Equal(image + ":dev"))
	}, 2*time.Minute)
	c.kubectl("-n", ns, "rollout", "status", "deploy/claiim-gate", "--timeout=3m")
	c.finish(t, c.startLoad(t, 2))
}

func (c *cluster) roleURL(role, password string) string {
	return "postgres://" + role + ":" + password + "@" + nodeIP + ":" + strconv.Itoa(c.pg.Port()) + "/claiim?sslmode=disable"
}
