package console

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/internal/approvalview"
)

// The Approvals page: agents' calls a RequireApproval policy rule holds
// until people approve them (ActionApprovals). It lists what the person
// can read, with their own token; approve and deny set the annotations
// kubectl claiim approval sets (internal/approvalview), and admission
// stamps who decided and refuses what the rules forbid.
//
//	GET  /approvals                                  the queue (?namespace= narrows)
//	POST /approvals/{namespace}/{name}/{decision}    approve, deny
func (c *Console) registerApprovals(mux *http.ServeMux) {
	mux.HandleFunc("GET /approvals", c.page(c.approvals))
	mux.HandleFunc("POST /approvals/{namespace}/{name}/{decision}", c.page(c.approvalDecide))
}

// approvalRow is one held call as the page shows it.
type approvalRow struct {
	Namespace, Name, Agent, Action, Digest, Context string
	SkillVersion, Policy, Rule, Requester, ChronID  string
	Phase                                           claiimv1.ApprovalPhase
	Approvers                                       []string
	Approvals, Required                             int
	DeniedBy                                        string
	Requested, Expires                              time.Time
	Approve, Deny                                   permit
}

type approvalsData struct {
	Namespace string
	Rows      []approvalRow
}

func (c *Console) approvals(w http.ResponseWriter, r *http.Request, s *Session) {
	c.showApprovals(w, r, s, http.StatusOK, "")
}

// showApprovals renders the page, with errMsg as the failure of the
// decision just tried.
func (c *Console) showApprovals(w http.ResponseWriter, r *http.Request, s *Session, status int, errMsg string) {
	ctx := r.Context()
	ns := r.URL.Query().Get("namespace")
	v := newView(r, s, "Approvals", "approvals", nil)
	v.Error = errMsg
	d := approvalsData{Namespace: ns}
	var opts []client.ListOption
	if ns != "" {
		if err := validName("namespace", ns); err != nil {
			c.render(w, http.StatusBadRequest, "approvals", view{Title: v.Title, Nav: v.Nav, User: v.User, Error: err.Error(), Data: d})
			return
		}
		opts = append(opts, client.InNamespace(ns))
	}
	var list claiimv1.ActionApprovalList
	if err := s.Client().List(ctx, &list, opts...); err != nil && v.Error == "" {
		v.Error, status = apiMessage(err), errorStatus(err)
	}
	for _, a := range approvalview.List(list.Items, time.Now()) {
		d.Rows = append(d.Rows, approvalRowFrom(ctx, s, a))
	}
	v.Data = d
	c.render(w, status, "approvals", v)
}

// approvalRowFrom is a for s, with what admission's rules and then RBAC
// leave s.
func approvalRowFrom(ctx context.Context, s *Session, a approvalview.Request) approvalRow {
	sp := &a.Spec
	row := approvalRow{Namespace: a.Namespace, Name: a.Name, Agent: sp.Agent, Action: sp.Action, Digest: sp.ContextDigest,
		Context: sp.Context, SkillVersion: sp.SkillVersionID, Policy: sp.Policy, Rule: sp.Rule, Requester: sp.Requester,
		ChronID: sp.ChronID, Phase: a.State.Phase, Approvers: a.State.Approvers, Approvals: len(a.State.Approvers),
		Required: int(max(sp.ApprovalsRequired, 1)), DeniedBy: a.State.DeniedBy,
		Requested: sp.RequestedAt.Time, Expires: sp.ExpiresAt.Time}
	if !a.Pending() {
		return row
	}
	rbac := may(ctx, s, claiimAccess("approve", "actionapprovals", a.Namespace, a.Name),
		approvalview.NotAnApprover(s.Name(), approvalview.Approve, a.Namespace))
	grant := func(d approvalview.Decision) permit {
		if why := a.Refusal(s.Name(), d); why != "" {
			return refuse("%s", why)
		}
		if !rbac.OK && d == approvalview.Deny { // the same question, in deny's words
			return refuse("%s", strings.Replace(rbac.Why, " may not approve ", " may not deny ", 1))
		}
		return rbac
	}
	row.Approve, row.Deny = grant(approvalview.Approve), grant(approvalview.Deny)
	return row
}

func (c *Console) approvalDecide(w http.ResponseWriter, r *http.Request, s *Session) {
	if !readForm(w, r) {
		return
	}
	d, ok := approvalview.DecisionOf(r.PathValue("decision"))
	if !ok {
		http.NotFound(w, r)
		return
	}
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	err := validName("namespace", ns)
	if err == nil {
		err = validName("ActionApproval", name)
	}
	if err != nil {
		c.showApprovals(w, r, s, http.StatusBadRequest, err.Error())
		return
	}
	comment := strings.TrimSpace(r.PostForm.Get("reason"))
	switch {
	case comment == "":
		c.showApprovals(w, r, s, http.StatusBadRequest, "give a reason: it is recorded in Chron with your decision")
		return
	case len(comment) > 1024:
		c.showApprovals(w, r, s, http.StatusBadRequest, "the reason is longer than 1024 characters")
		return
	}
	a := &claiimv1.ActionApproval{}
	a.Namespace, a.Name = ns, name
	if err := s.Client().Patch(r.Context(), a, d.Patch(comment)); err != nil {
		c.showApprovals(w, r, s, errorStatus(err), apiMessage(err))
		return
	}
	st := a.State(time.Now())
	c.Log.Info("approval decision", "user", s.Name(), "approval", ns+"/"+name, "decision", d.Verb)
	done(w, r, "/approvals", fmt.Sprintf("%s %s of agent %s/%s: %s (%d of %d approvals)", d.Did, a.Spec.Action, ns, a.Spec.Agent,
		st.Phase, len(st.Approvers), max(a.Spec.ApprovalsRequired, 1)))
}
