// Package chronlease is the Kubernetes side of Chron's tamper evidence:
// the writers' key Secrets and the published public keys, the bounded set
// of stream Leases a writer holds one of, the signed checkpoints published
// on them, and the manager's scheduled verify. gate/chron stays free of
// Kubernetes; the signing and the comparison with the rows are there.
package chronlease

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/claiim/claiim-operator/gate/chron"
)

// Names of the objects, fixed so that docs and RBAC can name them.
const (
	// ManagerKeysSecret (in the manager's namespace) holds the manager's
	// chain and signing keys and its event-id key.
	ManagerKeysSecret = "claiim-chron-keys"
	// GateKeysSecret (in the gate's namespace) holds the gate's chain and
	// signing keys; it is mounted into the gate pods, which have no API
	// access to Secrets at all.
	GateKeysSecret = "claiim-chron-gate-keys"
	// PublicConfigMap (in the manager's namespace) publishes every signing
	// key's public half: `claiim chron verify` needs no secret to check
	// checkpoints.
	PublicConfigMap = "claiim-chron-public"
	// AnnotationCheckpoint carries a stream's signed checkpoint on its Lease.
	AnnotationCheckpoint = "claiim.io/chron-checkpoint"
	labelName            = "app.kubernetes.io/name"
	labelComponent       = "app.kubernetes.io/component"
)

// EnsureKeySet reads scope's key Secret, creating it with fresh keys when
// it is missing. Keys are never replaced here: a Secret that does not
// parse is an error for a person to look at, since replacing it would
// orphan every row chained under it.
func EnsureKeySet(ctx context.Context, c client.Client, namespace, name, scope string, withEventID bool) (chron.KeySet, error) {
	s := &corev1.Secret{}
	err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, s)
	if apierrors.IsNotFound(err) {
		keys, kerr := chron.NewKeySet(scope, withEventID)
		if kerr != nil {
			return chron.KeySet{}, kerr
		}
		s = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name,
			Labels: map[string]string{labelName: "claiim", labelComponent: "chron-keys"}},
			Type: corev1.SecretTypeOpaque, Data: keys.Data()}
		if err = c.Create(ctx, s); err == nil {
			return keys, nil
		}
		if !apierrors.IsAlreadyExists(err) { // else another replica made it first: read theirs
			return chron.KeySet{}, fmt.Errorf("creating Chron's %s keys (Secret %s/%s): %w", scope, namespace, name, err)
		}
		err = c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, s)
	}
	if err != nil {
		return chron.KeySet{}, fmt.Errorf("reading Chron's %s keys (Secret %s/%s): %w", scope, namespace, name, err)
	}
	return parseSecret(s, scope)
}

// ReadKeySet reads scope's key Secret; it must exist.
func ReadKeySet(ctx context.Context, r client.Reader, namespace, name, scope string) (chron.KeySet, error) {
	s := &corev1.Secret{}
	if err := r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, s); err != nil {
		return chron.KeySet{}, fmt.Errorf("reading Chron's %s keys (Secret %s/%s): %w", scope, namespace, name, err)
	}
	return parseSecret(s, scope)
}

func parseSecret(s *corev1.Secret, scope string) (chron.KeySet, error) {
	k, err := chron.ParseKeySet(scope, s.Data)
	if err != nil {
		return k, fmt.Errorf("Secret %s/%s: %w", s.Namespace, s.Name, err)
	}
	return k, nil
}

// maxKeyFile bounds one file of a mounted key Secret.
const maxKeyFile = 4096

// ReadKeyDir reads a mounted key Secret: one file per data key (the
// kubelet's ..data links and dot files are skipped).
func ReadKeyDir(dir, scope string) (chron.KeySet, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return chron.KeySet{}, fmt.Errorf("reading Chron's %s keys: %w", scope, err)
	}
	data := map[string][]byte{}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") || e.IsDir() {
			continue
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			return chron.KeySet{}, fmt.Errorf("reading Chron's %s keys: %w", scope, err)
		}
		b := make([]byte, maxKeyFile+1)
		n, _ := f.Read(b)
		_ = f.Close()
		if n > maxKeyFile {
			return chron.KeySet{}, fmt.Errorf("reading Chron's %s keys: %s is larger than %d bytes", scope, e.Name(), maxKeyFile)
		}
		data[e.Name()] = b[:n]
	}
	k, err := chron.ParseKeySet(scope, data)
	if err != nil {
		return k, fmt.Errorf("%s: %w", dir, err)
	}
	return k, nil
}

// PublishPublic adds the public keys of sets to the public ConfigMap,
// creating it if needed. Keys are only added, never removed: old
// checkpoints keep verifying.
func PublishPublic(ctx context.Context, c client.Client, namespace string, sets ...chron.KeySet) error {
	want := map[string]string{}
	for _, s := range sets {
		for _, p := range s.Publics() {
			want[p.ID] = chron.EncodePublic(p)
		}
	}
	for range 3 { // optimistic concurrency: another replica may add its own
		cm := &corev1.ConfigMap{}
		err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: PublicConfigMap}, cm)
		if apierrors.IsNotFound(err) {
			cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: PublicConfigMap,
				Labels: map[string]string{labelName: "claiim", labelComponent: "chron-keys"}}, Data: want}
			if err = c.Create(ctx, cm); !apierrors.IsAlreadyExists(err) {
				return wrapPublish(err)
			}
			continue
		}
		if err != nil {
			return wrapPublish(err)
		}
		missing := false
		for id, v := range want {
			if cm.Data[id] != v {
				missing = true
			}
		}
		if !missing {
			return nil
		}
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		for id, v := range want {
			cm.Data[id] = v
		}
		if err = c.Update(ctx, cm); !apierrors.IsConflict(err) {
			return wrapPublish(err)
		}
	}
	return wrapPublish(errors.New("the ConfigMap kept changing"))
}

func wrapPublish(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("publishing Chron's public keys (ConfigMap %s): %w", PublicConfigMap, err)
}

// ReadPublic reads the published public keys. An entry that does not
// parse is an error: a verifier must not quietly trust fewer keys.
func ReadPublic(ctx context.Context, r client.Reader, namespace string) (chron.PublicKeys, error) {
	cm := &corev1.ConfigMap{}
	if err := r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: PublicConfigMap}, cm); err != nil {
		return nil, fmt.Errorf("reading Chron's public keys (ConfigMap %s/%s): %w", namespace, PublicConfigMap, err)
	}
	out := chron.PublicKeys{}
	ids := make([]string, 0, len(cm.Data))
	for id := range cm.Data {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		p, err := chron.ParsePublic(id, cm.Data[id])
		if err != nil {
			return nil, fmt.Errorf("ConfigMap %s/%s: %w", namespace, PublicConfigMap, err)
		}
		out[id] = p
	}
	return out, nil
}
