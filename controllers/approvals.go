package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/attest"
	"github.com/claiim/claiim-operator/gate/chron"
)

// +kubebuilder:rbac:groups=claiim.io,resources=actionapprovals,verbs=get;list;watch;create;delete

// ApprovalMaterializer turns the gates' approval.requested Chron rows into
// ActionApprovals people can approve: the gate may not write to the
// apiserver, so the manager's leader does it. It tails Chron by kind in
// commit order with a keyset cursor (the partial index on control-plane
// kinds makes each poll a short index scan), a bounded page at a time, and
// starts, after a restart or a change of leader, from the longest an
// approval can live: a request already made is found again and kept
// (AlreadyExists), an expired one is skipped.
type ApprovalMaterializer struct {
	Pool   *pgxpool.Pool
	Client client.Client
	Signer *attest.Signer
	// Interval between polls once caught up; default 1s.
	Interval time.Duration
	// Retention is how long an ActionApproval is kept after it expired
	// (default 24h): then the leader deletes it. Chron keeps every step.
	Retention time.Duration
	Clock     clock.PassiveClock
}

// DefaultApprovalRetention keeps expired ActionApprovals for a day.
const DefaultApprovalRetention = 24 * time.Hour

// approvalPage bounds one poll.
const approvalPage = 100

func (m *ApprovalMaterializer) NeedLeaderElection() bool { return true }

// Start polls until ctx ends. A row it cannot materialize (the apiserver
// away) is retried at the next poll: the cursor never passes it.
func (m *ApprovalMaterializer) Start(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx).WithName("approvals")
	every := m.Interval
	if every <= 0 {
		every = time.Second
	}
	keep := m.Retention
	if keep <= 0 {
		keep = DefaultApprovalRetention
	}
	since := m.Clock.Now().Add(-claiimv1.MaxApprovalTTLSeconds * time.Second)
	cursor := ""
	tick := time.NewTicker(every)
	defer tick.Stop()
	var swept time.Time
	for {
		if now := m.Clock.Now(); now.Sub(swept) >= min(keep, 10*time.Minute) {
			if err := m.sweep(ctx, now.Add(-keep)); err != nil {
				log.Info("cannot delete expired approvals yet; retrying", "problem", err.Error())
			}
			swept = now
		}
		next, more, err := m.poll(ctx, since, cursor)
		if err != nil {
			log.Info("cannot materialize approval requests yet; retrying", "problem", err.Error())
		}
		cursor = next
		if more && err == nil {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// sweep deletes the ActionApprovals that expired before cutoff: they can
// allow nothing, and would pile up one per held call.
func (m *ApprovalMaterializer) sweep(ctx context.Context, cutoff time.Time) error {
	list := &claiimv1.ActionApprovalList{}
	if err := m.Client.List(ctx, list); err != nil {
		return err
	}
	for i := range list.Items {
		ap := &list.Items[i]
		if ap.Spec.ExpiresAt.Before(&metav1.Time{Time: cutoff}) {
			if err := m.Client.Delete(ctx, ap, client.Preconditions{UID: &ap.UID}); client.IgnoreNotFound(err) != nil {
				return err
			}
		}
	}
	return nil
}

// poll materializes one page after cursor and returns where to go on, and
// whether more is waiting.
func (m *ApprovalMaterializer) poll(ctx context.Context, since time.Time, cursor string) (string, bool, error) {
	page, err := chron.ListPage(ctx, m.Pool, chron.Filter{Kind: string(chron.KindApprovalRequested), OldestFirst: true,
		Since: since, After: cursor, Limit: approvalPage})
	if err != nil {
		return cursor, false, err
	}
	for i := range page.Rows {
		if err := m.materialize(ctx, &page.Rows[i]); err != nil {
			return cursor, false, fmt.Errorf("approval request %s: %w", page.Rows[i].RequestID, err)
		}
		cursor = page.After(i)
	}
	if page.Next != "" {
		return page.Next, true, nil
	}
	return page.Tail, false, nil
}

// materialize creates the ActionApproval a row asks for, signed, unless
// it exists or has expired. A row that does not read as a request from
// this version of the gate is skipped: nothing can approve it.
func (m *ApprovalMaterializer) materialize(ctx context.Context, row *chron.Row) error {
	ap, err := approvalFromRow(row)
	if err != nil {
		ctrl.LoggerFrom(ctx).Info("skipping an approval request that does not read", "chron", fmt.Sprintf("%s/%d", row.Stream, row.Seq), "problem", err.Error())
		return nil
	}
	if !m.Clock.Now().Before(ap.Spec.ExpiresAt.Time) {
		return nil
	}
	ap.Annotations = map[string]string{claiimv1.AnnotationRequestAttestation: m.Signer.Sign(attest.ApprovalRequest(ap))}
	err = m.Client.Create(ctx, ap)
	switch {
	case err == nil, apierrors.IsAlreadyExists(err):
		return nil
	case apierrors.IsNotFound(err), apierrors.IsInvalid(err), apierrors.IsBadRequest(err), apierrors.IsForbidden(err):
		// It will never be made (the namespace is gone, the request does
		// not validate, admission refuses it): waiting on it would hold up
		// every request after it. The agent's retry stays APPROVAL_PENDING
		// until it expires; the log and the gate's row say which.
		ctrl.LoggerFrom(ctx).Info("an approval request cannot be materialized; skipping it", "approval", ap.Name,
			"agent", ap.Namespace+"/"+ap.Spec.Agent, "problem", err.Error())
		return nil
	}
	return err
}

// approvalFromRow reads the gate's request (gate/server/approval.go).
func approvalFromRow(row *chron.Row) (*claiimv1.ActionApproval, error) {
	c := row.Context
	str := func(k string) string { s, _ := c[k].(string); return s }
	id := str("approval_id")
	if id == "" || id != row.RequestID || row.AgentNamespace == "" {
		return nil, fmt.Errorf("no approval id, or no agent")
	}
	requested, err1 := time.Parse(time.RFC3339, str("requested_at"))
	expires, err2 := time.Parse(time.RFC3339, str("expires_at"))
	required, ok := c["approvals_required"].(float64)
	if err1 != nil || err2 != nil || !ok || required < 1 || required > claiimv1.MaxApprovers {
		return nil, fmt.Errorf("times or approvals_required unreadable")
	}
	shown, _ := json.Marshal(c["context"]) // masked by Chron; shown to the people who decide
	if len(shown) > 16384 {
		shown = append(shown[:16000:16000], []byte("… (cut; the full context is in the agent's call)")...)
	}
	requester := row.Actor
	if sa, ok := strings.CutPrefix(requester, "serviceaccount:"); ok { // the gate's form: serviceaccount:<ns>/<name>
		requester = "system:serviceaccount:" + strings.Replace(sa, "/", ":", 1)
	}
	return &claiimv1.ActionApproval{
		ObjectMeta: metav1.ObjectMeta{Name: id, Namespace: row.AgentNamespace, Labels: map[string]string{claiimv1.LabelAgentName: row.AgentName}},
		Spec: claiimv1.ActionApprovalSpec{
			Agent: row.AgentName, AgentUID: row.AgentUID, AgentServiceAccount: str("agent_service_account"),
			Org: claiimv1.OrgName(row.Org), Anchor: claiimv1.Username(row.Anchor), Requester: requester,
			Action: row.Action, ContextDigest: str("context_digest"), Context: string(shown), SkillVersionID: row.SkillVersionID,
			Policy: str("policy"), Rule: str("rule"), ApprovalsRequired: int32(required),
			RequestedAt: metav1.NewTime(requested), ExpiresAt: metav1.NewTime(expires),
			ChronID: fmt.Sprintf("%s/%d", row.Stream, row.Seq),
		},
	}, nil
}
