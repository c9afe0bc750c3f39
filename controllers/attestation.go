package controllers

import (
	"context"
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/claiim/claiim-operator/gate/attest"
)

// The manager's attestation key and its published public half, in the
// manager's namespace. Whoever can read the Secret can sign anything the
// gate and admission trust: it is as sensitive as the manager's identity.
const (
	AttestationKeySecret     = "claiim-attestation-key"
	AttestationKeysConfigMap = "claiim-attestation-keys"
)

// +kubebuilder:rbac:groups="",resources=configmaps,verbs=create
// +kubebuilder:rbac:groups="",resources=configmaps,resourceNames=claiim-attestation-keys,verbs=get;list;watch;patch

// LoadSigner reads the manager's signing key from its Secret in ns,
// creating the Secret with a fresh key the first time, and publishes the
// public keys in the ConfigMap beside it, where the gate and `claiim`
// read them. reader reads past the cache (the manager caches no such
// Secret). Replicas racing to create the key agree on the first one.
func LoadSigner(ctx context.Context, reader client.Reader, c client.Client, ns string) (*attest.Signer, error) {
	key := client.ObjectKey{Namespace: ns, Name: AttestationKeySecret}
	sec := &corev1.Secret{}
	err := reader.Get(ctx, key, sec)
	if apierrors.IsNotFound(err) {
		sec = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: AttestationKeySecret, Labels: map[string]string{labelName: "claiim"}},
			Type:       corev1.SecretTypeOpaque,
			Data:       attest.SecretData(attest.NewKey()),
		}
		err = c.Create(ctx, sec)
		if apierrors.IsAlreadyExists(err) {
			err = reader.Get(ctx, key, sec)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("reading the attestation key Secret %s/%s: %w", ns, AttestationKeySecret, err)
	}
	signer, err := attest.SignerFromSecret(sec.Data)
	if err != nil {
		return nil, fmt.Errorf("attestation key Secret %s/%s: %w", ns, AttestationKeySecret, err)
	}
	if _, err := publishKeys(ctx, reader, c, ns, signer.Public()); err != nil {
		return nil, err
	}
	return signer, nil
}

// publishKeys makes the ConfigMap hold exactly the signer's public keys,
// and says what it had to do: "created", "restored" or "" (nothing).
func publishKeys(ctx context.Context, reader client.Reader, c client.Client, ns string, keys attest.PublicKeys) (string, error) {
	want := keys.ConfigMapData()
	cm := &corev1.ConfigMap{}
	did := ""
	err := reader.Get(ctx, client.ObjectKey{Namespace: ns, Name: AttestationKeysConfigMap}, cm)
	switch {
	case apierrors.IsNotFound(err):
		cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: AttestationKeysConfigMap, Labels: map[string]string{labelName: "claiim"}},
			Data: want}
		did, err = "created", c.Create(ctx, cm)
	case err == nil && !maps.Equal(cm.Data, want):
		patch := client.MergeFromWithOptions(cm.DeepCopy(), client.MergeFromWithOptimisticLock{})
		cm.Data = want
		did, err = "restored", c.Patch(ctx, cm, patch)
	}
	if err != nil {
		return "", fmt.Errorf("publishing the attestation keys in ConfigMap %s/%s: %w", ns, AttestationKeysConfigMap, err)
	}
	return did, nil
}
