package controllers

import (
	"context"
	"fmt"
	"sync"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/chron"
)

// HistoryStore keeps the generations of AIOrgs, Skills, Policies and
// Agents (Chron's chron_history; chron.HistoryStore, or the manager's
// Chron once its schema is ready).
type HistoryStore interface {
	RecordGeneration(ctx context.Context, g chron.Generation) (chron.Generation, bool, error)
	RecordedBefore(ctx context.Context, uid string, gen int64) (int64, error)
}

// History records every generation the manager sees stored, after the
// apiserver stored it (the webhook sees writes that may never be
// stored): its spec, who changed it under which PIM session (admission's
// changed-by annotation, trusted only when admission's stamp covers it),
// and an `object.changed` Chron row. Generations that came and went
// between two the manager saw are named in an `object.gap` row; their
// content is not known and never invented.
type History struct {
	Store HistoryStore
	Log   Log

	mu sync.Mutex
	// done is the last generation recorded per object by this process: a
	// status write or a resync re-reconciles without a database round trip.
	done map[types.UID]int64
}

// maxDone bounds History.done: far more objects than a cluster holds.
const maxDone = 1 << 16

// record keeps obj's current generation; admitted says admission's stamp
// covers it. Idempotent: a retry, a restart or another replica stores
// nothing twice (the row's key, the Chron rows' keyed ids).
func (h *History) record(ctx context.Context, obj client.Object, admitted bool) error {
	kind, spec, kept := claiimv1.KeptSpec(obj)
	if h == nil || h.Store == nil || !kept {
		return nil
	}
	uid, gen := obj.GetUID(), obj.GetGeneration()
	h.mu.Lock()
	seen := h.done[uid] == gen
	h.mu.Unlock()
	if seen {
		return nil
	}
	g, err := chron.NewGeneration(kind, string(uid), obj.GetNamespace(), obj.GetName(), gen, spec)
	if err != nil {
		return err
	}
	g.Admitted = admitted
	if c, ok := claiimv1.ParseChangedBy(obj.GetAnnotations()[claiimv1.AnnotationChangedBy]); ok && admitted {
		g.ChangedBy, g.PIMSession = c.User, c.PIMSession
	}
	if err := h.gap(ctx, obj, kind); err != nil {
		return err
	}
	stored, _, err := h.Store.RecordGeneration(ctx, g)
	if err != nil {
		return fmt.Errorf("keeping the history of %s %s: %w", kind, objName(obj), err)
	}
	if stored.Digest != g.Digest {
		return h.conflict(ctx, obj, g, stored)
	}
	// From the stored row only: a restart or another replica derives the
	// same record under the same id, whatever it sees now.
	what := fmt.Sprintf("%s %s generation %d stored (spec %s)", kind, objName(obj), gen, stored.Digest)
	switch {
	case !stored.Admitted:
		what += ", changed past admission: who changed it is not known"
	case stored.ChangedBy == "":
		what += ", by someone admission did not name (stored before changes were attributed)"
	case stored.PIMSession != "":
		what += fmt.Sprintf(", changed by %s under PIM session %s", stored.ChangedBy, stored.PIMSession)
	default:
		what += fmt.Sprintf(", changed by %s without a PIM session", stored.ChangedBy)
	}
	rec := historyRecord(obj, kind, chron.KindObjectChanged, "object:changed", what)
	rec.Actor = stored.ChangedBy
	rec.Context["spec_digest"], rec.Context["admitted"] = stored.Digest, stored.Admitted
	rec.Context["changed_by"], rec.Context["pim_session"] = stored.ChangedBy, stored.PIMSession
	if err := recordEvent(ctx, h.Log, uid, fmt.Sprintf("changed/%d", gen), rec); err != nil {
		return err
	}
	h.mu.Lock()
	if h.done == nil || len(h.done) >= maxDone {
		h.done = map[types.UID]int64{} // deleted objects' entries go too; the rest re-check once
	}
	h.done[uid] = gen
	h.mu.Unlock()
	return nil
}

// gap writes an object.gap row when generations before obj's are missing
// from the history: the object changed faster than the manager saw it, or
// before its history was kept.
func (h *History) gap(ctx context.Context, obj client.Object, kind string) error {
	gen := obj.GetGeneration()
	prev, err := h.Store.RecordedBefore(ctx, string(obj.GetUID()), gen)
	if err != nil {
		return fmt.Errorf("reading the history of %s %s: %w", kind, objName(obj), err)
	}
	if prev >= gen-1 {
		return nil
	}
	from, to := prev+1, gen-1
	missed := fmt.Sprintf("generation %d", from)
	if to > from {
		missed = fmt.Sprintf("generations %d to %d", from, to)
	}
	rec := historyRecord(obj, kind, chron.KindObjectGap, "object:gap", fmt.Sprintf(
		"%s %s: %s were stored but never seen by the manager (changed again before it reconciled, or before history was kept): "+
			"their content is not known; the apiserver's audit log has the writes", kind, objName(obj), missed))
	rec.Context["missed_from"], rec.Context["missed_to"] = from, to
	return recordEvent(ctx, h.Log, obj.GetUID(), fmt.Sprintf("gap/%d-%d", from, to), rec)
}

// conflict reports a history row of other content under the generation's
// key: not what the manager saw stored (a forged or mistaken row), which
// stays as evidence; the reconcile goes on.
func (h *History) conflict(ctx context.Context, obj client.Object, g, stored chron.Generation) error {
	rec := historyRecord(obj, g.Kind, chron.KindConflict, "history:conflict", fmt.Sprintf(
		"%s %s generation %d is in the history with spec %s, but the manager sees it stored with spec %s: "+
			"the history row was not written from what was stored; see docs/history.md", g.Kind, objName(obj), g.Generation, stored.Digest, g.Digest))
	rec.Outcome, rec.Reason = chron.OutcomeDeny, "HISTORY_CONFLICT"
	rec.Context["spec_digest"], rec.Context["stored_digest"] = g.Digest, stored.Digest
	return recordEvent(ctx, h.Log, obj.GetUID(), fmt.Sprintf("history-conflict/%d/%s", g.Generation, g.Digest), rec)
}

func historyRecord(obj client.Object, kind string, k chron.Kind, action, msg string) *chron.Record {
	rec := &chron.Record{Kind: k, Action: action, Outcome: chron.OutcomeAllow, Message: msg, Org: orgOf(obj),
		Context: map[string]any{"kind": kind, "name": obj.GetName(), "uid": string(obj.GetUID()), "generation": obj.GetGeneration()}}
	if ns := obj.GetNamespace(); ns != "" {
		rec.Context["namespace"] = ns
	}
	if ag, ok := obj.(*claiimv1.Agent); ok {
		rec.AgentName, rec.AgentNamespace, rec.AgentUID = ag.Name, ag.Namespace, string(ag.UID)
	}
	return rec
}
