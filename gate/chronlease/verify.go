package chronlease

// Verifying Chron with what the Kubernetes API holds: the checkpoints on
// the stream Leases, the published public keys and, when readable, the
// chain keys. Used by `claiim chron verify` and by the manager's schedule.

import (
	"context"
	"fmt"

	coordinationv1 "k8s.io/api/coordination/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/claiim/claiim-operator/gate/chron"
)

// maxLeases bounds the Leases read from one namespace.
const maxLeases = 1000

// ReadCheckpoints reads the checkpoints on the stream Leases of the given
// namespaces. A Lease of the set whose checkpoint cannot be read, or is of
// another stream, is a problem, not a checkpoint skipped.
func ReadCheckpoints(ctx context.Context, r client.Reader, namespaces ...string) ([]chron.SignedCheckpoint, []chron.Problem, error) {
	var cps []chron.SignedCheckpoint
	var problems []chron.Problem
	for _, ns := range namespaces {
		var list coordinationv1.LeaseList
		if err := r.List(ctx, &list, client.InNamespace(ns), client.Limit(maxLeases)); err != nil {
			return nil, nil, fmt.Errorf("reading Chron's checkpoints (Leases in %s): %w", ns, err)
		}
		for _, l := range list.Items {
			stream := StreamOf(l.Name)
			text, ok := l.Annotations[AnnotationCheckpoint]
			if stream == "" || !ok {
				continue
			}
			sc, err := chron.ParseCheckpoint(text)
			if err == nil && sc.Stream != stream {
				err = fmt.Errorf("Lease %s/%s carries a checkpoint of stream %q", ns, l.Name, sc.Stream)
			}
			if err != nil {
				problems = append(problems, chron.Problem{Stream: stream, What: chron.WhatCheckpoint + ": " + err.Error()})
				continue
			}
			cps = append(cps, sc)
		}
	}
	return cps, problems, nil
}

// Source says where a verifier finds what it needs in the API.
type Source struct {
	Reader client.Reader
	// LeaseNamespaces hold the stream Leases (the manager's and the gate's).
	LeaseNamespaces []string
	// PublicNamespace holds the public key ConfigMap.
	PublicNamespace string
	// KeySecrets, when set, are read for the chain keys (needs Secret get).
	KeySecrets []SecretRef
}

// SecretRef names a key Secret and whose keys it holds.
type SecretRef struct {
	Namespace, Name, Scope string
}

// Options reads the checkpoints, public keys and chain keys for
// chron.VerifyWith, and the problems already found in reading them.
func (s Source) Options(ctx context.Context) (chron.VerifyOptions, []chron.Problem, error) {
	var opts chron.VerifyOptions
	pubs, err := ReadPublic(ctx, s.Reader, s.PublicNamespace)
	if err != nil {
		return opts, nil, err
	}
	cps, problems, err := ReadCheckpoints(ctx, s.Reader, s.LeaseNamespaces...)
	if err != nil {
		return opts, nil, err
	}
	opts.PublicKeys, opts.Checkpoints = pubs, cps
	if len(s.KeySecrets) > 0 {
		opts.Keys = chron.Keyring{}
		for _, ref := range s.KeySecrets {
			k, err := ReadKeySet(ctx, s.Reader, ref.Namespace, ref.Name, ref.Scope)
			if err != nil {
				return opts, nil, err
			}
			opts.Keys.Add(k)
		}
	}
	return opts, problems, nil
}
