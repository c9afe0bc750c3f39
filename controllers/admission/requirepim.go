package admission

import (
	"context"
	"fmt"
	"net/http"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/attest"
	"github.com/claiim/claiim-operator/gate/chron"
)

// Reasons recorded for control-plane admissions.
const (
	ReasonPIMSession   = "PIM_SESSION"
	ReasonNoPIMSession = "NO_PIM_SESSION"
	ReasonSafety       = "SAFETY_ACTION"
	ReasonOwnAct       = "OWN_ACT"
	ReasonInvalid      = "INVALID"
)

// verdict is what a kind's own rules say about a change.
type verdict struct {
	refuse string // non-empty: refused for everyone, with this message
	// noSession: the change is allowed without an elevated session
	// (a safety action or a person's own act), with this reason. With
	// refuse set, it marks a refused own act: its own reason is what the
	// person needs to hear, not a request for a session.
	noSession string
	what      string          // what the change is, for Chron
	agent     *claiimv1.Agent // the agent the change is about, for Chron
}

// rules are a kind's own rules about the change in req.
type rules func(req admission.Request) (verdict, error)

// noRules is for a change a kind has nothing to say about but PIM.
func noRules(admission.Request) (verdict, error) { return verdict{}, nil }

// requirePIM is the one PIM check of the control plane: every privileged
// kind's validator calls it, for create, update and delete, with the
// kind's own rules. The manager's own changes pass (before any rule runs);
// a change the rules call a safety action or the person's own act passes
// without a session; anything else needs an active PIM session whose
// subject is the requesting user, and its what-if comes back as warnings
// (whatif.go). No session, no business: that refusal
// comes first, and the kind's refusals then hold even for an elevated
// user. Every answer is in Chron before it is given.
func (h *handlers) requirePIM(ctx context.Context, check rules) (admission.Warnings, error) {
	arrived := time.Now()
	req, err := requestFrom(ctx)
	if err != nil {
		return nil, err
	}
	user := req.UserInfo.Username
	if user == h.ManagerUsername {
		return nil, h.stamped(ctx, req) // the manager's own change
	}
	v, err := check(req)
	if err != nil {
		return nil, errored(http.StatusServiceUnavailable, err)
	}
	rec := &chron.Record{Kind: chron.KindAdmissionAdmitted, Message: v.what}
	if a := v.agent; a != nil {
		rec.AgentName, rec.AgentNamespace, rec.AgentUID, rec.Org, rec.Anchor = a.Name, a.Namespace, string(a.UID), string(a.Spec.Org), string(a.Spec.AccountabilityAnchor)
	}
	if v.noSession != "" && v.refuse == "" {
		if err := h.stamped(ctx, req); err != nil {
			return nil, err
		}
		rec.Reason = v.noSession
		if err := h.admit(ctx, req, rec); err != nil {
			return nil, err
		}
		return h.whatIf(ctx, req, nil, arrived), nil
	}
	session, err := h.activeSession(ctx, user)
	if err != nil {
		return nil, errored(http.StatusServiceUnavailable, err)
	}
	if v.refuse != "" && (session != nil || v.noSession != "") {
		return nil, h.refuse(ctx, req, chron.KindAdmissionRefused, ReasonInvalid, v.refuse)
	}
	if session == nil {
		return nil, h.refuse(ctx, req, chron.KindAdmissionRefused, ReasonNoPIMSession, fmt.Sprintf(
			"PIM: %s %s %q needs an active PIM session for %s, and there is none (or it expired). "+
				"Request elevation with a PIMRequest stating your reason (kubectl create -f pimrequest.yaml) "+
				"and have another approver approve it (kubectl annotate pimrequest <name> claiim.io/approve=\"<comment>\"); then retry",
			verbing(string(req.Operation)), req.Kind.Kind, req.Name, user))
	}
	if err := h.stamped(ctx, req); err != nil {
		return nil, err
	}
	rec.Reason = ReasonPIMSession
	if rec.Message == "" {
		rec.Message = fmt.Sprintf("%s %s %q under PIM session %s", verbing(string(req.Operation)), req.Kind.Kind, req.Name, session.Name)
	}
	rec.Context = map[string]any{"pim_session": session.Name, "approved_by": session.Annotations[claiimv1.AnnotationApprovedBy]}
	if err := h.admit(ctx, req, rec); err != nil {
		return nil, err
	}
	return h.whatIf(ctx, req, session, arrived), nil
}

// activeSession finds a PIMRequest that elevates user now. A session the
// cache shows is confirmed with the apiserver before it counts, since the
// cache may lag its revocation or deletion; when the cache shows none,
// the apiserver is asked before refusing, since it may lag an approval.
func (h *handlers) activeSession(ctx context.Context, user string) (*claiimv1.PIMRequest, error) {
	cached := &claiimv1.PIMRequestList{}
	if err := h.Reader.List(ctx, cached); err != nil {
		return nil, fmt.Errorf("reading PIM sessions: %w", err)
	}
	for i := range cached.Items {
		if !h.elevates(&cached.Items[i], user) {
			continue
		}
		live := &claiimv1.PIMRequest{}
		err := h.APIReader.Get(ctx, client.ObjectKeyFromObject(&cached.Items[i]), live)
		if apierrors.IsNotFound(err) {
			continue // deleted: it elevates nobody
		}
		if err != nil {
			return nil, fmt.Errorf("confirming PIM session %s: %w", cached.Items[i].Name, err)
		}
		if h.elevates(live, user) {
			return live, nil
		}
	}
	list := &claiimv1.PIMRequestList{}
	if err := h.APIReader.List(ctx, list); err != nil {
		return nil, fmt.Errorf("reading PIM sessions: %w", err)
	}
	for i := range list.Items {
		if h.elevates(&list.Items[i], user) {
			return &list.Items[i], nil
		}
	}
	return nil, nil
}

// elevates reports whether p gives user a session now: its approval must
// carry admission's signature (and, when it needs several approvers, as
// many signed approvals), so approval annotations written past the
// webhooks (or by anyone the webhooks never saw) elevate nobody.
func (h *handlers) elevates(p *claiimv1.PIMRequest, user string) bool {
	return p.Elevates(user, h.now()) && attest.PIMApproved(p, h.Signer) == nil
}

// pimOnly is the webhook of a kind with no rules of its own beyond its
// CRD's (AIOrg, Policy): every change needs PIM.
type pimOnly[T client.Object] struct{ h *handlers }

var (
	_ admission.Validator[*claiimv1.AIOrg]  = pimOnly[*claiimv1.AIOrg]{}
	_ admission.Validator[*claiimv1.Policy] = pimOnly[*claiimv1.Policy]{}
)

func (v pimOnly[T]) ValidateCreate(ctx context.Context, _ T) (admission.Warnings, error) {
	return v.h.requirePIM(ctx, noRules)
}

func (v pimOnly[T]) ValidateUpdate(ctx context.Context, _, _ T) (admission.Warnings, error) {
	return v.h.requirePIM(ctx, noRules)
}

func (v pimOnly[T]) ValidateDelete(ctx context.Context, _ T) (admission.Warnings, error) {
	return v.h.requirePIM(ctx, noRules)
}
