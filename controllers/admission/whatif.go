package admission

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/whatif"
)

// WhatIf replays the agents' recent decisions against every admitted
// Policy, Skill or Agent change (gate/whatif) and answers with what would
// flip, as admission warnings and on the PIMRequest the change was made
// under. It informs and never decides: whatever goes wrong becomes a
// warning, never a refusal.
type WhatIf struct {
	// Chron is read for the decision rows (the manager's role may SELECT).
	Chron *pgxpool.Pool
	// Budget bounds the whole what-if, reading included (default 2s):
	// past it, what was replayed is reported as a sample.
	Budget time.Duration
	// Since is how far back decisions are replayed (default 24h), and
	// Limit how many of the newest at most (default whatif.DefaultLimit).
	Since time.Duration
	Limit int
}

// answerWithin is how long after a request arrived its what-if must be
// done: the webhooks' timeout is 5 s (admission.go), and a what-if must
// never make the answer late, whatever the checks before it took.
const answerWithin = 4 * time.Second

// maxWarnings bounds the warnings of one answer (the apiserver bounds
// their total size too).
const maxWarnings = 5

// whatIfKinds are the changes a what-if runs for.
var whatIfKinds = map[string]bool{"Policy": true, "Skill": true, "Agent": true}

// whatIf runs the change's what-if as warnings, and hands the summary to
// the session's status. session is nil for a change admitted without one.
// arrived is when the request came in.
func (h *handlers) whatIf(ctx context.Context, req admission.Request, session *claiimv1.PIMRequest, arrived time.Time) admission.Warnings {
	o := h.WhatIf
	if o == nil || previewing(ctx) || !whatIfKinds[req.Kind.Kind] {
		return nil
	}
	rep, hidden, err := o.run(ctx, h, req, time.Until(arrived.Add(answerWithin)))
	if err != nil {
		return admission.Warnings{"what-if: could not run, so nothing is known about which decisions this change would flip: " + err.Error()}
	}
	if session != nil && (req.DryRun == nil || !*req.DryRun) {
		go h.recordWhatIf(session.Name, rep)
	}
	warnings := rep.Warnings(maxWarnings - 1) // one left for the orgs not replayed
	if len(hidden) > 0 {
		warnings = append(warnings, hiddenWarning(req.UserInfo.Username, hidden))
	}
	return warnings
}

// run runs the what-if within its budget and at most left.
// hidden are the orgs in the change's reach whose rows its author may not
// read, which it does not replay (readableScope).
func (o *WhatIf) run(ctx context.Context, h *handlers, req admission.Request, left time.Duration) (rep *whatif.Report, hidden []string, err error) {
	budget, since, limit := o.Budget, o.Since, o.Limit
	if budget <= 0 {
		budget = 2 * time.Second
	}
	if since <= 0 {
		since = whatif.DefaultSince
	}
	if limit <= 0 {
		limit = whatif.DefaultLimit
	}
	if left < budget {
		if left <= 0 {
			return nil, nil, fmt.Errorf("the admission's own checks took its time (%s)", answerWithin)
		}
		budget = left
	}
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	edit := whatif.Edit{Delete: req.Operation == admissionv1.Delete}
	raw := req.Object
	if edit.Delete {
		raw = req.OldObject
	}
	obj, err := h.decodeAs(req, raw)
	if err != nil {
		return nil, nil, err
	}
	edit.Object = obj
	// Live, not the cache: a change right after another must see it.
	w, err := whatif.ListWorld(ctx, h.APIReader)
	if err != nil {
		return nil, nil, err
	}
	w.Keys = h.Signer
	change := whatif.Change{edit}
	// The gate's clock, not admission's: decisions are made, and Chron
	// rows stamped, in real time.
	now := time.Now()
	// Reading may take at most part of the budget: a sample replayed
	// tells more than a complete read never replayed.
	rctx, rcancel := context.WithTimeout(ctx, budget*6/10)
	orgs, hidden, err := h.readableScope(rctx, req, w, whatif.Scope(w, change))
	if err != nil {
		rcancel()
		return nil, nil, err
	}
	reqs, more, err := whatif.ReadRequests(rctx, o.Chron, whatif.Source{Since: now.Add(-since), Limit: limit, Orgs: orgs})
	stopped := ""
	switch {
	case more && rctx.Err() != nil:
		stopped = fmt.Sprintf("the time budget (%s)", budget)
	case more:
		stopped = fmt.Sprintf("the cap of %d rows", limit)
	}
	rcancel()
	if err != nil {
		return nil, nil, fmt.Errorf("reading Chron: %w", err)
	}
	rep, err = whatif.Replay(ctx, w, change, reqs, whatif.Options{Now: now, Stopped: stopped, Window: whatif.Window(since)})
	return rep, hidden, err
}

// recordWhatIf adds the report to the session's status.whatIf, as the
// manager (status is the manager's, exempt from PIM), after the answer:
// it never delays or fails the admission.
func (h *handlers) recordWhatIf(session string, rep *whatif.Report) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	entry := claiimv1.PIMWhatIf{Summary: rep.Summary(2048), At: metav1.NewTime(time.Now()),
		Changed: int32(min(rep.Changed, 1<<30)), Undecidable: int32(min(rep.Undecidable, 1<<30)), Sampled: rep.Sampled != ""}
	if len(rep.Change) > 0 {
		entry.Object = truncate(rep.Change[0], 512)
	}
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p := &claiimv1.PIMRequest{}
		if err := h.APIReader.Get(ctx, client.ObjectKey{Name: session}, p); err != nil {
			return err
		}
		// A write retried after a conflict passes admission again with the
		// same change and the same report: one entry says it.
		if n := len(p.Status.WhatIf); n > 0 && sameWhatIf(p.Status.WhatIf[n-1], entry) {
			return nil
		}
		p.Status.WhatIf = append(p.Status.WhatIf, entry)
		if n := len(p.Status.WhatIf); n > claiimv1.MaxPIMWhatIf {
			p.Status.WhatIf = p.Status.WhatIf[n-claiimv1.MaxPIMWhatIf:]
		}
		return h.Client.Status().Update(ctx, p)
	})
	if err != nil {
		logf.Log.WithName("admission").Error(err, "could not record a what-if on the PIM session", "session", session, "change", entry.Object)
	}
}

// sameWhatIf is whether two entries report the same change the same way.
func sameWhatIf(a, b claiimv1.PIMWhatIf) bool {
	return a.Object == b.Object && a.Summary == b.Summary && a.Changed == b.Changed &&
		a.Undecidable == b.Undecidable && a.Sampled == b.Sampled
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
