package admission

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/attest"
	"github.com/claiim/claiim-operator/gate/chron"
)

// Admission stamps (gate/attest admitted.go): the mutating webhook of every
// control-plane kind stamps what it is asked to store, the validating
// webhook refuses a write whose stamp is not the mutating webhook's, and a
// refused write stores nothing, so a valid stamp means "admitted".

// ReasonNotStamped: a write without the mutating webhook's stamp.
const ReasonNotStamped = "NOT_STAMPED"

// stamp is the last step of every control-plane kind's defaulter. It
// stamps only a write the validating webhook will admit (it asks the
// kind's validator, recording nothing), so deleting the validating
// configuration alone stamps nothing a person could not have done under
// PIM. A write to an object that was already changed past admission keeps
// its stale stamp (the object stays reported and unused by the gate)
// unless the writer holds a PIM session: otherwise a suspension, an
// anchor's acceptance or the manager's own bookkeeping would re-admit
// whatever was changed behind the webhooks' back.
func (h *handlers) stamp(ctx context.Context, obj client.Object) error {
	req, err := requestFrom(ctx)
	if err != nil {
		return err
	}
	if previewing(ctx) {
		return nil
	}
	ann := maps.Clone(obj.GetAnnotations())
	if ann == nil {
		ann = map[string]string{}
	}
	var old client.Object
	if req.Operation == admissionv1.Update {
		if old, err = h.decodeOld(req); err != nil {
			return err
		}
	}
	if err := h.changedBy(ctx, req, obj, old, ann); err != nil {
		return err
	}
	obj.SetAnnotations(ann) // the validator's dry run sees what will be stored
	fresh, err := h.mayStamp(ctx, req, obj, old, ann[claiimv1.AnnotationAdmitted])
	if err != nil {
		return err
	}
	if !fresh {
		prev := ""
		if old != nil {
			prev = old.GetAnnotations()[claiimv1.AnnotationAdmitted]
		}
		setOrDelete(ann, claiimv1.AnnotationAdmitted, prev)
		obj.SetAnnotations(ann)
		return nil
	}
	delete(ann, claiimv1.AnnotationAdmitted)
	obj.SetAnnotations(ann)
	// The real clock, not the injected one: a creation's stamp time is
	// compared with the apiserver's creationTimestamp.
	v, err := attest.NewStamp(h.Signer, obj, old, time.Now())
	if err != nil {
		return errored(http.StatusInternalServerError, err)
	}
	ann[claiimv1.AnnotationAdmitted] = v
	obj.SetAnnotations(ann)
	return nil
}

// changedBy writes who made this write into the changed-by annotation
// of the kinds whose history is kept (claiimv1.KeptSpec): the authenticated user and the PIM
// session that elevates them, on a creation or a spec change (a new
// generation). A write that leaves the spec alone (an acceptance, a
// stamp, the manager's bookkeeping) keeps the stored object's value, so
// the annotation names the author of the current generation. What the
// body says is never kept; the stamp then covers the annotation.
func (h *handlers) changedBy(ctx context.Context, req admission.Request, obj, old client.Object, ann map[string]string) error {
	_, spec, kept := claiimv1.KeptSpec(obj)
	if !kept {
		return nil
	}
	if old != nil {
		if _, oldSpec, _ := claiimv1.KeptSpec(old); equality.Semantic.DeepEqual(spec, oldSpec) {
			setOrDelete(ann, claiimv1.AnnotationChangedBy, old.GetAnnotations()[claiimv1.AnnotationChangedBy])
			return nil
		}
	}
	c := claiimv1.ChangedBy{User: req.UserInfo.Username}
	if c.User != h.ManagerUsername {
		session, err := h.activeSession(ctx, c.User)
		if err != nil {
			return errored(http.StatusServiceUnavailable, err)
		}
		if session != nil {
			c.PIMSession = session.Name
		}
	}
	ann[claiimv1.AnnotationChangedBy] = c.String()
	return nil
}

// mayStamp reports whether the write of obj over old (nil: a creation)
// gets a fresh stamp. The manager's own writes do while old was admitted,
// and once for an object from before stamps existed (the upgrade step).
// Anyone else's do when the validator admits the write and either old
// was admitted or the writer holds a PIM session.
func (h *handlers) mayStamp(ctx context.Context, req admission.Request, obj, old client.Object, asked string) (bool, error) {
	admitted := old == nil || attest.VerifyStamp(h.Signer, old) == nil
	user := req.UserInfo.Username
	if user == h.ManagerUsername {
		if admitted {
			return true, nil
		}
		had := old.GetAnnotations()[claiimv1.AnnotationAdmitted]
		return asked == claiimv1.AdmitExisting && (had == "" || had == claiimv1.AdmitExisting), nil
	}
	if ok, err := h.wouldAdmit(ctx, req, obj); err != nil || !ok {
		return false, err
	}
	if admitted {
		return true, nil
	}
	session, err := h.activeSession(ctx, user)
	if err != nil {
		return false, errored(http.StatusServiceUnavailable, err)
	}
	return session != nil, nil
}

type previewKey struct{}

// previewing is true while the mutating webhook asks a validator: the
// stamp is not there yet, and nothing is recorded.
func previewing(ctx context.Context) bool { return ctx.Value(previewKey{}) != nil }

// wouldAdmit asks the kind's validator about the write of obj, as a dry
// run (no Chron record).
func (h *handlers) wouldAdmit(ctx context.Context, req admission.Request, obj client.Object) (bool, error) {
	raw, err := json.Marshal(obj)
	if err != nil {
		return false, errored(http.StatusInternalServerError, err)
	}
	dry := true
	r := req
	r.Object, r.DryRun = runtime.RawExtension{Raw: raw}, &dry
	v, ok := h.validators()[req.Kind.Kind]
	if !ok {
		return false, errored(http.StatusBadRequest, fmt.Errorf("unexpected kind %s", req.Kind.Kind))
	}
	resp := v.Handle(context.WithValue(ctx, previewKey{}, true), r)
	if !resp.Allowed && resp.Result != nil && resp.Result.Code >= http.StatusInternalServerError {
		return false, errored(resp.Result.Code, errors.New(resp.Result.Message))
	}
	return resp.Allowed, nil
}

// validators are the control-plane kinds' validators, by kind.
func (h *handlers) validators() map[string]admission.Handler {
	h.once.Do(func() {
		h.byKind = map[string]admission.Handler{}
		for _, k := range h.kinds() {
			if gvk, err := apiutil.GVKForObject(k.obj, h.Scheme); err == nil && k.privileged {
				h.byKind[gvk.Kind] = k.validate
			}
		}
	})
	return h.byKind
}

// stamped refuses a create or update whose stored object would not carry
// the mutating webhook's stamp: a stamp someone wrote, or none because the
// mutating webhook did not run. Keeping the stale stamp of an object that
// was already changed past admission is allowed (it stays reported).
func (h *handlers) stamped(ctx context.Context, req admission.Request) error {
	if previewing(ctx) || (req.Operation != admissionv1.Create && req.Operation != admissionv1.Update) {
		return nil
	}
	obj, err := h.decodeAs(req, req.Object)
	if err != nil {
		return err
	}
	bad := attest.VerifyStamp(h.Signer, obj)
	if bad == nil {
		return nil
	}
	if req.Operation == admissionv1.Update {
		old, err := h.decodeOld(req)
		if err != nil {
			return err
		}
		a := claiimv1.AnnotationAdmitted
		if old.GetAnnotations()[a] == obj.GetAnnotations()[a] && attest.VerifyStamp(h.Signer, old) != nil {
			return nil
		}
	}
	return h.refuse(ctx, req, chron.KindAdmissionRefused, ReasonNotStamped, fmt.Sprintf(
		"the change carries no valid admission stamp: %v. The annotation %s is written by CLAIIM's mutating webhook only: "+
			"if your manifest sets it, remove it; otherwise the webhook m%s.claiim.io did not run, so check the MutatingWebhookConfiguration "+
			"(the manager puts it back within seconds) and retry", bad, claiimv1.AnnotationAdmitted, strings.ToLower(req.Kind.Kind)))
}

func (h *handlers) decodeOld(req admission.Request) (client.Object, error) {
	return h.decodeAs(req, req.OldObject)
}

// decodeAs decodes raw as a fresh object of the request's kind.
func (h *handlers) decodeAs(req admission.Request, raw runtime.RawExtension) (client.Object, error) {
	o, err := h.Scheme.New(schema.GroupVersionKind{Group: req.Kind.Group, Version: req.Kind.Version, Kind: req.Kind.Kind})
	if err != nil {
		return nil, errored(http.StatusBadRequest, err)
	}
	obj, ok := o.(client.Object)
	if !ok {
		return nil, errored(http.StatusBadRequest, fmt.Errorf("unexpected kind %s", req.Kind.Kind))
	}
	if err := h.decoder.DecodeRaw(raw, obj); err != nil {
		return nil, errored(http.StatusBadRequest, err)
	}
	return obj, nil
}

func setOrDelete(m map[string]string, k, v string) {
	if v == "" {
		delete(m, k)
		return
	}
	m[k] = v
}

// stampOnly is the defaulter of a kind with nothing to default (AIOrg,
// Skill, Policy): it stamps.
type stampOnly[T client.Object] struct{ h *handlers }

var (
	_ admission.Defaulter[*claiimv1.AIOrg]  = stampOnly[*claiimv1.AIOrg]{}
	_ admission.Defaulter[*claiimv1.Skill]  = stampOnly[*claiimv1.Skill]{}
	_ admission.Defaulter[*claiimv1.Policy] = stampOnly[*claiimv1.Policy]{}
)

func (d stampOnly[T]) Default(ctx context.Context, obj T) error { return d.h.stamp(ctx, obj) }
