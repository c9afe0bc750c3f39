package server

import "github.com/claiim/claiim-operator/gate/decide"

// Require makes snaps ready only while check passes too: until it does,
// decisions are DENY NOT_READY with check's reason, and /ready answers
// 503. The gate requires that its Chron checkpoints are being published
// (gate/chronlease): a gate that cannot publish them stops answering.
func Require(snaps Snapshots, check func() error) Snapshots {
	return required{Snapshots: snaps, check: check}
}

type required struct {
	Snapshots
	check func() error
}

func (r required) Snapshot() *decide.Snapshot {
	if r.check() != nil {
		return nil
	}
	return r.Snapshots.Snapshot()
}

func (r required) Ready() error {
	if err := r.check(); err != nil {
		return err
	}
	return r.Snapshots.Ready()
}
