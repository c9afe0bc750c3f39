package kubectlclaiim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/controllers"
	"github.com/claiim/claiim-operator/gate/api"
	"github.com/claiim/claiim-operator/internal/kubectlclaiim"
	"github.com/claiim/claiim-operator/test/consoletest"
	"github.com/claiim/claiim-operator/test/testenv"
)

// The plugin against real parts (test/consoletest, the console's world):
// envtest's apiserver with RBAC, the manager's reconcilers and admission
// webhooks (running as the manager's own identity), a real PostgreSQL
// for Chron, the gate over HTTP and the console over HTTPS. The two
// people of the seed have their own client certificates and kubeconfigs;
// every command runs as one of them. They, and the people who read Chron
// through the console, also have bearer tokens (the apiserver's static
// tokens, as an OIDC id token would be) and a kubeconfig holding only the
// token.
const (
	adminUser   = consoletest.Admin
	peerUser    = consoletest.Peer
	auditorUser = consoletest.Auditor // claiim-auditor: every org's Chron
	engUser     = consoletest.Eng     // org engineering's Chron only
	nobodyUser  = consoletest.Nobody  // no role at all
)

// people are the identities with kubeconfigs of their own.
var people = []string{adminUser, peerUser, auditorUser, engUser, nobodyUser}

var (
	env        *testenv.Env
	ctx        context.Context
	kubeconfig = map[string]string{} // user → kubeconfig file with their client certificate
	tokenConf  = map[string]string{} // user → kubeconfig file with their bearer token
	cacheDir   string
	world      *consoletest.World
	chronURL   string
	pool       *pgxpool.Pool
)

func TestMain(m *testing.M) { testenv.Main(m, launch) }

func launch(m *testing.M) int {
	var err error
	world, err = consoletest.Launch(consoletest.Options{Gate: true, History: true, Objects: keysReader(adminUser),
		// A short lifetime makes every tail reconnect within the test.
		TailLifetime: time.Second, Wrap: countResumed})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = world.Stop() }()
	env, ctx = world.Env, world.Ctx
	pool, chronURL = env.Chron, env.Chron.Config().ConnString()

	dir, err := os.MkdirTemp("", "kubectl-claiim-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	cacheDir = filepath.Join(dir, "cache")
	for _, u := range people {
		if tokenConf[u], err = writeKubeconfig(dir, u, &clientcmdapi.AuthInfo{Token: env.Token(u)}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	for _, user := range []string{adminUser, peerUser} {
		// A second certificate for the same name: envtest signs one per call.
		au, err := env.Environment.AddUser(envtest.User{Name: user, Groups: []string{"system:authenticated"}}, env.Config)
		if err == nil {
			cfg := au.Config()
			kubeconfig[user], err = writeKubeconfig(dir, user, &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData})
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	if err := trustConsole(dir, world.Server); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// keysReader lets user read the manager's public attestation keys, so
// explain verifies signatures as the gate does; peer has no such right.
func keysReader(user string) []client.Object {
	return []client.Object{
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: consoletest.Namespace, Name: "attestation-keys-reader"},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get"},
				ResourceNames: []string{controllers.AttestationKeysConfigMap}}}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: consoletest.Namespace, Name: "attestation-keys-reader"},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "attestation-keys-reader"},
			Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}}},
	}
}

// writeKubeconfig writes a kubeconfig holding only the identity auth, as
// a person's own kubeconfig would.
func writeKubeconfig(dir, user string, auth *clientcmdapi.AuthInfo) (string, error) {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: env.Config.Host, CertificateAuthorityData: env.Config.CAData}
	kc.AuthInfos[user] = auth
	kc.Contexts[user] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: user, Namespace: "default"}
	kc.CurrentContext = user
	kind := "cert"
	if auth.Token != "" {
		kind = "token"
	}
	path := filepath.Join(dir, strings.ReplaceAll(user, "@", "-at-")+"."+kind+".kubeconfig")
	return path, clientcmd.WriteToFile(*kc, path)
}

// result is one run of the plugin.
type result struct {
	out, err string
	code     int
}

// kc runs `kubectl claiim args...` as user, in-process, through the same
// entry point as the binary.
func kc(user string, args ...string) result { return run(kubeconfig[user], args...) }

// run runs the plugin with a kubeconfig file.
func run(kubeconfigFile string, args ...string) result {
	var out, errOut bytes.Buffer
	all := append([]string{"--kubeconfig", kubeconfigFile, "--cache-dir", cacheDir}, args...)
	code := kubectlclaiim.Execute(all, genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	return result{out: out.String(), err: errOut.String(), code: code}
}

// ok runs the plugin and fails the test unless it succeeds.
func ok(t *testing.T, user string, args ...string) string {
	t.Helper()
	return must(t, kc(user, args...), user, args)
}

func must(t *testing.T, r result, user string, args []string) string {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("kubectl claiim %s as %s: exit %d\n%s%s", strings.Join(args, " "), user, r.code, r.out, r.err)
	}
	return r.out
}

// okJSON runs the plugin with -o json and decodes what it printed.
func okJSON(t *testing.T, into any, user string, args ...string) {
	t.Helper()
	out := ok(t, user, append(args, "-o", "json")...)
	if err := json.Unmarshal([]byte(out), into); err != nil {
		t.Fatalf("kubectl claiim %s -o json printed no JSON (%v):\n%s", strings.Join(args, " "), err, out)
	}
}

var sessions sync.Map // user → the name of a session elevating them

// elevate gives user an active PIM session, approved by the other person.
func elevate(t *testing.T, user string) string {
	t.Helper()
	if name, ok := sessions.Load(user); ok {
		return name.(string)
	}
	approver := peerUser // only admin is elevated in these tests; peer is the approver
	var p claiimv1.PIMRequest
	okJSON(t, &p, user, "pim", "request", "--reason", "Initial onboarding -- setting up first agent fleet", "--duration", "1h")
	ok(t, approver, "pim", "approve", p.Name, "--reason", "ok")
	NewWithT(t).Eventually(func(g Gomega) {
		var id struct{ ActiveSessions []struct{ Name string } }
		okJSON(t, &id, user, "whoami")
		g.Expect(id.ActiveSessions).To(ContainElement(HaveField("Name", p.Name)))
	}).WithTimeout(20 * time.Second).Should(Succeed())
	sessions.Store(user, p.Name)
	return p.Name
}

var seedOnce sync.Once

// seed applies config/samples as admin under a session, once, and waits
// for the seed's agent to be Active.
func seed(t *testing.T) {
	t.Helper()
	elevate(t, adminUser)
	seedOnce.Do(func() {
		for _, f := range []string{"aiorg", "skill", "policy", "agent"} {
			path := filepath.Join(testenv.RepoRoot(), "config", "samples", "claiim_v1alpha1_"+f+".yaml")
			if err := testenv.ApplyFile(ctx, env.As(adminUser), path); err != nil {
				t.Fatal(err)
			}
		}
	})
	waitPhase(t, "prod-deploy-bot", claiimv1.AgentActive)
}

func waitPhase(t *testing.T, agent string, phase claiimv1.AgentPhase) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		a := &claiimv1.Agent{}
		g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: "default", Name: agent}, a)).To(Succeed())
		g.Expect(a.Status.Phase).To(Equal(phase))
		g.Expect(a.Status.ObservedGeneration).To(Equal(a.Generation))
	}).WithTimeout(20 * time.Second).Should(Succeed())
}

// askGate asks the gate as the agent, with its token from its Secret.
func askGate(t *testing.T, agent, action string) api.ValidateResponse {
	t.Helper()
	sec := &corev1.Secret{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: "default", Name: agent + "-claiim-token"}, sec); err != nil {
		t.Fatal(err)
	}
	r, err := world.Validate(string(sec.Data[claiimv1.SecretKeyAgentToken]),
		api.ValidateRequest{Action: action, SkillVersionID: string(sec.Data[claiimv1.SecretKeySkillVersionID])})
	if err != nil {
		t.Fatal(err)
	}
	return r
}
