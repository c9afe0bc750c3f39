package kubectlclaiim_test

import (
	"testing"

	. "github.com/onsi/gomega"
)

type explained struct {
	Outcome, Reason, Message, SkillVersionID, Signatures string
	Policies                                             []struct {
		Policy, Rule, Effect string
		Version              int64
	}
	SkillRules []string
}

// explain runs the gate's decision function on what the user reads; it
// agrees with the gate on the seed's two actions, whether it could check
// the manager's signatures (admin may read the keys) or not (peer).
func TestExplainAgreesWithTheGate(t *testing.T) {
	g := NewWithT(t)
	seed(t)
	for action, want := range map[string][2]string{
		"deploy:staging":    {"ALLOW", "OWN_AIORG"},
		"deploy:production": {"DENY", "POLICY_DENY"},
	} {
		gate := askGate(t, "prod-deploy-bot", action)
		g.Expect([]string{gate.Outcome, gate.Reason}).To(Equal(want[:]), action)
		for _, user := range []string{adminUser, peerUser} {
			var ex explained
			okJSON(t, &ex, user, "explain", "prod-deploy-bot", "-n", "default", "--action", action)
			g.Expect([]string{ex.Outcome, ex.Reason, ex.Message}).To(Equal([]string{gate.Outcome, gate.Reason, gate.Message}), action+" as "+user)
			g.Expect(ex.SkillVersionID).To(Equal(gate.SkillVersionID))
			g.Expect(ex.SkillRules).To(Equal(gate.SkillRules))
			g.Expect(ex.Policies).To(HaveLen(len(gate.Policies)))
			for i, p := range gate.Policies {
				g.Expect(ex.Policies[i]).To(And(HaveField("Policy", p.Name), HaveField("Rule", p.Rule), HaveField("Effect", p.Effect), HaveField("Version", p.Version)))
			}
			if user == adminUser {
				g.Expect(ex.Signatures).To(HavePrefix("verified"))
			} else {
				g.Expect(ex.Signatures).To(HavePrefix("NOT CHECKED: cannot read ConfigMap claiim-system/claiim-attestation-keys (Forbidden)"))
			}
		}
	}

	table := ok(t, adminUser, "explain", "prod-deploy-bot", "--action", "deploy:production")
	g.Expect(table).To(MatchRegexp(`OUTCOME\s+DENY\n`))
	g.Expect(table).To(MatchRegexp(`POLICIES\s+no-production-deploys/deny-production-deploys \(v1\) Deny\n`))
	g.Expect(table).To(MatchRegexp(`SKILL RULES\s+forbidden:deploy:production\n`))
	r := kc(peerUser, "explain", "prod-deploy-bot", "--action", "deploy:staging")
	g.Expect(r.code).To(Equal(0))
	g.Expect(r.err).To(HavePrefix("Warning: NOT CHECKED"))

	bad := kc(adminUser, "explain", "prod-deploy-bot", "--action", "Deploy Staging")
	g.Expect(bad.code).To(Equal(1))
	g.Expect(bad.err).To(HavePrefix("error: --action:"))
	bad = kc(adminUser, "explain", "prod-deploy-bot", "--action", "deploy:staging", "--context", "[1]")
	g.Expect(bad.err).To(ContainSubstring("--context must be a JSON object"))
	bad = kc(adminUser, "explain", "prod-deploy-bot", "--action", "deploy:staging", "--skill-version-id", "deploy-bot-v9-0")
	g.Expect(bad.out).To(MatchRegexp(`REASON\s+SKILL_VERSION_MISMATCH`))
}
