package console

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/internal/pimview"
)

// PIM's pages: two-person control as people see it. A request is made as
// the person (admission stamps them as its requester); approve, deny and
// revoke set the decision annotations kubectl claiim pim sets, whose value
// is the person's comment, and admission stamps who decided.

// pimDurations are the form's choices, within the CRD's 1m to 8h.
var pimDurations = []string{"15m", "30m", claiimv1.DefaultPIMDuration, "2h", "4h", claiimv1.MaxPIMDuration}

// pimRow is one request as a page shows it, with what the person may do.
type pimRow struct {
	Name, Reason, Duration       string
	Requester, Subject           claiimv1.Username
	Phase                        claiimv1.PIMPhase
	ApprovedBy                   claiimv1.Username
	ApprovedAt, Expires, Created time.Time
	Mine                         bool
	// Progress is "1 of 2 approvals" while a request that needs several
	// approvers waits; Approvals are those the manager verified.
	Progress  string
	Approvals []claiimv1.PIMApproval
	// PendingExpires is when a pending request lapses (the manager's
	// deadline); Lapsed says it did, unapproved.
	PendingExpires        time.Time
	Lapsed                bool
	Approve, Deny, Revoke permit
	// From is the page its forms return to: "list" or "detail".
	From string
}

type pimData struct {
	Mine, Queue []pimRow
	Request     permit
	Durations   []string
	Default     string
}

// pimDetail is one request's page: the row and the decisions' comments.
type pimDetailData struct {
	Row                               pimRow
	ApproveNote, DenyNote, RevokeNote string
	DeniedBy, RevokedBy               string
	Conditions                        []metav1.Condition
	// WhatIf is, per change made under the session, which recent
	// decisions it would answer differently (status.whatIf), newest first.
	WhatIf []claiimv1.PIMWhatIf
}

func (c *Console) pim(w http.ResponseWriter, r *http.Request, s *Session) {
	c.showPIM(w, r, s, http.StatusOK, "")
}

// showPIM renders the PIM page, with errMsg as the failure of the action
// just tried.
func (c *Console) showPIM(w http.ResponseWriter, r *http.Request, s *Session, status int, errMsg string) {
	ctx := r.Context()
	v := newView(r, s, "PIM", "pim", nil)
	v.Error = errMsg
	d := pimData{Durations: pimDurations, Default: claiimv1.DefaultPIMDuration,
		Request: may(ctx, s, claiimAccess("create", "pimrequests", "", ""), s.Name()+" may not create PIM requests")}
	var list claiimv1.PIMRequestList
	if err := s.Client().List(ctx, &list); err != nil {
		if v.Error == "" {
			v.Error, status = apiMessage(err), errorStatus(err)
		}
	}
	for _, p := range pimview.List(list.Items, c.now()) {
		switch {
		case p.Mine(s.Name()):
			d.Mine = append(d.Mine, pimRowFrom(ctx, s, p, "list"))
		case p.Queued(s.Name()):
			d.Queue = append(d.Queue, pimRowFrom(ctx, s, p, "list"))
		}
	}
	v.Data = d
	c.render(w, status, "pim", v)
}

// pimRowFrom is v for s, with what two-person control and then RBAC
// leave s (pimview); from is the page its forms return to.
func pimRowFrom(ctx context.Context, s *Session, v pimview.Request, from string) pimRow {
	row := pimRow{Name: v.Name, Reason: v.Spec.Reason, Duration: claiimv1.DefaultPIMDuration,
		Requester: v.Spec.Requester, Subject: v.Session.Subject, Phase: v.Phase, ApprovedBy: v.Session.ApprovedBy,
		ApprovedAt: v.Session.ApprovedAt, Expires: v.Session.ExpiresAt, Created: v.CreationTimestamp.Time,
		Mine: v.Mine(s.Name()), From: from,
		Progress: v.Progress(), Approvals: v.Status.Approvals, PendingExpires: v.PendingExpiresAt, Lapsed: v.Session.PendingExpired}
	if v.Spec.Duration != nil {
		row.Duration = shortDuration(v.Spec.Duration.Duration)
	}
	grant := func(r pimview.Right) permit {
		switch {
		case r.Refused != "":
			return refuse("%s", r.Refused)
		case r.NeedsApprover:
			return may(ctx, s, claiimAccess("approve", "pimrequests", "", v.Name), r.Missing)
		}
		return allow()
	}
	approve, deny, revoke := v.Rights(s.Name())
	row.Approve, row.Revoke = grant(approve), grant(revoke)
	row.Deny = row.Approve // one question to the apiserver for both, when both ask it
	if deny != approve {
		row.Deny = grant(deny)
	}
	return row
}

// shortDuration is d as people write it: 1h, 30m, 1h30m.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func (c *Console) pimCreate(w http.ResponseWriter, r *http.Request, s *Session) {
	if !readForm(w, r) {
		return
	}
	reason := strings.TrimSpace(r.PostForm.Get("reason"))
	p := &claiimv1.PIMRequest{ObjectMeta: metav1.ObjectMeta{GenerateName: "pim-"},
		Spec: claiimv1.PIMRequestSpec{Reason: reason}}
	if ds := r.PostForm.Get("duration"); ds != "" {
		d, err := time.ParseDuration(ds)
		if err != nil {
			c.showPIM(w, r, s, http.StatusBadRequest, fmt.Sprintf("duration %q: send a duration such as 1h or 30m", ds))
			return
		}
		p.Spec.Duration = &metav1.Duration{Duration: d}
	}
	if err := s.Client().Create(r.Context(), p); err != nil {
		c.showPIM(w, r, s, errorStatus(err), apiMessage(err))
		return
	}
	c.Log.Info("PIM requested", "user", s.Name(), "request", p.Name)
	done(w, r, "/pim", fmt.Sprintf("PIM request %s created, pending approval: another approver must approve it", p.Name))
}

// pimDecisions are the annotations each decision sets, and what it did.
var pimDecisions = map[string]struct{ annotation, did string }{
	"approve": {claiimv1.AnnotationApprove, "approved"},
	"deny":    {claiimv1.AnnotationDeny, "denied"},
	"revoke":  {claiimv1.AnnotationRevoke, "revoked"},
}

func (c *Console) pimDecide(w http.ResponseWriter, r *http.Request, s *Session) {
	if !readForm(w, r) {
		return
	}
	d, ok := pimDecisions[r.PathValue("decision")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	name := r.PathValue("name")
	back := func(status int, msg string) {
		if r.PostForm.Get("from") == "detail" {
			c.showPIMRequest(w, r, s, status, msg)
		} else {
			c.showPIM(w, r, s, status, msg)
		}
	}
	if err := validName("PIMRequest", name); err != nil {
		back(http.StatusBadRequest, err.Error())
		return
	}
	comment := strings.TrimSpace(r.PostForm.Get("reason"))
	if comment == "" {
		back(http.StatusBadRequest, "give a reason: it is recorded with the decision")
		return
	}
	p := &claiimv1.PIMRequest{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := patchAs(r.Context(), s, p, annotationPatch(d.annotation, comment)); err != nil {
		back(errorStatus(err), apiMessage(err))
		return
	}
	c.Log.Info("PIM decision", "user", s.Name(), "request", name, "decision", r.PathValue("decision"))
	to := "/pim"
	if r.PostForm.Get("from") == "detail" {
		to = "/pim/" + name
	}
	msg := fmt.Sprintf("PIM request %s %s", name, d.did)
	if so := pimview.SoFar(p); d.annotation == claiimv1.AnnotationApprove && so != "" {
		msg += ": " + so
	}
	done(w, r, to, msg)
}

func (c *Console) pimDetail(w http.ResponseWriter, r *http.Request, s *Session) {
	c.showPIMRequest(w, r, s, http.StatusOK, "")
}

func (c *Console) showPIMRequest(w http.ResponseWriter, r *http.Request, s *Session, status int, errMsg string) {
	name := r.PathValue("name")
	v := newView(r, s, "PIM request "+name, "pim", nil)
	v.Error = errMsg
	p := &claiimv1.PIMRequest{}
	err := validName("PIMRequest", name)
	if err == nil {
		err = s.Client().Get(r.Context(), client.ObjectKey{Name: name}, p)
	}
	if err != nil {
		if v.Error == "" {
			v.Error, status = apiMessage(err), errorStatus(err)
		}
		c.render(w, status, "pimrequest", v)
		return
	}
	a := p.Annotations
	row := pimRowFrom(r.Context(), s, pimview.Of(p, c.now()), "detail")
	whatIf := slices.Clone(p.Status.WhatIf)
	slices.Reverse(whatIf)
	v.Data = pimDetailData{Row: row, WhatIf: whatIf,
		ApproveNote: a[claiimv1.AnnotationApprove], DenyNote: a[claiimv1.AnnotationDeny], RevokeNote: a[claiimv1.AnnotationRevoke],
		DeniedBy: a[claiimv1.AnnotationDeniedBy], RevokedBy: a[claiimv1.AnnotationRevokedBy], Conditions: p.Status.Conditions}
	c.render(w, status, "pimrequest", v)
}
