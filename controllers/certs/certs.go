// Package certs gives the manager's webhook server a certificate when
// cert-manager isn't used: a CA and a serving certificate kept in a Secret,
// written to the webhook server's cert directory (controller-runtime
// reloads it), renewed before they expire, with the CA injected as the
// caBundle of CLAIIM's webhook configurations.
package certs

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Rotator keeps the webhook certificate valid.
type Rotator struct {
	Client     client.Client
	Namespace  string
	SecretName string
	// Service is the webhook Service's name; the certificate is valid for
	// its in-cluster DNS names.
	Service string
	CertDir string
	// Mutating and Validating name the webhook configurations whose
	// caBundle is kept equal to the CA.
	Mutating, Validating []string
	Validity             time.Duration // default one year
	RenewBefore          time.Duration // default 30 days
	Clock                clock.PassiveClock
}

// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=mutatingwebhookconfigurations;validatingwebhookconfigurations,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;create;update

func (r *Rotator) defaults() {
	if r.Validity == 0 {
		r.Validity = 365 * 24 * time.Hour
	}
	if r.RenewBefore == 0 {
		r.RenewBefore = 30 * 24 * time.Hour
	}
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
}

// Ensure makes the certificate valid now: reuses the Secret's while it is
// far from expiry, otherwise issues a new CA and certificate; then writes
// the files and injects the CA. Run it once before the webhook server
// starts, then Start keeps it so.
func (r *Rotator) Ensure(ctx context.Context) error {
	r.defaults()
	// Replicas start together: when another one stored the Secret between
	// our read and our write (AlreadyExists, Conflict), read it again and
	// use theirs.
	var sec *corev1.Secret
	err := retry.OnError(retry.DefaultRetry, func(err error) bool {
		return apierrors.IsAlreadyExists(err) || apierrors.IsConflict(err)
	}, func() error {
		var err error
		sec, err = r.readOrIssue(ctx)
		return err
	})
	if err != nil {
		return err
	}
	if err := r.write(sec.Data); err != nil {
		return err
	}
	return r.inject(ctx, sec.Data["ca.crt"])
}

// readOrIssue returns the stored certificate, issuing and storing a new one
// when there is none or it is close to expiry.
func (r *Rotator) readOrIssue(ctx context.Context) (*corev1.Secret, error) {
	sec := &corev1.Secret{}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: r.SecretName}, sec)
	switch {
	case apierrors.IsNotFound(err):
		sec = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespace, Name: r.SecretName,
			Labels: map[string]string{"app.kubernetes.io/name": "claiim", "app.kubernetes.io/component": "webhook"}}, Type: corev1.SecretTypeTLS}
	case err != nil:
		return nil, fmt.Errorf("reading webhook certificate Secret: %w", err)
	}
	if r.fresh(sec.Data) {
		return sec, nil
	}
	data, err := r.issue()
	if err != nil {
		return nil, err
	}
	sec.Data = data
	if sec.ResourceVersion == "" {
		err = r.Client.Create(ctx, sec)
	} else {
		err = r.Client.Update(ctx, sec)
	}
	if err != nil {
		return nil, fmt.Errorf("storing the webhook certificate: %w", err)
	}
	ctrl.LoggerFrom(ctx).Info("issued a new webhook certificate", "secret", r.Namespace+"/"+r.SecretName)
	return sec, nil
}

// Start re-checks hourly; it is a manager Runnable.
func (r *Rotator) Start(ctx context.Context) error {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := r.Ensure(ctx); err != nil {
				ctrl.LoggerFrom(ctx).Error(err, "renewing the webhook certificate; retrying in an hour")
			}
		}
	}
}

// fresh: the stored certificate parses, matches its key, chains to the
// stored CA and stays valid beyond RenewBefore.
func (r *Rotator) fresh(d map[string][]byte) bool {
	pair, err := tlsPair(d["tls.crt"], d["tls.key"])
	if err != nil {
		return false
	}
	ca := x509.NewCertPool()
	if !ca.AppendCertsFromPEM(d["ca.crt"]) {
		return false
	}
	now := r.Clock.Now()
	_, err = pair.Verify(x509.VerifyOptions{Roots: ca, DNSName: r.dnsNames()[0], CurrentTime: now})
	return err == nil && now.Add(r.RenewBefore).Before(pair.NotAfter)
}

func tlsPair(certPEM, keyPEM []byte) (*x509.Certificate, error) {
	b, _ := pem.Decode(certPEM)
	k, _ := pem.Decode(keyPEM)
	if b == nil || k == nil {
		return nil, fmt.Errorf("no PEM")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, err
	}
	key, err := x509.ParseECPrivateKey(k.Bytes)
	if err != nil {
		return nil, err
	}
	if !key.PublicKey.Equal(c.PublicKey) {
		return nil, fmt.Errorf("key does not match certificate")
	}
	return c, nil
}

func (r *Rotator) dnsNames() []string {
	s, ns := r.Service, r.Namespace
	return []string{s + "." + ns + ".svc", s, s + "." + ns, s + "." + ns + ".svc.cluster.local"}
}

func (r *Rotator) issue() (map[string][]byte, error) {
	now := r.Clock.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: "claiim-webhook-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(r.Validity + r.RenewBefore), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: r.dnsNames()[0]}, DNSNames: r.dnsNames(),
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(r.Validity), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return map[string][]byte{
		"ca.crt":  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		"tls.crt": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		"tls.key": pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

// write puts the pair where the webhook server reads it; unchanged files
// are left alone so the server's watcher only reloads on a real change.
func (r *Rotator) write(d map[string][]byte) error {
	if err := os.MkdirAll(r.CertDir, 0o700); err != nil {
		return err
	}
	for _, f := range []string{"tls.key", "tls.crt"} { // key first: a reload never pairs a new cert with an old key for long
		p := filepath.Join(r.CertDir, f)
		if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, d[f]) {
			continue
		}
		tmp := p + ".tmp"
		if err := os.WriteFile(tmp, d[f], 0o600); err != nil {
			return err
		}
		if err := os.Rename(tmp, p); err != nil {
			return err
		}
	}
	return nil
}

// inject sets every caBundle of the named webhook configurations to ca,
// patching only a configuration where one differs.
func (r *Rotator) inject(ctx context.Context, ca []byte) error {
	want := base64.StdEncoding.EncodeToString(ca)
	for kind, names := range map[string][]string{"MutatingWebhookConfiguration": r.Mutating, "ValidatingWebhookConfiguration": r.Validating} {
		for _, name := range names {
			cfg := &unstructured.Unstructured{}
			cfg.SetGroupVersionKind(admissionregistrationv1.SchemeGroupVersion.WithKind(kind))
			if err := r.Client.Get(ctx, client.ObjectKey{Name: name}, cfg); err != nil {
				return fmt.Errorf("reading %s %s: %w", kind, name, err)
			}
			patch := client.MergeFrom(cfg.DeepCopy())
			hooks, _, _ := unstructured.NestedSlice(cfg.Object, "webhooks")
			changed := false
			for _, h := range hooks {
				hook := h.(map[string]any)
				if got, _, _ := unstructured.NestedString(hook, "clientConfig", "caBundle"); got != want {
					if err := unstructured.SetNestedField(hook, want, "clientConfig", "caBundle"); err != nil {
						return err
					}
					changed = true
				}
			}
			if !changed {
				continue
			}
			if err := unstructured.SetNestedSlice(cfg.Object, hooks, "webhooks"); err != nil {
				return err
			}
			if err := r.Client.Patch(ctx, cfg, patch); err != nil {
				return fmt.Errorf("injecting the CA into %s %s: %w", kind, name, err)
			}
		}
	}
	return nil
}
