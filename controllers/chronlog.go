package controllers

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/types"

	"github.com/claiim/claiim-operator/gate/chron"
)

// Log records control-plane events in Chron (its writer); nil records
// nothing (tests of reconcilers alone). It must also derive event ids
// (EventIDs): chron.Writer does.
type Log interface {
	Write(ctx context.Context, r *chron.Record) (chron.Row, error)
}

// EventIDs derives record ids nobody can compute without a secret key,
// stable for the same parts (chron.Writer.EventID, HMAC under the
// manager's event-id key).
type EventIDs interface {
	EventID(parts ...string) string
}

var errNoEventIDs = errors.New("the Chron log derives no keyed event ids; refusing predictable ones, which anyone with INSERT could pre-empt")

// recordEvent writes an event once, keyed by the object's UID and what
// happened: a retried reconcile, or a restarted manager, derives the same
// id and stores nothing new. The id is an HMAC under a key in the
// manager's Secret, so it cannot be predicted from the object's public
// fields and pre-empted by a forged row; a forged row under it anyway is
// refused (chron.ErrConflict) and recorded as chron.conflict.
func recordEvent(ctx context.Context, log Log, uid types.UID, key string, rec *chron.Record) error {
	if log == nil {
		return nil
	}
	ids, ok := log.(EventIDs)
	if !ok {
		return fmt.Errorf("recording %s in Chron: %w", rec.Kind, errNoEventIDs)
	}
	rec.ID = ids.EventID("controllers", string(uid), key)
	rec.Replica = "manager"
	if _, err := log.Write(ctx, rec); err != nil {
		return fmt.Errorf("recording %s in Chron: %w", rec.Kind, err)
	}
	return nil
}
