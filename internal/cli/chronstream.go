package cli

// A component's Chron stream: its keys, the Lease of its set it holds, and
// the writer options that bind the writer to both (gate/chronlease).

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/gate/chronlease"
)

type chronStreams struct {
	namespace *string
	keysDir   *string
	size      *int
	interval  *time.Duration
}

func chronStreamFlags(fs *flag.FlagSet, component, keysDir string, size int) *chronStreams {
	c := &chronStreams{
		namespace: fs.String("chron-namespace", podNamespace(), "namespace of the "+component+"'s Chron stream Leases"),
		size: fs.Int("chron-streams", size, "size of the "+component+"'s set of Chron streams (Leases claiim-chron-"+component+
			"-0..N-1): at least the replicas that run at once, rollouts included"),
		interval: fs.Duration("chron-checkpoint-interval", chronlease.DefaultInterval, "how often the "+component+
			" publishes its stream's signed checkpoint; rows since the last one are what could be cut unseen, and "+
			"past twice this without publishing the "+component+" stops writing and is not ready"),
	}
	if keysDir != "" {
		c.keysDir = fs.String("chron-keys", keysDir, "directory of the mounted Secret "+chronlease.GateKeysSecret+
			" with the gate's Chron keys; when it is missing the Secret is read from --chron-namespace")
	}
	return c
}

// gateKeys reads the gate's keys from the mounted Secret or, outside a pod
// (make dev), from the API, waiting for the manager to create them.
func (c *chronStreams) gateKeys(ctx context.Context, cl client.Client, log logr.Logger) (chron.KeySet, error) {
	if _, err := os.Stat(*c.keysDir); err == nil {
		return chronlease.ReadKeyDir(*c.keysDir, chron.ScopeGate)
	}
	for {
		k, err := chronlease.ReadKeySet(ctx, cl, *c.namespace, chronlease.GateKeysSecret, chron.ScopeGate)
		if err == nil {
			return k, nil
		}
		log.Info("waiting for the gate's Chron keys (the manager creates them)", "error", err.Error())
		select {
		case <-ctx.Done():
			return k, fmt.Errorf("no Chron keys for the gate: %w (mount Secret %s at %s, or let the manager create it in %s)",
				err, chronlease.GateKeysSecret, *c.keysDir, *c.namespace)
		case <-time.After(2 * time.Second):
		}
	}
}

// hold takes a stream of scope's set and returns its holder and the
// writer options bound to it: the chain key, the guard, the checkpoint
// to check the stream against, and loud conflicts.
func (c *chronStreams) hold(ctx context.Context, cl client.Client, scope, replica string, keys chron.KeySet,
	m *chronlease.Metrics, log logr.Logger) (*chronlease.Holder, chron.WriterOptions, error) {
	if *c.size <= 0 || *c.interval <= 0 {
		return nil, chron.WriterOptions{}, errors.New("--chron-streams and --chron-checkpoint-interval must be positive")
	}
	h := &chronlease.Holder{Client: cl, Namespace: *c.namespace, Scope: scope, Size: *c.size, Replica: replica,
		Interval: *c.interval, Keys: keys, Log: log, Metrics: m}
	stream, cp, err := h.Acquire(ctx)
	if err != nil {
		return nil, chron.WriterOptions{}, err
	}
	key := keys.ChainKey()
	return h, chron.WriterOptions{Stream: stream, Key: &key, IDKey: keys.EventID, Guard: h.Guard, Checkpoint: cp,
		OnTamper: h.Tampered, OnConflict: func(id string) {
			m.Conflict()
			log.Error(chron.ErrConflict, "a record's id was already in Chron with other content: refused and recorded as chron.conflict",
				"id", id, "stream", stream)
		}}, nil
}
