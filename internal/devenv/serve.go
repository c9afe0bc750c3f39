package devenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/claiim/claiim-operator/test/pgtest"
	"github.com/claiim/claiim-operator/test/testenv"
)

// devServe is the supervisor: it runs everything and stops everything.
func devServe(f devFlags) (err error) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// The manager, the gate and the console run from the production binary,
	// as in a cluster.
	claiim, err := f.claiimBinary()
	if err != nil {
		return err
	}
	if err := os.WriteFile(f.path("pid"), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		return err
	}
	defer os.Remove(f.path("pid"))
	defer os.Remove(f.path("env"))
	logf := func(format string, a ...any) {
		fmt.Printf("%s "+format+"\n", append([]any{time.Now().Format(time.TimeOnly)}, a...)...)
	}

	env := testenv.New()
	env.WebhookInstallOptions = envtest.WebhookInstallOptions{
		Paths: []string{filepath.Join(testenv.RepoRoot(), "config", "webhook")}, LocalServingHost: "127.0.0.1",
	}
	if err := peopleTokens(env, f); err != nil {
		return err
	}
	logf("starting etcd and kube-apiserver (RBAC on)")
	cfg, err := testenv.Start(env)
	if err != nil {
		return err
	}
	defer func() {
		logf("stopping kube-apiserver and etcd")
		if err := env.Stop(); err != nil {
			logf("stopping kube-apiserver and etcd: %v", err)
		}
	}()
	root, err := client.New(cfg, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		return err
	}
	for _, file := range []string{"role.yaml", "user_roles.yaml", "gate_role.yaml", "console_role.yaml"} {
		if err := testenv.ApplyFile(ctx, root, filepath.Join(testenv.RepoRoot(), "config", "rbac", file)); err != nil {
			return err
		}
	}
	bindings := map[string][]string{
		devManager: {"claiim-manager"}, devGate: {"claiim-gate"}, devConsole: {"claiim-console"},
		devAdmin: {"claiim-admin", "claiim-auditor"}, devPeer: {"claiim-admin", "claiim-approver", "claiim-auditor"},
	}
	for user, roles := range bindings {
		for _, role := range roles {
			if err := root.Create(ctx, &rbacv1.ClusterRoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: role + "-" + strings.NewReplacer("@", "-at-", ":", "-", ".", "-").Replace(user)},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
				Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
			}); err != nil {
				return fmt.Errorf("binding %s to %s: %w", user, role, err)
			}
		}
	}
	// Chron's stream Leases and key Secrets live in claiim-system, as in a
	// cluster. The local gate has no mounted Secret: it may read its own
	// keys and hold the Leases of its set there.
	if err := root.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "claiim-system"}}); err != nil {
		return err
	}
	if err := root.Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "claiim-gate-chron", Namespace: "claiim-system"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "create", "update"}},
			{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{"claiim-chron-gate-keys"}, Verbs: []string{"get"}},
		}}); err != nil {
		return err
	}
	if err := root.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "claiim-gate-chron", Namespace: "claiim-system"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "claiim-gate-chron"},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: devGate}}}); err != nil {
		return err
	}
	// `claiim chron verify` checks the streams against their checkpoints:
	// the people read the Leases and the public keys (no secret), and so
	// does the console for its verify (the chart's Role claiim-console-chron).
	if err := root.Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "claiim-chron-verifier", Namespace: "claiim-system"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"list"}},
			{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{"claiim-chron-public"}, Verbs: []string{"get"}},
		}}); err != nil {
		return err
	}
	if err := root.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "claiim-chron-verifier", Namespace: "claiim-system"},
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "claiim-chron-verifier"},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: devAdmin},
			{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: devPeer},
			{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: devConsole}}}); err != nil {
		return err
	}
	// The seed shows the provisioner the agent's token once: here admin
	// may read the token Secrets in the default namespace.
	if err := root.Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "claiim-token-reader", Namespace: "default"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}}}}); err != nil {
		return err
	}
	if err := root.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "claiim-token-reader", Namespace: "default"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "claiim-token-reader"},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: devAdmin}}}); err != nil {
		return err
	}
	kubeconfigs := map[string]envtest.User{
		"kubeconfig-admin":   {Name: devAdmin, Groups: []string{"system:authenticated"}},
		"kubeconfig-peer":    {Name: devPeer, Groups: []string{"system:authenticated"}},
		"kubeconfig-manager": {Name: devManager, Groups: []string{"system:serviceaccounts", "system:authenticated"}},
		"kubeconfig-gate":    {Name: devGate, Groups: []string{"system:serviceaccounts", "system:authenticated"}},
		"kubeconfig-console": {Name: devConsole, Groups: []string{"system:serviceaccounts", "system:authenticated"}},
		"kubeconfig-root":    {Name: "dev-root", Groups: []string{"system:masters"}},
	}
	for file, u := range kubeconfigs {
		au, err := env.AddUser(u, nil)
		if err != nil {
			return err
		}
		b, err := au.KubeConfig()
		if err != nil {
			return err
		}
		if err := os.WriteFile(f.path(file), b, 0o600); err != nil {
			return err
		}
	}

	ownerURL := f.dbURL
	if ownerURL == "" {
		logf("starting a throwaway PostgreSQL")
		pg, err := pgtest.Start(ctx)
		if err != nil {
			return err
		}
		defer func() {
			logf("stopping PostgreSQL")
			pg.Stop()
		}()
		if ownerURL, err = pg.CreateDatabase(ctx, "claiim"); err != nil {
			return err
		}
	}
	logf("migrating Chron and setting up its roles (claiim chron migrate)")
	dbURLs, out, err := migrateChron(ctx, claiim, ownerURL)
	if err != nil {
		return err
	}
	fmt.Print(out)

	wio := env.WebhookInstallOptions
	children := []*exec.Cmd{}
	defer func() {
		for _, c := range children {
			_ = c.Process.Signal(syscall.SIGTERM)
		}
		for _, c := range children {
			done := make(chan struct{})
			go func() { _ = c.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				_ = c.Process.Kill()
			}
		}
	}()
	exited := make(chan string, 3)
	start := func(name, kubeconfig, dbURL string, args ...string) error {
		lf, err := os.Create(f.path(name + ".log"))
		if err != nil {
			return err
		}
		c := exec.Command(claiim, args...)
		c.Env = append(os.Environ(), "KUBECONFIG="+f.path(kubeconfig), "DATABASE_URL="+dbURL)
		c.Stdout, c.Stderr = lf, lf
		logf("starting the %s (log: %s)", name, lf.Name())
		if err := c.Start(); err != nil {
			return err
		}
		children = append(children, c)
		go func() { _ = c.Wait(); exited <- name }()
		return nil
	}
	if err := start("manager", "kubeconfig-manager", dbURLs["manager"], "manager", "--metrics-bind-address=0", "--health-probe-bind-address=127.0.0.1:0",
		"--webhook-host="+wio.LocalServingHost, "--webhook-port="+strconv.Itoa(wio.LocalServingPort), "--webhook-cert-dir="+wio.LocalServingCertDir,
		"--manager-username="+devManager, "--gate-url="+f.gateURL()+"/v", "--what-if-database-url="+dbURLs["reader"],
		// The configurations as envtest installed them: kept in place, as in a cluster.
		"--webhook-url=https://"+net.JoinHostPort(wio.LocalServingHost, strconv.Itoa(wio.LocalServingPort))+"/",
		"--webhook-mutating-configuration=mutating-webhook-configuration",
		"--webhook-validating-configuration=validating-webhook-configuration"); err != nil {
		return err
	}
	// No load balancer to leave locally: the gate stops without draining.
	if err := start("gate", "kubeconfig-gate", dbURLs["gate"], "gate", fmt.Sprintf("--listen=127.0.0.1:%d", f.gatePort), "--metrics-bind-address=0", "--replica=dev",
		"--shutdown-drain=0"); err != nil {
		return err
	}
	// The console reads Chron as the reader role and acts for people with
	// their own tokens (.dev/token-admin, .dev/token-peer).
	if err := start("console", "kubeconfig-console", dbURLs["reader"], "console", fmt.Sprintf("--listen=127.0.0.1:%d", f.consolePort),
		"--gate-url="+f.gateURL()+"/v", "--chron-namespace=claiim-system"); err != nil {
		return err
	}

	envFile := fmt.Sprintf(`# Written by 'claiim-dev up'. Source it: . %[1]s/env
export KUBECONFIG=%[1]s/kubeconfig-admin
export CLAIIM_ADMIN_KUBECONFIG=%[1]s/kubeconfig-admin
export CLAIIM_PEER_KUBECONFIG=%[1]s/kubeconfig-peer
export CLAIIM_ROOT_KUBECONFIG=%[1]s/kubeconfig-root
# Chron as its reader (claiim chron list|verify); the owner's URL, for
# migrations only, is CLAIIM_CHRON_OWNER_URL.
export DATABASE_URL=%[2]q
export CLAIIM_CHRON_OWNER_URL=%[5]q
export CLAIIM_GATE_URL=%[3]s/v
# The console: log in with the token in %[1]s/token-admin or token-peer.
export CLAIIM_CONSOLE_URL=%[6]s
export PATH=%[4]q:"$PATH"
`, f.dir, dbURLs["reader"], f.gateURL(), os.Getenv("KUBEBUILDER_ASSETS")+":"+filepath.Dir(claiim), ownerURL, f.consoleURL())
	if err := os.WriteFile(f.path("env"), []byte(envFile), 0o600); err != nil {
		return err
	}
	logf("ready")
	select {
	case <-ctx.Done():
		logf("stopping")
		return nil
	case name := <-exited:
		return fmt.Errorf("the %s exited; see %s", name, f.path(name+".log"))
	}
}
