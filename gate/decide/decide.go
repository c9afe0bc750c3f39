package decide

import (
	"fmt"
	"strings"
	"time"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

// Outcome is ALLOW or DENY.
type Outcome string

const (
	Allow Outcome = "ALLOW"
	Deny  Outcome = "DENY"
)

// Reason codes are stable API: agents, dashboards and Chron queries key on
// them.
const (
	ReasonUnauthenticated      = "UNAUTHENTICATED"
	ReasonAgentInactive        = "AGENT_INACTIVE"
	ReasonSkillVersionMismatch = "SKILL_VERSION_MISMATCH"
	ReasonPolicyDeny           = "POLICY_DENY"
	ReasonSkillForbidden       = "SKILL_FORBIDDEN"
	ReasonOwnAIOrg             = "OWN_AIORG"
	ReasonCrossAIOrgGrant      = "CROSS_AIORG_GRANT"
	ReasonPolicyAllow          = "POLICY_ALLOW"
	ReasonNotPermitted         = "NOT_PERMITTED"
	// ReasonNotAdmitted (admitted.go) is a decision that depends on an
	// object changed past admission.
)

// Request is what an agent asks, after authentication. Agent is nil when
// the token was unknown or revoked.
type Request struct {
	Agent          *Agent
	Action         string
	Context        map[string]any
	SkillVersionID string
	Now            time.Time

	// ApprovalID is the approval the request presents ("" for none);
	// Approval is that ActionApproval as the gate's cache holds it (nil
	// when unknown), and ContextDigest the request context's digest
	// (ContextDigest), which the approval must name.
	ApprovalID    string
	Approval      *claiimv1.ActionApproval
	ContextDigest string
}

// PolicyMatch is one policy rule that matched.
type PolicyMatch struct {
	Policy  string
	Version int64
	Rule    string
	Effect  claiimv1.PolicyEffect
	// Note says why a rule matched in an unusual way (its condition failed
	// to evaluate, or it is broken and kept to fail closed).
	Note string
	// Enforcement is "" for a rule that decides, and Audit for a Deny rule
	// of an Audit policy: it would have denied, and is recorded as such,
	// but it took no part in the decision.
	Enforcement claiimv1.PolicyEnforcement
}

// Decision is the gate's answer and everything that led to it.
type Decision struct {
	Outcome Outcome
	Reason  string
	Message string

	Agent        *Agent
	SkillVersion *SkillVersion // the version decided under: the pinned one, or the previous one (Previous)
	// PinnedVersionID is the version the agent is pinned to, when known:
	// every answer carries it, so a client on another version re-inits.
	PinnedVersionID string
	// Previous: the agent presented the version it was pinned to before
	// its last re-pin, still accepted in the grace window (repin.go).
	Previous bool
	Grant    string // the grant under which a cross-org skill was used

	// Every rule that matched, not only the one that decided: the Chron
	// row shows both locks of a "double lock". Would-deny matches of Audit
	// policies are here too, marked (Audit lists them).
	Policies  []PolicyMatch
	Forbidden []string // skill patterns that forbade the action
	Allowed   []string // skill patterns that allowed it

	// Approval is set when a RequireApproval rule held an ALLOW
	// (approval.go).
	Approval *ApprovalCheck
}

// Decide answers a request. The order is the product's contract:
//
//  1. no agent (unknown or revoked token)     → DENY UNAUTHENTICATED
//     an object the agent's decisions depend on
//     was changed past admission              → DENY NOT_ADMITTED
//  2. agent not Active                        → DENY AGENT_INACTIVE
//  3. presented skill version ≠ pinned        → DENY SKILL_VERSION_MISMATCH
//     (unless it is the version pinned before the last re-pin, inside
//     its grace window: then decided under that version, and said so)
//  4. any matching Deny policy                → DENY POLICY_DENY
//     (of the agent's org chain, of every org, and, for a skill of
//     another org, of the skill's org chain: a grant lends the skill
//     with its owner's Denies)
//  5. skill version forbids the action        → DENY SKILL_FORBIDDEN
//  6. skill version allows it                 → ALLOW OWN_AIORG | CROSS_AIORG_GRANT
//  7. a matching Allow policy                 → ALLOW POLICY_ALLOW
//  8. otherwise                               → DENY NOT_PERMITTED
//  9. an ALLOW that a matching RequireApproval
//     rule holds, without an approval of this
//     exact call                              → DENY APPROVAL_* (approval.go)
//
// Audit policies are evaluated with the others, and their matching Deny
// rules recorded as would-deny (Enforcement Audit), but no step reads
// them: they never deny, and their Allow rules never allow.
//
// A deny (step 4, 5) covers the sub-actions of what its patterns name; an
// allow (step 6, 7) only what they match (Rule.Takes, Pattern.Covers).
// The action must already be valid (ValidateAction); Decide does no I/O.
func Decide(s *Snapshot, req Request) (d Decision) {
	a := req.Agent
	if a == nil {
		return Decision{Outcome: Deny, Reason: ReasonUnauthenticated,
			Message: "unknown or revoked agent token; re-provision the agent to get a new token"}
	}
	var ok bool
	if d, ok = s.standing(a); !ok {
		return d
	}
	sv := d.SkillVersion
	pinned := sv
	if req.SkillVersionID != sv.ID {
		prev := s.previousVersion(a, req.SkillVersionID, req.Now)
		if prev == nil {
			d.Outcome, d.Reason, d.Message = Deny, ReasonSkillVersionMismatch, repinMismatch(a, req.SkillVersionID, sv)
			return d
		}
		sv, d.SkillVersion, d.Previous = prev, prev, true
	}
	defer func() {
		if d.Previous {
			d.Message += onPrevious(a, sv, pinned)
		}
	}()

	// Gather every match first, so the record is complete whatever decides.
	var vars map[string]any
	denied, allowedByPolicy := false, false
	var hold *ApprovalCheck
	visit := func(refs []ruleRef) {
		for _, ref := range refs {
			r := ref.rule
			if matched(d.Policies, ref) || !s.applies(ref, a, sv) || !r.AppliesTo(a) || !r.Takes(req.Action) {
				continue
			}
			m := PolicyMatch{Policy: ref.policy.Name, Version: ref.policy.Version, Rule: r.Name, Effect: r.Effect}
			switch {
			case r.Broken != "":
				m.Note = "rule is invalid and denies everything in scope until fixed: " + r.Broken
			case r.Condition != nil:
				if vars == nil {
					vars = map[string]any{"action": req.Action, "context": orEmpty(req.Context), "agent": a.celAgent}
				}
				ok, err := r.Condition.Eval(vars)
				if err != nil {
					if r.Effect == claiimv1.PolicyEffectAllow {
						continue // an Allow never grants on an error
					}
					m.Note = "condition could not be evaluated, so the rule applies: " + err.Error()
				} else if !ok {
					continue
				}
			}
			switch {
			case ref.policy.Audit:
				m.Enforcement = claiimv1.PolicyAudit // recorded; decides nothing
			case m.Effect == claiimv1.PolicyEffectDeny:
				denied = true
			case m.Effect == claiimv1.PolicyEffectRequireApproval:
				hold = hold.add(m, r)
			default:
				allowedByPolicy = true
			}
			d.Policies = append(d.Policies, m)
		}
	}
	visit(s.exact[req.Action])
	for pos, start := 0, 0; start <= len(req.Action); pos++ {
		end := strings.IndexByte(req.Action[start:], ':')
		if end < 0 {
			end = len(req.Action)
		} else {
			end += start
			visit(s.byPrefix[req.Action[:end]])
			visit(s.exact[req.Action[:end]]) // a Deny of an action covers its sub-actions
		}
		visit(s.bySegment[segKey{pos, req.Action[start:end]}])
		start = end + 1
	}
	visit(s.wild)
	for _, p := range sv.Forbidden {
		if p.Covers(req.Action) {
			d.Forbidden = append(d.Forbidden, p.src)
		}
	}
	for _, p := range sv.Allowed {
		if p.Match(req.Action) {
			d.Allowed = append(d.Allowed, p.src)
		}
	}

	switch {
	case denied:
		d.Outcome, d.Reason = Deny, ReasonPolicyDeny
		d.Message = "policy deny: " + denyNames(d.Policies)
	case len(d.Forbidden) > 0:
		d.Outcome, d.Reason = Deny, ReasonSkillForbidden
		d.Message = fmt.Sprintf("skill %s forbids %s (pattern %s)", sv.ID, req.Action, d.Forbidden[0])
	case len(d.Allowed) > 0 && sv.Org == a.Org:
		d.Outcome, d.Reason = Allow, ReasonOwnAIOrg
		d.Message = "gate cleared"
	case len(d.Allowed) > 0 && s.grant(sv, a.Org, req.Now, &d):
		d.Outcome, d.Reason = Allow, ReasonCrossAIOrgGrant
		d.Message = "gate cleared under cross-org grant " + d.Grant
	case allowedByPolicy:
		d.Outcome, d.Reason = Allow, ReasonPolicyAllow
		d.Message = "gate cleared by policy"
	default:
		d.Outcome, d.Reason = Deny, ReasonNotPermitted
		d.Message = fmt.Sprintf("%s is not in the allowed actions of skill %s and no policy allows it", req.Action, sv.ID)
	}
	if d.Outcome == Allow && hold != nil {
		s.approve(&d, req, hold)
	}
	return d
}

// Audit lists the rules of Audit policies that would have denied.
func (d *Decision) Audit() []PolicyMatch {
	var out []PolicyMatch
	for _, m := range d.Policies {
		if m.Enforcement == claiimv1.PolicyAudit {
			out = append(out, m)
		}
	}
	return out
}

// grant finds a grant active at now that lets agents of org use sv.
func (s *Snapshot) grant(sv *SkillVersion, org string, now time.Time, d *Decision) bool {
	for _, g := range s.grants[org] {
		if g.ActiveAt(now) && g.Covers(sv.Skill, claiimv1.OrgName(sv.Org), claiimv1.OrgName(org)) {
			d.Grant = g.Name
			return true
		}
	}
	return false
}

// applies reports whether a policy's org puts the agent in its scope: a
// policy of the agent's org or an ancestor (or of every org) does; so does
// a Deny of the org that owns the skill the agent uses, or of an ancestor
// of it, since another org's skill is lent with its owner's Denies (its
// Allows stay with its own agents).
func (s *Snapshot) applies(ref ruleRef, a *Agent, sv *SkillVersion) bool {
	if s.inScope(ref.policy.Org, a.Org) {
		return true
	}
	return sv.Org != a.Org && ref.rule.Effect != claiimv1.PolicyEffectAllow && s.inScope(ref.policy.Org, sv.Org)
}

// matched reports whether the rule is already recorded: a rule whose
// patterns sit in two index buckets is visited twice.
func matched(ms []PolicyMatch, ref ruleRef) bool {
	for i := range ms {
		if ms[i].Policy == ref.policy.Name && ms[i].Rule == ref.rule.Name {
			return true
		}
	}
	return false
}

func denyNames(ms []PolicyMatch) string {
	out := ""
	for _, m := range ms {
		if m.Effect != claiimv1.PolicyEffectDeny || m.Enforcement == claiimv1.PolicyAudit {
			continue
		}
		if out != "" {
			out += ", "
		}
		out += fmt.Sprintf("%s/%s (v%d)", m.Policy, m.Rule, m.Version)
	}
	return out
}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}
