package admission

import (
	"context"
	"encoding/json"
	"maps"
	"reflect"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/attest"
	"github.com/claiim/claiim-operator/gate/chron"
)

// Pure unit tests of the webhooks: a fake apiserver client, a fake Chron,
// admission requests built as the apiserver sends them. The envtest suite
// (suite_test.go) checks the same rules against a real apiserver.

const (
	admin   = "admin@claiim.io"
	peer    = "peer@claiim.io"
	manager = "system:serviceaccount:claiim-system:claiim-manager"
)

var t0 = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

// signer is the manager's attestation key in these tests.
var signer = attest.NewSigner(attest.NewKey())

func testScheme(t testing.TB) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	if err := claiimv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

// chronLog is Chron as admission sees it: what was written, or failing.
type chronLog struct {
	rows []*chron.Record
	err  error
}

func (l *chronLog) Write(_ context.Context, r *chron.Record) (chron.Row, error) {
	if l.err != nil {
		return chron.Row{}, l.err
	}
	l.rows = append(l.rows, r)
	return chron.Row{Record: *r}, nil
}

// sessionReads counts how often PIM sessions were read: how a test knows
// PIM was consulted.
type sessionReads struct {
	client.Reader
	n *int
}

func (r sessionReads) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if _, ok := list.(*claiimv1.PIMRequestList); ok {
		*r.n++
	}
	return r.Reader.List(ctx, list, opts...)
}

type fixture struct {
	t        testing.TB
	h        *handlers
	log      *chronLog
	sessions int
	// may lists the SubjectAccessReviews the apiserver allows, as
	// "user verb resource/name".
	may map[string]bool
}

func newFixture(t testing.TB, objs ...client.Object) *fixture {
	t.Helper()
	f := &fixture{t: t, log: &chronLog{}, may: map[string]bool{}}
	s := testScheme(t)
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).WithInterceptorFuncs(interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if sar, ok := obj.(*authorizationv1.SubjectAccessReview); ok {
				ra := sar.Spec.ResourceAttributes
				sar.Status.Allowed = f.may[sar.Spec.User+" "+ra.Verb+" "+ra.Resource+"/"+ra.Name]
				return nil
			}
			return c.Create(ctx, obj, opts...)
		},
	}).Build()
	reads := sessionReads{Reader: c, n: &f.sessions}
	f.h = newHandlers(Options{Reader: reads, APIReader: reads, Client: c, Log: f.log, ManagerUsername: manager, Signer: signer,
		ApproverServiceAccounts: []string{"system:serviceaccount:ops:approval-bot"},
		Clock:                   clocktesting.NewFakePassiveClock(t0), Scheme: s})
	return f
}

// session is a PIM session of user, approved by another a minute ago.
func session(user string) *claiimv1.PIMRequest {
	p := &claiimv1.PIMRequest{ObjectMeta: metav1.ObjectMeta{Name: "pim-" + strings.Split(user, "@")[0], Annotations: map[string]string{
		claiimv1.AnnotationApprove: "ok", claiimv1.AnnotationApprovedBy: "approver@claiim.io", claiimv1.AnnotationApprovedAt: t0.Add(-time.Minute).Format(time.RFC3339)}},
		Spec: claiimv1.PIMRequestSpec{Requester: claiimv1.Username(user), Subject: claiimv1.Username(user), Reason: "a reason long enough"}}
	p.Annotations[claiimv1.AnnotationApprovalAttestation] = signer.Sign(attest.PIMApproval(p))
	return p
}

// kindOf finds the registry entry of obj's kind.
func (f *fixture) kindOf(obj client.Object) (kind, metav1.GroupVersionKind) {
	f.t.Helper()
	gvk, err := apiutil.GVKForObject(obj, f.h.Scheme)
	if err != nil {
		f.t.Fatal(err)
	}
	for _, k := range f.h.kinds() {
		if kgvk, _ := apiutil.GVKForObject(k.obj, f.h.Scheme); kgvk == gvk {
			return k, metav1.GroupVersionKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind}
		}
	}
	f.t.Fatalf("kind %s is not in the registry", gvk.Kind)
	return kind{}, metav1.GroupVersionKind{}
}

// request is the admission request the apiserver sends when user does op;
// old is nil on create, obj nil on delete.
func (f *fixture) request(op admissionv1.Operation, user string, old, obj client.Object) admission.Request {
	f.t.Helper()
	some := obj
	if some == nil {
		some = old
	}
	k, gvk := f.kindOf(some)
	req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: types.UID("req-" + string(op)), Kind: gvk, Operation: op,
		Resource: metav1.GroupVersionResource{Group: gvk.Group, Version: gvk.Version, Resource: k.resource},
		Name:     some.GetName(), Namespace: some.GetNamespace(),
		UserInfo: authenticationv1.UserInfo{Username: user, Groups: []string{"system:authenticated"}},
	}}
	for _, o := range []struct {
		obj client.Object
		raw *runtime.RawExtension
	}{{obj, &req.Object}, {old, &req.OldObject}} {
		if o.obj == nil {
			continue
		}
		b, err := json.Marshal(o.obj)
		if err != nil {
			f.t.Fatal(err)
		}
		o.raw.Raw = b
	}
	return req
}

// validate sends the request through the webhook the apiserver calls for
// it (the path's router, the kind's typed validator), the objects stored
// and stamped as the apiserver and the mutating webhook would have.
func (f *fixture) validate(op admissionv1.Operation, user string, old, obj client.Object) admission.Response {
	f.t.Helper()
	old, obj = admitted(f.t, old), admitted(f.t, obj)
	if op == admissionv1.Update && obj != nil {
		obj = stampedAfter(f.t, old, obj)
	}
	return f.validateAsIs(op, user, old, obj)
}

// validateAsIs sends the request with the objects exactly as given.
func (f *fixture) validateAsIs(op admissionv1.Operation, user string, old, obj client.Object) admission.Response {
	f.t.Helper()
	req := f.request(op, user, old, obj)
	k, _ := f.kindOf(obj0(old, obj))
	routes, err := f.h.routes()
	if err != nil {
		f.t.Fatal(err)
	}
	return routes[k.validatePath].Handle(context.Background(), req)
}

// admitted is a copy of obj as stored after an admitted creation: UID,
// generation, creation time and a stamp, unless it has a stamp already
// (nil, and kinds that are not stamped, as they are).
func admitted(t testing.TB, obj client.Object) client.Object {
	t.Helper()
	if obj == nil || obj.GetAnnotations()[claiimv1.AnnotationAdmitted] != "" {
		return obj
	}
	out := obj.DeepCopyObject().(client.Object)
	now := time.Now()
	out.SetUID(types.UID("uid-" + out.GetName()))
	out.SetGeneration(max(1, out.GetGeneration()))
	out.SetCreationTimestamp(metav1.NewTime(now))
	v, err := attest.NewStamp(signer, out, nil, now)
	if err != nil {
		return obj // a kind admission does not stamp
	}
	setAnnotation(out, claiimv1.AnnotationAdmitted, v)
	return out
}

// stampedAfter is obj as an admitted update of old stores it.
func stampedAfter(t testing.TB, old, obj client.Object) client.Object {
	t.Helper()
	out := obj.DeepCopyObject().(client.Object)
	out.SetUID(old.GetUID())
	out.SetGeneration(old.GetGeneration())
	out.SetCreationTimestamp(old.GetCreationTimestamp())
	setAnnotation(out, claiimv1.AnnotationAdmitted, "")
	v, err := attest.NewStamp(signer, out, old, time.Now())
	if err != nil {
		return obj
	}
	setAnnotation(out, claiimv1.AnnotationAdmitted, v)
	return out
}

func setAnnotation(o client.Object, k, v string) {
	ann := maps.Clone(o.GetAnnotations())
	if ann == nil {
		ann = map[string]string{}
	}
	setOrDelete(ann, k, v)
	o.SetAnnotations(ann)
}

// defaults runs the kind's defaulter on obj, typed, as controller-runtime
// does (the request in the context), and returns the defaulted object.
func defaults[T client.Object](f *fixture, d admission.Defaulter[T], op admissionv1.Operation, user string, old, obj T) T {
	f.t.Helper()
	var oldObj client.Object
	if op == admissionv1.Update {
		oldObj = old
	}
	ctx := admission.NewContextWithRequest(context.Background(), f.request(op, user, oldObj, obj))
	out := obj.DeepCopyObject().(T)
	if err := d.Default(ctx, out); err != nil {
		f.t.Fatal(err)
	}
	return out
}

// orNil turns a typed nil pointer (no old object on create, no object on
// delete) into a nil client.Object.
func orNil[T client.Object](o T) client.Object {
	if v := reflect.ValueOf(o); !v.IsValid() || v.IsNil() {
		return nil
	}
	return o
}

func obj0(old, obj client.Object) client.Object {
	if obj != nil {
		return obj
	}
	return old
}

// last is the last Chron record, or nil.
func (f *fixture) last() *chron.Record {
	if len(f.log.rows) == 0 {
		return nil
	}
	return f.log.rows[len(f.log.rows)-1]
}

// expect checks an answer: admitted when words is empty, else refused
// with all of words in the message; and the reason of the Chron record
// written for it ("" for none).
func (f *fixture) expect(name string, resp admission.Response, reason string, words ...string) {
	f.t.Helper()
	msg := ""
	if resp.Result != nil {
		msg = resp.Result.Message
	}
	switch {
	case len(words) == 0 && !resp.Allowed:
		f.t.Errorf("%s: refused (%d %s), want admitted", name, resp.Result.Code, msg)
	case len(words) > 0 && resp.Allowed:
		f.t.Errorf("%s: admitted, want refused with %q", name, words)
	}
	for _, w := range words {
		if !strings.Contains(msg, w) {
			f.t.Errorf("%s: message %q does not say %q", name, msg, w)
		}
	}
	got := ""
	if r := f.last(); r != nil {
		got = r.Reason
		if (r.Outcome == chron.OutcomeDeny) == resp.Allowed {
			f.t.Errorf("%s: recorded %s %s, answered allowed=%v", name, r.Outcome, r.Reason, resp.Allowed)
		}
	}
	if got != reason {
		f.t.Errorf("%s: Chron reason %q, want %q", name, got, reason)
	}
}
