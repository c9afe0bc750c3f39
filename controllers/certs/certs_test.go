package certs_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/claiim/claiim-operator/controllers/certs"
	"github.com/claiim/claiim-operator/test/testenv"
)

func TestRotator(t *testing.T) {
	if testing.Short() {
		t.Skip("needs envtest")
	}
	// The rotator runs as the manager, with exactly config/rbac/role.yaml.
	const manager = "system:serviceaccount:claiim-system:claiim-manager"
	env := testenv.Setup(t, testenv.Options{
		RBAC:    []string{"config/rbac/role.yaml"},
		Objects: []client.Object{&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "claiim-system"}}},
		Users: []testenv.User{{Name: manager, Groups: []string{"system:serviceaccounts", "system:authenticated"},
			ClusterRoles: []string{"claiim-manager"}}},
	})
	ctx, c, asManager := env.Context(), env.Client, env.As(manager)

	hook := admissionregistrationv1.ValidatingWebhook{Name: "vcontrolplane.claiim.io", AdmissionReviewVersions: []string{"v1"},
		SideEffects: ptr.To(admissionregistrationv1.SideEffectClassNone),
		ClientConfig: admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{
			Namespace: "claiim-system", Name: "claiim-webhook", Path: ptr.To("/validate-controlplane")}}}
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "claiim-validating"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{hook}}
	if err := c.Create(ctx, vwc); err != nil {
		t.Fatal(err)
	}

	clock := clocktesting.NewFakePassiveClock(time.Now())
	dir := t.TempDir()
	r := &certs.Rotator{Client: asManager, Namespace: "claiim-system", SecretName: "claiim-webhook-tls", Service: "claiim-webhook",
		CertDir: dir, Validating: []string{"claiim-validating"}, Clock: clock}

	state := func() (caPEM []byte, cert *x509.Certificate) {
		t.Helper()
		if err := c.Get(ctx, client.ObjectKeyFromObject(vwc), vwc); err != nil {
			t.Fatal(err)
		}
		pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
		if err != nil {
			t.Fatalf("the webhook server could not load the written pair: %v", err)
		}
		cert, _ = x509.ParseCertificate(pair.Certificate[0])
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(vwc.Webhooks[0].ClientConfig.CABundle) {
			t.Fatal("no caBundle injected")
		}
		if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: "claiim-webhook.claiim-system.svc", CurrentTime: clock.Now()}); err != nil {
			t.Fatalf("the apiserver would not trust the serving certificate: %v", err)
		}
		return vwc.Webhooks[0].ClientConfig.CABundle, cert
	}

	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	ca1, cert1 := state()

	// A second run (a restart) keeps what is still fresh.
	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if ca, cert := state(); string(ca) != string(ca1) || !cert.Equal(cert1) {
		t.Fatal("a fresh certificate was replaced")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "tls.key")); len(b) == 0 {
		t.Fatal("no key written")
	}

	// Every replica, leader or not, serves what is stored: its reloader
	// watches the Secret with the manager's own permissions.
	replica := manager + "-2"
	cfg2, err := env.AddUser(testenv.User{Name: replica, Groups: []string{"system:serviceaccounts", "system:authenticated"},
		ClusterRoles: []string{"claiim-manager"}})
	if err != nil {
		t.Fatal(err)
	}
	follower := &certs.Rotator{Namespace: "claiim-system", SecretName: "claiim-webhook-tls", Service: "claiim-webhook",
		CertDir: t.TempDir(), Clock: clock}
	go func() { _ = follower.Reloader(kubernetes.NewForConfigOrDie(cfg2)).Start(ctx) }()
	serves(t, follower.CertDir, cert1)

	// Close to expiry the serving certificate is renewed by the same CA:
	// the caBundle does not change, and the follower reloads the new one.
	clock.SetTime(cert1.NotAfter.Add(-24 * time.Hour))
	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	ca2, cert2 := state()
	if string(ca2) != string(ca1) || cert2.Equal(cert1) || !cert2.NotAfter.After(cert1.NotAfter) {
		t.Fatal("an expiring certificate was not renewed by the same CA")
	}
	serves(t, follower.CertDir, cert2)

	// A second replica starting at the same moment read "no Secret" just
	// before the first stored it: its Create meets AlreadyExists, and it
	// reads again and serves the stored certificate instead of exiting.
	replica2 := &staleFirstRead{Client: asManager}
	dir2 := t.TempDir()
	r2 := &certs.Rotator{Client: replica2, Namespace: "claiim-system", SecretName: "claiim-webhook-tls", Service: "claiim-webhook",
		CertDir: dir2, Validating: []string{"claiim-validating"}, Clock: clock}
	if err := r2.Ensure(ctx); err != nil {
		t.Fatalf("a second replica racing the first: %v", err)
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir2, "tls.crt"), filepath.Join(dir2, "tls.key"))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := x509.ParseCertificate(pair.Certificate[0]); !got.Equal(cert2) {
		t.Fatal("the second replica serves another certificate than the stored one")
	}
}

// serves waits until dir holds want, as the webhook server would load it.
func serves(t *testing.T, dir string, want *x509.Certificate) {
	t.Helper()
	var got *x509.Certificate
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
		if err == nil {
			got, _ = x509.ParseCertificate(pair.Certificate[0])
		}
		return got != nil && got.Equal(want), nil
	})
	if err != nil {
		t.Fatalf("the follower does not serve the stored certificate (serial %v); it serves %v", want.SerialNumber, got)
	}
}

// staleFirstRead answers its first Get of a Secret with NotFound, as a
// replica that read just before another created it.
type staleFirstRead struct {
	client.Client
	done bool
}

func (c *staleFirstRead) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if _, ok := obj.(*corev1.Secret); ok && !c.done {
		c.done = true
		return apierrors.NewNotFound(corev1.Resource("secrets"), key.Name)
	}
	return c.Client.Get(ctx, key, obj, opts...)
}
