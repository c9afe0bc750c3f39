package approvalview

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

func approval(name string, expires time.Time, ann map[string]string) claiimv1.ActionApproval {
	return claiimv1.ActionApproval{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann},
		Spec: claiimv1.ActionApprovalSpec{Requester: "system:serviceaccount:default:bot", AgentServiceAccount: "system:serviceaccount:default:bot",
			ApprovalsRequired: 2, RequestedAt: metav1.NewTime(expires.Add(-time.Hour)), ExpiresAt: metav1.NewTime(expires)}}
}

func TestListPutsPendingFirstSoonestExpiryFirst(t *testing.T) {
	now := time.Now()
	items := []claiimv1.ActionApproval{
		approval("expired", now.Add(-time.Minute), nil),
		approval("later", now.Add(time.Hour), nil),
		approval("denied", now.Add(time.Hour), map[string]string{claiimv1.AnnotationDeniedBy: "peer"}),
		approval("sooner", now.Add(time.Minute), nil),
	}
	var got []string
	for _, r := range List(items, now) {
		got = append(got, r.Name)
	}
	if strings.Join(got, ",") != "sooner,later,denied,expired" {
		t.Errorf("order %v; want sooner,later,denied,expired", got)
	}
}

func TestRefusalInAdmissionsWords(t *testing.T) {
	now := time.Now()
	a := approval("a", now.Add(time.Hour), map[string]string{claiimv1.AnnotationApprovers: claiimv1.ApproversJSON([]string{"anchor"})})
	r := Of(&a, now)
	for _, c := range []struct {
		user string
		d    Decision
		want string
	}{
		{"system:serviceaccount:default:bot", Approve, "agent's own ServiceAccount"},
		{"anchor", Approve, "you already approved this call; it needs 2 distinct people"},
		{"anchor", Deny, ""},
		{"peer", Approve, ""},
	} {
		if got := r.Refusal(c.user, c.d); (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%s %s: %q; want %q", c.user, c.d.Verb, got, c.want)
		}
	}
	d := approval("d", now.Add(time.Hour), map[string]string{claiimv1.AnnotationDeniedBy: "peer"})
	if got := Of(&d, now).Refusal("other", Deny); !strings.Contains(got, "already Denied") {
		t.Errorf("deciding a denied approval: %q", got)
	}
}

func TestDecisionPatchSetsItsAnnotation(t *testing.T) {
	d, ok := DecisionOf("deny")
	if !ok || d != Deny {
		t.Fatalf("DecisionOf(deny) = %v, %v", d, ok)
	}
	if _, ok := DecisionOf("revoke"); ok {
		t.Error("revoke is no decision on an ActionApproval")
	}
	b, err := Approve.Patch(`a "quoted" comment`).Data(nil)
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Metadata struct{ Annotations map[string]string }
	}
	if err := json.Unmarshal(b, &p); err != nil || p.Metadata.Annotations[claiimv1.AnnotationApprove] != `a "quoted" comment` {
		t.Errorf("patch %s: %v", b, err)
	}
}
