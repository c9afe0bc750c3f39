// Package e2e runs the whole system as a user does: `claiim-dev up`, the
// onboarding guide's commands (docs/onboarding.md), the rehearsal script,
// the seed's troubleshooting cases, and `claiim-dev down`.
package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/claiim/claiim-operator/test/testenv"
)

// rehearsalBlock is the seed's expected output, exactly.
const rehearsalBlock = `Action 1: deploy to staging-eu-1
  Requesting CLAIIM approval for  deploy:staging
  ALLOW -- gate cleared (OWN_AIORG)
  Deployed  (simulated)

Action 2: deploy to prod-eu-1
  Requesting CLAIIM approval for  deploy:production
  DENY -- policy deny
  Production deployment blocked. No action taken.
`

type system struct {
	t           *testing.T
	root        string // repository
	bin         string // holds the claiim and claiim-dev binaries, as bin/ after make build
	dir         string // the dev state dir
	work        string // a working directory that looks like the repository with .dev in it
	env         map[string]string
	gatePort    int
	consolePort int
}

func TestOnboarding(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole local control plane")
	}
	if err := testenv.Available(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")); err != nil {
		t.Fatal("no kubectl in KUBEBUILDER_ASSETS; run 'make test', which builds it")
	}
	s := &system{t: t, root: testenv.RepoRoot(), bin: t.TempDir(), dir: t.TempDir(), work: t.TempDir()}
	s.build()
	s.gatePort, s.consolePort = freePort(t), freePort(t)
	s.up()

	t.Run("docs/onboarding.md, every command", s.docs)
	t.Run("docs/install.md, every command", s.install)
	t.Run("rehearsal, twice", s.rehearsal)
	t.Run("the console reads Chron as the person", s.console)
	t.Run("troubleshooting", s.troubleshooting)
	t.Run("dev down leaves nothing behind", s.down)
}

func (s *system) build() {
	for _, name := range []string{"claiim", "claiim-dev"} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(s.bin, name), filepath.Join(s.root, "cmd", name)).CombinedOutput()
		if err != nil {
			s.t.Fatalf("go build %s: %v\n%s", name, err, out)
		}
	}
	// The production binary no longer carries the local control plane; it says where it went.
	out, err := exec.Command(filepath.Join(s.bin, "claiim"), "dev", "up").CombinedOutput()
	if ee := (*exec.ExitError)(nil); !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "claiim-dev up") || strings.Count(string(out), "\n") != 1 {
		s.t.Fatalf("claiim dev up: want a one-line hint to claiim-dev and exit status 2, got %v:\n%s", err, out)
	}
	for _, d := range []string{"config", "hack", "gate", "charts"} {
		if err := os.Symlink(filepath.Join(s.root, d), filepath.Join(s.work, d)); err != nil {
			s.t.Fatal(err)
		}
	}
	if err := os.Symlink(s.dir, filepath.Join(s.work, ".dev")); err != nil {
		s.t.Fatal(err)
	}
}

// dev runs claiim-dev, which finds the claiim binary beside itself.
func (s *system) dev(args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(s.bin, "claiim-dev"), args...)
	cmd.Dir = s.root
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (s *system) up() {
	ports := []string{"--gate-port", fmt.Sprint(s.gatePort), "--console-port", fmt.Sprint(s.consolePort)}
	out, err := s.dev(append([]string{"up", "--dir", s.dir}, ports...)...)
	if err != nil {
		s.t.Fatalf("claiim-dev up: %v\n%s", err, out)
	}
	s.t.Cleanup(func() { _, _ = s.dev("down", "--dir", s.dir) })
	if !strings.Contains(out, "CLAIIM is running") {
		s.t.Fatalf("dev up did not say it is running:\n%s", out)
	}
	out, err = s.dev(append([]string{"up", "--dir", s.dir}, ports...)...)
	if err != nil || !strings.Contains(out, "already running") {
		s.t.Fatalf("a second dev up is not idempotent (%v):\n%s", err, out)
	}
	s.env = map[string]string{}
	f, err := os.Open(filepath.Join(s.dir, "env"))
	if err != nil {
		s.t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "export "), "="); ok && !strings.HasPrefix(k, "#") {
			s.env[k] = strings.Trim(v, `"`)
		}
	}
}

// bash runs a script in the work directory with the dev env sourced.
func (s *system) bash(script string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", "set -euo pipefail\n. .dev/env\n"+script)
	cmd.Dir = s.work
	cmd.Env = append(os.Environ(), "PATH="+s.bin+":"+os.Getenv("PATH"), "CLAIIM_DEV_DIR="+s.dir)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

var shBlock = regexp.MustCompile("(?s)```sh\n(.*?)```")
var textBlock = regexp.MustCompile("(?s)```text\n(.*?)```")

// docScript joins a guide's sh blocks into one script.
func (s *system) docScript(t *testing.T, name string) (string, string) {
	b, err := os.ReadFile(filepath.Join(s.root, "docs", name))
	if err != nil {
		t.Fatal(err)
	}
	var script strings.Builder
	for _, m := range shBlock.FindAllStringSubmatch(string(b), -1) {
		script.WriteString(m[1])
		script.WriteString("\n")
	}
	return string(b), script.String()
}

func (s *system) docs(t *testing.T) {
	b, script := s.docScript(t, "onboarding.md")
	out, err := s.bash(script)
	if err != nil {
		t.Fatalf("the guide's commands failed: %v\n%s", err, out)
	}
	for _, want := range []string{
		`{"status":"ok"}`, "admin@claiim.io\npeer@claiim.io\n",
		"needs an active PIM session for admin@claiim.io", "you cannot approve your own request",
		"Active   peer@claiim.io", "OK: every stream's hash chain is intact", "\n401\n",
		"What-if: create Policy/no-staging-deploys",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the guide's output lacks %q:\n%s", want, out)
		}
	}
	// Step 12's what-if: the staging deploys of step 10 would flip.
	if !regexp.MustCompile(`default/prod-deploy-bot\s+deploy:staging\s+ALLOW OWN_AIORG\s+DENY POLICY_DENY\s+[1-9]`).MatchString(out) {
		t.Errorf("the guide's what-if does not show the staging deploys flipping:\n%s", out)
	}
	for _, m := range textBlock.FindAllStringSubmatch(b, -1) {
		if !strings.Contains(out, m[1]) {
			t.Errorf("the guide promises\n%s\nbut the commands printed:\n%s", m[1], out)
		}
	}
}

// install runs the production guide as a cluster admin against the local
// control plane (helm installs for real; no kubelet runs the pods).
func (s *system) install(t *testing.T) {
	helm := os.Getenv("HELM")
	if helm == "" {
		t.Fatal("HELM is not set; run 'make test', which installs helm and sets it")
	}
	// A cluster of its own: the local control plane already holds the
	// people's roles that `make dev` made, which Helm would refuse to adopt.
	env := testenv.New()
	if _, err := testenv.Start(env); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	admin, err := env.AddUser(envtest.User{Name: "cluster-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := admin.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	_, script := s.docScript(t, "install.md")
	out, err := s.bash(fmt.Sprintf("export KUBECONFIG=%q\nhelm() { %q \"$@\"; }\n%s", kubeconfig, helm, script))
	if err != nil {
		t.Fatalf("the install guide's commands failed: %v\n%s", err, out)
	}
	for _, want := range []string{"Chron schema is up to date", "claiim-manager", "clusterrolebinding.rbac.authorization.k8s.io/", "server-side dry run: ok"} {
		if !strings.Contains(out, want) {
			t.Errorf("the install guide's output lacks %q:\n%s", want, out)
		}
	}
}

func (s *system) rehearsal(t *testing.T) {
	for i := 1; i <= 2; i++ {
		out, err := s.bash("hack/rehearsal.sh")
		if err != nil {
			t.Fatalf("rehearsal run %d: %v\n%s", i, err, out)
		}
		if !strings.Contains(out, rehearsalBlock) {
			t.Fatalf("rehearsal run %d did not print the seed's block:\n%s", i, out)
		}
		// The two Chron rows of this run, newest first, with the seed's columns.
		i := strings.Index(out, "TIME ")
		if i < 0 {
			t.Fatalf("no Chron table:\n%s", out)
		}
		rows := strings.Split(strings.TrimSpace(out[i:]), "\n")
		if len(rows) != 3 || !strings.Contains(rows[0], "POLICY VERSION") || !strings.Contains(rows[0], "SKILL VERSION") ||
			!regexp.MustCompile(`deploy:production\s+DENY\s+admin@claiim.io\s+no-production-deploys@1`).MatchString(rows[1]) ||
			!regexp.MustCompile(`deploy:staging\s+ALLOW\s+admin@claiim.io`).MatchString(rows[2]) {
			t.Fatalf("Chron rows are not the two decisions:\n%s", strings.Join(rows, "\n"))
		}
	}
	out, err := s.bash("claiim chron list --agent default/prod-deploy-bot --kind decision --limit 100 | tail -n +2 | wc -l")
	if err != nil || strings.TrimSpace(out) != "6" {
		t.Fatalf("want exactly one Chron row per decision (2 from the guide + 2 per rehearsal = 6), got %q (%v)", out, err)
	}
}

// console reads the rehearsal's decisions through the Chron API with the
// admin's own token from .dev/token-admin, as the printed summary says.
func (s *system) console(t *testing.T) {
	out, err := s.bash(`curl -sf -H "Authorization: Bearer $(cat .dev/token-admin)" ` +
		`"$CLAIIM_CONSOLE_URL/api/v1/chron/entries?agent=default/prod-deploy-bot&kind=decision&limit=100" | grep -o '"outcome":"[A-Z]*"' | sort | uniq -c`)
	if err != nil || !regexp.MustCompile(`3 "outcome":"ALLOW"\s+3 "outcome":"DENY"`).MatchString(out) {
		t.Fatalf("the console's Chron API as admin: want the 6 decisions (3 ALLOW, 3 DENY), got %q (%v)", out, err)
	}
	out, err = s.bash(`curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer not-a-token" "$CLAIIM_CONSOLE_URL/api/v1/chron/entries"`)
	if err != nil || out != "401" {
		t.Fatalf("the console's Chron API with a forged token: %q (%v), want 401", out, err)
	}
}

func (s *system) troubleshooting(t *testing.T) {
	// 401: a wrong token.
	out, err := s.bash(`curl -s -w ' %{http_code}' -X POST "$CLAIIM_GATE_URL/validate" -H "Authorization: Bearer wrong" -d '{"action":"deploy:staging"}'`)
	if err != nil || !strings.HasSuffix(out, " 401") || !strings.Contains(out, "UNAUTHENTICATED") {
		t.Errorf("wrong token: want 401 UNAUTHENTICATED, got %s (%v)", out, err)
	}
	// 403 right after provisioning: the anchor has not accepted.
	out, err = s.bash(`
pim=$(kubectl create -f config/samples/claiim_v1alpha1_pimrequest.yaml -o name)
kubectl --kubeconfig "$CLAIIM_PEER_KUBECONFIG" annotate "$pim" claiim.io/approve=ok >/dev/null
kubectl wait --for=jsonpath='{.status.phase}'=Active "$pim" --timeout=60s >/dev/null
sed -e 's/name: prod-deploy-bot/name: peer-bot/' -e 's/accountabilityAnchor: admin@claiim.io/accountabilityAnchor: peer@claiim.io/' \
  config/samples/claiim_v1alpha1_agent.yaml | kubectl apply -f - >/dev/null
kubectl wait --for=jsonpath='{.status.phase}'=Inactive agent/peer-bot -n default --timeout=60s >/dev/null
tok=$(kubectl get secret peer-bot-claiim-token -n default -o jsonpath='{.data.AGENT_TOKEN}' | base64 -d)
svid=$(kubectl get secret peer-bot-claiim-token -n default -o jsonpath='{.data.SKILL_VERSION_ID}' | base64 -d)
curl -s -w ' %{http_code}' -X POST "$CLAIIM_GATE_URL/validate" -H "Authorization: Bearer $tok" \
  -d "{\"action\":\"deploy:staging\",\"skill_version_id\":\"$svid\"}"`)
	if err != nil || !strings.HasSuffix(out, " 403") || !strings.Contains(out, "AGENT_INACTIVE") || !strings.Contains(out, "INACTIVE") {
		t.Errorf("not-accepted agent: want 403 AGENT_INACTIVE, got %s (%v)", out, err)
	}
	// Approving your own request.
	out, _ = s.bash(`pim=$(kubectl create -f config/samples/claiim_v1alpha1_pimrequest.yaml -o name); kubectl annotate "$pim" claiim.io/approve=me 2>&1 || true`)
	if !strings.Contains(out, "you cannot approve your own request") {
		t.Errorf("approving one's own request was not refused with the fix:\n%s", out)
	}
}

func (s *system) down(t *testing.T) {
	apiserver := hostPort(t, s.dir, "kubeconfig-admin")
	dbURL, err := url.Parse(s.env["DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.dev("down", "--dir", s.dir)
	if err != nil || !strings.Contains(out, "stopped") {
		t.Fatalf("dev down: %v\n%s", err, out)
	}
	for _, addr := range []string{fmt.Sprintf("127.0.0.1:%d", s.gatePort), fmt.Sprintf("127.0.0.1:%d", s.consolePort), apiserver, dbURL.Host} {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after dev down", addr)
		}
	}
	if _, err := os.Stat(filepath.Join(s.dir, "pid")); !os.IsNotExist(err) {
		t.Errorf("the pid file is still there")
	}
}

func hostPort(t *testing.T, dir, kubeconfig string) string {
	b, err := os.ReadFile(filepath.Join(dir, kubeconfig))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`server: https?://([^\s/]+)`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no server in %s", kubeconfig)
	}
	return string(m[1])
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
