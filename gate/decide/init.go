package decide

import (
	"fmt"
	"time"
)

// ReasonAgentActive is the reason of an ALLOW to /v/init: the agent may
// start asking (each action is still decided by Decide).
const ReasonAgentActive = "AGENT_ACTIVE"

// Init answers an agent's /v/init: whether it may act at all (steps 1 and
// 2 of Decide, and a published pinned version), without an action. An
// active agent presenting another skill version than its pinned one is
// still an ALLOW: init reports the pinned version, and the message says
// that every action will be SKILL_VERSION_MISMATCH until the agent runs
// with it.
//
// now is the gate's clock: the previous version a re-pin leaves accepted
// is named as such only inside its window, as Decide accepts it.
func Init(s *Snapshot, a *Agent, skillVersionID string, now time.Time) Decision {
	if a == nil {
		return Decide(s, Request{})
	}
	d, ok := s.standing(a)
	if !ok {
		return d
	}
	d.Outcome, d.Reason, d.Message = Allow, ReasonAgentActive, "agent is active"
	switch sv := d.SkillVersion; {
	case skillVersionID == sv.ID:
	case s.previousVersion(a, skillVersionID, now) != nil:
		d.Message = "agent is active; " + skillVersionID + " is its previous skill version, accepted until " +
			a.previous.until.UTC().Format(time.RFC3339) + " after its re-pin to " + sv.ID + " (then " + ReasonSkillVersionMismatch + "): re-init with " + sv.ID
	default:
		d.Message = "agent is active, but every action will be " + ReasonSkillVersionMismatch + ": " + mismatch(skillVersionID, sv)
	}
	return d
}

// standing decides what holds for every request of an authenticated
// agent, whatever it asks: it was admitted, it is Active, its pinned
// version is published and its org tree resolves. When it returns ok the
// decision carries the pinned version and no outcome yet.
func (s *Snapshot) standing(a *Agent) (Decision, bool) {
	d := Decision{Agent: a, Outcome: Deny}
	if a.NotAdmitted != "" {
		d.Reason, d.Message = ReasonNotAdmitted, a.NotAdmitted
		return d, false
	}
	if !a.Active {
		d.Reason, d.Message = ReasonAgentInactive, a.Inactive
		return d, false
	}
	sv, ok := s.PinnedVersion(a)
	if !ok {
		d.Reason = ReasonAgentInactive
		d.Message = fmt.Sprintf("skill %q version %d is not published; the agent cannot act", a.SkillName, a.SkillVersion)
		return d, false
	}
	d.SkillVersion, d.PinnedVersionID = sv, sv.ID
	if sv.Org != a.Org && s.ancestors[sv.Org] == nil {
		// A broken tree would hide the Denies of the skill's org's ancestors.
		d.Reason = ReasonAgentInactive
		d.Message = fmt.Sprintf("skill %q belongs to org %s, which does not resolve to a root (missing org or parent, or a cycle); fix the AIOrg tree", sv.Skill, sv.Org)
		return d, false
	}
	d.Outcome = ""
	return d, true
}

func mismatch(presented string, sv *SkillVersion) string {
	return fmt.Sprintf("skill version %q presented, but the agent is pinned to %s (%s version %d); use the SKILL_VERSION_ID from the agent's token Secret",
		presented, sv.ID, sv.Skill, sv.Version)
}
