package kubectlclaiim

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

// identity is what whoami prints: who the apiserver says you are and what
// that means for PIM.
type identity struct {
	Username string              `json:"username"`
	UID      string              `json:"uid,omitempty"`
	Groups   []string            `json:"groups,omitempty"`
	Extra    map[string][]string `json:"extra,omitempty"`
	// MayRequestPIM and MayApprovePIM are RBAC's answers (create and the
	// custom verb approve on pimrequests). Admission still refuses
	// approving your own request.
	MayRequestPIM bool `json:"mayRequestPIM"`
	MayApprovePIM bool `json:"mayApprovePIM"`
	// Sessions are the PIM sessions that elevate you now.
	Sessions []sessionView `json:"activeSessions"`
	// SessionsUnknown says why Sessions could not be read.
	SessionsUnknown string `json:"sessionsUnknown,omitempty"`
}

// sessionView is one PIMRequest as a session.
type sessionView struct {
	Name       string            `json:"name"`
	Phase      claiimv1.PIMPhase `json:"phase"`
	Requester  claiimv1.Username `json:"requester"`
	Subject    claiimv1.Username `json:"subject"`
	ApprovedBy claiimv1.Username `json:"approvedBy,omitempty"`
	ExpiresAt  string            `json:"expiresAt,omitempty"`
	Reason     string            `json:"reason"`
	request    *claiimv1.PIMRequest
	session    claiimv1.PIMSession
}

func newWhoamiCommand(o *Options) *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Who the apiserver says you are, whether you may request and approve PIM, and your active PIM session",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			id, err := o.whoami(cmd)
			if err != nil {
				return err
			}
			return o.print(id, func(w io.Writer) { id.table(w) })
		},
	}
}

func (o *Options) whoami(cmd *cobra.Command) (*identity, error) {
	me, err := o.Me(cmd)
	if err != nil {
		return nil, err
	}
	id := &identity{Username: me.Username, UID: me.UID, Groups: me.Groups, Sessions: []sessionView{}}
	if len(me.Extra) > 0 {
		id.Extra = map[string][]string{}
		for k, v := range me.Extra {
			id.Extra[k] = v
		}
	}
	if id.MayRequestPIM, err = o.can(cmd, "create", "pimrequests"); err != nil {
		return nil, err
	}
	if id.MayApprovePIM, err = o.can(cmd, "approve", "pimrequests"); err != nil {
		return nil, err
	}
	list, err := o.pimRequests(cmd)
	switch {
	case apierrors.IsForbidden(err):
		id.SessionsUnknown = "you may not list pimrequests, so your sessions are not known here"
	case err != nil:
		return nil, err
	default:
		for _, v := range views(list, o.Now()) {
			if v.Phase == claiimv1.PIMActive && string(v.Subject) == me.Username {
				id.Sessions = append(id.Sessions, v)
			}
		}
	}
	return id, nil
}

// can asks RBAC whether the user may verb the CLAIIM resource
// (SelfSubjectAccessReview).
func (o *Options) can(cmd *cobra.Command, verb, resource string) (bool, error) {
	c, err := o.Client()
	if err != nil {
		return false, err
	}
	r := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
		ResourceAttributes: &authorizationv1.ResourceAttributes{Group: claiimv1.GroupVersion.Group, Resource: resource, Verb: verb},
	}}
	if err := c.Create(cmd.Context(), r); err != nil {
		return false, fmt.Errorf("asking RBAC whether you may %s %s: %w", verb, resource, err)
	}
	return r.Status.Allowed, nil
}

func (id *identity) table(w io.Writer) {
	rows(w,
		[]string{"USERNAME", id.Username},
		[]string{"GROUPS", orDash(strings.Join(id.Groups, ", "))},
		[]string{"MAY REQUEST PIM", yesNo(id.MayRequestPIM)},
		[]string{"MAY APPROVE PIM", yesNo(id.MayApprovePIM) + approveNote(id.MayApprovePIM)},
	)
	switch {
	case id.SessionsUnknown != "":
		rows(w, []string{"PIM SESSION", "unknown: " + id.SessionsUnknown})
	case len(id.Sessions) == 0:
		rows(w, []string{"PIM SESSION", "none (kubectl claiim pim request --reason ...)"})
	}
	for _, s := range id.Sessions {
		rows(w, []string{"PIM SESSION", fmt.Sprintf("%s, Active until %s, approved by %s", s.Name, orDash(s.ExpiresAt), orDash(string(s.ApprovedBy)))})
	}
}

func approveNote(may bool) string {
	if may {
		return " (others' requests only)"
	}
	return ""
}
