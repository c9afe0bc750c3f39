package certs_test

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
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

	// Close to expiry it is renewed, and the new CA injected.
	clock.SetTime(cert1.NotAfter.Add(-24 * time.Hour))
	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	ca2, cert2 := state()
	if string(ca2) == string(ca1) || cert2.Equal(cert1) || !cert2.NotAfter.After(cert1.NotAfter) {
		t.Fatal("an expiring certificate was not renewed")
	}
}
