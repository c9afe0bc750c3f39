// Package certs gives the manager's webhook server a certificate when
// cert-manager isn't used: CAs and a serving certificate kept in a Secret,
// renewed by the leader before they expire (authority.go says how the CA
// is kept so that no replica is ever refused), the CA bundle injected as
// the caBundle of CLAIIM's webhook configurations, and the serving
// certificate written by every replica to its webhook server's cert
// directory whenever the Secret changes (controller-runtime's certwatcher
// reloads it from there). The gate's API certificate is kept the same way
// (Purpose "gate"): its CA bundle is published for agents instead of
// injected, and the kubelet, not the Rotator, puts the pair in its pods.
package certs

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
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

// Rotator keeps the webhook certificate valid. Start (a leader-election
// runnable) renews it; Reloader (every replica) serves what is stored.
type Rotator struct {
	Client     client.Client
	Namespace  string
	SecretName string
	// Service is the webhook Service's name; the certificate is valid for
	// its in-cluster DNS names.
	Service string
	CertDir string
	// Mutating and Validating name the webhook configurations whose
	// caBundle is kept equal to the CA bundle.
	Mutating, Validating []string
	// Purpose names the certificate in labels, logs and errors: "webhook"
	// (the default) or "gate".
	Purpose string
	// Publish, when set, is given the CA bundle after every store, as
	// inject gives it to the webhook configurations: the gate's servers
	// publish theirs for agents to trust.
	Publish     func(ctx context.Context, caBundle []byte) error
	Validity    time.Duration // of a serving certificate; default one year
	RenewBefore time.Duration // default 30 days
	CAValidity  time.Duration // default five years; at least 3 × Validity
	Clock       clock.PassiveClock

	setup    sync.Once
	setupErr error
	poke     chan struct{} // the Secret changed: the leader looks again
	files    sync.Mutex    // one writer of CertDir at a time
}

// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=mutatingwebhookconfigurations;validatingwebhookconfigurations,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update

// retryAfterError is how soon the leader tries again after a failed
// renewal; the certificate is renewed RenewBefore (30 days) ahead.
const retryAfterError = 30 * time.Second

// SetLifetimes reads "validity,renewBefore,caValidity" (e.g.
// "20s,12s,60s"), for a test that must see renewals and CA rollovers in
// seconds; empty keeps the defaults.
func (r *Rotator) SetLifetimes(spec string) error {
	if spec == "" {
		return nil
	}
	parts := strings.Split(spec, ",")
	ds := make([]time.Duration, len(parts))
	for i, p := range parts {
		d, err := time.ParseDuration(p)
		if err != nil || len(parts) != 3 {
			return fmt.Errorf("%q: want validity,renewBefore,caValidity as durations, e.g. 20s,12s,60s", spec)
		}
		ds[i] = d
	}
	r.Validity, r.RenewBefore, r.CAValidity = ds[0], ds[1], ds[2]
	return nil
}

func (r *Rotator) init() error {
	r.setup.Do(func() {
		if r.Validity == 0 {
			r.Validity = 365 * 24 * time.Hour
		}
		if r.RenewBefore == 0 {
			r.RenewBefore = 30 * 24 * time.Hour
		}
		if r.CAValidity == 0 {
			r.CAValidity = 5 * 365 * 24 * time.Hour
		}
		if r.Clock == nil {
			r.Clock = clock.RealClock{}
		}
		if r.Purpose == "" {
			r.Purpose = "webhook"
		}
		r.poke = make(chan struct{}, 1)
		switch {
		case r.RenewBefore >= r.Validity:
			r.setupErr = fmt.Errorf("%s certificate: RenewBefore (%s) must be shorter than Validity (%s)", r.Purpose, r.RenewBefore, r.Validity)
		case r.CAValidity < 3*r.Validity:
			// The next CA must be in the caBundle long before it signs.
			r.setupErr = fmt.Errorf("%s certificate: CAValidity (%s) must be at least 3 × Validity (%s)", r.Purpose, r.CAValidity, r.Validity)
		}
	})
	return r.setupErr
}

// NeedLeaderElection: one replica renews; the others reload (Reloader).
func (r *Rotator) NeedLeaderElection() bool { return true }

// Ensure makes the certificate valid now: keeps the Secret's while it is
// far from expiry, otherwise renews it as authority.go describes; then
// writes the files and injects the CA bundle. Every replica runs it once
// before its webhook server starts; then the leader's Start keeps it so.
func (r *Rotator) Ensure(ctx context.Context) error {
	_, err := r.ensure(ctx)
	return err
}

func (r *Rotator) ensure(ctx context.Context) (next time.Time, err error) {
	if err := r.init(); err != nil {
		return next, err
	}
	// Replicas start together: when another one stored the Secret between
	// our read and our write (AlreadyExists, Conflict), read it again and
	// use theirs.
	var sec *corev1.Secret
	err = retry.OnError(retry.DefaultRetry, func(err error) bool {
		return apierrors.IsAlreadyExists(err) || apierrors.IsConflict(err)
	}, func() error {
		var err error
		sec, next, err = r.store(ctx)
		return err
	})
	if err != nil {
		return next, err
	}
	if err := r.serve(sec.Data); err != nil {
		return next, err
	}
	if err := r.inject(ctx, sec.Data[keyCA]); err != nil {
		return next, err
	}
	if r.Publish != nil {
		if err := r.Publish(ctx, sec.Data[keyCA]); err != nil {
			return next, fmt.Errorf("publishing the %s CA bundle: %w", r.Purpose, err)
		}
	}
	return next, nil
}

// store returns the stored certificate, renewed and stored first when
// anything in it is due, and when to look at it again.
func (r *Rotator) store(ctx context.Context) (*corev1.Secret, time.Time, error) {
	sec := &corev1.Secret{}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: r.SecretName}, sec)
	switch {
	case apierrors.IsNotFound(err):
		sec = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespace, Name: r.SecretName,
			Labels: map[string]string{"app.kubernetes.io/name": "claiim", "app.kubernetes.io/component": r.Purpose}}, Type: corev1.SecretTypeTLS}
	case err != nil:
		return nil, time.Time{}, fmt.Errorf("reading the %s certificate Secret: %w", r.Purpose, err)
	}
	p, err := r.renew(sec.Data)
	if err != nil || !p.changed {
		return sec, p.next, err
	}
	sec.Data = p.data
	if sec.ResourceVersion == "" {
		err = r.Client.Create(ctx, sec)
	} else {
		err = r.Client.Update(ctx, sec)
	}
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("storing the %s certificate: %w", r.Purpose, err)
	}
	ctrl.LoggerFrom(ctx).Info("stored the "+r.Purpose+" certificate", "secret", r.Namespace+"/"+r.SecretName, "changes", strings.Join(p.did, ", "))
	return sec, p.next, nil
}

// Start keeps the certificate valid on the leader: it looks again when
// something is due (at the latest hourly, to catch a change made by hand
// or a failed injection), and at once when the Secret changed.
func (r *Rotator) Start(ctx context.Context) error {
	if err := r.init(); err != nil {
		return err
	}
	log := ctrl.LoggerFrom(ctx).WithName(r.Purpose + "-certificate")
	wait := time.Duration(0) // a new leader looks at once
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		case <-r.poke:
			t.Stop()
		}
		next, err := r.ensure(ctx)
		if err != nil {
			log.Error(err, "renewing the "+r.Purpose+" certificate; retrying", "in", retryAfterError)
			wait = retryAfterError
			continue
		}
		wait = min(max(next.Sub(r.Clock.Now()), time.Second), time.Hour)
	}
}

// serve writes the serving certificate for the webhook server, only when
// it is valid now: a broken or foreign Secret never replaces a working
// certificate (the leader renews it instead). Without a CertDir (the
// gate's certificate, mounted into its pods by the kubelet) it only checks.
func (r *Rotator) serve(d map[string][]byte) error {
	if _, err := r.servingCert(d, r.Clock.Now()); err != nil {
		return fmt.Errorf("the stored %s certificate is not valid now, keeping the one served: %w", r.Purpose, err)
	}
	if r.CertDir == "" {
		return nil
	}
	r.files.Lock()
	defer r.files.Unlock()
	return r.write(d)
}

// write publishes the pair as the kubelet publishes a Secret volume: both
// files in a new directory, then one atomic rename of the ..data symlink
// that tls.crt and tls.key point through, then the old directory removed
// (which is what tells the webhook server's certwatcher to reload). So it
// never reads a certificate beside another one's key. An unchanged pair
// is left alone.
func (r *Rotator) write(d map[string][]byte) error {
	dir := r.CertDir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	same := true
	for _, f := range []string{keyCert, keyCertKey} {
		old, err := os.ReadFile(filepath.Join(dir, f))
		same = same && err == nil && bytes.Equal(old, d[f])
	}
	if same {
		return nil
	}
	pair, err := os.MkdirTemp(dir, "..pair-")
	if err != nil {
		return err
	}
	for _, f := range []string{keyCert, keyCertKey} {
		if err := os.WriteFile(filepath.Join(pair, f), d[f], 0o600); err != nil {
			return err
		}
	}
	data := filepath.Join(dir, "..data")
	old, _ := os.Readlink(data)
	if err := symlink(filepath.Base(pair), data); err != nil {
		return err
	}
	for _, f := range []string{keyCert, keyCertKey} {
		if target, _ := os.Readlink(filepath.Join(dir, f)); target != filepath.Join("..data", f) {
			if err := symlink(filepath.Join("..data", f), filepath.Join(dir, f)); err != nil {
				return err
			}
		}
	}
	if old != "" {
		return os.RemoveAll(filepath.Join(dir, old))
	}
	return nil
}

// symlink points name at target, replacing whatever name was at once.
func symlink(target, name string) error {
	tmp := name + ".tmp"
	_ = os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, name)
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
