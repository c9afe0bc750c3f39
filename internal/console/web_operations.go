package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

// registerOperations adds the pages of what people do: agents' lifecycle,
// PIM, and reading Chron. Every read and write goes through the person's
// own client, so RBAC and the admission webhooks judge them, not the
// console.
//
//	GET  /agents                               agents (?namespace= narrows)
//	GET  /agents/{namespace}/{name}            one agent, with its actions
//	POST /agents/{namespace}/{name}/{action}   suspend, activate, decommission, accept, rotate
//	GET  /pim                                  my requests, the request form, the approval queue
//	POST /pim                                  request elevation
//	GET  /pim/{name}                           one request
//	POST /pim/{name}/{decision}                approve, deny, revoke
//	GET  /chron                                the Chron explorer (the read API's filters)
//	GET  /chron/{id}                           one Chron row, whole
func (c *Console) registerOperations(mux *http.ServeMux) {
	mux.HandleFunc("GET /agents", c.page(c.agents))
	mux.HandleFunc("GET /agents/{namespace}/{name}", c.page(c.agent))
	mux.HandleFunc("POST /agents/{namespace}/{name}/{action}", c.page(c.agentAction))
	mux.HandleFunc("GET /pim", c.page(c.pim))
	mux.HandleFunc("POST /pim", c.page(c.pimCreate))
	mux.HandleFunc("GET /pim/{name}", c.page(c.pimDetail))
	mux.HandleFunc("POST /pim/{name}/{decision}", c.page(c.pimDecide))
	mux.HandleFunc("GET /chron", c.page(c.chron))
	mux.HandleFunc("GET /chron/{id}", c.page(c.chronEntry))
}

// permit says whether a button works, and if not, why: the authorizer's
// reason or the state of the object, shown beside the disabled button.
type permit struct {
	OK  bool
	Why string
}

func allow() permit { return permit{OK: true} }

func refuse(format string, a ...any) permit { return permit{Why: fmt.Sprintf(format, a...)} }

// and is p unless p allows, then q: the first refusal is the one shown.
func (p permit) and(q permit) permit {
	if !p.OK {
		return p
	}
	return q
}

// may asks the apiserver whether s may do ra. An unanswerable question
// disables the button rather than guessing; RBAC's refusals carry no
// reason, so fallback says what is missing.
func may(ctx context.Context, s *Session, ra authorizationv1.ResourceAttributes, fallback string) permit {
	ok, reason, err := s.Allowed(ctx, ra)
	switch {
	case err != nil:
		return refuse("the console could not ask the apiserver whether you may: %s", apiMessage(err))
	case ok:
		return allow()
	case reason != "":
		return refuse("%s (%s)", fallback, reason)
	}
	return refuse("%s", fallback)
}

// claiimAccess is a question about a CLAIIM resource.
func claiimAccess(verb, resource, namespace, name string) authorizationv1.ResourceAttributes {
	return authorizationv1.ResourceAttributes{Verb: verb, Group: claiimv1.GroupVersion.Group, Resource: resource,
		Namespace: namespace, Name: name}
}

// readForm parses a posted form, bounded; it has answered when false.
func readForm(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "the form is too large or malformed", http.StatusBadRequest)
		return false
	}
	return true
}

// errorStatus is the status a page shows an apiserver's refusal with: its
// own 4xx (a webhook's denial is 403), else 502, the apiserver being the
// console's upstream.
func errorStatus(err error) int {
	var br *badRequest
	if errors.As(err, &br) {
		return http.StatusBadRequest
	}
	var se apierrors.APIStatus
	if errors.As(err, &se) {
		if code := int(se.Status().Code); code >= 400 && code < 500 {
			return code
		}
	}
	return http.StatusBadGateway
}

// validName checks a name from a path before it becomes part of an
// apiserver URL: a name with a slash would address a subresource.
func validName(kind, name string) error {
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return bad("%q is not a valid %s name: %s", name, kind, errs[0])
	}
	return nil
}
