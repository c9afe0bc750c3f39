package v1alpha1

import "encoding/json"

// ChangedBy is the value of AnnotationChangedBy.
// +kubebuilder:object:generate=false
type ChangedBy struct {
	// User is the authenticated user who made the change.
	User string `json:"user"`
	// PIMSession is the PIMRequest that elevated the user, when one did
	// (empty for a change that needs no session, or the manager's own).
	PIMSession string `json:"pimSession,omitempty"`
}

// String is the annotation's value.
func (c ChangedBy) String() string {
	b, _ := json.Marshal(c) // two strings: cannot fail
	return string(b)
}

// ParseChangedBy reads an AnnotationChangedBy value; false when it is
// absent or not one.
func ParseChangedBy(v string) (ChangedBy, bool) {
	var c ChangedBy
	if v == "" || json.Unmarshal([]byte(v), &c) != nil || c.User == "" {
		return ChangedBy{}, false
	}
	return c, true
}

// KeptSpec is the kind and spec of an object whose every generation is
// kept in Chron's history (AIOrg, Skill, Policy, Agent); false for others.
func KeptSpec(obj any) (kind string, spec any, ok bool) {
	switch o := obj.(type) {
	case *AIOrg:
		return "AIOrg", o.Spec, true
	case *Skill:
		return "Skill", o.Spec, true
	case *Policy:
		return "Policy", o.Spec, true
	case *Agent:
		return "Agent", o.Spec, true
	}
	return "", nil, false
}
