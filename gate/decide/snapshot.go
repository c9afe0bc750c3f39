package decide

import (
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/labels"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/attest"
	"github.com/claiim/claiim-operator/gate/token"
)

// Agent is what the gate knows of an agent.
type Agent struct {
	Name, Namespace, UID, DisplayName string
	Org                               string
	Anchor                            string
	Labels                            labels.Set
	ServiceAccount                    string

	// Active is true only when every source agrees the agent may act: its
	// recorded phase is Active for the current generation, its spec still
	// says Active, and its anchor's acceptance matches the current anchor.
	Active bool
	// Phase is the phase to report; for a spec change the operator has not
	// reconciled yet it is the recorded phase.
	Phase    claiimv1.AgentPhase
	Inactive string // why the agent is not Active, in words
	// NotAdmitted, when set, says which object this agent's decisions
	// depend on was changed past admission (admitted.go): every decision
	// is DENY NOT_ADMITTED until it is re-applied under PIM.
	NotAdmitted string

	TokenID, TokenHash string

	SkillName    string
	SkillVersion int32
	previous     *previousPin // after a re-pin, for a while (repin.go)

	celAgent map[string]any // the `agent` variable of CEL conditions
}

// SkillVersion is one published skill version, compiled.
type SkillVersion struct {
	Skill, Org string
	Version    int32
	ID, Digest string
	Allowed    []Pattern
	Forbidden  []Pattern

	// What /v/init hands the agent: the skill's display name, and the
	// version's email identity and system prompt.
	DisplayName, AgentEmail, SystemPrompt string
}

// Snapshot is an immutable view of the declared resources, indexed for
// the hot path. Build one per change and swap it in atomically.
type Snapshot struct {
	byTokenID map[string]*Agent
	// refused are tokens that exist but may not authenticate (an unsigned
	// status, an id two agents claim), by id, with why: the holder of
	// such a token hears what to fix rather than "unknown token".
	refused  map[string][]refusal
	byName   map[string]*Agent   // "namespace/name"
	bySA     map[string][]*Agent // "namespace/serviceaccount"
	versions map[string]map[int32]*SkillVersion
	// ancestors[org] is the org and all its ancestors (a policy of any of
	// them applies); an org in a broken tree maps to nil.
	ancestors map[string][]string
	// grants by receiving org, in input order; whether one counts at the
	// request's time is the grant's own rule (ActiveAt, Covers).
	grants map[string][]*claiimv1.CrossOrgGrant

	// Policy rules by what their patterns can match: exact actions, the
	// literal leading segments ("crm:export" of "crm:export:*"), a literal
	// segment at a position (for a leading "*"), and the rest. A request
	// visits one exact bucket, two per segment of its action, and the wild
	// list, so a decision's cost doesn't grow with the number of policies.
	exact     map[string][]ruleRef
	byPrefix  map[string][]ruleRef
	bySegment map[segKey][]ruleRef
	wild      []ruleRef

	Revision string // changes with any input; reported with decisions

	keys attest.Verifier // checks ActionApprovals at decision time (approval.go)
}

type refusal struct{ hash, why string }

type ruleRef struct {
	policy *CompiledPolicy
	rule   *Rule
}

// Inputs are the objects a snapshot is built from.
type Inputs struct {
	Orgs     []claiimv1.AIOrg
	Skills   []claiimv1.Skill
	Policies []claiimv1.Policy
	Agents   []claiimv1.Agent
	Grants   []claiimv1.CrossOrgGrant
	Revision string
	// Keys verify the manager's attestations of agent and grant status;
	// nothing in a status counts without one (nil: nothing counts).
	Keys attest.Verifier
	// Compile, if set, compiles a policy (a caller may memoize by
	// generation: CEL compilation is the costly part of a rebuild).
	Compile func(*claiimv1.Policy) *CompiledPolicy
	// IgnoreAdmission uses objects whatever their admission stamp. Only
	// for a gate over a cluster without CLAIIM's admission webhooks (tests
	// of the gate alone); the gate binary never sets it.
	IgnoreAdmission bool
}

// Build indexes in. It never fails: what can't be used fails closed (an
// agent without a usable token can't authenticate, a status the manager
// did not sign counts for nothing, a token id two agents claim
// authenticates neither, a broken Deny rule matches everything in scope,
// a broken Allow rule is left out).
func Build(in Inputs) *Snapshot {
	s := &Snapshot{
		byTokenID: make(map[string]*Agent, len(in.Agents)),
		refused:   map[string][]refusal{},
		byName:    make(map[string]*Agent, len(in.Agents)),
		bySA:      map[string][]*Agent{},
		versions:  make(map[string]map[int32]*SkillVersion, len(in.Skills)),
		ancestors: orgAncestors(in.Orgs),
		exact:     map[string][]ruleRef{},
		byPrefix:  map[string][]ruleRef{},
		bySegment: map[segKey][]ruleRef{},
		grants:    map[string][]*claiimv1.CrossOrgGrant{},
		Revision:  in.Revision,
		keys:      in.Keys,
	}
	for i := range in.Skills {
		sk := &in.Skills[i]
		vs := make(map[int32]*SkillVersion, len(sk.Spec.Versions))
		for j := range sk.Spec.Versions {
			v := &sk.Spec.Versions[j]
			d := v.Digest()
			vs[v.Version] = &SkillVersion{
				Skill: sk.Name, Org: string(sk.Spec.Org), Version: v.Version,
				ID: claiimv1.SkillVersionID(sk.Name, v.Version, d), Digest: d,
				Allowed: parseAll(v.AllowedActions), Forbidden: parseForbidden(v.ForbiddenActions),
				DisplayName: sk.Spec.DisplayName, AgentEmail: v.AgentEmail, SystemPrompt: v.SystemPrompt,
			}
		}
		s.versions[sk.Name] = vs
	}
	unadmitted := findUnadmitted(in)
	tokens := make(map[string][]*Agent, len(in.Agents))
	for i := range in.Agents {
		a := newAgent(&in.Agents[i])
		if err := verify(in.Keys, attest.Agent(&in.Agents[i]), in.Agents[i].Status.Attestation); err != nil {
			why := "the agent's status is not signed by the CLAIIM manager (" + err.Error() + "), so the gate trusts neither its phase nor its token. " +
				"The manager signs status whenever it reconciles the agent: check that it runs, and that nothing else may write agents/status (docs/security.md)"
			if a.Active {
				a.Active, a.Inactive = false, why
			}
			if a.TokenID != "" && a.TokenHash != "" {
				s.refused[a.TokenID] = append(s.refused[a.TokenID], refusal{hash: a.TokenHash, why: why})
			}
			a.TokenID, a.TokenHash, a.previous = "", "", nil
		}
		if chain, ok := s.ancestors[a.Org]; a.Active && (!ok || chain == nil) {
			// A broken tree would hide its ancestors' Deny policies.
			a.Active, a.Inactive = false, "the agent's org "+a.Org+" does not resolve to a root (missing org or parent, or a cycle); fix the AIOrg tree"
		}
		if why := unadmitted.affecting(s, &in.Agents[i]); why != "" {
			a.NotAdmitted, a.Active, a.Inactive = why, false, why
		}
		s.byName[a.Namespace+"/"+a.Name] = a
		if a.ServiceAccount != "" && a.Phase != claiimv1.AgentDecommissioned {
			s.bySA[a.Namespace+"/"+a.ServiceAccount] = append(s.bySA[a.Namespace+"/"+a.ServiceAccount], a)
		}
		if a.TokenID != "" && a.TokenHash != "" {
			tokens[a.TokenID] = append(tokens[a.TokenID], a)
		}
	}
	for id, as := range tokens {
		if len(as) == 1 {
			s.byTokenID[id] = as[0]
			continue
		}
		// Never the wrong agent: a shared id authenticates nobody.
		names := make([]string, len(as))
		for i, a := range as {
			names[i] = a.Namespace + "/" + a.Name
		}
		sort.Strings(names)
		why := "token id " + id + " is claimed by " + strconv.Itoa(len(as)) + " agents (" + strings.Join(names, ", ") +
			"), so it authenticates none of them. Rotate the token of each: kubectl annotate agent <name> " + claiimv1.AnnotationRotateToken + "=<a new value>"
		for _, a := range as {
			s.refused[id] = append(s.refused[id], refusal{hash: a.TokenHash, why: why})
		}
	}
	pols := make([]*CompiledPolicy, 0, len(in.Policies))
	compile := in.Compile
	if compile == nil {
		compile = func(p *claiimv1.Policy) *CompiledPolicy {
			cp, _ := CompilePolicy(p) // errors are the Policy reconciler's to report
			return cp
		}
	}
	for i := range in.Policies {
		pols = append(pols, compile(&in.Policies[i]))
	}
	sort.Slice(pols, func(i, j int) bool { return pols[i].Name < pols[j].Name })
	for _, cp := range pols {
		for r := range cp.Rules {
			if cp.Audit && cp.Rules[r].Effect != claiimv1.PolicyEffectDeny {
				continue // an Audit policy's Allow would never allow: nothing to record
			}
			ref := ruleRef{policy: cp, rule: &cp.Rules[r]}
			for _, p := range cp.Rules[r].Patterns {
				prefix := p.literalPrefix()
				switch k, ok := p.literalAt(); {
				case p.Literal():
					s.exact[p.src] = appendOnce(s.exact[p.src], ref)
				case prefix != "":
					s.byPrefix[prefix] = appendOnce(s.byPrefix[prefix], ref)
				case ok:
					s.bySegment[k] = appendOnce(s.bySegment[k], ref)
				default:
					s.wild = appendOnce(s.wild, ref)
				}
			}
		}
	}
	for i := range in.Grants {
		if verify(in.Keys, attest.Grant(&in.Grants[i]), in.Grants[i].Status.Attestation) != nil || unadmitted.grants[&in.Grants[i]] != "" {
			continue // a grant counts only as the manager recorded it, and as admitted
		}
		g := in.Grants[i].DeepCopy() // the snapshot is immutable; the inputs are the caller's
		s.grants[string(g.Spec.ReceivingOrg)] = append(s.grants[string(g.Spec.ReceivingOrg)], g)
	}
	return s
}

// appendOnce keeps a rule listed once per index bucket even when several
// of its patterns land there.
func appendOnce(refs []ruleRef, r ruleRef) []ruleRef {
	if n := len(refs); n > 0 && refs[n-1].rule == r.rule {
		return refs
	}
	return append(refs, r)
}

func newAgent(in *claiimv1.Agent) *Agent {
	a := &Agent{
		Name: in.Name, Namespace: in.Namespace, UID: string(in.UID), DisplayName: in.Spec.DisplayName,
		Org: string(in.Spec.Org), Anchor: string(in.Spec.AccountabilityAnchor), Labels: labels.Set(in.Labels),
		ServiceAccount: in.Spec.ServiceAccountName, Phase: in.Status.Phase,
		SkillName: in.Spec.SkillRef.Name, SkillVersion: in.Spec.SkillRef.Version, previous: previousOf(in),
	}
	if t := in.Status.Token; t != nil && t.RevokedAt == nil {
		a.TokenID, a.TokenHash = t.ID, t.Hash
	}
	// The agent's own lifecycle phase first, then what the manager recorded.
	switch p := in.LifecyclePhase(); {
	case p == claiimv1.AgentDecommissioned:
		a.Phase, a.Inactive = claiimv1.AgentDecommissioned, "the agent is decommissioned"
	case p == claiimv1.AgentSuspended:
		a.Phase, a.Inactive = claiimv1.AgentSuspended, "the agent is suspended; set spec.lifecycle back to Active to resume it"
	case p == claiimv1.AgentInactive:
		a.Phase, a.Inactive = claiimv1.AgentInactive, "the agent is INACTIVE: its accountability anchor "+string(in.Spec.AccountabilityAnchor)+" has not accepted the assignment"
	case in.Status.Phase != claiimv1.AgentActive:
		a.Inactive = "the agent is " + string(orDefault(in.Status.Phase, claiimv1.AgentPending)) + ": " + readyMessage(in)
	case in.Status.ObservedGeneration != in.Generation:
		a.Inactive = "the agent changed and the operator has not reconciled it yet; retry in a moment"
	default:
		a.Active = true
	}
	a.celAgent = map[string]any{
		"name": a.Name, "namespace": a.Namespace, "org": a.Org, "anchor": a.Anchor, "labels": labelsAny(in.Labels),
	}
	return a
}

func orDefault(p, d claiimv1.AgentPhase) claiimv1.AgentPhase {
	if p == "" {
		return d
	}
	return p
}

func readyMessage(a *claiimv1.Agent) string {
	for _, c := range a.Status.Conditions {
		if c.Type == claiimv1.ConditionReady && c.Message != "" {
			return c.Message
		}
	}
	return "not reconciled yet"
}

func labelsAny(l map[string]string) map[string]any {
	m := make(map[string]any, len(l))
	for k, v := range l {
		m[k] = v
	}
	return m
}

func parseAll(ps []claiimv1.ActionPattern) []Pattern {
	out := make([]Pattern, 0, len(ps))
	for _, p := range ps {
		if c, err := ParsePattern(string(p)); err == nil {
			out = append(out, c)
		}
	}
	return out
}

// parseForbidden fails closed: a forbidden pattern that doesn't parse
// forbids everything.
func parseForbidden(ps []claiimv1.ActionPattern) []Pattern {
	out := make([]Pattern, 0, len(ps))
	for _, p := range ps {
		c, err := ParsePattern(string(p))
		if err != nil {
			c = MustParsePattern("*")
			c.src = string(p)
		}
		out = append(out, c)
	}
	return out
}

// orgAncestors maps every org to itself and its ancestors, walking
// spec.parent as the AIOrg reconciler does (claiimv1.OrgPath); a missing
// ancestor, a cycle or too deep a tree leaves the org unresolved (nil).
func orgAncestors(orgs []claiimv1.AIOrg) map[string][]string {
	parent := make(map[string]claiimv1.OrgName, len(orgs))
	for i := range orgs {
		parent[orgs[i].Name] = orgs[i].Spec.Parent
	}
	parentOf := func(name string) (claiimv1.OrgName, bool, error) {
		p, ok := parent[name]
		return p, ok, nil
	}
	out := make(map[string][]string, len(orgs))
	for name := range parent {
		out[name], _ = claiimv1.OrgPath(name, parent[name], parentOf)
	}
	return out
}

// AgentByToken finds the agent a token id belongs to.
func (s *Snapshot) AgentByToken(id string) (*Agent, bool) {
	a, ok := s.byTokenID[id]
	return a, ok
}

// RefusedToken says why tok, a token whose id found no agent, may not
// authenticate, when it is a real token refused for a reason its holder
// can fix; "" otherwise (nothing is told to a guess).
func (s *Snapshot) RefusedToken(id, tok string) string {
	for _, r := range s.refused[id] {
		if token.Matches(tok, r.hash) {
			return r.why
		}
	}
	return ""
}

func verify(keys attest.Verifier, m attest.Message, att string) error {
	if keys == nil {
		return attest.ErrNoKeys
	}
	return keys.Verify(m, att)
}

// AgentsByServiceAccount finds the agents bound to a ServiceAccount.
func (s *Snapshot) AgentsByServiceAccount(namespace, name string) []*Agent {
	return s.bySA[namespace+"/"+name]
}

// Agent finds an agent by namespace and name.
func (s *Snapshot) Agent(namespace, name string) (*Agent, bool) {
	a, ok := s.byName[namespace+"/"+name]
	return a, ok
}

// PinnedVersion is the skill version the agent is pinned to, if published.
func (s *Snapshot) PinnedVersion(a *Agent) (*SkillVersion, bool) {
	v, ok := s.versions[a.SkillName][a.SkillVersion]
	return v, ok
}

// inScope reports whether a policy of org applies to an agent of agentOrg:
// an unscoped policy applies everywhere, a scoped one to its org and the
// org's descendants.
func (s *Snapshot) inScope(policyOrg, agentOrg string) bool {
	if policyOrg == "" {
		return true
	}
	for _, o := range s.ancestors[agentOrg] {
		if o == policyOrg {
			return true
		}
	}
	return policyOrg == agentOrg
}

// segKey is an action segment at a position (0 is the first).
type segKey struct {
	pos int
	seg string
}

// literalPrefix is the pattern's literal leading segments, joined: every
// action it matches starts with them and a ':'.
func (p Pattern) literalPrefix() string {
	n := 0
	for n < len(p.segs) && p.segs[n] != "*" {
		n++
	}
	return strings.Join(p.segs[:n], ":")
}

// literalAt finds a segment every action the pattern matches has at the
// same position. It takes the last such one: later segments name more
// specific things (resource:verb:target), so their buckets are smaller.
func (p Pattern) literalAt() (segKey, bool) {
	if !p.prefix {
		return segKey{len(p.segs), p.last}, true
	}
	for i := len(p.segs) - 1; i >= 0; i-- {
		if p.segs[i] != "*" {
			return segKey{i, p.segs[i]}, true
		}
	}
	return segKey{}, false
}
