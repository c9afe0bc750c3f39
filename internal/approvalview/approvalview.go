// Package approvalview is an ActionApproval as a person sees it, the same
// in the console and in kubectl claiim: its state now, the decisions
// people make on it (the annotations admission consumes), and which of
// them admission would refuse a person whatever their RBAC. It asks
// nothing of the apiserver: where RBAC decides, it says so and the caller
// asks.
package approvalview

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

// A Decision is one decision a person makes on a held call: setting
// Annotation to their comment; admission stamps who from their identity.
type Decision struct {
	Verb, Annotation, Did string
}

// Approve and Deny are the two decisions; a denial is final.
var (
	Approve = Decision{Verb: "approve", Annotation: claiimv1.AnnotationApprove, Did: "approved"}
	Deny    = Decision{Verb: "deny", Annotation: claiimv1.AnnotationDeny, Did: "denied"}
)

// DecisionOf is the decision named verb.
func DecisionOf(verb string) (Decision, bool) {
	for _, d := range []Decision{Approve, Deny} {
		if d.Verb == verb {
			return d, true
		}
	}
	return Decision{}, false
}

// Patch is the JSON merge patch that makes the decision with comment.
func (d Decision) Patch(comment string) client.Patch {
	b, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{d.Annotation: comment}}})
	return client.RawPatch(types.MergePatchType, b) // a map of strings always marshals
}

// Request is one ActionApproval at a moment.
type Request struct {
	*claiimv1.ActionApproval
	State claiimv1.ApprovalState
}

// Of is a as it stands at now.
func Of(a *claiimv1.ActionApproval, now time.Time) Request {
	return Request{ActionApproval: a, State: a.State(now)}
}

// List is items as they stand at now: pending first, the soonest to
// expire first; then the decided and expired, newest first.
func List(items []claiimv1.ActionApproval, now time.Time) []Request {
	out := make([]Request, 0, len(items))
	for i := range items {
		out = append(out, Of(&items[i], now))
	}
	slices.SortStableFunc(out, func(a, b Request) int {
		ap, bp := a.Pending(), b.Pending()
		switch {
		case ap && !bp:
			return -1
		case bp && !ap:
			return 1
		case ap:
			return a.Spec.ExpiresAt.Compare(b.Spec.ExpiresAt.Time)
		}
		return b.Spec.RequestedAt.Compare(a.Spec.RequestedAt.Time)
	})
	return out
}

// Pending says whether a decision can still change the request.
func (r Request) Pending() bool { return r.State.Phase == claiimv1.ApprovalPending }

// Refusal says why admission refuses user decision d on the request
// whatever their RBAC, in admission's words, or "" when RBAC decides
// (NotAnApprover is what to say when it refuses). Admission has the last
// word: it also checks the manager's signature, which only it can.
func (r Request) Refusal(user string, d Decision) string {
	sp := &r.Spec
	switch {
	case !r.Pending():
		return fmt.Sprintf("this approval is already %s; the agent asks again for a new one", r.State.Phase)
	case sp.AgentServiceAccount != "" && user == sp.AgentServiceAccount:
		return user + " is the agent's own ServiceAccount: an agent never approves its own calls"
	case user == sp.Requester:
		return "you made this call: approval needs another person"
	case d == Approve && slices.Contains(r.State.Approvers, user):
		return fmt.Sprintf("you already approved this call; it needs %d distinct people: ask another approver", sp.ApprovalsRequired)
	}
	return ""
}

// NotAnApprover is why RBAC refuses user decision d in namespace ns.
func NotAnApprover(user string, d Decision, ns string) string {
	return fmt.Sprintf("%s may not %s agents' calls in namespace %s: it needs the RBAC verb 'approve' on actionapprovals.claiim.io (the claiim-action-approver ClusterRole)",
		user, d.Verb, ns)
}
