package decide

import (
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

var now = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// seedInputs are the seed's objects: the Engineering org, the Deploy Bot
// skill, the "No production deploys" policy and an active agent, plus a
// second org whose skill is shared by a grant.
func seedInputs() Inputs {
	v1 := claiimv1.SkillVersion{Version: 1, AgentEmail: "deploy-bot@yourcompany.com",
		AllowedActions: []claiimv1.ActionPattern{"deploy:staging"}, ForbiddenActions: []claiimv1.ActionPattern{"deploy:production"}}
	return Inputs{
		Orgs: []claiimv1.AIOrg{
			{ObjectMeta: metav1.ObjectMeta{Name: "engineering"}},
			{ObjectMeta: metav1.ObjectMeta{Name: "platform"}, Spec: claiimv1.AIOrgSpec{Parent: "engineering"}},
			{ObjectMeta: metav1.ObjectMeta{Name: "finance"}},
		},
		Skills: []claiimv1.Skill{
			{ObjectMeta: metav1.ObjectMeta{Name: "deploy-bot"}, Spec: claiimv1.SkillSpec{Org: "engineering", Versions: []claiimv1.SkillVersion{v1}}},
			{ObjectMeta: metav1.ObjectMeta{Name: "ledger"}, Spec: claiimv1.SkillSpec{Org: "finance", Versions: []claiimv1.SkillVersion{{
				Version: 1, AgentEmail: "ledger@yourcompany.com", AllowedActions: []claiimv1.ActionPattern{"ledger:read"}}}}},
		},
		Policies: []claiimv1.Policy{{
			ObjectMeta: metav1.ObjectMeta{Name: "no-production-deploys", Generation: 3},
			Spec:       claiimv1.PolicySpec{Rules: []claiimv1.PolicyRule{{Name: "deny-prod", Effect: claiimv1.PolicyEffectDeny, Actions: []claiimv1.ActionPattern{"deploy:production"}}}},
		}},
		Agents: []claiimv1.Agent{activeAgent("bot", "engineering", "deploy-bot"), activeAgent("platform-bot", "platform", "deploy-bot")},
	}
}

func activeAgent(name, org, skill string) claiimv1.Agent {
	return claiimv1.Agent{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Generation: 1, UID: "uid-" + "name",
			Annotations: map[string]string{claiimv1.AnnotationAnchorAccepted: "admin@claiim.io"}, Labels: map[string]string{"tier": "prod"}},
		Spec: claiimv1.AgentSpec{Org: claiimv1.OrgName(org), AccountabilityAnchor: "admin@claiim.io",
			SkillRef: claiimv1.SkillRef{Name: skill, Version: 1}, Lifecycle: claiimv1.LifecycleActive},
		Status: claiimv1.AgentStatus{Phase: claiimv1.AgentActive, ObservedGeneration: 1,
			Token: &claiimv1.AgentToken{ID: "id-" + name, Hash: "sha256:h-" + name}},
	}
}

func decide(t *testing.T, in Inputs, agent, action string, ctx map[string]any, mutateReq ...func(*Request)) Decision {
	t.Helper()
	s := buildSigned(in)
	a, ok := s.Agent("default", agent)
	if !ok {
		t.Fatalf("no agent %s", agent)
	}
	req := Request{Agent: a, Action: action, Context: ctx, Now: now}
	if sv, ok := s.PinnedVersion(a); ok {
		req.SkillVersionID = sv.ID
	}
	for _, m := range mutateReq {
		m(&req)
	}
	return Decide(s, req)
}

func TestSeedScenario(t *testing.T) {
	d := decide(t, seedInputs(), "bot", "deploy:staging", map[string]any{"target": "eu-staging-1"})
	if d.Outcome != Allow || d.Reason != ReasonOwnAIOrg {
		t.Fatalf("deploy:staging = %s %s (%s), want ALLOW OWN_AIORG", d.Outcome, d.Reason, d.Message)
	}
	d = decide(t, seedInputs(), "bot", "deploy:production", map[string]any{"target": "eu-prod-1"})
	if d.Outcome != Deny || d.Reason != ReasonPolicyDeny {
		t.Fatalf("deploy:production = %s %s, want DENY POLICY_DENY", d.Outcome, d.Reason)
	}
	// The double lock: both the policy and the skill's forbid are recorded.
	if len(d.Policies) != 1 || d.Policies[0].Policy != "no-production-deploys" || d.Policies[0].Version != 3 {
		t.Fatalf("policies %+v", d.Policies)
	}
	if len(d.Forbidden) != 1 || d.Forbidden[0] != "deploy:production" {
		t.Fatalf("skill forbid not recorded: %+v", d.Forbidden)
	}
}

func TestReasonsAndPrecedence(t *testing.T) {
	type tc struct {
		name    string
		mutate  func(*Inputs)
		agent   string
		action  string
		ctx     map[string]any
		req     func(*Request)
		outcome Outcome
		reason  string
		msg     string
	}
	policy := func(name, org string, effect claiimv1.PolicyEffect, cond string, actions ...claiimv1.ActionPattern) claiimv1.Policy {
		return claiimv1.Policy{ObjectMeta: metav1.ObjectMeta{Name: name, Generation: 1}, Spec: claiimv1.PolicySpec{Org: claiimv1.OrgName(org),
			Rules: []claiimv1.PolicyRule{{Name: "r", Effect: effect, Actions: actions, Condition: cond}}}}
	}
	addPolicy := func(p claiimv1.Policy) func(*Inputs) {
		return func(in *Inputs) { in.Policies = append(in.Policies, p) }
	}
	agentMut := func(f func(*claiimv1.Agent)) func(*Inputs) { return func(in *Inputs) { f(&in.Agents[0]) } }

	cases := []tc{
		{name: "unknown token", req: func(r *Request) { r.Agent = nil }, action: "deploy:staging", outcome: Deny, reason: ReasonUnauthenticated},
		{name: "suspended", mutate: agentMut(func(a *claiimv1.Agent) { a.Spec.Lifecycle = claiimv1.LifecycleSuspended }),
			action: "deploy:staging", outcome: Deny, reason: ReasonAgentInactive, msg: "suspended"},
		{name: "suspended in spec, status not yet reconciled", mutate: agentMut(func(a *claiimv1.Agent) { a.Spec.Lifecycle = claiimv1.LifecycleSuspended; a.Generation = 2 }),
			action: "deploy:staging", outcome: Deny, reason: ReasonAgentInactive, msg: "suspended"},
		{name: "anchor has not accepted", mutate: agentMut(func(a *claiimv1.Agent) { a.Annotations = nil }),
			action: "deploy:staging", outcome: Deny, reason: ReasonAgentInactive, msg: "INACTIVE"},
		{name: "anchor changed after acceptance", mutate: agentMut(func(a *claiimv1.Agent) { a.Spec.AccountabilityAnchor = "peer@claiim.io" }),
			action: "deploy:staging", outcome: Deny, reason: ReasonAgentInactive, msg: "peer@claiim.io"},
		{name: "pending", mutate: agentMut(func(a *claiimv1.Agent) { a.Status.Phase = claiimv1.AgentPending }),
			action: "deploy:staging", outcome: Deny, reason: ReasonAgentInactive},
		{name: "spec changed, not reconciled", mutate: agentMut(func(a *claiimv1.Agent) { a.Generation = 2 }),
			action: "deploy:staging", outcome: Deny, reason: ReasonAgentInactive, msg: "not reconciled"},
		{name: "decommissioned", mutate: agentMut(func(a *claiimv1.Agent) { a.Spec.Lifecycle = claiimv1.LifecycleDecommissioned }),
			action: "deploy:staging", outcome: Deny, reason: ReasonAgentInactive},
		{name: "pinned version not published", mutate: agentMut(func(a *claiimv1.Agent) { a.Spec.SkillRef.Version = 9 }),
			action: "deploy:staging", outcome: Deny, reason: ReasonAgentInactive, msg: "not published"},
		{name: "wrong skill version presented", req: func(r *Request) { r.SkillVersionID = "deploy-bot-v2-00000000" },
			action: "deploy:staging", outcome: Deny, reason: ReasonSkillVersionMismatch, msg: "pinned to deploy-bot-v1-"},
		{name: "inactive beats a mismatched version", mutate: agentMut(func(a *claiimv1.Agent) { a.Spec.Lifecycle = claiimv1.LifecycleSuspended }),
			req: func(r *Request) { r.SkillVersionID = "x" }, action: "deploy:staging", outcome: Deny, reason: ReasonAgentInactive},
		{name: "policy deny beats the skill's allow", mutate: addPolicy(policy("freeze", "", claiimv1.PolicyEffectDeny, "", "deploy:*")),
			action: "deploy:staging", outcome: Deny, reason: ReasonPolicyDeny, msg: "freeze/r"},
		{name: "policy deny beats a policy allow", mutate: func(in *Inputs) {
			addPolicy(policy("a-allow", "", claiimv1.PolicyEffectAllow, "", "db:read"))(in)
			addPolicy(policy("b-deny", "", claiimv1.PolicyEffectDeny, "", "db:*"))(in)
		}, action: "db:read", outcome: Deny, reason: ReasonPolicyDeny},
		{name: "skill forbidden (no policy)", mutate: func(in *Inputs) { in.Policies = nil },
			action: "deploy:production", outcome: Deny, reason: ReasonSkillForbidden},
		{name: "forbidden beats a policy allow", mutate: func(in *Inputs) {
			in.Policies = []claiimv1.Policy{policy("allow-all", "", claiimv1.PolicyEffectAllow, "", "*")}
		}, action: "deploy:production", outcome: Deny, reason: ReasonSkillForbidden},
		{name: "own org", action: "deploy:staging", outcome: Allow, reason: ReasonOwnAIOrg},
		{name: "policy allow", mutate: addPolicy(policy("reads", "engineering", claiimv1.PolicyEffectAllow, "", "db:*:read")),
			action: "db:orders:read", outcome: Allow, reason: ReasonPolicyAllow},
		{name: "policy of a parent org applies to a child org's agent", agent: "platform-bot",
			mutate: addPolicy(policy("eng-freeze", "engineering", claiimv1.PolicyEffectDeny, "", "deploy:staging")),
			action: "deploy:staging", outcome: Deny, reason: ReasonPolicyDeny},
		{name: "policy of another org does not apply", mutate: addPolicy(policy("fin-freeze", "finance", claiimv1.PolicyEffectDeny, "", "deploy:staging")),
			action: "deploy:staging", outcome: Allow, reason: ReasonOwnAIOrg},
		{name: "not permitted", action: "db:drop", outcome: Deny, reason: ReasonNotPermitted},
		{name: "deny condition true", mutate: addPolicy(policy("us", "", claiimv1.PolicyEffectDeny, `context.target.startsWith("us-")`, "deploy:*")),
			action: "deploy:staging", ctx: map[string]any{"target": "us-staging-1"}, outcome: Deny, reason: ReasonPolicyDeny},
		{name: "deny condition false", mutate: addPolicy(policy("us", "", claiimv1.PolicyEffectDeny, `context.target.startsWith("us-")`, "deploy:*")),
			action: "deploy:staging", ctx: map[string]any{"target": "eu-staging-1"}, outcome: Allow, reason: ReasonOwnAIOrg},
		{name: "deny condition that errors still denies", mutate: addPolicy(policy("us", "", claiimv1.PolicyEffectDeny, `context.target.startsWith("us-")`, "deploy:*")),
			action: "deploy:staging", ctx: map[string]any{}, outcome: Deny, reason: ReasonPolicyDeny, msg: "us/r"},
		{name: "allow condition that errors does not allow", mutate: addPolicy(policy("reads", "", claiimv1.PolicyEffectAllow, `context.ok == true`, "db:read")),
			action: "db:read", ctx: map[string]any{}, outcome: Deny, reason: ReasonNotPermitted},
		{name: "broken deny rule fails closed", mutate: addPolicy(policy("typo", "", claiimv1.PolicyEffectDeny, `context.x ==`, "db:read")),
			action: "deploy:staging", outcome: Deny, reason: ReasonPolicyDeny, msg: "typo/r"},
		{name: "broken allow rule grants nothing", mutate: addPolicy(policy("typo", "", claiimv1.PolicyEffectAllow, `context.x ==`, "db:read")),
			action: "db:read", outcome: Deny, reason: ReasonNotPermitted},
		{name: "policy limited to other agents", mutate: func(in *Inputs) {
			p := policy("others", "", claiimv1.PolicyEffectDeny, "", "deploy:staging")
			p.Spec.Rules[0].Agents = &claiimv1.AgentSelector{Names: []string{"default/someone-else"}}
			in.Policies = append(in.Policies, p)
		}, action: "deploy:staging", outcome: Allow, reason: ReasonOwnAIOrg},
		{name: "policy by label selector", mutate: func(in *Inputs) {
			p := policy("prod-tier", "", claiimv1.PolicyEffectDeny, "", "deploy:staging")
			p.Spec.Rules[0].Agents = &claiimv1.AgentSelector{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "prod"}}}
			in.Policies = append(in.Policies, p)
		}, action: "deploy:staging", outcome: Deny, reason: ReasonPolicyDeny},
	}
	grantCase := func(name string, g claiimv1.CrossOrgGrant, outcome Outcome, reason string) tc {
		return tc{name: name, mutate: func(in *Inputs) {
			in.Agents[0].Spec.SkillRef.Name = "ledger"
			in.Grants = append(in.Grants, g)
		}, action: "ledger:read", outcome: outcome, reason: reason}
	}
	grant := func(phase claiimv1.GrantPhase, expires time.Time, revoked bool) claiimv1.CrossOrgGrant {
		t := metav1.NewTime(expires)
		return claiimv1.CrossOrgGrant{ObjectMeta: metav1.ObjectMeta{Name: "fin-to-eng"},
			Spec:   claiimv1.CrossOrgGrantSpec{GrantingOrg: "finance", ReceivingOrg: "engineering", Skills: []string{"ledger"}, Revoked: revoked},
			Status: claiimv1.CrossOrgGrantStatus{Phase: phase, ExpiresAt: &t}}
	}
	cases = append(cases,
		grantCase("cross-org skill under an active grant", grant(claiimv1.GrantActive, now.Add(time.Hour), false), Allow, ReasonCrossAIOrgGrant),
		grantCase("cross-org skill, grant expired a moment ago", grant(claiimv1.GrantActive, now, false), Deny, ReasonNotPermitted),
		grantCase("cross-org skill, grant revoked", grant(claiimv1.GrantActive, now.Add(time.Hour), true), Deny, ReasonNotPermitted),
		grantCase("cross-org skill, grant pending", grant(claiimv1.GrantPending, now.Add(time.Hour), false), Deny, ReasonNotPermitted),
	)

	seen := map[string]bool{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := seedInputs()
			if c.mutate != nil {
				c.mutate(&in)
			}
			agent := c.agent
			if agent == "" {
				agent = "bot"
			}
			var reqs []func(*Request)
			if c.req != nil {
				reqs = append(reqs, c.req)
			}
			d := decide(t, in, agent, c.action, c.ctx, reqs...)
			if d.Outcome != c.outcome || d.Reason != c.reason {
				t.Fatalf("%s = %s %s (%s), want %s %s", c.action, d.Outcome, d.Reason, d.Message, c.outcome, c.reason)
			}
			if c.msg != "" && !strings.Contains(d.Message, c.msg) {
				t.Fatalf("message %q does not say %q", d.Message, c.msg)
			}
			if d.Message == "" {
				t.Fatal("a decision without a message")
			}
		})
		seen[c.reason] = true
	}
	for _, r := range []string{ReasonUnauthenticated, ReasonAgentInactive, ReasonSkillVersionMismatch, ReasonPolicyDeny,
		ReasonSkillForbidden, ReasonOwnAIOrg, ReasonCrossAIOrgGrant, ReasonPolicyAllow, ReasonNotPermitted} {
		if !seen[r] {
			t.Errorf("no case covers reason %s", r)
		}
	}
}

func TestRevokedTokenIsNotIndexed(t *testing.T) {
	in := seedInputs()
	rev := metav1.NewTime(now)
	in.Agents[0].Status.Token.RevokedAt = &rev
	s := buildSigned(in)
	if _, ok := s.AgentByToken("id-bot"); ok {
		t.Fatal("a revoked token still finds its agent")
	}
	if _, ok := s.AgentByToken("id-platform-bot"); !ok {
		t.Fatal("a live token does not find its agent")
	}
}

// benchInputs scales the seed: agents spread over orgs, each org with its
// own skill and deny policies.
func benchInputs(agents, policies int) Inputs {
	in := seedInputs()
	for i := 0; i < policies; i++ {
		in.Policies = append(in.Policies, claiimv1.Policy{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p%04d", i), Generation: 1},
			Spec: claiimv1.PolicySpec{Org: claiimv1.OrgName(fmt.Sprintf("org%03d", i%100)), Rules: []claiimv1.PolicyRule{
				{Name: "deny", Effect: claiimv1.PolicyEffectDeny, Actions: []claiimv1.ActionPattern{claiimv1.ActionPattern(fmt.Sprintf("svc%d:delete", i))}},
				{Name: "wild", Effect: claiimv1.PolicyEffectDeny, Actions: []claiimv1.ActionPattern{claiimv1.ActionPattern(fmt.Sprintf("svc%d:*", i))}},
			}}})
	}
	for i := 0; i < agents; i++ {
		in.Agents = append(in.Agents, activeAgent(fmt.Sprintf("a%05d", i), "engineering", "deploy-bot"))
	}
	return in
}

func BenchmarkDecide(b *testing.B) {
	for _, size := range []struct{ agents, policies int }{{1, 1}, {1000, 100}, {10000, 1000}} {
		b.Run(fmt.Sprintf("agents=%d/policies=%d", size.agents, size.policies), func(b *testing.B) {
			s := buildSigned(benchInputs(size.agents, size.policies))
			a, _ := s.AgentByToken("id-bot")
			sv, _ := s.PinnedVersion(a)
			ctx := map[string]any{"target": "eu-staging-1"}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				action := "deploy:staging"
				if i&1 == 1 {
					action = "deploy:production"
				}
				d := Decide(s, Request{Agent: a, Action: action, Context: ctx, SkillVersionID: sv.ID, Now: now})
				if d.Reason == "" {
					b.Fatal("no reason")
				}
			}
		})
	}
}

func TestBrokenOrgTreeFailsClosed(t *testing.T) {
	in := seedInputs()
	in.Policies = append(in.Policies, claiimv1.Policy{ObjectMeta: metav1.ObjectMeta{Name: "root-freeze", Generation: 1},
		Spec: claiimv1.PolicySpec{Org: "engineering", Rules: []claiimv1.PolicyRule{{Name: "r", Effect: claiimv1.PolicyEffectDeny, Actions: []claiimv1.ActionPattern{"db:*"}}}}})
	// platform's parent engineering is deleted: its Deny would be hidden.
	in.Orgs = in.Orgs[1:]
	in.Skills[0].Spec.Org = "platform"
	in.Agents[1].Spec.SkillRef.Name = "deploy-bot"
	d := decide(t, in, "platform-bot", "deploy:staging", nil)
	if d.Outcome != Deny || d.Reason != ReasonAgentInactive || !strings.Contains(d.Message, "does not resolve") {
		t.Fatalf("agent in a broken org tree: %s %s (%s)", d.Outcome, d.Reason, d.Message)
	}
}

func TestRuleMatchedOnce(t *testing.T) {
	in := seedInputs()
	in.Policies[0].Spec.Rules[0].Actions = []claiimv1.ActionPattern{"deploy:production", "deploy:*"}
	d := decide(t, in, "bot", "deploy:production", nil)
	if len(d.Policies) != 1 {
		t.Fatalf("a rule with two matching patterns was recorded %d times", len(d.Policies))
	}
}

func TestEmptyNamesMatchNobody(t *testing.T) {
	in := seedInputs()
	in.Policies = []claiimv1.Policy{{ObjectMeta: metav1.ObjectMeta{Name: "templated", Generation: 1}, Spec: claiimv1.PolicySpec{
		Rules: []claiimv1.PolicyRule{{Name: "r", Effect: claiimv1.PolicyEffectAllow, Actions: []claiimv1.ActionPattern{"db:*"}, Agents: &claiimv1.AgentSelector{Names: []string{}}}}}}}
	if d := decide(t, in, "bot", "db:read", nil); d.Outcome != Deny {
		t.Fatalf("an Allow rule with an empty names list allowed: %s %s", d.Outcome, d.Reason)
	}
}
