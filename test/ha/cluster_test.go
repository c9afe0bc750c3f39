package ha

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/claiim/claiim-operator/test/pgtest"
	"github.com/claiim/claiim-operator/test/testenv"
)

// What config/default installs, and the manager's identity there.
const (
	namespace   = "claiim-system"
	managerUser = "system:serviceaccount:" + namespace + ":claiim-manager"
	certSecret  = "claiim-webhook-tls"
	service     = "claiim-webhook-service"
	mutating    = "claiim-mutating-webhook-configuration"
	leaseName   = "claiim-manager.claiim.io"
	adminUser   = "admin@claiim.io"
	peerUser    = "peer@claiim.io"
)

// Webhook certificate lifetimes (validity, renew before, CA validity)
// shortened so the real renewal path runs in seconds: renewals every 8 s
// and a CA rollover within a minute; or, where the leader dies, a renew
// window longer than a leader failover (Lease 15 s + retry 2 s), as the
// production one (30 days) is.
const (
	fastRenewals      = "20s,12s,60s"
	survivesFailovers = "60s,40s,180s"
)

// cluster is a kube-apiserver that routes a webhook Service to its
// EndpointSlices (as in a cluster, with --enable-aggregator-routing since
// envtest has no kube-proxy), config/default installed but for the
// Deployment, PostgreSQL, and the people who use it.
type cluster struct {
	t          *testing.T
	admin      client.Client // system:masters
	as         map[string]client.Client
	dir        string
	hostIP     string // replicas serve here: EndpointSlices take no loopback address
	dbURL      string
	kubeconfig string // the manager's ServiceAccount
	lifetimes  string // of the webhook certificate
}

func newCluster(t *testing.T, lifetimes string) *cluster {
	t.Helper()
	ctx := context.Background()
	c := &cluster{t: t, dir: t.TempDir(), as: map[string]client.Client{}, hostIP: hostIP(t), lifetimes: lifetimes}
	env := testenv.New()
	env.ControlPlane.GetAPIServer().Configure().Set("enable-aggregator-routing", "true")
	cfg, err := testenv.Start(env)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	if c.admin, err = client.New(cfg, client.Options{Scheme: testenv.Scheme()}); err != nil {
		t.Fatal(err)
	}
	pg, err := pgtest.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Stop)
	if c.dbURL, err = pg.CreateDatabase(ctx, "claiim"); err != nil {
		t.Fatal(err)
	}
	// What the install's migration Job does before the managers start.
	if out, err := exec.Command(binary, "chron", "migrate", "--database-url="+c.dbURL).CombinedOutput(); err != nil {
		t.Fatalf("claiim chron migrate: %v\n%s", err, out)
	}
	c.install(ctx)

	u, err := env.AddUser(envtest.User{Name: managerUser, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"}}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := u.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	c.kubeconfig = filepath.Join(c.dir, "kubeconfig-manager")
	if err := os.WriteFile(c.kubeconfig, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	for user, roles := range map[string][]string{adminUser: {"claiim-admin"}, peerUser: {"claiim-admin", "claiim-approver"}} {
		u, err := env.AddUser(envtest.User{Name: user, Groups: []string{"system:authenticated"}}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := testenv.Bind(ctx, c.admin, user, roles...); err != nil {
			t.Fatal(err)
		}
		if c.as[user], err = client.New(u.Config(), client.Options{Scheme: testenv.Scheme()}); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// install creates what `kubectl apply -k config/default` would, but the
// Deployment (no kubelet here: the test runs the replicas itself).
func (c *cluster) install(ctx context.Context) {
	kubectl := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
	out, err := exec.Command(kubectl, "kustomize", filepath.Join(testenv.RepoRoot(), "config", "default")).Output()
	if err != nil {
		c.t.Fatalf("kubectl kustomize config/default (KUBEBUILDER_ASSETS needs kubectl: WITH_KUBECTL=1 hack/envtest-assets.sh): %v", err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
			return
		} else if err != nil {
			c.t.Fatal(err)
		}
		if len(u.Object) == 0 || u.GetKind() == "Deployment" {
			continue
		}
		if err := c.admin.Create(ctx, u); err != nil && !apierrors.IsAlreadyExists(err) {
			c.t.Fatalf("creating %s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
}

// replica is one `claiim manager` process.
type replica struct {
	name                   string
	webhookPort            int
	probe, metrics, log    string
	endpointSlice, certDir string
	cmd                    *exec.Cmd
	exited                 chan struct{}
}

// start runs a manager replica as the Deployment would (the same flags,
// leader election on), each with its own ports and cert directory, waits
// until it is ready (/readyz: its webhook server answers TLS), then adds
// its EndpointSlice to the webhook Service, as the endpoint controller
// does for a ready pod.
func (c *cluster) start(name string) *replica {
	c.t.Helper()
	for attempt := 1; ; attempt++ {
		r := c.run(name)
		err := r.waitReady()
		if err == nil {
			c.addEndpoint(r)
			return r
		}
		// Other tests on this machine may take a port between our probe
		// for a free one and the replica's bind: try other ports.
		if !strings.Contains(tail(r.log, 5), "address already in use") || attempt == 3 {
			c.t.Fatalf("replica %s: %v", name, err)
		}
	}
}

func (c *cluster) run(name string) *replica {
	c.t.Helper()
	r := &replica{name: name, webhookPort: freePort(c.t, c.hostIP), probe: net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(c.t, "127.0.0.1"))),
		metrics: net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(c.t, "127.0.0.1"))), log: filepath.Join(c.dir, name+".log"),
		certDir: filepath.Join(c.dir, name, "certs"), exited: make(chan struct{}), endpointSlice: service + "-" + name}
	lf, err := os.Create(r.log)
	if err != nil {
		c.t.Fatal(err)
	}
	r.cmd = exec.Command(binary, "manager", "--leader-elect", "--leader-election-namespace="+namespace, "--webhook-cert-secret="+certSecret,
		"--webhook-host="+c.hostIP, "--webhook-port="+strconv.Itoa(r.webhookPort), "--webhook-cert-dir="+r.certDir,
		"--metrics-bind-address="+r.metrics, "--metrics-secure=false", "--health-probe-bind-address="+r.probe)
	r.cmd.Env = append(os.Environ(), "KUBECONFIG="+c.kubeconfig, "POD_NAMESPACE="+namespace, "POD_NAME=claiim-manager-"+name, "DATABASE_URL="+c.dbURL,
		"CLAIIM_WEBHOOK_CERT_LIFETIMES="+c.lifetimes)
	r.cmd.Stdout, r.cmd.Stderr = lf, lf
	if err := r.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	go func() { _ = r.cmd.Wait(); lf.Close(); close(r.exited) }()
	c.t.Cleanup(func() {
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		<-r.exited
		if c.t.Failed() {
			c.t.Logf("--- %s's log (last lines) ---\n%s", name, tail(r.log, 60))
		}
	})
	return r
}

func (r *replica) waitReady() error {
	var last error
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); {
		select {
		case <-r.exited:
			return fmt.Errorf("exited before it was ready; its log:\n%s", tail(r.log, 40))
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := http.Get("http://" + r.probe + "/readyz")
		if last = err; err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Errorf("/readyz: %s", resp.Status)
		}
	}
	return fmt.Errorf("not ready: %w", last)
}

func (c *cluster) addEndpoint(r *replica) {
	c.t.Helper()
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: r.endpointSlice, Namespace: namespace, Labels: map[string]string{discoveryv1.LabelServiceName: service}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{c.hostIP}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("webhook"), Port: ptr.To(int32(r.webhookPort)), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	Expect(c.admin.Create(context.Background(), es)).To(Succeed())
}

// kill ends the replica with SIGKILL and takes its endpoint out of the
// Service, as the endpoint controller does once the pod is gone.
func (c *cluster) kill(r *replica) {
	c.t.Helper()
	Expect(r.cmd.Process.Signal(syscall.SIGKILL)).To(Succeed())
	<-r.exited
	Expect(c.admin.Delete(context.Background(), &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: r.endpointSlice, Namespace: namespace}})).To(Succeed())
}

// leads reports whether the replica holds the leader Lease, from its own
// metrics (controller-runtime's leader_election_master_status).
func (r *replica) leads() (bool, error) {
	resp, err := http.Get("http://" + r.metrics + "/metrics")
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	s := bufio.NewScanner(resp.Body)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		if l := s.Text(); strings.HasPrefix(l, "leader_election_master_status{") && strings.Contains(l, `name="`+leaseName+`"`) {
			return strings.HasSuffix(l, " 1"), nil
		}
	}
	return false, s.Err()
}

// leader waits until exactly one of the replicas leads, and returns it.
func leader(rs ...*replica) *replica {
	var got *replica
	Eventually(func(g Gomega) {
		got = nil
		for _, r := range rs {
			leads, err := r.leads()
			g.Expect(err).NotTo(HaveOccurred())
			if leads {
				g.Expect(got).To(BeNil(), "two replicas lead at once")
				got = r
			}
		}
		g.Expect(got).NotTo(BeNil(), "no replica leads yet")
	}).WithTimeout(time.Minute).Should(Succeed())
	return got
}

func hostIP(t *testing.T) string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
			return n.IP.String()
		}
	}
	t.Fatal("no non-loopback IPv4 address: an EndpointSlice cannot point the apiserver at loopback")
	return ""
}

func freePort(t *testing.T, host string) int {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

var binary string

// TestMain builds the production binary once for every test.
func TestMain(m *testing.M) {
	flag.Parse()
	logf.SetLogger(logr.Discard()) // envtest's and client-go's chatter; the replicas log to files
	klog.SetLogger(logr.Discard())
	if testing.Short() {
		fmt.Println("skipping test/ha in -short mode: it needs envtest, PostgreSQL and a build")
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "claiim-ha-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "claiim")
	build := exec.Command("go", "build", "-o", binary, "./cmd/claiim")
	build.Dir, build.Stdout, build.Stderr = testenv.RepoRoot(), os.Stderr, os.Stderr
	code := 1
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building cmd/claiim:", err)
	} else {
		code = m.Run()
	}
	_ = os.RemoveAll(dir)
	os.Exit(code)
}
