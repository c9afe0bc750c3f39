package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode"

	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

// The create forms. GET shows a form (prefilled from the query, e.g.
// ?org=engineering); POST with do=preview shows it again with the YAML of
// the object it would create; do=create writes that object as the person.
// The apiserver and the admission webhooks decide, PIM included: their
// refusal is shown above the form, in their words, with the values kept.

func (c *Console) registerForms(mux *http.ServeMux) {
	for path, h := range map[string]func(http.ResponseWriter, *http.Request, *Session){
		"/orgs/new":                   c.newOrg,
		"/skills/new":                 c.newSkill,
		"/skills/{name}/versions/new": c.newSkillVersion,
		"/policies/new":               c.newPolicy,
		"/agents/new":                 c.newAgent,
	} {
		mux.HandleFunc("GET "+path, c.page(h))
		mux.HandleFunc("POST "+path, c.page(h))
	}
}

// form is one kind's form: the values as typed, so a refused form comes
// back as the person left it.
type form interface {
	// parse reads posted (or query) values; the error names each field
	// past its bound.
	parse(v url.Values) error
	// object is what the form writes, and the spec shown as its YAML.
	object() (client.Object, any)
}

// formData is what every form's template gets.
type formData struct {
	Path string
	Form form
	// YAML is the manifest the form writes: `kubectl apply -f` of it is
	// the same change.
	YAML string
	// Submit says whether RBAC lets the person write this at all.
	Submit permit
	// PIM says when the person has no active session, before they try.
	PIM     string
	Options formOptions
}

// formOptions are the choices a form offers (as datalists: a person may
// type a name they cannot list).
type formOptions struct {
	Orgs   []string
	Skills []skillOption
}

type skillOption struct {
	Name, Org string
	Latest    int32
}

// formSpec is how one kind's form is shown and applied.
type formSpec struct {
	page, title, nav string
	// verb and resource are what RBAC must allow for Create to be
	// enabled, asked in the form's namespace if it has one.
	verb, resource string
	// apply writes obj as the person; it says where to go after and what
	// was done.
	apply func(ctx context.Context, obj client.Object) (to, what string, err error)
}

func (c *Console) serveForm(w http.ResponseWriter, r *http.Request, s *Session, spec formSpec, f form, opts formOptions) {
	d := &formData{Path: r.URL.Path, Form: f, PIM: myPIM(r.Context(), s, c.now()).Summary(), Options: opts}
	show := func(status int, msg string) {
		obj, sp := f.object()
		d.YAML = c.manifestYAML(obj, sp)
		d.Submit = can(r.Context(), s, spec.verb, spec.resource, namespaceOf(f))
		v := newView(r, s, spec.title, spec.nav, d)
		v.Error = msg
		c.render(w, status, spec.page, v)
	}
	if r.Method != http.MethodPost {
		show(http.StatusOK, "")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		show(http.StatusBadRequest, "the form is too large or malformed")
		return
	}
	if err := f.parse(r.PostForm); err != nil {
		show(http.StatusUnprocessableEntity, err.Error())
		return
	}
	if r.PostForm.Get("do") != "create" {
		show(http.StatusOK, "") // preview, or another row
		return
	}
	obj, _ := f.object()
	to, what, err := spec.apply(r.Context(), obj)
	if err != nil {
		show(errStatus(err), apiMessage(err))
		return
	}
	c.Log.Info("created from the console", "user", s.Name(), "kind", c.kindOf(obj), "name", obj.GetName(), "namespace", obj.GetNamespace())
	done(w, r, to, what)
}

// namespaced is a form for a namespaced kind.
type namespaced interface {
	// namespace is where the object goes, for the RBAC question.
	namespace() string
}

func namespaceOf(f form) string {
	if n, ok := f.(namespaced); ok {
		return n.namespace()
	}
	return ""
}

// options lists what the forms offer, as the person sees it; a list they
// may not read just offers nothing.
func options(ctx context.Context, s *Session) formOptions {
	var o formOptions
	var orgs claiimv1.AIOrgList
	if listAs(ctx, s, &orgs, "AIOrgs").OK() {
		for _, x := range orgs.Items {
			o.Orgs = append(o.Orgs, x.Name)
		}
		slices.Sort(o.Orgs)
	}
	var skills claiimv1.SkillList
	if listAs(ctx, s, &skills, "skills").OK() {
		for i := range skills.Items {
			sk := &skills.Items[i]
			o.Skills = append(o.Skills, skillOption{Name: sk.Name, Org: string(sk.Spec.Org), Latest: latestVersion(sk)})
		}
	}
	return o
}

// Bounds of the forms' fields, the API's own where it has one.
const (
	maxName        = 253
	maxOrgName     = 63
	maxDisplayName = 128
	maxDescription = 1024
	maxEmail       = 254
	maxCondition   = 4096
	maxFormRules   = 16
	maxRuleActions = 64
	maxRuleAgents  = 256
)

// fields reads a form's values, noting each past its bound.
type fields struct {
	v    url.Values
	errs []string
}

// text is a one-line value, trimmed.
func (f *fields) text(key, label string, limit int) string {
	s := strings.TrimSpace(f.v.Get(key))
	if len(s) > limit {
		f.errs = append(f.errs, fmt.Sprintf("%s is longer than %d characters", label, limit))
	}
	if strings.ContainsAny(s, "\r\n") {
		f.errs = append(f.errs, label+" must be one line")
	}
	return s
}

// block is a multi-line value, with the browser's CRLFs made LFs.
func (f *fields) block(key, label string, limit int) string {
	s := strings.ReplaceAll(f.v.Get(key), "\r\n", "\n")
	if len(s) > limit {
		f.errs = append(f.errs, fmt.Sprintf("%s is longer than %d characters", label, limit))
	}
	return s
}

// list is a value of items, one a line (commas and spaces separate too);
// raw is what was typed, kept for the form.
func (f *fields) list(key, label string, maxItems, maxLen int) (raw string, items []string) {
	raw = f.block(key, label, maxItems*(maxLen+2))
	for _, it := range strings.FieldsFunc(raw, func(r rune) bool { return r == ',' || unicode.IsSpace(r) }) {
		if len(it) > maxLen {
			f.errs = append(f.errs, fmt.Sprintf("%s: %.20q… is longer than %d characters", label, it, maxLen))
			continue
		}
		if !slices.Contains(items, it) {
			items = append(items, it)
		}
	}
	if len(items) > maxItems {
		f.errs = append(f.errs, fmt.Sprintf("%s: at most %d, not %d", label, maxItems, len(items)))
	}
	return raw, items
}

func (f *fields) err() error {
	if len(f.errs) == 0 {
		return nil
	}
	return errors.New(strings.Join(f.errs, "; "))
}

func patterns(items []string) []claiimv1.ActionPattern {
	out := make([]claiimv1.ActionPattern, 0, len(items))
	for _, it := range items {
		out = append(out, claiimv1.ActionPattern(it))
	}
	return out
}

// created is apply for a form that creates its object, then shows it on
// its own page (with its YAML).
func created(s *Session, kind, href string) func(ctx context.Context, obj client.Object) (string, string, error) {
	return func(ctx context.Context, obj client.Object) (string, string, error) {
		if err := s.Client().Create(ctx, obj); err != nil {
			return "", "", err
		}
		return href + obj.GetName(), kind + " " + obj.GetName() + " created", nil
	}
}
