package v1alpha1

import (
	"fmt"
	"slices"
)

// +kubebuilder:object:generate=false

// OrgPathError says why an org's path to its root does not resolve.
type OrgPathError struct {
	// Reason is ReasonCycle, ReasonTooDeep or ReasonParentNotFound.
	Reason string
	// Chain is the orgs walked before the problem, the org itself first.
	Chain []string
	// At is the org seen twice (a cycle) or missing.
	At string
}

func (e *OrgPathError) Error() string {
	return fmt.Sprintf("org %s: %s at %q", e.Chain[0], e.Reason, e.At)
}

// OrgPath walks from org (whose parent is parent) up to its root and
// returns the orgs on the way, org first and the root last. parentOf
// tells an ancestor's parent ("" for a root) and whether it exists; its
// error ends the walk as it is. A cycle, a tree deeper than MaxOrgDepth or
// a missing ancestor is an *OrgPathError, checked in that order at each
// step. The AIOrg reconciler walks the apiserver's objects, the gate its
// snapshot; both walk the same way.
func OrgPath(org string, parent OrgName, parentOf func(name string) (OrgName, bool, error)) ([]string, error) {
	chain := []string{org}
	for cur := parent; cur != ""; {
		name := string(cur)
		if slices.Contains(chain, name) {
			return nil, &OrgPathError{Reason: ReasonCycle, Chain: chain, At: name}
		}
		if len(chain) > MaxOrgDepth {
			return nil, &OrgPathError{Reason: ReasonTooDeep, Chain: chain, At: name}
		}
		next, ok, err := parentOf(name)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, &OrgPathError{Reason: ReasonParentNotFound, Chain: chain, At: name}
		}
		chain = append(chain, name)
		cur = next
	}
	return chain, nil
}
