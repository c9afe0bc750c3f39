package admission

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/yaml"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

// notPrivileged are the kinds whose changes don't need a PIM session, and
// why. Adding one here is a decision for review, not a default.
var notPrivileged = map[string]string{
	"PIMRequest": "the elevation itself: asking needs no session, and a second person decides (two-person control in its own validator)",
	"ActionApproval": "not the control plane: one agent call, made by the manager only (signed from Chron), decided by people with the verb approve " +
		"(its own validator); needing a PIM session to approve a payment would make every approver an admin",
}

var operations = []admissionv1.Operation{admissionv1.Create, admissionv1.Update, admissionv1.Delete}

// TestEveryKindIsServed: each kind of the API has a webhook, and is
// privileged unless listed above. A kind added to api/ fails here until
// it is in kinds(), and then the walk below holds it to PIM.
func TestEveryKindIsServed(t *testing.T) {
	f := newFixture(t)
	served := map[string]kind{}
	for _, k := range f.h.kinds() {
		gvk, err := apiutil.GVKForObject(k.obj, f.h.Scheme)
		if err != nil {
			t.Fatal(err)
		}
		served[gvk.Kind] = k
	}
	known := f.h.Scheme.KnownTypes(claiimv1.GroupVersion)
	for gvk := range known {
		if _, resource := known[gvk+"List"]; !resource {
			continue // a list, or apimachinery's options and watch events
		}
		k, ok := served[gvk]
		switch {
		case !ok:
			t.Errorf("kind %s has no webhook: add it to kinds()", gvk)
		case k.privileged == (notPrivileged[gvk] != ""):
			t.Errorf("kind %s: privileged=%v, but the exemptions say %q", gvk, k.privileged, notPrivileged[gvk])
		case k.privileged && k.validatePath != PathValidateControlPlane:
			t.Errorf("kind %s is privileged but validated at %s, not %s", gvk, k.validatePath, PathValidateControlPlane)
		}
	}
}

// TestEveryPrivilegedChangeConsultsPIM walks every privileged kind ×
// create, update, delete through the webhook the apiserver calls: without
// a session the change is refused for want of one; with a session it is
// not; either way PIM sessions were read. The manager alone passes
// untouched. The change is a plain one (a new object, a label, a delete):
// no safety action, no one's own act.
func TestEveryPrivilegedChangeConsultsPIM(t *testing.T) {
	for _, k := range newFixture(t).h.kinds() {
		if !k.privileged {
			continue
		}
		old := k.obj.DeepCopyObject().(client.Object)
		old.SetName("x")
		old.SetNamespace("ns")
		changed := old.DeepCopyObject().(client.Object)
		changed.SetLabels(map[string]string{"changed": "yes"})
		for _, op := range operations {
			before, after := change(op, old, changed)
			name := k.resource + " " + string(op)

			f := newFixture(t)
			resp := f.validate(op, admin, before, after)
			if f.sessions == 0 {
				t.Errorf("%s: answered without reading PIM sessions", name)
			}
			f.expect(name+" without a session", resp, ReasonNoPIMSession, "needs an active PIM session for "+admin)

			f = newFixture(t, session(admin))
			resp = f.validate(op, admin, before, after)
			if f.sessions == 0 {
				t.Errorf("%s: answered without reading PIM sessions", name)
			}
			if r := f.last(); r == nil || (r.Reason != ReasonPIMSession && r.Reason != ReasonInvalid) {
				t.Errorf("%s with a session: recorded %+v, want %s or %s", name, r, ReasonPIMSession, ReasonInvalid)
			}
			if resp.Allowed != (f.last() != nil && f.last().Reason == ReasonPIMSession) {
				t.Errorf("%s with a session: allowed=%v disagrees with the record", name, resp.Allowed)
			}

			f = newFixture(t)
			f.expect(name+" by the manager", f.validate(op, manager, before, after), "")
			if f.sessions != 0 {
				t.Errorf("%s by the manager: read PIM sessions", name)
			}
		}
	}
}

// change is the object before and after op: a create makes changed, an
// update turns old into changed, a delete removes old.
func change(op admissionv1.Operation, old, changed client.Object) (before, after client.Object) {
	switch op {
	case admissionv1.Create:
		return nil, changed
	case admissionv1.Delete:
		return old, nil
	}
	return old, changed
}

// TestWebhookManifestsServeTheRegistry: config/webhook (generated from the
// markers in admission.go) sends each path exactly the kinds routed there,
// and the control-plane webhook every operation of every privileged kind.
func TestWebhookManifestsServeTheRegistry(t *testing.T) {
	f := newFixture(t)
	routes, err := f.h.routes()
	if err != nil {
		t.Fatal(err)
	}
	resources := map[string]string{} // kind -> plural
	for _, k := range f.h.kinds() {
		gvk, _ := apiutil.GVKForObject(k.obj, f.h.Scheme)
		resources[gvk.Kind] = k.resource
	}
	b, err := os.ReadFile(filepath.Join("..", "..", "config", "webhook", "manifests.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, doc := range strings.Split(string(b), "\n---\n") {
		var cfg struct {
			Webhooks []struct {
				ClientConfig admissionregistrationv1.WebhookClientConfig  `json:"clientConfig"`
				Rules        []admissionregistrationv1.RuleWithOperations `json:"rules"`
			} `json:"webhooks"`
		}
		if err := yaml.Unmarshal([]byte(doc), &cfg); err != nil {
			t.Fatal(err)
		}
		for _, w := range cfg.Webhooks {
			path := *w.ClientConfig.Service.Path
			seen[path] = true
			var want, got []string
			for kind := range routes[path] {
				want = append(want, resources[kind])
			}
			for _, r := range w.Rules {
				got = append(got, r.Resources...)
				if path == PathValidateControlPlane {
					for _, op := range []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update, admissionregistrationv1.Delete} {
						if !slices.Contains(r.Operations, op) {
							t.Errorf("%s: rule %v misses %s: those changes would skip PIM", path, r.Resources, op)
						}
					}
				}
			}
			slices.Sort(want)
			slices.Sort(got)
			if !slices.Equal(want, got) {
				t.Errorf("%s: the manifest sends %v, the registry routes %v", path, got, want)
			}
		}
	}
	for path := range routes {
		if !seen[path] {
			t.Errorf("%s is registered but no webhook configuration calls it", path)
		}
	}
}

// TestAnswersOnTheWire: a refusal is a 403 with the message as written,
// and an admission Chron could not record is a 503, as before.
func TestAnswersOnTheWire(t *testing.T) {
	org := &claiimv1.AIOrg{ObjectMeta: metav1.ObjectMeta{Name: "engineering"}}
	f := newFixture(t)
	resp := f.validate(admissionv1.Create, admin, nil, org)
	if resp.Allowed || resp.Result.Code != 403 || resp.Result.Reason != metav1.StatusReasonForbidden || !strings.HasPrefix(resp.Result.Message, "PIM: creating AIOrg \"engineering\" needs") {
		t.Errorf("refusal: %+v", resp.Result)
	}
	f = newFixture(t, session(admin))
	f.log.err = os.ErrDeadlineExceeded
	resp = f.validate(admissionv1.Create, admin, nil, org)
	if resp.Allowed || resp.Result.Code != 503 || resp.Result.Reason != "" ||
		!strings.HasPrefix(resp.Result.Message, "the change is refused because it could not be recorded in Chron (fail-closed): ") {
		t.Errorf("unrecorded admission: %+v", resp.Result)
	}
}
