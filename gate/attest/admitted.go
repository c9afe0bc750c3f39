package attest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

// Admission stamps. The mutating webhook stamps every control-plane object
// it admits (claiimv1.AnnotationAdmitted) with the manager's signature over
// the object's kind, namespace, name, UID, the generation it had before
// the write, and a digest of its spec, labels and annotations. A write
// that bypassed the webhooks cannot make a stamp: it leaves an old one,
// which no longer matches, so whoever reads the object (the manager, the
// gate, admission) can tell it was changed past admission.
//
// Replay: the stamp names the generation before the write, and a write
// moves the generation by at most one (CRDs bump it on a spec change
// only), so a stamp matches only generation prior or prior+1. A stamp
// copied back with its old content is a write that changes the spec,
// which moves the generation on past both: it does not match. A stamp of
// a creation cannot name the UID (the apiserver assigns it after the
// webhooks): it names the time instead, which must match the object's
// creationTimestamp within CreateWindow, so a deleted object re-created
// later from a copy does not verify.

// CreateWindow bounds the difference between a creation's stamp time
// (the manager's clock) and the object's creationTimestamp (the
// apiserver's): the clock skew tolerated, and the window in which a
// deleted object re-created from a copy would still verify.
const CreateWindow = 2 * time.Minute

// Errors of a stamp check; each says what happened in words.
var (
	ErrNotStamped = errors.New("it carries no admission stamp (" + claiimv1.AnnotationAdmitted + ")")
	ErrChanged    = errors.New("its content is not what admission stamped")
)

// StaleStampError: the object's generation moved on since its stamp.
type StaleStampError struct{ Prior, Now int64 }

func (e StaleStampError) Error() string {
	then := fmt.Sprintf("a write over generation %d", e.Prior)
	if e.Prior == 0 {
		then = "its creation"
	}
	return fmt.Sprintf("its generation %d moved on past the last write admission stamped (%s)", e.Now, then)
}

// stamp is the parsed annotation: "c<prior>.<unix>.<attestation>" for a
// creation, "u<prior>.<unix>.<attestation>" for an update.
type stamp struct {
	create bool
	prior  int64
	at     int64
	att    string
}

func (s stamp) String() string {
	mode := "u"
	if s.create {
		mode = "c"
	}
	return mode + strconv.FormatInt(s.prior, 10) + "." + strconv.FormatInt(s.at, 10) + "." + s.att
}

func parseStamp(v string) (stamp, error) {
	if len(v) > MaxLen+48 || len(v) < 2 || (v[0] != 'c' && v[0] != 'u') {
		return stamp{}, ErrMalformed
	}
	prior, rest, ok := strings.Cut(v[1:], ".")
	at, att, ok2 := strings.Cut(rest, ".")
	s := stamp{create: v[0] == 'c', att: att}
	var err, err2 error
	s.prior, err = strconv.ParseInt(prior, 10, 64)
	s.at, err2 = strconv.ParseInt(at, 10, 64)
	if !ok || !ok2 || err != nil || err2 != nil || s.prior < 0 || (s.create && s.prior != 0) {
		return stamp{}, ErrMalformed
	}
	return s, nil
}

// NewStamp stamps obj, as a write admission admitted will store it; prior
// is the object as stored before the write, nil for a creation.
func NewStamp(s *Signer, obj, prior metav1.Object, at time.Time) (string, error) {
	st := stamp{create: prior == nil, at: at.Unix()}
	uid := ""
	if prior != nil {
		st.prior, uid = prior.GetGeneration(), string(prior.GetUID())
	}
	m, err := admitted(obj, uid, st)
	if err != nil {
		return "", err
	}
	st.att = s.Sign(m)
	return st.String(), nil
}

// VerifyStamp checks that obj, as stored, is what admission stamped: the
// same identity and content, at the generation of the stamped write.
func VerifyStamp(v Verifier, obj metav1.Object) error {
	val := obj.GetAnnotations()[claiimv1.AnnotationAdmitted]
	if val == "" || val == claiimv1.AdmitExisting {
		return ErrNotStamped
	}
	st, err := parseStamp(val)
	if err != nil {
		return err
	}
	gen := obj.GetGeneration()
	// Marking an object for deletion (finalizers) bumps its generation once
	// more, past admission's sight: the DELETE was validated, not mutated.
	deleting := obj.GetDeletionTimestamp() != nil && gen == st.prior+2
	if gen != st.prior && gen != st.prior+1 && !deleting {
		return StaleStampError{Prior: st.prior, Now: gen}
	}
	uid := string(obj.GetUID())
	if st.create {
		uid = ""
		created := obj.GetCreationTimestamp().Unix()
		if d := time.Duration(created-st.at) * time.Second; d > CreateWindow || d < -CreateWindow {
			return fmt.Errorf("its creation was stamped at %s but it was created at %s: the stamp was copied from an earlier object",
				time.Unix(st.at, 0).UTC().Format(time.RFC3339), time.Unix(created, 0).UTC().Format(time.RFC3339))
		}
	}
	m, err := admitted(obj, uid, st)
	if err != nil {
		return err
	}
	err = v.Verify(m, st.att)
	if errors.Is(err, ErrBad) {
		return ErrChanged
	}
	return err
}

// admitted is what a stamp covers.
func admitted(obj metav1.Object, uid string, st stamp) (Message, error) {
	kind, digest, err := contentDigest(obj)
	if err != nil {
		return Message{}, err
	}
	mode := "update"
	if st.create {
		mode = "create"
	}
	return message("Admitted", kind, obj.GetNamespace(), obj.GetName(), obj.GetGenerateName(), uid, mode,
		strconv.FormatInt(st.prior, 10), strconv.FormatInt(st.at, 10), digest), nil
}

// contentDigest hashes what a write may change that the gate or the
// manager reads: the spec, the labels (policy selectors) and the
// annotations (acceptance, approvals, the token epoch), all but the stamp.
// Each is encoded from the Go types, as every reader decodes it.
func contentDigest(obj metav1.Object) (kind, digest string, err error) {
	var spec any
	switch o := obj.(type) {
	case *claiimv1.AIOrg:
		kind, spec = "AIOrg", o.Spec
	case *claiimv1.Skill:
		kind, spec = "Skill", o.Spec
	case *claiimv1.Policy:
		kind, spec = "Policy", o.Spec
	case *claiimv1.Agent:
		kind, spec = "Agent", o.Spec
	case *claiimv1.CrossOrgGrant:
		kind, spec = "CrossOrgGrant", o.Spec
	default:
		return "", "", fmt.Errorf("admission does not stamp %T", obj)
	}
	ann := maps.Clone(obj.GetAnnotations())
	delete(ann, claiimv1.AnnotationAdmitted)
	b, err := json.Marshal(struct {
		Spec        any               `json:"spec"`
		Labels      map[string]string `json:"labels,omitempty"`
		Annotations map[string]string `json:"annotations,omitempty"`
	}{spec, obj.GetLabels(), ann})
	if err != nil {
		return "", "", fmt.Errorf("encoding %s %s: %w", kind, obj.GetName(), err)
	}
	sum := sha256.Sum256(b)
	return kind, hex.EncodeToString(sum[:]), nil
}
