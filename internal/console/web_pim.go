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
)

// PIM's pages: two-person control as people see it. A request is made as
// the person (admission stamps them as its requester); approve, deny and
// revoke set the decision annotations kubectl claiim pim sets, whose value
// is the person's comment, and admission stamps who decided.

// pimDurations are the form's choices, within the CRD's 1m to 8h.
var pimDurations = []string{"15m", "30m", claiimv1.DefaultPIMDuration, "2h", "4h", claiimv1.MaxPIMDuration}

// selfApproval is why nobody approves their own request.
const selfApproval = "two-person rule: you cannot approve your own request"

// pimRow is one request as a page shows it, with what the person may do.
type pimRow struct {
	Name, Reason, Duration       string
	Requester, Subject           claiimv1.Username
	Phase                        claiimv1.PIMPhase
	ApprovedBy                   claiimv1.Username
	ApprovedAt, Expires, Created time.Time
	Mine                         bool
	Approve, Deny, Revoke        permit
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
	// Newest first.
	slices.SortStableFunc(list.Items, func(a, b claiimv1.PIMRequest) int {
		return b.CreationTimestamp.Compare(a.CreationTimestamp.Time)
	})
	now := time.Now()
	for i := range list.Items {
		row := pimRowOf(ctx, s, &list.Items[i], now)
		row.From = "list"
		switch {
		case row.Mine:
			d.Mine = append(d.Mine, row)
		case row.Phase == claiimv1.PIMPending:
			d.Queue = append(d.Queue, row)
		}
	}
	v.Data = d
	c.render(w, status, "pim", v)
}

// pimRowOf is p at now for s. A request is s's own when s asked for it
// or it would elevate s: admission refuses s deciding either.
func pimRowOf(ctx context.Context, s *Session, p *claiimv1.PIMRequest, now time.Time) pimRow {
	ses := p.Session(now)
	row := pimRow{Name: p.Name, Reason: p.Spec.Reason, Duration: claiimv1.DefaultPIMDuration,
		Requester: p.Spec.Requester, Subject: ses.Subject, Phase: pimPhase(p, ses), ApprovedBy: ses.ApprovedBy,
		ApprovedAt: ses.ApprovedAt, Expires: ses.ExpiresAt, Created: p.CreationTimestamp.Time}
	if p.Spec.Duration != nil {
		row.Duration = shortDuration(p.Spec.Duration.Duration)
	}
	me := claiimv1.Username(s.Name())
	row.Mine = row.Requester == me || row.Subject == me
	open := row.Phase == claiimv1.PIMPending || row.Phase == claiimv1.PIMActive
	switch {
	case row.Mine:
		row.Approve = refuse(selfApproval)
		row.Deny = refuse("two-person rule: you cannot deny your own request; revoke it instead")
	case row.Phase != claiimv1.PIMPending:
		row.Approve = refuse("already %s", row.Phase)
		row.Deny = row.Approve
	default:
		row.Approve = may(ctx, s, claiimAccess("approve", "pimrequests", "", p.Name),
			s.Name()+" may not approve PIM requests: it needs the RBAC verb approve on pimrequests (the claiim-approver ClusterRole)")
		row.Deny = row.Approve
	}
	switch {
	case !open:
		row.Revoke = refuse("already %s", row.Phase)
	case row.Requester == me:
		row.Revoke = allow()
	default:
		row.Revoke = may(ctx, s, claiimAccess("approve", "pimrequests", "", p.Name),
			"only the requester or an approver (RBAC verb approve on pimrequests) can revoke a PIM session")
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

// pimPhase is the phase to show: the manager's, which alone checked the
// approval's signature, unless the clock or a revocation has since ended
// an Active session the manager has not caught up with.
func pimPhase(p *claiimv1.PIMRequest, s claiimv1.PIMSession) claiimv1.PIMPhase {
	switch {
	case p.Status.Phase == "":
		return s.Phase
	case p.Status.Phase == claiimv1.PIMActive && s.Phase != claiimv1.PIMActive:
		return s.Phase
	}
	return p.Status.Phase
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
	done(w, r, to, fmt.Sprintf("PIM request %s %s", name, d.did))
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
	row := pimRowOf(r.Context(), s, p, time.Now())
	row.From = "detail"
	v.Data = pimDetailData{Row: row,
		ApproveNote: a[claiimv1.AnnotationApprove], DenyNote: a[claiimv1.AnnotationDeny], RevokeNote: a[claiimv1.AnnotationRevoke],
		DeniedBy: a[claiimv1.AnnotationDeniedBy], RevokedBy: a[claiimv1.AnnotationRevokedBy], Conditions: p.Status.Conditions}
	c.render(w, status, "pimrequest", v)
}
