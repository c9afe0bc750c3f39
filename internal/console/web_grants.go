package console

import (
	"net/http"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

func (c *Console) registerGrants(mux *http.ServeMux) {
	mux.HandleFunc("GET /grants", c.page(c.grants))
	mux.HandleFunc("GET /grants/{name}", c.page(c.grant))
}

// grantView is a grant with what the API's rules say about it now.
type grantView struct {
	Grant *claiimv1.CrossOrgGrant
	// Active is CrossOrgGrant.ActiveAt(now), the rule the gate applies.
	Active bool
	// Phase is the recorded phase, or Pending before the manager's first
	// report.
	Phase string
	// End is when it stops counting, zero while unknown (a duration not
	// yet started).
	End time.Time
	// Lasts is the duration asked for, or "until <expiresAt>".
	Lasts string
	// GrantingBy, ReceivingBy: who approved each side, empty while
	// waiting.
	GrantingBy, ReceivingBy string
}

func viewGrant(g *claiimv1.CrossOrgGrant, now time.Time) grantView {
	v := grantView{Grant: g, Active: g.ActiveAt(now), Phase: string(g.Status.Phase),
		GrantingBy:  firstNonEmpty(string(g.Status.GrantingApprovedBy), g.Annotations[claiimv1.AnnotationGrantingApprovedBy]),
		ReceivingBy: firstNonEmpty(string(g.Status.ReceivingApprovedBy), g.Annotations[claiimv1.AnnotationReceivingApprovedBy])}
	if v.Phase == "" {
		v.Phase = string(claiimv1.GrantPending)
	}
	if end := g.End(); end != nil {
		v.End = end.Time
	}
	switch {
	case g.Spec.Duration != nil:
		v.Lasts = g.Spec.Duration.Duration.String() + " from activation"
	case g.Spec.ExpiresAt != nil:
		v.Lasts = "until " + g.Spec.ExpiresAt.UTC().Format(time.RFC3339)
	}
	return v
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

type grantsData struct {
	listing
	Grants []grantView
}

func (c *Console) grants(w http.ResponseWriter, r *http.Request, s *Session) {
	var list claiimv1.CrossOrgGrantList
	d := grantsData{listing: listAs(r.Context(), s, &list, "cross-org grants")}
	now := time.Now()
	for i := range list.Items {
		d.Grants = append(d.Grants, viewGrant(&list.Items[i], now))
	}
	c.render(w, http.StatusOK, "grants", newView(r, s, "CrossOrgGrants", "grants", d))
}

type grantData struct {
	grantView
	YAML string
}

func (c *Console) grant(w http.ResponseWriter, r *http.Request, s *Session) {
	name := r.PathValue("name")
	g := &claiimv1.CrossOrgGrant{}
	if !c.fetch(w, r, s, "grants", client.ObjectKey{Name: name}, g) {
		return
	}
	d := grantData{grantView: viewGrant(g, time.Now()), YAML: c.manifestYAML(g, g.Spec)}
	c.render(w, http.StatusOK, "grant", newView(r, s, "CrossOrgGrant "+name, "grants", d))
}
