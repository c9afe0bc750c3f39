package cli

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/claiim/claiim-operator/gate/server"
	"github.com/claiim/claiim-operator/test/testenv"
)

// TestMetricsNeedAnAuthorizedToken serves metrics as the manager and the
// gate do (metricsFlags.options, the gate's metrics in controller-runtime's
// registry) against an envtest apiserver: a scrape without a token, with
// a token the apiserver rejects, or by a ServiceAccount without the
// claiim-metrics-reader role is refused; one bound to it gets the metrics.
func TestMetricsNeedAnAuthorizedToken(t *testing.T) {
	if testing.Short() {
		t.Skip("needs envtest")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	env := testenv.New()
	cfg, err := testenv.Start(env)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	root, err := client.New(cfg, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	if err := testenv.ApplyFile(ctx, root, filepath.Join(testenv.RepoRoot(), "config", "rbac", "metrics_reader_role.yaml")); err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	token := func(name string) string {
		t.Helper()
		if err := root.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name}}); err != nil {
			t.Fatal(err)
		}
		tr, err := cs.CoreV1().ServiceAccounts("default").CreateToken(ctx, name, &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(600))}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	prometheus, nosy := token("prometheus"), token("nosy")
	if err := root.Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "prometheus-claiim-metrics"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "claiim-metrics-reader"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "prometheus", Namespace: "default"}}}); err != nil {
		t.Fatal(err)
	}

	server.NewMetrics(ctrlmetrics.Registry) // as RunGate registers them
	mf := metricsFlags{secure: true}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := metricsserver.NewServer(mf.options("127.0.0.1:0"), cfg, hc)
	if err != nil {
		t.Fatal(err)
	}
	srvCtx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { _ = ms.Start(srvCtx) }()

	// The certificate is self-signed, as in a cluster, where Prometheus
	// scrapes with insecureSkipVerify or the serving CA it is given.
	hcl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // a test's self-signed server
	addr := func() string { return ms.(interface{ GetBindAddr() string }).GetBindAddr() }
	for deadline := time.Now().Add(30 * time.Second); addr() == "" || strings.HasSuffix(addr(), ":0"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the metrics server did not start listening")
		}
	}
	scrape := func(tok string) (int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr()+"/metrics", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := hcl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, _ := scrape(""); status != http.StatusUnauthorized {
		t.Errorf("anonymous scrape: HTTP %d, want 401", status)
	}
	// controller-runtime's filter turns the apiserver's "invalid bearer
	// token" into an error: refused, as 500 "Authentication failed".
	if status, body := scrape("not-a-token"); status != http.StatusInternalServerError || strings.Contains(body, "claiim_") {
		t.Errorf("scrape with a rejected token: HTTP %d, want 500 and no metrics", status)
	}
	if status, _ := scrape(nosy); status != http.StatusForbidden {
		t.Errorf("scrape by a ServiceAccount without claiim-metrics-reader: HTTP %d, want 403", status)
	}
	status, body := scrape(prometheus)
	if status != http.StatusOK || !strings.Contains(body, "claiim_chron_batch_rows") || !strings.Contains(body, "go_goroutines") {
		t.Errorf("scrape by claiim-metrics-reader: HTTP %d\n%.500s", status, body)
	}
	// Plain HTTP on the same port gets nothing.
	resp, err := http.Get("http://" + addr() + "/metrics")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP scrape answered 200")
		}
	}
}
