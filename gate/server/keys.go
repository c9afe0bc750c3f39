package server

import (
	"context"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/claiim/claiim-operator/gate/attest"
)

// watchKeys keeps the manager's published attestation keys (the
// ConfigMap KeysFrom names) and rebuilds the snapshot when they change.
// Until they load, no status counts: every agent is refused with a
// message that says so. It watches that one ConfigMap, nothing else.
func (s *Source) watchKeys(ctx context.Context, log logr.Logger) error {
	ref := s.KeysFrom
	c, err := cache.New(s.cfg, cache.Options{Scheme: s.scheme,
		DefaultNamespaces: map[string]cache.Config{ref.Namespace: {}},
		ByObject:          map[client.Object]cache.ByObject{&corev1.ConfigMap{}: {Field: fields.OneTermEqualSelector("metadata.name", ref.Name)}},
	})
	if err != nil {
		return err
	}
	inf, err := c.GetInformer(ctx, &corev1.ConfigMap{}, cache.BlockUntilSynced(false))
	if err != nil {
		return err
	}
	load := func(obj any) {
		cm, ok := obj.(*corev1.ConfigMap)
		if !ok || cm.Name != ref.Name {
			return
		}
		keys, err := attest.PublicKeysFromConfigMap(cm.Data)
		if err != nil {
			log.Error(err, "the published attestation keys are unusable; no agent status counts until they are fixed", "configMap", ref)
			keys = nil
		} else {
			log.Info("attestation keys loaded", "configMap", ref, "keys", keys.IDs())
		}
		s.keys.Store(&keys)
		s.markDirty()
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    load,
		UpdateFunc: func(_, obj any) { load(obj) },
		DeleteFunc: func(any) {
			log.Info("the published attestation keys were deleted; no agent status counts until the manager publishes them again", "configMap", ref)
			s.keys.Store(nil)
			s.markDirty()
		},
	}); err != nil {
		return err
	}
	go func() {
		if err := c.Start(ctx); err != nil {
			log.Error(err, "watching the attestation keys stopped", "configMap", ref)
		}
	}()
	return nil
}

// verifier is the keys the next snapshot verifies status with; nil until
// they are loaded.
func (s *Source) verifier() attest.Verifier {
	k := s.keys.Load()
	if k == nil || *k == nil {
		return nil
	}
	return *k
}
