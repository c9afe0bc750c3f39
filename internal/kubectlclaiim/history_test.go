package kubectlclaiim_test

import (
	"regexp"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// history reads what the manager kept of the seed's objects: who applied
// them, under which session; an agent in the kubeconfig's namespace.
func TestHistory(t *testing.T) {
	g := NewWithT(t)
	seed(t)
	session := elevate(t, adminUser)
	for _, target := range []string{"policy/no-production-deploys", "agent/prod-deploy-bot", "agents/default/prod-deploy-bot"} {
		g.Eventually(func(g Gomega) {
			r := kc(peerUser, "history", target, "--database-url", chronURL)
			g.Expect(r.code).To(Equal(0), r.err)
			g.Expect(r.out).To(MatchRegexp(`(?m)^1\s+\S+\s+admin@claiim\.io\s+` + regexp.QuoteMeta(session) + `\s+sha256:[0-9a-f]{64}$`))
		}).WithTimeout(20*time.Second).Should(Succeed(), target)
	}
	spec := ok(t, peerUser, "history", "policy/no-production-deploys", "--generation", "1", "--database-url", chronURL)
	g.Expect(spec).To(And(ContainSubstring("# Policy no-production-deploys generation 1"), ContainSubstring("- deploy:production\n")))

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"history", "policy/no-production-deploys", "--diff", "1"}, "--diff needs two generations"},
		{[]string{"history", "policy/no-production-deploys", "2"}, "two generations go with --diff"},
		{[]string{"history", "pimrequest/x"}, "the history is kept for aiorg, skill, policy and agent"},
		{[]string{"history", "policy/no-production-deploys", "--generation", "99"}, "no history of Policy no-production-deploys generation 99"},
	} {
		r := kc(peerUser, append(c.args, "--database-url", chronURL)...)
		g.Expect(r.code).NotTo(Equal(0), "%v", c.args)
		g.Expect(r.err).To(ContainSubstring(c.want), "%v", c.args)
	}
}
