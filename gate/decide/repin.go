package decide

import (
	"fmt"
	"time"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

// previousPin is the skill version an agent was re-pinned away from, as
// the manager's signed status records it, and when the gate stops
// accepting it.
type previousPin struct {
	skill   string
	version int32
	id      string
	until   time.Time
}

func previousOf(in *claiimv1.Agent) *previousPin {
	p := in.Status.PreviousSkillVersion
	if p == nil || p.ID == "" {
		return nil
	}
	return &previousPin{skill: p.Name, version: p.Version, id: p.ID, until: p.Until.Time}
}

// previousVersion is the agent's previous skill version when id names it
// and its grace window is still open at now; nil otherwise. The version
// must still be published with the same content (its id says so), and its
// org must resolve, as for the pinned one.
func (s *Snapshot) previousVersion(a *Agent, id string, now time.Time) *SkillVersion {
	p := a.previous
	if p == nil || p.id != id || now.IsZero() || !now.Before(p.until) {
		return nil
	}
	sv, ok := s.versions[p.skill][p.version]
	if !ok || sv.ID != id || (sv.Org != a.Org && s.ancestors[sv.Org] == nil) {
		return nil
	}
	return sv
}

// repinMismatch says why a presented skill version is refused, and what
// the agent does about it: re-init with the version it is pinned to now.
func repinMismatch(a *Agent, presented string, pinned *SkillVersion) string {
	msg := mismatch(presented, pinned)
	if p := a.previous; p != nil && p.id == presented {
		msg += fmt.Sprintf("; %s was its previous version, accepted after the re-pin only until %s", p.id, p.until.UTC().Format(time.RFC3339))
	}
	return msg + "; re-init the agent (restart its pods, or call /v/init with " + pinned.ID + ")"
}

// onPrevious is what an answer decided under the previous version adds.
func onPrevious(a *Agent, used, pinned *SkillVersion) string {
	return fmt.Sprintf(" (decided under the agent's previous skill version %s, accepted until %s after its re-pin to %s; re-init to use %s)",
		used.ID, a.previous.until.UTC().Format(time.RFC3339), pinned.ID, pinned.ID)
}
