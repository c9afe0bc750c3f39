package console

import (
	"context"
	"errors"
	"net/http"
	"reflect"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/yaml"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

// registerCatalog adds the pages of what people declare: the dashboard,
// AIOrgs, Skills, Policies, CrossOrgGrants, and the forms that create
// them. Every read and write goes through the person's own client.
func (c *Console) registerCatalog(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", c.page(c.dashboard))
	c.registerOrgs(mux)
	c.registerSkills(mux)
	c.registerPolicies(mux)
	c.registerGrants(mux)
	c.registerForms(mux)
}

// maxList bounds what one page lists of a kind; past it the page says so.
const maxList = 2000

// listing is how listing one kind as the person went, as a page shows it:
// a list RBAC refuses is a sentence on the page, not a failed page.
type listing struct {
	// Note is "you may not list X"; Err any other failure, in the
	// apiserver's words.
	Note, Err string
	// Truncated: there are more than maxList.
	Truncated bool
}

// OK reports whether the list was read.
func (l listing) OK() bool { return l.Note == "" && l.Err == "" }

// listAs lists plural (the resource's name, for the sentence) as the person.
func listAs(ctx context.Context, s *Session, list client.ObjectList, plural string, opts ...client.ListOption) listing {
	err := s.Client().List(ctx, list, append([]client.ListOption{client.Limit(maxList)}, opts...)...)
	switch {
	case err == nil:
		return listing{Truncated: list.GetContinue() != ""}
	case apierrors.IsForbidden(err):
		return listing{Note: "you may not list " + plural}
	default:
		return listing{Err: "listing " + plural + ": " + apiMessage(err)}
	}
}

// fetch reads one object as the person. When it cannot, it writes the
// page saying why (not found, not allowed, or the apiserver's error) and
// returns false.
func (c *Console) fetch(w http.ResponseWriter, r *http.Request, s *Session, nav string, key client.ObjectKey, obj client.Object) bool {
	err := s.Client().Get(r.Context(), key, obj)
	if err == nil {
		return true
	}
	what := c.kindOf(obj) + " " + key.Name
	if key.Namespace != "" {
		what = c.kindOf(obj) + " " + key.Namespace + "/" + key.Name
	}
	status, msg := http.StatusBadGateway, "reading "+what+": "+apiMessage(err)
	switch {
	case apierrors.IsNotFound(err):
		status, msg = http.StatusNotFound, "there is no "+what
	case apierrors.IsForbidden(err):
		status, msg = http.StatusForbidden, "you may not read "+what+": "+apiMessage(err)
	}
	v := newView(r, s, what, nav, nil)
	v.Error = msg
	c.render(w, status, "catalog_error", v)
	return false
}

// kindOf is obj's kind as the scheme knows it ("AIOrg").
func (c *Console) kindOf(obj client.Object) string {
	if c.Auth != nil && c.Auth.Scheme != nil {
		if gvk, err := apiutil.GVKForObject(obj, c.Auth.Scheme); err == nil {
			return gvk.Kind
		}
	}
	return reflect.Indirect(reflect.ValueOf(obj)).Type().Name()
}

// manifest is an object as a person would write it for kubectl apply:
// no status, no server-set metadata.
type manifest struct {
	APIVersion string       `json:"apiVersion"`
	Kind       string       `json:"kind"`
	Metadata   manifestMeta `json:"metadata"`
	Spec       any          `json:"spec"`
}

type manifestMeta struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
}

// manifestYAML is obj's manifest with spec, as YAML.
func (c *Console) manifestYAML(obj client.Object, spec any) string {
	b, err := yaml.Marshal(manifest{APIVersion: claiimv1.GroupVersion.String(), Kind: c.kindOf(obj),
		Metadata: manifestMeta{Name: obj.GetName(), Namespace: obj.GetNamespace(), Labels: obj.GetLabels()}, Spec: spec})
	if err != nil {
		return "# cannot show this object as YAML: " + err.Error()
	}
	return string(b)
}

// can asks whether the person may verb resource (a CLAIIM kind's plural)
// in namespace ("" for cluster-scoped kinds).
func can(ctx context.Context, s *Session, verb, resource, namespace string) permit {
	why := "you may not " + verb + " " + resource
	if namespace != "" {
		why += " in namespace " + namespace
	}
	return may(ctx, s, claiimAccess(verb, resource, namespace, ""), why+" (ask for a role that allows it, e.g. claiim-admin)")
}

// action is a link to a form that changes something: a disabled button
// with the reason when the person may not.
type action struct {
	Href, Label string
	permit
}

// ready is an object's Ready condition, for a table row.
type ready struct {
	Status          metav1.ConditionStatus
	Reason, Message string
}

func readyOf(conds []metav1.Condition) ready {
	if c := meta.FindStatusCondition(conds, claiimv1.ConditionReady); c != nil {
		return ready{Status: c.Status, Reason: c.Reason, Message: c.Message}
	}
	return ready{Status: metav1.ConditionUnknown, Reason: "NotReconciled", Message: "the manager has not reported on it yet"}
}

// errStatus is the HTTP status for an apiserver error: its own code.
func errStatus(err error) int {
	var se apierrors.APIStatus
	if errors.As(err, &se) {
		if code := int(se.Status().Code); code >= 400 && code < 600 {
			return code
		}
	}
	return http.StatusBadGateway
}
