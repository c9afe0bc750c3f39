package v1alpha1

import (
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
)

func TestAddToScheme(t *testing.T) {
	s := runtime.NewScheme()
	if err := AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	for _, o := range []runtime.Object{&AIOrg{}, &AIOrgList{}, &Skill{}, &SkillList{}, &Policy{}, &PolicyList{},
		&Agent{}, &AgentList{}, &PIMRequest{}, &PIMRequestList{}, &CrossOrgGrant{}, &CrossOrgGrantList{}} {
		gvks, _, err := s.ObjectKinds(o)
		if err != nil || len(gvks) != 1 || gvks[0].GroupVersion() != GroupVersion {
			t.Errorf("%T: %v %v", o, gvks, err)
		}
	}
}
