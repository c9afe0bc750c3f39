package kubectlclaiim_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/claiim/claiim-operator/internal/console"
	"github.com/claiim/claiim-operator/test/testenv"
)

// Through the console, the auditor reads everything the database path
// reads, in the same shapes, plus the export.
func TestChronThroughConsole(t *testing.T) {
	g := NewWithT(t)
	seed(t)
	askGate(t, "prod-deploy-bot", "deploy:production")

	table := okViaConsole(t, auditorUser, "chron", "ls", "--kind", "pim.approved")
	g.Expect(table).To(MatchRegexp(`TIME\s+AGENT\s+ACTION\s+OUTCOME`))
	g.Expect(table).To(ContainSubstring("PIM_APPROVED"))

	var rows struct{ Items []console.Entry }
	out := okViaConsole(t, auditorUser, "chron", "ls", "--agent", "default/prod-deploy-bot", "--action", "deploy:production", "--limit", "1", "-o", "json")
	g.Expect(json.Unmarshal([]byte(out), &rows)).To(Succeed(), out)
	g.Expect(rows.Items).To(HaveLen(1))
	row := rows.Items[0]
	g.Expect(row).To(And(HaveField("Kind", "decision"), HaveField("Outcome", "DENY"), HaveField("Reason", "POLICY_DENY"),
		HaveField("Org", "engineering"), HaveField("Stream", "gate/test")))
	g.Expect(row.Policies).To(ContainElement(HaveField("Name", "no-production-deploys")))

	var one console.Entry
	out = okViaConsole(t, auditorUser, "chron", "show", row.ID, "-o", "yaml")
	g.Expect(out).To(ContainSubstring("hash: " + row.Hash))
	out = okViaConsole(t, auditorUser, "chron", "show", row.ID, "-o", "json")
	g.Expect(json.Unmarshal([]byte(out), &one)).To(Succeed())
	g.Expect(one).To(Equal(row))
	g.Expect(okViaConsole(t, auditorUser, "chron", "show", row.ID)).To(MatchRegexp(`CHAIN\s+gate/test #\d+`))
	g.Expect(viaConsole(auditorUser, "chron", "show", row.ID, "--since", "1h").err).To(ContainSubstring("filters are for --database-url"))

	ndjson := okViaConsole(t, auditorUser, "chron", "export", "--agent", "default/prod-deploy-bot")
	lines := strings.Split(strings.TrimSpace(ndjson), "\n")
	g.Expect(len(lines)).To(BeNumerically(">", 1))
	var ids []string
	for _, l := range lines {
		var e console.Entry
		g.Expect(json.Unmarshal([]byte(l), &e)).To(Succeed(), l)
		g.Expect(e.AgentName).To(Equal("prod-deploy-bot"))
		ids = append(ids, e.ID)
	}
	g.Expect(ids).To(ContainElement(row.ID))
	csv := okViaConsole(t, auditorUser, "chron", "export", "--format", "csv", "--action", "deploy:production")
	g.Expect(csv).To(HavePrefix("id,time,committed_at,kind,"))
	g.Expect(csv).To(ContainSubstring(row.ID))
	g.Expect(viaConsole(auditorUser, "chron", "export", "--format", "xml").err).To(ContainSubstring("use ndjson or csv"))

	g.Expect(okViaConsole(t, auditorUser, "chron", "verify")).To(ContainSubstring("OK: every stream's hash chain is intact"))
	var rep console.VerifyResponse
	g.Expect(json.Unmarshal([]byte(okViaConsole(t, auditorUser, "chron", "verify", "-o", "json")), &rep)).To(Succeed())
	g.Expect(rep.OK).To(BeTrue())
	g.Expect(rep.Rows).To(BeNumerically(">", 0))
	g.Expect(viaConsole(auditorUser, "chron", "verify", "--offline").err).To(ContainSubstring("--offline is for --database-url"))
}

// An org's auditor sees that org's rows only; another org's row is not
// found, exactly as a missing one. Someone with no right is told so.
func TestChronConsoleVisibility(t *testing.T) {
	g := NewWithT(t)
	seed(t) // creates AIOrg engineering
	w := writer(t, "test/visibility")
	action := fmt.Sprintf("visibility:%d", time.Now().UnixNano())
	eng := decision(t, w, "eng-bot", "engineering", action)
	sales := decision(t, w, "sales-bot", "sales", action)

	ids := func(user string, args ...string) []string {
		var rows struct{ Items []console.Entry }
		out := okViaConsole(t, user, append(args, "-o", "json")...)
		g.Expect(json.Unmarshal([]byte(out), &rows)).To(Succeed())
		var ids []string
		for _, e := range rows.Items {
			ids = append(ids, e.ID)
		}
		return ids
	}
	g.Eventually(func() []string { return ids(auditorUser, "chron", "ls", "--action", action) }).
		Should(ConsistOf(eng.ID, sales.ID))
	g.Expect(ids(engUser, "chron", "ls", "--action", action)).To(ConsistOf(eng.ID))
	g.Expect(ids(engUser, "chron", "ls", "--action", action, "--org", "sales")).To(BeEmpty())

	var all struct{ Items []console.Entry }
	g.Expect(json.Unmarshal([]byte(okViaConsole(t, engUser, "chron", "ls", "--limit", "0", "-o", "json")), &all)).To(Succeed())
	g.Expect(all.Items).NotTo(BeEmpty())
	g.Expect(all.Items).To(HaveEach(HaveField("Org", "engineering")))

	g.Expect(okViaConsole(t, engUser, "chron", "show", eng.ID)).To(ContainSubstring("eng-bot"))
	hidden := viaConsole(engUser, "chron", "show", sales.ID)
	g.Expect(hidden.code).To(Equal(1))
	g.Expect(hidden.err).To(ContainSubstring("404 Not Found: no entry with this id that you may see"))
	g.Expect(viaConsole(engUser, "chron", "verify").err).To(ContainSubstring("it needs the right to see every org's rows"))

	none := viaConsole(nobodyUser, "chron", "ls")
	g.Expect(none.code).To(Equal(1))
	g.Expect(none.err).To(Equal("error: nobody@claiim.io may read no AIOrg's Chron rows; ask for the claiim-auditor ClusterRole (every org) " +
		"or a role allowing get on aiorgs/chron for the orgs you audit (docs/console.md)\n"))
}

// The token: the kubeconfig's, --token, or --token-file; never a client
// certificate, and never over plain http to another machine.
func TestChronConsoleCredentials(t *testing.T) {
	g := NewWithT(t)
	flags := []string{"chron", "ls", "--limit", "1", "--console", consoleURL, "--console-ca", consoleCA}

	cert := run(kubeconfig[adminUser], flags...)
	g.Expect(cert.code).To(Equal(1))
	g.Expect(cert.err).To(And(ContainSubstring("client certificate"), ContainSubstring("--token"), ContainSubstring("--database-url"),
		ContainSubstring("kubectl create token")))

	file := filepath.Join(t.TempDir(), "token")
	g.Expect(os.WriteFile(file, []byte(env.Token(auditorUser)+"\n"), 0o600)).To(Succeed())
	must(t, run(kubeconfig[adminUser], append(flags, "--token-file", file)...), adminUser, flags)
	viaFlag := run(kubeconfig[adminUser], append(flags, "--token", env.Token(nobodyUser))...)
	g.Expect(viaFlag.err).To(ContainSubstring(nobodyUser + " may read no AIOrg's Chron rows")) // the token's owner, not the certificate's
	g.Expect(viaFlag.err + viaFlag.out).NotTo(ContainSubstring(env.Token(nobodyUser)))

	bad := run(kubeconfig[adminUser], append(flags, "--token", "not-a-token-the-apiserver-knows")...)
	g.Expect(bad.err).To(HavePrefix("error: the console does not accept your token: "))
	g.Expect(bad.err).NotTo(ContainSubstring("not-a-token-the-apiserver-knows"))

	plain := run(tokenConf[auditorUser], "chron", "ls", "--console", "http://console.example.com")
	g.Expect(plain.code).To(Equal(1))
	g.Expect(plain.err).To(ContainSubstring("plain http, which would send your bearer token unencrypted"))
	// To this machine (a port-forward) it is allowed: here nothing listens.
	local := run(tokenConf[auditorUser], "chron", "ls", "--console", "http://127.0.0.1:1")
	g.Expect(local.err).To(ContainSubstring("reaching the console"))

	untrusted := run(tokenConf[auditorUser], "chron", "ls", "--console", consoleURL)
	g.Expect(untrusted.err).To(ContainSubstring("certificate"))
}

// tail prints rows as they commit, resumes after the console ends its
// stream, and stops when its context ends.
func TestChronTail(t *testing.T) {
	g := NewWithT(t)
	w := writer(t, "test/tail")
	action := fmt.Sprintf("tail:%d", time.Now().UnixNano())
	decision(t, w, "before-bot", "engineering", action) // before the tail: not shown

	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var out, errOut testenv.Output
	done := start(tctx, auditorUser, &out, &errOut, "chron", "tail", "--action", action)
	g.Eventually(out.String).WithTimeout(20 * time.Second).Should(MatchRegexp(`TIME\s+AGENT\s+ACTION`)) // connected

	decision(t, w, "first-bot", "engineering", action)
	g.Eventually(out.String).WithTimeout(20 * time.Second).Should(MatchRegexp(`first-bot\s+` + action + `\s+ALLOW`))
	was := resumed.Load()
	g.Eventually(resumed.Load).WithTimeout(20 * time.Second).Should(BeNumerically(">", was)) // the console ended a stream
	decision(t, w, "second-bot", "engineering", action)
	g.Eventually(out.String).WithTimeout(20 * time.Second).Should(ContainSubstring("second-bot"))

	cancel()
	g.Eventually(done).WithTimeout(10 * time.Second).Should(Receive(Equal(0)))
	g.Expect(out.String()).NotTo(ContainSubstring("before-bot"))
	g.Expect(strings.Count(out.String(), "first-bot")).To(Equal(1), "a resumed tail repeats no row")
	g.Expect(errOut.String()).To(BeEmpty())
}
