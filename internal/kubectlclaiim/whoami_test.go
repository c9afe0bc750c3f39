package kubectlclaiim_test

import (
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

type whoami struct {
	Username       string
	Groups         []string
	MayRequestPIM  bool
	MayApprovePIM  bool
	ActiveSessions []struct{ Name, Subject, ApprovedBy, ExpiresAt string }
}

// whoami tells the two people apart: the apiserver's view of each, and
// RBAC's answer on requesting and approving PIM.
func TestWhoami(t *testing.T) {
	g := NewWithT(t)
	for user, mayApprove := range map[string]bool{adminUser: false, peerUser: true} {
		var id whoami
		okJSON(t, &id, user, "whoami")
		g.Expect(id.Username).To(Equal(user))
		g.Expect(id.Groups).To(ContainElement("system:authenticated"))
		g.Expect(id.MayRequestPIM).To(BeTrue(), user)
		g.Expect(id.MayApprovePIM).To(Equal(mayApprove), user)

		out := ok(t, user, "whoami", "-o", "yaml")
		g.Expect(out).To(ContainSubstring("username: " + user))

		table := ok(t, user, "whoami")
		g.Expect(table).To(MatchRegexp(`USERNAME\s+` + strings.ReplaceAll(user, ".", `\.`)))
		g.Expect(table).To(MatchRegexp(`MAY APPROVE PIM\s+` + map[bool]string{true: "yes", false: "no"}[mayApprove]))
	}

	name := elevate(t, adminUser)
	var id whoami
	okJSON(t, &id, adminUser, "whoami")
	g.Expect(id.ActiveSessions).To(ContainElement(And(HaveField("Name", name), HaveField("ApprovedBy", peerUser))))
	g.Expect(ok(t, adminUser, "whoami")).To(MatchRegexp(`PIM SESSION\s+` + name + `, Active until`))
	okJSON(t, &id, peerUser, "whoami")
	g.Expect(id.ActiveSessions).To(BeEmpty())
}
