package controllers

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"k8s.io/apimachinery/pkg/types"

	"github.com/claiim/claiim-operator/gate/chron"
)

// Log records control-plane events in Chron (its writer); nil records
// nothing (tests of reconcilers alone).
type Log interface {
	Write(ctx context.Context, r *chron.Record) (chron.Row, error)
}

// recordNS seeds event ids: an event about one object is one row however
// often a reconcile that records it is retried.
var recordNS = uuid.MustParse("6f1c6a8e-2d0b-4b8e-9a55-0c1aa11e0001")

// recordEvent writes an event once, keyed by the object's UID and what
// happened.
func recordEvent(ctx context.Context, log Log, uid types.UID, key string, rec *chron.Record) error {
	if log == nil {
		return nil
	}
	rec.ID = uuid.NewSHA1(recordNS, []byte(string(uid)+"/"+key)).String()
	rec.Replica = "manager"
	if _, err := log.Write(ctx, rec); err != nil {
		return fmt.Errorf("recording %s in Chron: %w", rec.Kind, err)
	}
	return nil
}
