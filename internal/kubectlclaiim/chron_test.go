package kubectlclaiim_test

import (
	"testing"

	. "github.com/onsi/gomega"
)

// chron reads the rows the manager and the gate wrote during the other
// tests: the table is `claiim chron list`'s, JSON every field.
func TestChron(t *testing.T) {
	g := NewWithT(t)
	t.Setenv("CLAIIM_CONSOLE_URL", "")
	seed(t)
	askGate(t, "prod-deploy-bot", "deploy:production")

	table := ok(t, peerUser, "chron", "ls", "--database-url", chronURL, "--kind", "pim.approved")
	g.Expect(table).To(MatchRegexp(`TIME\s+AGENT\s+ACTION\s+OUTCOME`))
	g.Expect(table).To(ContainSubstring("PIM_APPROVED"))

	var rows struct {
		Items []struct {
			ID, Stream, Kind, Outcome, Reason, Action, Hash string
			Seq                                             int64
			Policies                                        []struct{ Name, Rule string }
		}
	}
	okJSON(t, &rows, peerUser, "chron", "ls", "--database-url", chronURL, "--agent", "default/prod-deploy-bot", "--action", "deploy:production", "--limit", "1")
	g.Expect(rows.Items).To(HaveLen(1))
	row := rows.Items[0]
	g.Expect(row).To(And(HaveField("Kind", "decision"), HaveField("Outcome", "DENY"), HaveField("Reason", "POLICY_DENY"), HaveField("Stream", "gate/test")))
	g.Expect(row.Policies).To(ContainElement(HaveField("Name", "no-production-deploys")))
	g.Expect(row.Hash).NotTo(BeEmpty())

	var one struct{ ID, Hash string }
	okJSON(t, &one, peerUser, "chron", "show", row.ID, "--database-url", chronURL)
	g.Expect(one.ID).To(Equal(row.ID))
	g.Expect(one.Hash).To(Equal(row.Hash))
	g.Expect(ok(t, peerUser, "chron", "show", row.ID, "--database-url", chronURL)).To(MatchRegexp(`CHAIN\s+gate/test #\d+`))
	missing := kc(peerUser, "chron", "show", "00000000-0000-0000-0000-000000000000", "--database-url", chronURL)
	g.Expect(missing.code).To(Equal(1))
	g.Expect(missing.err).To(ContainSubstring("widen --since"))

	g.Expect(ok(t, peerUser, "chron", "verify", "--offline", "--database-url", chronURL)).To(ContainSubstring("hash chain is intact"))
	for _, cmd := range []string{"tail", "export"} {
		g.Expect(kc(peerUser, "chron", cmd, "--database-url", chronURL).err).To(ContainSubstring("pass --console URL"))
	}
	t.Setenv("DATABASE_URL", "")
	none := kc(peerUser, "chron", "ls")
	g.Expect(none.code).To(Equal(1))
	g.Expect(none.err).To(And(ContainSubstring("--console"), ContainSubstring("--database-url")))
}
