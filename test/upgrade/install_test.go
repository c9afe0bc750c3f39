package upgrade

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/controllers"
	"github.com/claiim/claiim-operator/test/pgtest"
	"github.com/claiim/claiim-operator/test/testenv"
)

// The install's identities and names, as the chart's defaults have them.
const (
	systemNS    = "claiim-system"
	managerUser = "system:serviceaccount:" + systemNS + ":claiim-manager"
	gateUser    = "system:serviceaccount:" + systemNS + ":claiim-gate"
	adminUser   = "admin@claiim.io"
	peerUser    = "peer@claiim.io"
	rootUser    = "upgrade-root" // system:masters: the person running the upgrade, and the auditor verifying Chron
	// The gate URL written into token Secrets; the load routes itself.
	gateURL   = "http://claiim-gate." + systemNS + ".svc:8181/v"
	agentNS   = "default"
	agentName = "prod-deploy-bot" // the seed's agent (config/samples)
)

// cluster is the first release installed: its CRDs, RBAC and webhooks in
// an envtest apiserver, PostgreSQL, and (started by the test) its manager
// and gate, each with the one database URL the first release gave both.
type cluster struct {
	t           *testing.T
	ctx         context.Context
	dir         string
	env         *envtest.Environment
	root        client.Client // system:masters
	as          map[string]client.Client
	kubeconfig  map[string]string // user → file
	ownerURL    string            // the first release's DATABASE_URL: the database's owner
	owner       *pgxpool.Pool
	webhookAddr string
	gates       map[string]string // base URL → replica, for the summary
	suffix      string            // of the database's and the login roles' names
}

func install(t *testing.T) *cluster {
	t.Helper()
	c := &cluster{t: t, ctx: context.Background(), dir: t.TempDir(), as: map[string]client.Client{},
		kubeconfig: map[string]string{}, gates: map[string]string{}}
	c.env = &envtest.Environment{
		CRDDirectoryPaths: []string{filepath.Join(oldTree, "config", "crd", "bases")}, ErrorIfCRDPathMissing: true,
		Scheme: testenv.Scheme(),
		// As the first release's `make dev` installed its webhooks.
		WebhookInstallOptions: envtest.WebhookInstallOptions{Paths: []string{filepath.Join(oldTree, "config", "webhook")}, LocalServingHost: "127.0.0.1"},
	}
	c.env.ControlPlane.GetAPIServer().Configure().Set("authorization-mode", "RBAC")
	cfg, err := testenv.Start(c.env)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.env.Stop() })
	wio := c.env.WebhookInstallOptions
	c.webhookAddr = net.JoinHostPort(wio.LocalServingHost, strconv.Itoa(wio.LocalServingPort))
	if c.root, err = client.New(cfg, client.Options{Scheme: testenv.Scheme()}); err != nil {
		t.Fatal(err)
	}
	c.applyRBAC(oldTree)
	if err := c.root.Create(c.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: systemNS}}); err != nil {
		t.Fatal(err)
	}
	users := map[string]struct {
		groups []string
		roles  []string
	}{
		managerUser: {[]string{"system:serviceaccounts", "system:authenticated"}, []string{"claiim-manager"}},
		gateUser:    {[]string{"system:serviceaccounts", "system:authenticated"}, []string{"claiim-gate"}},
		adminUser:   {[]string{"system:authenticated"}, []string{"claiim-admin"}},
		peerUser:    {[]string{"system:authenticated"}, []string{"claiim-admin", "claiim-approver"}},
		rootUser:    {[]string{"system:masters"}, nil},
	}
	for name, u := range users {
		au, err := c.env.AddUser(envtest.User{Name: name, Groups: u.groups}, nil)
		if err != nil {
			t.Fatal(err)
		}
		kc, err := au.KubeConfig()
		if err != nil {
			t.Fatal(err)
		}
		c.kubeconfig[name] = filepath.Join(c.dir, "kubeconfig-"+strconv.Itoa(len(c.kubeconfig)))
		if err := os.WriteFile(c.kubeconfig[name], kc, 0o600); err != nil {
			t.Fatal(err)
		}
		if c.as[name], err = client.New(au.Config(), client.Options{Scheme: testenv.Scheme()}); err != nil {
			t.Fatal(err)
		}
		if err := testenv.Bind(c.ctx, c.root, name, u.roles...); err != nil {
			t.Fatal(err)
		}
	}
	pg, err := pgtest.Start(c.ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Stop)
	// Names of their own: $CLAIIM_TEST_DATABASE_URL may be a shared server.
	c.suffix = strconv.FormatInt(time.Now().UnixNano(), 36)
	if c.ownerURL, err = pg.CreateDatabase(c.ctx, "claiim_upgrade_"+c.suffix); err != nil {
		t.Fatal(err)
	}
	if c.owner, err = pgxpool.New(c.ctx, c.ownerURL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.owner.Close)
	return c
}

// applyRBAC creates or updates the ClusterRoles of tree's config/rbac, as
// the chart's templates do on install and upgrade.
func (c *cluster) applyRBAC(tree string) {
	c.t.Helper()
	for _, f := range []string{"role.yaml", "user_roles.yaml", "gate_role.yaml"} {
		if err := apply(c.ctx, c.root, filepath.Join(tree, "config", "rbac", f)); err != nil {
			c.t.Fatal(err)
		}
	}
}

// apply creates every object of a YAML file, or updates it to the file's
// content when it exists.
func apply(ctx context.Context, c client.Client, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("reading %s: %w", path, err)
		}
		if len(u.Object) == 0 {
			continue
		}
		live := &unstructured.Unstructured{}
		live.SetGroupVersionKind(u.GroupVersionKind())
		switch err := c.Get(ctx, client.ObjectKeyFromObject(u), live); {
		case apierrors.IsNotFound(err):
			err = c.Create(ctx, u)
			if err != nil {
				return fmt.Errorf("creating %s %s: %w", u.GetKind(), u.GetName(), err)
			}
		case err != nil:
			return err
		default:
			u.SetResourceVersion(live.GetResourceVersion())
			if err := c.Update(ctx, u); err != nil {
				return fmt.Errorf("updating %s %s: %w", u.GetKind(), u.GetName(), err)
			}
		}
	}
}

// startManager runs a release's manager as its pod would, serving the
// webhooks envtest installed; extra are the release's own flags.
func (c *cluster) startManager(name, bin, dbURL string, extra ...string) *proc {
	c.t.Helper()
	probe := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(c.t)))
	wio := c.env.WebhookInstallOptions
	args := append([]string{"manager", "--metrics-bind-address=0", "--health-probe-bind-address=" + probe,
		"--webhook-host=" + wio.LocalServingHost, "--webhook-port=" + strconv.Itoa(wio.LocalServingPort), "--webhook-cert-dir=" + wio.LocalServingCertDir,
		"--manager-username=" + managerUser, "--gate-url=" + gateURL}, extra...)
	p := run(c.t, c.dir, name, bin, []string{"KUBECONFIG=" + c.kubeconfig[managerUser], "DATABASE_URL=" + dbURL,
		"POD_NAMESPACE=" + systemNS, "POD_NAME=claiim-manager-" + name}, args...)
	p.waitReady(c.t, "ready", httpOK("http://"+probe+"/readyz"))
	p.waitReady(c.t, "serves its webhooks", servesTLS(c.webhookAddr))
	return p
}

// gate is one gate process and the base URL it serves.
type gate struct {
	*proc
	base string
}

// startGate runs a release's gate as its pod would and waits until ready.
func (c *cluster) startGate(name, bin, dbURL string, extra ...string) *gate {
	c.t.Helper()
	port := freePort(c.t)
	g := &gate{base: fmt.Sprintf("http://127.0.0.1:%d", port)}
	c.gates[g.base] = name
	args := append([]string{"gate", fmt.Sprintf("--listen=127.0.0.1:%d", port), "--metrics-bind-address=0", "--replica=" + name}, extra...)
	g.proc = run(c.t, c.dir, name, bin, []string{"KUBECONFIG=" + c.kubeconfig[gateUser], "DATABASE_URL=" + dbURL}, args...)
	g.waitReady(c.t, "ready", httpOK(g.base+"/ready"))
	return g
}

// seed is the onboarding of the first release's README, steps 3-9, as its
// rehearsal ran it: admin asks for a PIM session, peer approves, admin
// applies config/samples (org, skill, policy, agent). It returns what the
// agent's workload reads from its token Secret.
func (c *cluster) seed() creds {
	c.t.Helper()
	c.elevate()
	for _, f := range []string{"aiorg", "skill", "policy", "agent"} {
		o := c.decode(filepath.Join(oldTree, "config", "samples", "claiim_v1alpha1_"+f+".yaml"))
		if err := c.as[adminUser].Create(c.ctx, o); err != nil {
			c.t.Fatalf("admin creates %s: %v", f, err)
		}
	}
	return c.readSecret(func(*corev1.Secret) error { return nil })
}

// elevate is the seed's steps 3-4: admin requests a PIM session (the
// first release's sample), peer approves it, and it turns Active.
func (c *cluster) elevate() {
	c.t.Helper()
	pim := c.decode(filepath.Join(oldTree, "config", "samples", "claiim_v1alpha1_pimrequest.yaml"))
	admin, peer := c.as[adminUser], c.as[peerUser]
	if err := admin.Create(c.ctx, pim); err != nil {
		c.t.Fatalf("admin's PIMRequest: %v", err)
	}
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := peer.Get(c.ctx, client.ObjectKeyFromObject(pim), pim); err != nil {
			return err
		}
		ann := pim.GetAnnotations()
		if ann == nil {
			ann = map[string]string{}
		}
		ann[claiimv1.AnnotationApprove] = "Approved: initial onboarding"
		pim.SetAnnotations(ann)
		return peer.Update(c.ctx, pim)
	}); err != nil {
		c.t.Fatalf("peer's approval: %v", err)
	}
	eventually(c.t, time.Minute, "the PIM session is Active", func() error {
		if err := admin.Get(c.ctx, client.ObjectKeyFromObject(pim), pim); err != nil {
			return err
		}
		if phase, _, _ := unstructured.NestedString(pim.Object, "status", "phase"); phase != string(claiimv1.PIMActive) {
			return fmt.Errorf("phase %q", phase)
		}
		return nil
	})
}

// readSecret is the workload (re)starting: it reads the agent's token
// Secret once ok accepts it.
func (c *cluster) readSecret(ok func(*corev1.Secret) error) creds {
	c.t.Helper()
	sec := &corev1.Secret{}
	key := client.ObjectKey{Namespace: agentNS, Name: controllers.TokenSecretName(agentName)}
	eventually(c.t, time.Minute, "the agent's token Secret", func() error {
		if err := c.root.Get(c.ctx, key, sec); err != nil {
			return err
		}
		if len(sec.Data[claiimv1.SecretKeyAgentToken]) == 0 || len(sec.Data[claiimv1.SecretKeySkillVersionID]) == 0 {
			return errors.New("no token or skill version in it yet")
		}
		return ok(sec)
	})
	return creds{token: string(sec.Data[claiimv1.SecretKeyAgentToken]), svID: string(sec.Data[claiimv1.SecretKeySkillVersionID])}
}

func (c *cluster) decode(path string) *unstructured.Unstructured {
	c.t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		c.t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096).Decode(&u.Object); err != nil {
		c.t.Fatalf("%s: %v", path, err)
	}
	return u
}

// roleURLs are the login roles `claiim chron migrate` makes, as the
// chart's generated Secrets hold them: the owner's URL with another user.
func (c *cluster) roleURLs() map[string]string {
	u, err := url.Parse(c.ownerURL)
	if err != nil {
		c.t.Fatal(err)
	}
	out := map[string]string{}
	for _, what := range []string{"gate", "manager", "reader"} {
		ru := *u
		ru.User = url.UserPassword("claiim_"+what+"_"+c.suffix, "upgrade-"+what+"-"+strconv.FormatInt(time.Now().UnixNano(), 36))
		out[what] = ru.String()
	}
	return out
}
